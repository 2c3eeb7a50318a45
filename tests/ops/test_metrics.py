"""/metrics in-process: the Prometheus text format, who may scrape, and each metric moving with its event.

alice leads team web (write on web/**), bob is a member, carol may read web/app; the robot robot$web+ci
writes to web/**. The values are this process's (no PROMETHEUS_MULTIPROC_DIR in tests): each test
reads a counter before and after its event. The two gunicorn workers adding up are
``test_metrics_e2e.py``'s.
"""

from __future__ import annotations

import base64
import ipaddress
import math
from collections.abc import Iterator
from datetime import timedelta

import ldap
import pytest
from django.db import DatabaseError, OperationalError, connection
from django.test import Client, override_settings
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from accounts import services
from accounts.models import AuthHold, Backup, BackupState, HoldScope, Registry, Team, User
from accounts.services import ensure_keys
from accounts.services.directory import DirectoryUnavailable, check_password
from audit import chain
from audit.jobs import run_job
from audit.models import AuditRecord
from registryadmin import metrics, views
from tests.conftest import PASSWORD, SYSTEM
from tests.directory import directory
from tests.harness.slapd import Slapd
from tests.harness.slapd import slapd as slapd  # the fixture

pytestmark = pytest.mark.django_db
TOKEN = "scrape-me-0123456789abcdef"
SCRAPER = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}
PROXY = "192.0.2.10"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(autouse=True)
def _metrics_token() -> Iterator[None]:
    with override_settings(METRICS_TOKEN=TOKEN, METRICS_ALLOWED_CIDRS=[]):
        yield


@pytest.fixture
def registry(db: None, web: Team, carol: User) -> Registry:
    registry = services.create_registry("registry", context=SYSTEM)
    ensure_keys()
    services.create_grant(web, "web/**", "write", context=SYSTEM)
    services.create_grant(carol, "web/app", "read", context=SYSTEM)
    services.create_repository("pub/base", public=True, context=SYSTEM)
    return registry


def scrape(**headers: str) -> Samples:
    response = Client().get("/metrics", **(headers or SCRAPER))
    assert response.status_code == 200, response.content
    return parse(response.content.decode())


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def requests(outcome: str, subject_type: str) -> float:
    return value(scrape(), "registryadmin_token_requests_total", outcome=outcome, subject_type=subject_type)


def ask(username: str | None, password: str = PASSWORD, scope: str = "repository:web/app:pull", **extra: str):
    headers = dict(extra)
    if username is not None:
        raw = base64.b64encode(f"{username}:{password}".encode()).decode()
        headers["HTTP_AUTHORIZATION"] = f"Basic {raw}"
    return Client().get("/auth/token", {"service": "registry", "scope": scope}, **headers)


# The format and who may read it ------------------------------------------------------------------


def test_it_answers_the_prometheus_text_format_with_every_metric_described(registry: Registry) -> None:
    ask("carol")
    response = Client().get("/metrics", **SCRAPER)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    text = response.content.decode()
    for name in (
        "registryadmin_token_requests_total",
        "registryadmin_token_request_duration_seconds",
        "registryadmin_audit_write_failures_total",
        "registryadmin_ldap_bind_errors_total",
        "registryadmin_audit_seal_lag_seconds",
        "registryadmin_job_last_success_age_seconds",
        "registryadmin_limit_holds",
        "registryadmin_state_up",
    ):
        assert f"# HELP {name} " in text and f"# TYPE {name} " in text, name
    families = {family.name: family.type for family in text_string_to_metric_families(text)}
    assert families["registryadmin_token_request_duration_seconds"] == "histogram"
    assert families["registryadmin_token_requests"] == "counter"
    assert 'le="0.001"' in text  # the latency buckets start at 1 ms


def test_without_token_or_networks_it_is_403_and_names_both_settings() -> None:
    with override_settings(METRICS_TOKEN="", METRICS_ALLOWED_CIDRS=[]):
        response = Client().get("/metrics", **SCRAPER)
    assert response.status_code == 403
    assert "METRICS_TOKEN" in response.content.decode() and "METRICS_ALLOWED_CIDRS" in response.content.decode()


