"""Each persona's home: admins the overview, auditors the audit overview, leads their teams, everyone their access."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts import services
from accounts.models import Team, User
from audit.chain import seal
from audit.context import AuditContext
from audit.models import Kind, SubjectType
from audit.services import record
from tests.conftest import SYSTEM, make_user

pytestmark = pytest.mark.django_db


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def deny(actor: str, repository: str, *, ip: str = "192.0.2.9") -> None:
    scope = {"type": "repository", "name": repository, "requested": ["push"], "granted": [], "denied": ["push"]}
    record(Kind.ACCESS, "denied", AuditContext(actor=actor, ip=ip), repository=repository, actions=[scope])


def failed_job(name: str) -> None:
    record(
        Kind.JOB, "error", AuditContext.system(f"job:{name}"), subject_type=SubjectType.SYSTEM,
        detail={"job": name, "error": "OperationalError: the broker went away"},
    )  # fmt: skip


@pytest.fixture
def soon() -> object:
    return timezone.now() + timedelta(days=3)


@pytest.fixture
def busy_week(web: Team, carol: User, soon: object) -> None:
    """A denial for carol, a failed job, a burst of failed sign-ins, and grants and credentials expiring soon."""
    deny("carol", "web/app")
    failed_job("sync-htpasswd")
    for _ in range(5):
        record(Kind.SIGNIN, "failure", AuditContext(actor="mallory", ip="198.51.100.4"))
    services.create_grant(web, "web/**", "write", context=SYSTEM)
    services.create_grant(carol, "web/app", "read", expires_at=soon, managed_by=web, context=SYSTEM)
    services.create_robot(web, "deploy", expires_at=soon, context=SYSTEM)
    services.create_access_token(carol, "laptop", expires_at=soon, context=SYSTEM)


def test_the_admin_home_shows_counts_chart_denials_failed_jobs_bursts_and_expiries(ada: User, busy_week: None) -> None:
    page = signed_in(ada).get("/").content.decode()
    assert "Overview" in page and "active users" in page
    assert "<svg" in page and "Access attempts per day" in page  # the 7-day chart, one bar a day
    assert "Recent denials" in page and "web/app" in page and "denied push" in page
    assert "sync-htpasswd" in page and "the broker went away" in page
    assert "5 failures" in page and "mallory" in page
    assert "robot$web+deploy" in page and "laptop" in page and "read on <code>web/app</code>" in page


def test_the_week_chart_has_seven_daily_bars_counting_the_attempts(ada: User) -> None:
    deny("carol", "web/app")
    deny("carol", "web/site")
    seal(now=timezone.now() + timedelta(minutes=5))  # the chart counts from the sealer's rollups
    response = signed_in(ada).get("/")
    chart = response.context["chart"]
    assert chart.window.step == "day" and len(chart.bars) == 7
    assert dict((outcome, total) for outcome, total, _ in chart.totals)["denied"] == 2


def test_the_auditor_home_is_the_audit_overview_without_admin_counts(audrey: User, busy_week: None) -> None:
    page = signed_in(audrey).get("/").content.decode()
    assert "Audit overview" in page and 'action="/audit/"' in page
    assert "Recent denials" in page and "web/app" in page
    assert "active users" not in page


def test_a_team_lead_sees_their_teams_and_what_expires_there(alice: User, busy_week: None) -> None:
    page = signed_in(alice).get("/").content.decode()
    assert "Teams you lead" in page and 'href="/teams/web/"' in page
    assert "robot$web+deploy" in page and "read on <code>web/app</code>" in page
    assert "laptop" not in page  # carol's own token is not the team's business
    assert "Recent denials" not in page and "mallory" not in page


def test_a_plain_user_sees_only_their_own_access(carol: User, busy_week: None) -> None:
    page = signed_in(carol).get("/").content.decode()
    assert "My access" in page and "web/app" in page
    for other in ("Recent denials", "mallory", "sync-htpasswd", "robot$web+deploy", "Teams you lead"):
        assert other not in page


def test_my_access_has_its_own_page(carol: User) -> None:
    services.create_grant(carol, "web/app", "read", context=SYSTEM)
    page = signed_in(carol).get("/me/").content.decode()
    assert "<h1>My access</h1>" in page and "web/app" in page


@pytest.mark.parametrize("path", ["/", "/me/"])
def test_home_pages_need_sign_in_and_refuse_post(client: Client, carol: User, path: str) -> None:
    assert client.get(path)["Location"].startswith("/login/")
    assert signed_in(carol).post(path).status_code == 405


def _queries(client: Client) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/").status_code == 200
    return len(queries)


@pytest.mark.parametrize("persona", ["ada", "audrey", "alice"])
def test_the_home_page_query_count_does_not_grow_with_the_data(persona: str, request: pytest.FixtureRequest) -> None:
    user = request.getfixturevalue(persona)
    web = request.getfixturevalue("web")
    services.create_grant(web, "web/**", "write", context=SYSTEM)
    soon = timezone.now() + timedelta(days=2)

    def grow(n: int, start: int) -> None:
        for i in range(start, start + n):
            person = make_user(f"user{i}")
            services.create_grant(person, f"web/app{i}", "read", expires_at=soon, managed_by=web, context=SYSTEM)
            services.create_robot(web, f"bot{i}", expires_at=soon, context=SYSTEM)
            deny(person.username, f"web/app{i}")
            failed_job(f"job{i}")

    client = signed_in(user)
    grow(2, 0)
    few = _queries(client)
    grow(12, 2)
    assert _queries(client) == few


def test_my_access_names_at_most_fifty_public_repositories_and_counts_the_rest(carol: User) -> None:
    for i in range(53):
        services.create_repository(f"pub/r{i:02d}", public=True, context=SYSTEM)
    page = signed_in(carol).get("/me/").content.decode()
    assert "pub/r49" in page and "pub/r50" not in page and "and 3 more" in page
