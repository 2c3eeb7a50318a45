"""Usage rollups: who used which right, and when, counted by the sealer and kept exact by retention.

Most records come through the real token endpoint; records that need a chosen time are written
through ``audit.services.record`` in the shape the endpoint writes.
"""

from __future__ import annotations

import base64
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from typing import Any
from unittest import mock

import pytest
from django.conf import settings
from django.db import connection
from django.http import HttpResponse
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts import services
from accounts.models import Registry, Team, User
from accounts.services import ensure_keys
from audit import chain, retention, usage
from audit.context import AuditContext
from audit.models import AccessUse, AccessUseDay, AuditRecord, Kind
from audit.services import record
from tests.conftest import PASSWORD, SYSTEM

pytestmark = pytest.mark.django_db

LAG = timedelta(seconds=settings.AUDIT_SEAL_LAG)
ROBOT = "robot$web+ci"


@pytest.fixture
def registry(db: None) -> Registry:
    registry = services.create_registry("registry", context=SYSTEM)
    ensure_keys()
    return registry


@pytest.fixture
def grants(registry: Registry, web: Team, carol: User) -> None:
    """alice and bob write web/**, carol reads web/app, pub/base is public."""
    services.create_grant(web, "web/**", "write", context=SYSTEM)
    services.create_grant(carol, "web/app", "read", context=SYSTEM)
    services.create_repository("pub/base", public=True, context=SYSTEM)


@contextmanager
def clock(at: datetime) -> Iterator[None]:
    """Records written inside are dated ``at`` (the write path reads ``timezone.now``)."""
    with mock.patch.object(timezone, "now", return_value=at):
        yield


def ask(*scopes: str, user: str | None = None, secret: str = PASSWORD, service: str = "registry") -> HttpResponse:
    """The token endpoint, as a registry client asks it (anonymous without ``user``)."""
    headers = {}
    if user is not None:
        headers["HTTP_AUTHORIZATION"] = "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()
    return Client().get("/auth/token", {"service": service, "scope": list(scopes)}, **headers)


def seal() -> int:
    """Seal every record written so far (the sealer stays AUDIT_SEAL_LAG behind the clock)."""
    return chain.seal(now=timezone.now() + LAG + timedelta(seconds=1))


def issued(
    actor: str,
    at: datetime,
    *,
    granted: tuple[str, ...] = ("pull",),
    repository: str = "web/app",
    subject_type: str = "user",
    outcome: str = "granted",
) -> AuditRecord:
    """An access record dated ``at``, shaped like the one the token endpoint writes when it issues a token."""
    actions = [
        {"type": "repository", "name": repository, "requested": list(granted), "granted": list(granted), "denied": []}
    ]
    detail = {"method": "GET", "jti": "0" * 32, "grant_type": "basic"}
    with clock(at):
        return record(
            Kind.ACCESS,
            outcome,
            AuditContext(actor=actor),
            subject_type=subject_type,
            registry="registry",
            repository=repository,
            actions=actions,
            detail=detail,
        )


def noon(days_ago: int) -> datetime:
    """UTC noon some days back: whole hours from either end of its day, whenever the test runs."""
    return (timezone.now() - timedelta(days=days_ago)).replace(hour=12, minute=0, second=0, microsecond=0)


def uses() -> dict[tuple[str, ...], int]:
    return {tuple(row[:-1]): row[-1] for row in AccessUse.objects.values_list(*usage.KEY_FIELDS, "count")}


def day_rows() -> dict[tuple[Any, ...], int]:
    return {tuple(row[:-1]): row[-1] for row in AccessUseDay.objects.values_list(*usage.DAY_FIELDS, "count")}


def times(key: tuple[str, ...]) -> tuple[datetime, datetime]:
    use = AccessUse.objects.get(**dict(zip(usage.KEY_FIELDS, key, strict=True)))
    return use.first_at, use.last_at


def access_times(actor: str) -> list[datetime]:
    return list(
        AuditRecord.objects.filter(kind=Kind.ACCESS, actor=actor).order_by("time").values_list("time", flat=True)
    )


def utc_day(value: datetime) -> date:
    return chain.utc(value).date()


# --- What counts --------------------------------------------------------------------------