@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong-token", f"Basic {TOKEN}", f"Bearer {TOKEN}x", "Bearer ", TOKEN]
)
def test_a_missing_or_wrong_bearer_token_is_401_with_a_challenge(authorization: str | None) -> None:
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization is not None else {}
    response = Client().get("/metrics", **headers)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert "registryadmin_" not in response.content.decode()


def test_the_token_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real = views.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(views.hmac, "compare_digest", spy)
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer nope").status_code == 401
    assert Client().get("/metrics", **SCRAPER).status_code == 200
    assert compared == [(b"nope", TOKEN.encode()), (TOKEN.encode(), TOKEN.encode())]


def test_an_allowed_network_reads_without_a_token_and_others_are_refused() -> None:
    with override_settings(METRICS_TOKEN="", METRICS_ALLOWED_CIDRS=[ipaddress.ip_network("10.20.0.0/16")]):
        assert Client().get("/metrics", REMOTE_ADDR="10.20.3.4").status_code == 200
        refused = Client().get("/metrics", REMOTE_ADDR="10.21.3.4")
    assert refused.status_code == 403
    assert "10.21.3.4 is not in METRICS_ALLOWED_CIDRS" in refused.content.decode()


def test_the_network_is_the_client_address_as_trusted_proxies_make_it() -> None:
    allowed = [ipaddress.ip_network("10.20.0.0/16")]
    proxies = [ipaddress.ip_network(f"{PROXY}/32")]
    with override_settings(METRICS_TOKEN="", METRICS_ALLOWED_CIDRS=allowed, TRUSTED_PROXIES=proxies):
        through_proxy = Client().get("/metrics", REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR="10.20.3.4")
        forged = Client().get("/metrics", REMOTE_ADDR="198.51.100.9", HTTP_X_FORWARDED_FOR="10.20.3.4")
        proxy_itself = Client().get("/metrics", REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR="198.51.100.9")
    assert through_proxy.status_code == 200
    assert (forged.status_code, proxy_itself.status_code) == (403, 403)


def test_with_both_set_either_the_token_or_the_network_is_enough() -> None:
    with override_settings(METRICS_ALLOWED_CIDRS=[ipaddress.ip_network("10.20.0.0/16")]):
        assert Client().get("/metrics", REMOTE_ADDR="10.20.3.4").status_code == 200
        assert Client().get("/metrics", REMOTE_ADDR="198.51.100.9", **SCRAPER).status_code == 200
        assert Client().get("/metrics", REMOTE_ADDR="198.51.100.9").status_code == 401


def test_it_refuses_other_methods() -> None:
    assert Client().post("/metrics", **SCRAPER).status_code == 405


# Each metric moves when its event happens --------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "password", "scope", "outcome", "subject_type"),
    [
        ("carol", PASSWORD, "repository:web/app:pull", "granted", "user"),
        ("carol", PASSWORD, "repository:web/app:pull,push", "partial", "user"),
        ("carol", PASSWORD, "repository:other/app:pull", "denied", "user"),
        ("carol", "wrong-password", "repository:web/app:pull", "auth_failed", "user"),
        (None, "", "repository:pub/base:pull", "granted", "anonymous"),
        (None, "", "repository:web/app:pull", "denied", "anonymous"),
        ("carol", PASSWORD, "repository:web/app", "invalid", "user"),
    ],
)
def test_each_token_request_is_counted_by_outcome_and_subject_type(
    registry: Registry, who: str | None, password: str, scope: str, outcome: str, subject_type: str
) -> None:
    before = requests(outcome, subject_type)
    ask(who, password, scope)
    assert AuditRecord.objects.filter(kind="access").latest("id").outcome == outcome
    assert requests(outcome, subject_type) == before + 1


