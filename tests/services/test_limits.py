"""Failure limits: per (username, address) and per address, shared through the cache, lifted by admins."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
import redis
from django.core.cache import caches
from django.core.management import CommandError, call_command
from django.test import override_settings

from accounts import services
from accounts.models import AuthHold, HoldScope
from accounts.services import limits
from audit.models import AuditRecord, Kind
from registryadmin.env import cache_config
from tests.conftest import SYSTEM

pytestmark = pytest.mark.django_db
ATTACKER = "203.0.113.7"
HOME = "198.51.100.20"
REDIS_URL = "redis://127.0.0.1:6379/7"


def fail(username: str, ip: str, times: int) -> limits.Hold | None:
    hold = None
    for _ in range(times):
        hold = limits.failed(username, ip) or hold
    return hold


def test_the_tenth_failure_for_a_pair_holds_it_with_a_retry_after() -> None:
    assert fail("alice", ATTACKER, 9) is None
    assert limits.check("alice", ATTACKER).hold is None
    hold = fail("alice", ATTACKER, 1)
    assert hold is not None and hold.scope == HoldScope.USER
    checked = limits.check("Alice", ATTACKER)  # usernames are compared case-folded
    assert checked.hold is not None
    assert 1 <= checked.hold.retry_after() <= 60
    assert checked.hold.reason == "10 failed sign-ins for Alice from 203.0.113.7 within 10 minutes"


def test_the_same_user_from_another_address_is_not_held() -> None:
    fail("alice", ATTACKER, 30)
    assert limits.check("alice", ATTACKER).hold is not None
    assert limits.check("alice", HOME).hold is None
    assert limits.check("bob", ATTACKER).hold is None  # 30 < 50: the address as a whole is not held yet


def test_fifty_failures_from_one_address_hold_it_for_every_username() -> None:
    for n in range(49):
        limits.failed(f"user{n}", ATTACKER)
    assert limits.check("somebody", ATTACKER).hold is None
    hold = limits.failed("user49", ATTACKER)
    assert hold is not None and hold.scope == HoldScope.ADDRESS
    assert limits.check("somebody", ATTACKER).hold.scope == HoldScope.ADDRESS
    assert limits.check("somebody", HOME).hold is None
    assert AuthHold.objects.get(scope=HoldScope.ADDRESS).ip == ATTACKER


def test_a_success_resets_the_pair_count() -> None:
    fail("alice", HOME, 9)
    checked = limits.check("alice", HOME)
    assert checked.hold is None and checked.dirty
    limits.succeeded("alice", HOME, checked)
    assert not limits.check("alice", HOME).dirty
    assert fail("alice", HOME, 9) is None  # counting starts again from nothing


def test_a_clean_pair_costs_no_write_on_success(django_assert_num_queries) -> None:
    checked = limits.check("alice", HOME)
    assert not checked.dirty
    with django_assert_num_queries(0):
        limits.succeeded("alice", HOME, checked)


def test_backoff_doubles_while_the_pair_keeps_failing_and_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [time.time()]
    monkeypatch.setattr(limits, "_now", lambda: clock[0])
    durations = []
    fail("alice", ATTACKER, 9)
    for _ in range(8):
        hold = limits.failed("alice", ATTACKER)
        assert hold is not None
        durations.append(round(hold.until - clock[0]))
        clock[0] = hold.until + 1  # the hold ends; the guesser tries again at once
    assert durations == [60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert AuthHold.objects.get().level == 8


@override_settings(AUTH_FAIL_LIMIT_USER=3, AUTH_FAIL_WINDOW=100)
def test_failures_slide_out_of_the_window(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [time.time()]
    monkeypatch.setattr(limits, "_now", lambda: clock[0])
    fail("alice", ATTACKER, 2)
    clock[0] += 101
    assert limits.failed("alice", ATTACKER) is None  # the first two have left the window
    assert limits.failed("alice", ATTACKER) is None
    assert limits.failed("alice", ATTACKER) is not None


@override_settings(AUTH_LIMIT_EXEMPT_CIDRS=[__import__("ipaddress").ip_network("203.0.113.0/24")])
def test_exempt_networks_are_never_counted_or_held() -> None:
    assert fail("alice", ATTACKER, 100) is None
    assert limits.check("alice", ATTACKER).hold is None
    assert not AuthHold.objects.exists()


@override_settings(AUTH_FAIL_LIMIT_USER=0, AUTH_FAIL_LIMIT_IP=0)
def test_a_limit_of_zero_turns_limits_off() -> None:
    assert fail("alice", ATTACKER, 100) is None
    assert limits.check("alice", ATTACKER).hold is None


def test_lifting_an_address_ends_its_holds_forgets_counts_and_is_audited() -> None:
    fail("alice", ATTACKER, 10)
    for n in range(40):
        limits.failed(f"user{n}", ATTACKER)
    assert {h.scope for h in limits.active_holds()} == {HoldScope.USER, HoldScope.ADDRESS}
    lifted = limits.lift(SYSTEM, ip=ATTACKER)
    assert sorted(lifted) == ["address 203.0.113.7", "alice from 203.0.113.7"]
    assert limits.check("alice", ATTACKER).hold is None
    assert limits.failed("alice", ATTACKER) is None  # the count went with the hold
    changes = AuditRecord.objects.filter(kind=Kind.ADMIN_CHANGE, detail__action="limit.lift")
    assert changes.count() == 2
    assert {c.detail["target"] for c in changes} == set(lifted)


def test_lifting_a_username_lifts_it_from_every_address_and_nothing_else() -> None:
    fail("alice", ATTACKER, 10)
    fail("alice", HOME, 10)
    fail("bob", ATTACKER, 10)
    assert sorted(limits.lift(SYSTEM, username="ALICE")) == ["alice from 198.51.100.20", "alice from 203.0.113.7"]
    assert limits.check("alice", HOME).hold is None
    assert limits.check("bob", ATTACKER).hold is not None


def test_the_command_lifts_and_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    fail("alice", ATTACKER, 10)
    call_command("lift_limit", "--list")
    assert "alice from 203.0.113.7: 10 failures" in capsys.readouterr().out
    call_command("lift_limit", "--user", "alice")
    assert "lifted: alice from 203.0.113.7" in capsys.readouterr().out
    call_command("lift_limit", "--ip", ATTACKER)
    assert "nothing to lift" in capsys.readouterr().out
    assert AuditRecord.objects.filter(detail__action="limit.lift", actor="manage.py lift_limit").count() == 1


@pytest.mark.parametrize("args", [["--ip", "300.1.1.1"], ["--ip", "example.com"], []])
def test_the_command_refuses_bad_input_clearly(args: list[str]) -> None:
    with pytest.raises(CommandError, match=r"--ip|name what to lift"):
        call_command("lift_limit", *args)


def test_holds_are_listed_for_people_with_a_readable_reason() -> None:
    fail("", ATTACKER, 10)  # the refresh-token grant names nobody
    [hold] = limits.active_holds()
    assert limits.describe(hold) == "(refresh token) from 203.0.113.7"
    assert str(hold).startswith("hold on (refresh token) from 203.0.113.7 until")


@pytest.fixture
def redis_cache() -> Iterator[None]:
    """The production store: counts in Redis through the cache framework."""
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis at {REDIS_URL} is needed for this test: {exc}")
    config = cache_config(REDIS_URL)
    config["KEY_PREFIX"] = f"test-{uuid.uuid4().hex[:8]}"
    with override_settings(CACHES={"default": config}):
        caches["default"].clear()
        yield
        caches["default"].clear()


def test_on_redis_the_counts_are_shared_and_expire(redis_cache: None) -> None:
    assert "redis" in type(caches["default"]).__module__
    fail("alice", ATTACKER, 10)
    assert limits.check("alice", ATTACKER).hold is not None
    client = redis.Redis.from_url(REDIS_URL)
    keys = [key.decode() for key in client.keys("*limits:user:*")]
    assert keys, "the counts should be in Redis"
    assert all(0 < client.ttl(key) <= 600 + 60 + 3600 for key in keys)
    limits.lift(SYSTEM, username="alice")
    assert limits.check("alice", ATTACKER).hold is None


def test_on_redis_a_hold_is_seen_by_another_connection(redis_cache: None) -> None:
    fail("alice", ATTACKER, 10)
    # Nothing in process memory: a second client object reads the same state.
    other = cache_config(REDIS_URL)
    other["KEY_PREFIX"] = caches["default"].key_prefix
    with override_settings(CACHES={"default": other}):
        caches["default"].close()
        assert limits.check("alice", ATTACKER).hold is not None
    _ = services  # the services package exports this module
    assert services.limits is limits