def test_granted_pulls_and_pushes_count_once_per_record_under_the_user_with_a_login(grants: None) -> None:
    assert ask("repository:web/app:pull,push", "repository:web/app:pull", user="alice").status_code == 200
    assert ask("repository:web/app:pull,push", user="alice").status_code == 200
    assert seal() == AuditRecord.objects.count()
    assert uses() == {
        ("user", "alice", "registry", "web/app", "pull"): 2,
        ("user", "alice", "registry", "web/app", "push"): 2,
        ("user", "alice", "registry", "", "login"): 2,
    }
    first, last = access_times("alice")
    assert times(("user", "alice", "registry", "web/app", "pull")) == (first, last)
    by_key: Counter[tuple[Any, ...]] = Counter()
    for (_, *key), count in day_rows().items():
        by_key[tuple(key)] += count
    assert by_key == uses()  # the day rows add up to the totals (on one day, or two across midnight)


def test_denied_actions_count_nothing_but_the_issued_token_is_a_login(grants: None) -> None:
    ask("repository:web/app:pull,push,delete", user="carol")  # partial: pull only
    ask("repository:web/other:pull", user="carol")  # denied, yet a token was issued
    assert list(AuditRecord.objects.filter(kind=Kind.ACCESS).order_by("id").values_list("outcome", flat=True)) == [
        "partial",
        "denied",
    ]
    seal()
    assert uses() == {
        ("user", "carol", "registry", "web/app", "pull"): 1,
        ("user", "carol", "registry", "", "login"): 2,
    }


def test_refusals_and_anonymous_requests_count_nothing(grants: None) -> None:
    ask("repository:web/app:pull", user="carol", secret="wrong")  # auth_failed
    ask("repository:web/app:pull", user="carol", service="elsewhere")  # invalid: unknown service
    ask("repository:pub/base:pull")  # anonymous, granted
    issued("carol", timezone.now(), outcome="limited")  # with granted actions even: the outcome decides
    outcomes = AuditRecord.objects.filter(kind=Kind.ACCESS).values_list("subject_type", "outcome")
    assert sorted(outcomes) == [
        ("anonymous", "granted"),
        ("user", "auth_failed"),
        ("user", "invalid"),
        ("user", "limited"),
    ]
    assert seal() == AuditRecord.objects.count()
    assert uses() == {}
    assert day_rows() == {}


def test_a_robot_counts_under_its_login_name(grants: None, web: Team) -> None:
    _, secret = services.create_robot(web, "ci", grants=[("web/app", "write")], context=SYSTEM)
    ask("repository:web/app:pull,push", user=ROBOT, secret=secret)
    seal()
    assert uses() == {
        ("robot", ROBOT, "registry", "web/app", "pull"): 1,
        ("robot", ROBOT, "registry", "web/app", "push"): 1,
        ("robot", ROBOT, "registry", "", "login"): 1,
    }


def test_a_personal_access_token_counts_under_its_user_and_as_its_own_login(grants: None, alice: User) -> None:
    _, secret = services.create_access_token(alice, "laptop", read_only=True, context=SYSTEM)
    ask("repository:web/app:pull,push", user="alice", secret=secret)  # read-only: pull only
    entry = AuditRecord.objects.get(kind=Kind.ACCESS)
    assert (entry.subject_type, entry.actor, entry.detail["credential"]) == ("token", "alice", "alice/laptop")
    seal()
    assert uses() == {
        ("user", "alice", "registry", "web/app", "pull"): 1,
        ("user", "alice", "registry", "", "login"): 1,
        ("token", "alice/laptop", "registry", "", "login"): 1,
    }


def test_star_and_the_catalog_add_nothing_beyond_the_concrete_actions(grants: None, ada: User) -> None:
    ask("repository:web/app:*", "registry:catalog:*", user="ada")
    granted = [entry["granted"] for entry in AuditRecord.objects.get(kind=Kind.ACCESS).actions]
    assert granted == [["pull", "push", "delete", "*"], ["*"]]
    seal()
    assert uses() == {
        ("user", "ada", "registry", "web/app", "pull"): 1,
        ("user", "ada", "registry", "web/app", "push"): 1,
        ("user", "ada", "registry", "web/app", "delete"): 1,
        ("user", "ada", "registry", "", "login"): 1,
    }


def test_a_name_longer_than_any_registry_accepts_is_not_counted() -> None:
    issued("alice", noon(1), repository="x" * 256)
    seal()
    assert uses() == {("user", "alice", "registry", "", "login"): 1}