def test_robots_and_personal_access_tokens_are_counted_as_their_subject_types(registry: Registry, web: Team) -> None:
    _, robot_secret = services.create_robot(web, "ci", grants=[("web/**", "write")], context=SYSTEM)
    _, pat_secret = services.create_access_token(User.objects.get(username="bob"), "laptop", context=SYSTEM)
    robots, pats = requests("granted", "robot"), requests("granted", "token")
    assert ask("robot$web+ci", robot_secret).status_code == 200
    assert ask("bob", pat_secret).status_code == 200
    assert (requests("granted", "robot"), requests("granted", "token")) == (robots + 1, pats + 1)


def test_a_cached_repeat_is_counted_once_per_request(registry: Registry) -> None:
    before = requests("granted", "user")
    for _ in range(3):
        assert ask("bob").status_code == 200  # the second and third come from this process's cache
    assert requests("granted", "user") == before + 3


def test_every_answer_is_observed_by_the_latency_histogram(registry: Registry) -> None:
    before = scrape()
    ask("carol")
    ask(None, scope="repository:web/app:pull")
    after = scrape()
    name = "registryadmin_token_request_duration_seconds"
    assert value(after, f"{name}_count") == value(before, f"{name}_count") + 2
    assert value(after, f"{name}_sum") > value(before, f"{name}_sum")
    assert value(after, f"{name}_bucket", le="+Inf") == value(after, f"{name}_count")


def test_limited_requests_are_counted_and_the_holds_gauge_shows_the_held_client(registry: Registry) -> None:
    assert value(scrape(), "registryadmin_limit_holds", scope="user") == 0
    for _ in range(10):
        assert ask("bob", "wrong", REMOTE_ADDR="203.0.113.7").status_code == 401
    before = requests("limited", "user")
    assert ask("bob", REMOTE_ADDR="203.0.113.7").status_code == 429
    samples = scrape()
    assert value(samples, "registryadmin_token_requests_total", outcome="limited", subject_type="user") == before + 1
    assert value(samples, "registryadmin_limit_holds", scope="user") == 1
    assert value(samples, "registryadmin_limit_holds", scope="address") == 0


def _refuse_audit_inserts(execute, sql, params, many, context):
    """Django's execute wrapper: the database refuses audit rows, as when its disk is full."""
    if sql.lstrip().upper().startswith("INSERT") and AuditRecord._meta.db_table in sql:
        raise OperationalError("could not extend file: No space left on device")
    return execute(sql, params, many, context)


@pytest.mark.parametrize(("who", "password"), [("carol", PASSWORD), ("carol", "wrong-password")])
def test_an_audit_write_that_fails_is_counted_and_the_503_counted_as_error(
    registry: Registry, who: str, password: str
) -> None:
    failures = value(scrape(), "registryadmin_audit_write_failures_total", kind="access")
    errors = requests("error", "unknown")
    with connection.execute_wrapper(_refuse_audit_inserts):
        response = ask(who, password)
    assert response.status_code == 503
    assert value(scrape(), "registryadmin_audit_write_failures_total", kind="access") == failures + 1
    assert requests("error", "unknown") == errors + 1


def test_a_failed_admin_change_record_is_counted_under_its_kind() -> None:
    before = value(scrape(), "registryadmin_audit_write_failures_total", kind="admin_change")
    with connection.execute_wrapper(_refuse_audit_inserts), pytest.raises(DatabaseError):
        services.create_team("ops", context=SYSTEM)
    assert value(scrape(), "registryadmin_audit_write_failures_total", kind="admin_change") == before + 1


def test_a_directory_that_errs_counts_a_bind_error_and_a_wrong_password_does_not(slapd: Slapd) -> None:
    slapd.add_person("dora", "dora-directory-pw-1")
    with directory(slapd, LDAP_BIND_CACHE_TTL="0"):
        before = metrics.LDAP_BIND_ERRORS._value.get()
        assert check_password("dora", "wrong-password", user=None).reason == "bad_password"
        assert metrics.LDAP_BIND_ERRORS._value.get() == before
        slapd.stop()
        with pytest.raises(DirectoryUnavailable):
            check_password("dora", "dora-directory-pw-1", user=None)
    assert value(scrape(), "registryadmin_ldap_bind_errors_total") == before + 1
    assert issubclass(ldap.SERVER_DOWN, ldap.LDAPError)


# Scrape-time values, from the database -----------------------------------------------------------


def later(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Scrape as if ``seconds`` had passed (the collector reads the clock once per scrape)."""
    then = timezone.now() + timedelta(seconds=seconds)
    monkeypatch.setattr(views.timezone, "now", lambda: then)


def test_the_seal_lag_is_the_age_of_the_oldest_unsealed_record_and_0_once_sealed(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    ask("carol")
    later(monkeypatch, 120)
    lag = value(scrape(), "registryadmin_audit_seal_lag_seconds")
    assert 120 <= lag < 180
    chain.seal(now=timezone.now() + timedelta(minutes=5))
    assert value(scrape(), "registryadmin_audit_seal_lag_seconds") == 0


def test_job_ages_come_from_the_last_success_and_are_infinite_before_any(monkeypatch: pytest.MonkeyPatch) -> None:
    samples = scrape()
    for job in ("backup", "rotate_signing_key", "verify_audit"):
        assert math.isinf(value(samples, "registryadmin_job_last_success_age_seconds", job=job))
    run_job("verify_audit", lambda: {"outcome": "ok"})
    with pytest.raises(RuntimeError):
        run_job("rotate_signing_key", lambda: (_ for _ in ()).throw(RuntimeError("refused")))
    Backup.objects.create(state=BackupState.VERIFIED, finished_at=timezone.now() - timedelta(hours=2))
    Backup.objects.create(state=BackupState.FAILED, finished_at=timezone.now())
    later(monkeypatch, 60)
    samples = scrape()
    assert 60 <= value(samples, "registryadmin_job_last_success_age_seconds", job="verify_audit") < 120
    assert math.isinf(value(samples, "registryadmin_job_last_success_age_seconds", job="rotate_signing_key"))
    assert 7260 <= value(samples, "registryadmin_job_last_success_age_seconds", job="backup") < 7320


def test_holds_count_only_those_in_force_by_scope() -> None:
    now = timezone.now()
    AuthHold.objects.create(
        key="u:1", scope=HoldScope.USER, username="carol", ip="192.0.2.7", held_until=now + timedelta(minutes=5)
    )
    AuthHold.objects.create(key="a:1", scope=HoldScope.ADDRESS, ip="192.0.2.8", held_until=now + timedelta(minutes=5))
    AuthHold.objects.create(key="a:2", scope=HoldScope.ADDRESS, ip="192.0.2.9", held_until=now + timedelta(minutes=9))
    AuthHold.objects.create(key="a:3", scope=HoldScope.ADDRESS, ip="192.0.2.6", held_until=now - timedelta(minutes=1))
    samples = scrape()
    assert value(samples, "registryadmin_limit_holds", scope="user") == 1
    assert value(samples, "registryadmin_limit_holds", scope="address") == 2


def test_a_database_that_fails_at_scrape_time_says_so_and_still_serves_the_counters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def down(now: object) -> None:
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(views.chain, "seal_lag", down)
    samples = scrape()
    assert value(samples, "registryadmin_state_up") == 0
    assert ("registryadmin_ldap_bind_errors_total", frozenset()) in samples
    assert not [key for key in samples if key[0] == "registryadmin_audit_seal_lag_seconds"]


def test_with_the_database_up_state_up_is_1() -> None:
    assert value(scrape(), "registryadmin_state_up") == 1


def test_without_a_multiprocess_directory_it_reads_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    assert metrics.multiprocess_dir() == ""
    metrics.LDAP_BIND_ERRORS.inc(0)
    assert ("registryadmin_ldap_bind_errors_total", frozenset()) in scrape()


def test_a_job_success_older_than_the_lookback_counts_as_none(monkeypatch: pytest.MonkeyPatch) -> None:
    run_job("verify_audit", lambda: {"outcome": "ok"})
    later(monkeypatch, (views.JOB_LOOKBACK + timedelta(hours=1)).total_seconds())
    assert math.isinf(value(scrape(), "registryadmin_job_last_success_age_seconds", job="verify_audit"))