# --- Adding up ----------------------------------------------------------------------------


def test_two_seal_passes_on_the_same_key_add_up_and_keep_the_first_and_last_times() -> None:
    start = noon(1)
    issued("alice", start)
    issued("alice", start + timedelta(minutes=1))
    assert chain.seal(batch=1) == 2  # one batch each
    key = ("user", "alice", "registry", "web/app", "pull")
    late = issued("alice", start - timedelta(minutes=1))  # committed late, dated before the others
    assert chain.seal() == 1
    assert times(key) == (late.time, start + timedelta(minutes=1))
    newest = issued("alice", start + timedelta(minutes=2))
    assert chain.seal() == 1
    assert uses() == {key: 4, ("user", "alice", "registry", "", "login"): 4}
    assert times(key) == (late.time, newest.time)
    assert day_rows() == {(utc_day(start), *key): 4, (utc_day(start), "user", "alice", "registry", "", "login"): 4}
    day = AccessUseDay.objects.get(action="pull")
    assert (day.first_at, day.last_at) == (late.time, newest.time)


def test_uses_on_two_days_make_two_day_rows_and_one_total() -> None:
    earlier, later = noon(3), noon(1)
    issued("bob", later, granted=("pull", "push"))
    issued("bob", earlier)
    seal()
    assert day_rows() == {
        (utc_day(earlier), "user", "bob", "registry", "web/app", "pull"): 1,
        (utc_day(earlier), "user", "bob", "registry", "", "login"): 1,
        (utc_day(later), "user", "bob", "registry", "web/app", "pull"): 1,
        (utc_day(later), "user", "bob", "registry", "web/app", "push"): 1,
        (utc_day(later), "user", "bob", "registry", "", "login"): 1,
    }
    assert uses()[("user", "bob", "registry", "web/app", "pull")] == 2
    assert times(("user", "bob", "registry", "web/app", "pull")) == (earlier, later)


def test_the_sealer_reads_each_usage_table_once_per_batch_whatever_its_size() -> None:
    for second in range(2):  # the second pass updates every row the first created
        for i in range(300):
            issued(f"user{i:03}", noon(1) + timedelta(seconds=second, milliseconds=i))
        with CaptureQueriesContext(connection) as queries:
            assert seal() == 300
        usage_sql = [q["sql"] for q in queries.captured_queries if "audit_accessuse" in q["sql"]]
        assert len([sql for sql in usage_sql if sql.startswith("SELECT")]) == 2
        assert len(usage_sql) < 40  # one query a record would be 600 or more
    assert set(uses().values()) == {2}
    assert len(uses()) == 600


@pytest.mark.django_db(transaction=True)
def test_two_sealers_running_at_once_count_each_record_once_into_the_same_rows() -> None:
    for i in range(120):
        issued("alice", noon(1) + timedelta(milliseconds=i))
    now, errors = timezone.now(), []
    start = threading.Barrier(2)

    def sealer() -> None:
        try:
            start.wait()
            chain.seal(now=now, batch=10)
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=sealer) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert uses() == {
        ("user", "alice", "registry", "web/app", "pull"): 120,
        ("user", "alice", "registry", "", "login"): 120,
    }


# --- Retention ----------------------------------------------------------------------------


def test_retention_forgets_the_dropped_day_and_every_use_whose_last_record_went() -> None:
    old = noon(settings.AUDIT_RETENTION_DAYS["access"] + 10)
    recent = noon(1)
    issued("alice", old)
    issued("alice", old + timedelta(hours=1), granted=("pull", "push"))
    issued("alice", recent)
    issued("bob", old)
    assert retention.apply() == 1
    assert not AuditRecord.objects.filter(time__lt=recent).exists()
    assert day_rows() == {
        (utc_day(recent), "user", "alice", "registry", "web/app", "pull"): 1,
        (utc_day(recent), "user", "alice", "registry", "", "login"): 1,
    }
    # Counts, first and last use now cover only the records left; bob's and alice's push went entirely.
    assert uses() == {
        ("user", "alice", "registry", "web/app", "pull"): 1,
        ("user", "alice", "registry", "", "login"): 1,
    }
    assert times(("user", "alice", "registry", "web/app", "pull")) == (recent, recent)
    assert usage.last_uses([("user", "bob")]) == {("user", "bob"): []}


def test_retention_keeps_the_uses_of_days_it_keeps() -> None:
    issued("alice", noon(2))
    issued("alice", noon(1))
    seal()
    before = (uses(), day_rows(), times(("user", "alice", "registry", "", "login")))
    assert retention.apply() == 0
    assert (uses(), day_rows(), times(("user", "alice", "registry", "", "login"))) == before
    assert before[0] == {
        ("user", "alice", "registry", "web/app", "pull"): 2,
        ("user", "alice", "registry", "", "login"): 2,
    }


# --- Reading, for the report --------------------------------------------------------------


def test_last_uses_and_day_counts_return_what_was_sealed() -> None:
    issued("alice", noon(3))
    second = issued("alice", noon(1), granted=("pull", "push"))
    robot = issued(ROBOT, noon(5), subject_type="robot")
    seal()
    subjects = [("user", "alice"), ("robot", ROBOT), ("user", "nobody"), ("robot", "alice")]
    assert usage.last_uses(subjects) == {
        ("user", "alice"): [
            usage.UseRow("registry", "", "login", second.time, 2),
            usage.UseRow("registry", "web/app", "pull", second.time, 2),
            usage.UseRow("registry", "web/app", "push", second.time, 1),
        ],
        ("robot", ROBOT): [
            usage.UseRow("registry", "", "login", robot.time, 1),
            usage.UseRow("registry", "web/app", "pull", robot.time, 1),
        ],
        ("user", "nobody"): [],
        ("robot", "alice"): [],
    }
    assert usage.day_counts(subjects, since=utc_day(noon(3))) == {
        ("user", "alice", "registry", "", "login"): 2,
        ("user", "alice", "registry", "web/app", "pull"): 2,
        ("user", "alice", "registry", "web/app", "push"): 1,
    }
    assert usage.day_counts(subjects, since=utc_day(noon(1))) == {
        ("user", "alice", "registry", "", "login"): 1,
        ("user", "alice", "registry", "web/app", "pull"): 1,
        ("user", "alice", "registry", "web/app", "push"): 1,
    }
    assert usage.day_counts([("user", "carol")], since=utc_day(noon(9))) == {}


def test_more_subjects_than_one_query_may_bind_are_counted_and_looked_up_in_chunks() -> None:
    actors = [f"user{i:04}" for i in range(950)]
    for second in range(2):  # the second pass finds every row the first made, past the first chunk too
        for i, actor in enumerate(actors):
            issued(actor, noon(1) + timedelta(seconds=second, milliseconds=i))
        assert seal() == 950
    subjects = [("user", actor) for actor in actors]
    found = usage.last_uses(subjects)
    assert len(found) == 950
    assert all([(row.action, row.count) for row in rows] == [("login", 2), ("pull", 2)] for rows in found.values())
    assert found[("user", "user0949")][1].last_at == noon(1) + timedelta(seconds=1, milliseconds=949)
    counts = usage.day_counts(subjects, since=utc_day(noon(1)))
    assert len(counts) == 1900 and set(counts.values()) == {2}


# --- Rebuilding ---------------------------------------------------------------------------


def test_rebuilding_counts_records_sealed_before_the_rollups_existed_exactly_once() -> None:
    issued("alice", noon(3), granted=("pull", "push"))
    issued("alice", noon(2))
    issued("robot$web+ci", noon(2), subject_type="robot", repository="web/api")
    seal()
    expected_uses, expected_days = uses(), day_rows()
    AccessUse.objects.all().delete()
    AccessUseDay.objects.all().delete()  # as after an upgrade: sealed records, no rollups

    assert chain.rebuild_usage() == 3
    assert (uses(), day_rows()) == (expected_uses, expected_days)
    assert chain.rebuild_usage() == 3  # again: the same, never doubled
    assert (uses(), day_rows()) == (expected_uses, expected_days)


def test_rebuilding_leaves_unsealed_records_to_the_sealer_which_counts_them_once() -> None:
    issued("alice", noon(2))
    seal()
    late = issued("alice", timezone.now() - timedelta(seconds=1))  # too young to seal yet
    chain.rebuild_usage()
    assert uses()[("user", "alice", "registry", "web/app", "pull")] == 1
    chain.seal(now=late.time + LAG + timedelta(seconds=1))
    assert uses()[("user", "alice", "registry", "web/app", "pull")] == 2
