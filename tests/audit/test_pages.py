"""The audit pages: who may see them, what the filters select, paging, charts, exports and "why denied"."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.db.models import F
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts import services
from accounts.models import Team, User
from audit import exporting, tasks
from audit.chain import seal
from audit.charts import attempts_chart, top_lists, window_for
from audit.context import AuditContext
from audit.filters import AuditFilter, Cursor, keyset_page, parse_filter
from audit.formats import FIELDS
from audit.models import AuditExport, AuditHourly, AuditRecord, AuditRollup, AuditVerification, Kind
from audit.services import record
from tests.conftest import SYSTEM

pytestmark = pytest.mark.django_db


def signed_in(user: User, **options: Any) -> Client:
    client = Client(**options)
    client.force_login(user)
    return client


def scope(name: str, requested: list[str], granted: list[str]) -> dict[str, Any]:
    denied = [action for action in requested if action not in granted]
    return {"type": "repository", "name": name, "requested": requested, "granted": granted, "denied": denied}


def as_actor(actor: str, ip: str | None = None, actor_id: int | None = None) -> AuditContext:
    return AuditContext(actor=actor, actor_id=actor_id, ip=ip, user_agent="docker/27", request_id="req")


@pytest.fixture
def seeded(db: None) -> dict[str, AuditRecord]:
    """A small log with one record per interesting case, keyed by a name the tests use."""
    return {
        "bob_pull": record(
            Kind.ACCESS,
            "granted",
            as_actor("bob", "192.0.2.7"),
            registry="registry",
            repository="web/app",
            actions=[scope("web/app", ["pull"], ["pull"])],
        ),
        "carol_push": record(
            Kind.ACCESS,
            "partial",
            as_actor("carol", "198.51.100.20"),
            registry="registry",
            repository="web/app",
            actions=[scope("web/app", ["pull", "push"], ["pull"])],
        ),
        "robot_push": record(
            Kind.ACCESS,
            "granted",
            as_actor("robot$web+ci", "192.0.2.200"),
            subject_type="robot",
            registry="mirror",
            repository="web/api/v2",
            actions=[scope("web/api/v2", ["push", "pull"], ["push", "pull"])],
        ),
        "alice_event_pull": record(
            Kind.REGISTRY_EVENT,
            "pull",
            as_actor("alice", "2001:db8::5"),
            registry="registry",
            repository="web/app",
            detail={"tag": "latest", "digest": "sha256:abc"},
        ),
        "ada_change": record(
            Kind.ADMIN_CHANGE,
            "success",
            as_actor("ada", "203.0.113.9"),
            detail={"action": "team.create", "target": "Zürich ops"},
        ),
        "carol_delete": record(
            Kind.ACCESS,
            "denied",
            as_actor("carol", "10.1.2.3"),
            registry="registry",
            repository="webx/app",
            actions=[scope("webx/app", ["delete"], [])],
        ),
        "bob_event_push": record(
            Kind.REGISTRY_EVENT, "push", as_actor("bob", "192.0.2.8"), registry="registry", repository="web/api"
        ),
        # A repository literally named "push" must not count as the push action.
        "named_push": record(
            Kind.ACCESS,
            "granted",
            as_actor("bob", "192.0.2.9"),
            registry="registry",
            repository="push",
            actions=[scope("push", ["pull"], ["pull"])],
        ),
    }


def shown(response: Any, seeded: dict[str, AuditRecord]) -> set[str]:
    """Names of the seeded records on the page (fixtures write records of their own too)."""
    assert response.status_code == 200, response.content.decode()[:2000]
    ids = {entry.pk for entry in response.context["records"]}
    return {name for name, entry in seeded.items() if entry.pk in ids}


# --- who may see what ------------------------------------------------------------


@pytest.fixture
def finished_export(seeded: dict[str, AuditRecord]) -> AuditExport:
    export = tasks.start_export(AuditFilter(user="carol"), "csv", AuditContext.system("tests"))
    exporting.run(export.pk)
    return export


def page_urls(seeded: dict[str, AuditRecord], export: AuditExport) -> list[str]:
    return [
        "/audit/",
        f"/audit/{seeded['carol_push'].pk}/",
        "/audit/export.csv",
        "/audit/export.jsonl",
        "/audit/exports/",
        f"/audit/exports/{export.pk}/",
        f"/audit/exports/{export.pk}/download",
    ]


def test_anonymous_visitors_are_sent_to_sign_in_from_every_audit_url(
    client: Client, seeded: dict[str, AuditRecord], finished_export: AuditExport
) -> None:
    for url in page_urls(seeded, finished_export):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/login/?next="), url


@pytest.mark.parametrize("persona", ["bob", "carol", "alice"])
def test_users_who_are_neither_auditor_nor_admin_are_refused_every_audit_url(
    persona: str, request: pytest.FixtureRequest, seeded: dict[str, AuditRecord], finished_export: AuditExport
) -> None:
    client = signed_in(request.getfixturevalue(persona))
    for url in page_urls(seeded, finished_export):
        assert client.get(url).status_code == 403, url
    assert client.post("/audit/exports/", {"format": "csv"}).status_code == 403


@pytest.mark.parametrize("persona", ["audrey", "ada"])
def test_auditors_and_admins_may_open_every_audit_url(
    persona: str, request: pytest.FixtureRequest, seeded: dict[str, AuditRecord], finished_export: AuditExport
) -> None:
    client = signed_in(request.getfixturevalue(persona))
    for url in page_urls(seeded, finished_export):
        assert client.get(url).status_code == 200, url


def test_methods_that_make_no_sense_are_refused(
    audrey: User, seeded: dict[str, AuditRecord], finished_export: AuditExport
) -> None:
    client = signed_in(audrey)
    for url in page_urls(seeded, finished_export):
        if url != "/audit/exports/":
            assert client.post(url).status_code == 405, url
    assert client.put("/audit/exports/").status_code == 405
    assert client.delete("/audit/exports/").status_code == 405


def test_the_nav_shows_audit_to_auditors_and_admins_only(ada: User, audrey: User, bob: User) -> None:
    assert 'href="/audit/"' in signed_in(audrey).get("/").content.decode()
    assert 'href="/audit/"' in signed_in(ada).get("/").content.decode()
    assert 'href="/audit/"' not in signed_in(bob).get("/").content.decode()


def test_starting_an_export_job_needs_the_csrf_token(audrey: User) -> None:
    client = signed_in(audrey, enforce_csrf_checks=True)
    assert client.post("/audit/exports/", {"format": "csv"}).status_code == 403
    assert AuditExport.objects.count() == 0


# --- filters -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"kind": "registry_event"}, {"alice_event_pull", "bob_event_push"}),
        ({"outcome": "partial"}, {"carol_push"}),
        ({"user": "carol"}, {"carol_push", "carol_delete"}),
        ({"robot": "*"}, {"robot_push"}),
        ({"robot": "web+ci"}, {"robot_push"}),
        ({"robot": "robot$web+*"}, {"robot_push"}),
        ({"robot": "ops+ci"}, set()),
        ({"repository": "web/app"}, {"bob_pull", "carol_push", "alice_event_pull"}),
        ({"repository": "web/"}, {"bob_pull", "carol_push", "robot_push", "alice_event_pull", "bob_event_push"}),
        ({"repository": "web/*"}, {"bob_pull", "carol_push", "alice_event_pull", "bob_event_push"}),
        ({"repository": "web/**"}, {"bob_pull", "carol_push", "robot_push", "alice_event_pull", "bob_event_push"}),
        ({"action": "push"}, {"carol_push", "robot_push", "bob_event_push"}),
        ({"action": "delete"}, {"carol_delete"}),
        ({"action": "pull"}, {"bob_pull", "carol_push", "robot_push", "alice_event_pull", "named_push"}),
        ({"registry": "mirror"}, {"robot_push"}),
        ({"text": "TEAM.create"}, {"ada_change"}),
        ({"text": "zürich"}, {"ada_change"}),
        ({"text": "latest"}, {"alice_event_pull"}),
        ({"kind": "access", "user": "carol", "outcome": "denied"}, {"carol_delete"}),
        ({"repository": "web/*", "action": "push"}, {"carol_push", "bob_event_push"}),
    ],
)
def test_each_filter_narrows_the_records_and_they_combine(
    audrey: User, seeded: dict[str, AuditRecord], query: dict[str, str], expected: set[str]
) -> None:
    assert shown(signed_in(audrey).get("/audit/", query), seeded) == expected


@pytest.mark.parametrize(
    ("ip", "expected"),
    [
        ("192.0.2.7", {"bob_pull"}),
        ("192.0.2.0/24", {"bob_pull", "robot_push", "bob_event_push", "named_push"}),
        ("192.0.2.0/29", {"bob_pull"}),
        ("192.0.2.7/25", {"bob_pull", "bob_event_push", "named_push"}),  # host bits ignored: 192.0.2.0/25
        ("10.0.0.0/8", {"carol_delete"}),
        ("2001:db8::/32", {"alice_event_pull"}),
        ("2001:db8::5", {"alice_event_pull"}),
        (
            "0.0.0.0/0",
            {"bob_pull", "carol_push", "robot_push", "ada_change", "carol_delete", "bob_event_push", "named_push"},
        ),
    ],
)
def test_the_ip_filter_takes_an_address_or_any_cidr_range(
    audrey: User, seeded: dict[str, AuditRecord], ip: str, expected: set[str]
) -> None:
    assert shown(signed_in(audrey).get("/audit/", {"ip": ip}), seeded) == expected


def test_the_team_filter_selects_the_records_of_its_current_members(
    audrey: User, web: Team, seeded: dict[str, AuditRecord]
) -> None:
    page = signed_in(audrey).get("/audit/", {"team": "web"})
    assert shown(page, seeded) == {"bob_pull", "alice_event_pull", "bob_event_push", "named_push"}


def test_the_time_range_is_inclusive_at_since_and_exclusive_at_until(audrey: User) -> None:
    start = datetime(2026, 3, 1, 12, tzinfo=UTC)
    inside = AuditRecord.objects.create(time=start, kind=Kind.ADMIN_CHANGE, outcome="success", actor="t")
    AuditRecord.objects.create(time=start + timedelta(hours=1), kind=Kind.ADMIN_CHANGE, outcome="success", actor="t")
    page = signed_in(audrey).get("/audit/", {"since": "2026-03-01T12:00Z", "until": "2026-03-01T13:00Z"})
    assert [entry.pk for entry in page.context["records"]] == [inside.pk]


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ({"since": "yesterday"}, "since", "not an ISO 8601 time"),
        ({"since": "2026-02-01", "until": "2026-01-01"}, "until", "later than since"),
        ({"kind": "bogus"}, "kind", "is not a kind"),
        ({"action": "fly"}, "action", "is not an action"),
        ({"ip": "300.1.1.1"}, "ip", "neither an IP address nor a CIDR range"),
        ({"ip": "192.0.2.0/33"}, "ip", "neither an IP address nor a CIDR range"),
        ({"repository": "Web/*"}, "repository", "is not a valid pattern"),
        ({"repository": "web/a**"}, "repository", "must be a whole path component"),
        ({"team": "nobody-here"}, "team", "there is no team named"),
        ({"text": "x" * 201}, "text", "at most 200 characters"),
        ({"cursor": "garbage"}, "cursor", "page link is damaged"),
        ({"user": "car\x00ol"}, "user", "must not contain NUL"),
        ({"until": "9999-12-31T23:30Z"}, "until", "out of range"),
        ({"since": "0001-01-01"}, "since", "out of range"),
    ],
)
def test_a_bad_filter_value_is_a_clear_form_error_with_status_400(
    audrey: User, query: dict[str, str], field: str, message: str
) -> None:
    response = signed_in(audrey).get("/audit/", query)
    assert response.status_code == 400
    assert message in response.context["errors"][field]
    page = response.content.decode()
    assert 'aria-invalid="true"' in page or field == "cursor"
    assert "need fixing" in page


def test_bad_filters_on_exports_are_form_errors_too(audrey: User) -> None:
    client = signed_in(audrey)
    assert client.get("/audit/export.csv", {"ip": "nope"}).status_code == 400
    assert client.post("/audit/exports/", {"format": "xml"}).status_code == 400
    assert client.post("/audit/exports/", {"format": "csv", "kind": "nope"}).status_code == 400
    assert AuditExport.objects.count() == 0


def test_record_rows_link_to_the_user_the_repository_filter_and_why_denied(
    audrey: User, carol: User, seeded: dict[str, AuditRecord]
) -> None:
    page = signed_in(audrey).get("/audit/").content.decode()
    assert f'href="{reverse("users:detail", args=["carol"])}">carol</a>' in page
    assert 'href="?repository=web/app"' in page
    assert f'href="/audit/{seeded["carol_push"].pk}/#why">why denied' in page
    assert f'href="/audit/{seeded["bob_pull"].pk}/#why"' not in page


# --- paging ---------------------------------------------------------------------------


@pytest.fixture
def many(db: None) -> list[AuditRecord]:
    """120 records of one actor; 60 of them share one timestamp, so only the id breaks ties."""
    base = datetime(2026, 5, 1, tzinfo=UTC)
    records = [
        AuditRecord.objects.create(
            time=base + timedelta(minutes=i),
            kind=Kind.ADMIN_CHANGE,
            outcome="success",
            actor="pager",
            subject_type="user",
        )
        for i in range(60)
    ]
    tied = base + timedelta(minutes=30, seconds=1)
    records += [
        AuditRecord.objects.create(
            time=tied, kind=Kind.ADMIN_CHANGE, outcome="success", actor="pager", subject_type="user"
        )
        for _ in range(60)
    ]
    return records


def test_pages_are_keyset_paged_newest_first_and_stable_with_equal_times(audrey: User, many: list[AuditRecord]) -> None:
    client = signed_in(audrey)
    expected = [entry.pk for entry in sorted(many, key=lambda entry: (entry.time, entry.pk), reverse=True)]
    seen: list[int] = []
    response = client.get("/audit/", {"user": "pager"})
    while True:
        page = [entry.pk for entry in response.context["records"]]
        assert len(page) <= 50
        seen += page
        older = response.context["older"]
        if not older:
            break
        response = client.get("/audit/" + older)
    assert seen == expected
    assert len(seen) == len(set(seen)) == 120


def test_the_next_page_starts_right_after_the_cursor(many: list[AuditRecord]) -> None:
    tied = sorted((entry for entry in many if entry.time == many[-1].time), key=lambda entry: entry.pk)
    middle = tied[30]
    records, _next = keyset_page(AuditFilter(user="pager").apply(), Cursor(middle.time, middle.pk), 5)
    assert [entry.pk for entry in records] == [entry.pk for entry in reversed(tied[25:30])]


def test_paging_uses_no_offset(audrey: User, many: list[AuditRecord]) -> None:
    client = signed_in(audrey)
    older = client.get("/audit/", {"user": "pager"}).context["older"]
    with CaptureQueriesContext(connection) as queries:
        client.get("/audit/" + older)
    assert not any("OFFSET" in query["sql"].upper() for query in queries.captured_queries)


def test_the_search_page_makes_the_same_few_queries_however_many_records_it_shows(
    audrey: User, seeded: dict[str, AuditRecord], many: list[AuditRecord]
) -> None:
    client = signed_in(audrey)
    client.get("/audit/")  # warm the session
    with CaptureQueriesContext(connection) as small:
        assert client.get("/audit/", {"user": "carol"}).status_code == 200
    with CaptureQueriesContext(connection) as full:
        assert len(client.get("/audit/", {"user": "pager"}).context["records"]) == 50
    # 14: the header (verification, and the install's age while never verified), the records, one
    # query for every actor's link, the chart and its three side panels, the session and user.
    assert len(small) == len(full) <= 14


# --- chart and top lists ----------------------------------------------------------------


def rollup(hour: datetime, outcome: str, count: int, **fields: Any) -> AuditRollup:
    """Count as the sealer does: into the fine rollup and the coarse hourly table."""
    values = {"kind": Kind.ACCESS, "registry": "registry", "repository": "web/app", "actor": "carol", **fields}
    coarse, _ = AuditHourly.objects.get_or_create(
        hour=hour, kind=values["kind"], outcome=outcome, registry=values["registry"]
    )
    AuditHourly.objects.filter(pk=coarse.pk).update(count=F("count") + count)
    return AuditRollup.objects.create(hour=hour, outcome=outcome, count=count, **values)


def test_a_chart_on_rollup_dimensions_sums_the_rollups_per_hour(audrey: User) -> None:
    start = datetime(2026, 4, 1, tzinfo=UTC)
    rollup(start, "granted", 7)
    rollup(start, "denied", 2)
    rollup(start + timedelta(hours=5), "partial", 3)
    rollup(start + timedelta(hours=5), "auth_failed", 4, actor="")
    rollup(start + timedelta(days=2), "granted", 100)  # outside the range
    rollup(start, "pull", 50, kind=Kind.REGISTRY_EVENT)  # another kind
    response = signed_in(audrey).get("/audit/", {"since": "2026-04-01", "until": "2026-04-01T12:00Z"})
    chart = response.context["chart"]
    assert chart.source == "rollups" and chart.window.step == "hour"
    assert len(chart.bars) == 12
    assert dict((outcome, total) for outcome, total, _css in chart.totals) == {
        "granted": 7,
        "partial": 3,
        "denied": 2,
        "auth_failed": 4,
    }
    assert chart.bars[0].total == 9 and chart.bars[5].total == 7 and chart.total == 16
    page = response.content.decode()
    assert "<svg" in page and '<title id="chart-svg-title">Access attempts per hour</title>' in page
    assert "<table" in page and "<caption>Access attempts per hour" in page


def test_the_chart_draws_one_rect_per_non_empty_segment_with_its_geometry_formatted(audrey: User) -> None:
    start = datetime(2026, 4, 1, tzinfo=UTC)
    rollup(start, "granted", 7)
    rollup(start, "denied", 2)
    rollup(start + timedelta(hours=5), "partial", 3)
    response = signed_in(audrey).get("/audit/", {"since": "2026-04-01", "until": "2026-04-01T12:00Z"})
    chart = response.context["chart"]
    rects = chart.rects
    assert [(rect.css, rect.title) for rect in rects] == [
        ("outcome-granted", "2026-04-01 00:00 UTC: 7 granted"),
        ("outcome-denied", "2026-04-01 00:00 UTC: 2 denied"),
        ("outcome-partial", "2026-04-01 05:00 UTC: 3 partial"),
    ]
    first, granted = chart.bars[0], chart.bars[0].segments[0]
    assert (rects[0].x, rects[0].y, rects[0].height) == (f"{first.x:.2f}", f"{granted.y:.2f}", f"{granted.height:.2f}")
    page = response.content.decode()
    assert (
        f'<rect class="outcome-granted" x="{rects[0].x}" y="{rects[0].y}" width="{rects[0].width}" '
        f'height="{rects[0].height}"><title>2026-04-01 00:00 UTC: 7 granted</title></rect>'
    ) in page
    assert page.count("<rect ") == 3


def test_a_chart_with_other_filters_counts_the_records_themselves(audrey: User) -> None:
    start = datetime(2026, 4, 1, tzinfo=UTC)
    for minutes, outcome, ip in [(5, "granted", "192.0.2.1"), (65, "denied", "192.0.2.2"), (70, "denied", "10.0.0.1")]:
        AuditRecord.objects.create(
            time=start + timedelta(minutes=minutes), kind=Kind.ACCESS, outcome=outcome, actor="carol", ip=ip
        )
    rollup(start, "granted", 1000)  # must not be used: rollups know no IP ranges
    audit_filter = parse_filter({"since": "2026-04-01", "until": "2026-04-02", "ip": "192.0.2.0/24"})
    chart = attempts_chart(audit_filter, timezone.now())
    assert chart.source == "records"
    assert chart.total == audit_filter.apply().filter(kind=Kind.ACCESS).count() == 2
    assert [bar.total for bar in chart.bars[:3]] == [1, 1, 0]


def test_a_chart_over_more_than_three_days_has_a_bar_per_day(db: None) -> None:
    start = datetime(2026, 4, 1, tzinfo=UTC)
    rollup(start + timedelta(hours=3), "granted", 2)
    rollup(start + timedelta(hours=20), "granted", 3)
    rollup(start + timedelta(days=4, hours=1), "denied", 1)
    chart = attempts_chart(parse_filter({"since": "2026-04-01", "until": "2026-04-08"}), timezone.now())
    assert chart.window.step == "day" and len(chart.bars) == 7
    assert [bar.total for bar in chart.bars] == [5, 0, 0, 0, 1, 0, 0]


def test_a_bound_inside_an_hour_makes_the_chart_count_records_exactly(db: None) -> None:
    audit_filter = parse_filter({"since": "2026-04-01T10:30Z", "until": "2026-04-01T12:00Z"})
    assert attempts_chart(audit_filter, timezone.now()).source == "records"


def test_without_a_time_range_the_chart_shows_the_last_24_hours(db: None) -> None:
    now = datetime(2026, 4, 2, 15, 20, tzinfo=UTC)
    window = window_for(AuditFilter(), now)
    assert window.end == now and window.start == datetime(2026, 4, 1, 16, tzinfo=UTC)
    assert len(window.bucket_starts()) == 24


def test_top_lists_come_from_the_rollups_of_the_time_range(audrey: User) -> None:
    start = datetime(2026, 4, 1, tzinfo=UTC)
    rollup(start, "denied", 5, ip="192.0.2.7")
    rollup(start + timedelta(hours=1), "partial", 2, actor="bob", ip="192.0.2.8")
    rollup(start, "granted", 40, actor="alice", ip="192.0.2.8")
    rollup(start, "pull", 9, kind=Kind.REGISTRY_EVENT, repository="web/app", actor="alice")
    rollup(start, "pull", 4, kind=Kind.REGISTRY_EVENT, repository="web/api", actor="alice")
    rollup(start - timedelta(days=3), "denied", 99, actor="old")
    tops = top_lists(window_for(parse_filter({"since": "2026-04-01", "until": "2026-04-02"}), timezone.now()))
    assert [(entry.label, entry.count) for entry in tops.denied_users] == [("carol", 5), ("bob", 2)]
    assert [(entry.label, entry.count) for entry in tops.pulled_repositories] == [("web/app", 9), ("web/api", 4)]
    assert [(entry.label, entry.count) for entry in tops.active_ips] == [("192.0.2.8", 42), ("192.0.2.7", 5)]
    page = signed_in(audrey).get("/audit/", {"since": "2026-04-01", "until": "2026-04-02"}).content.decode()
    assert "Most refused users" in page and "Most pulled repositories" in page and "Most active source IPs" in page


# --- header: verification and alerts ---------------------------------------------------------


def test_the_page_says_when_the_log_was_never_verified(audrey: User) -> None:
    assert (
        "Not verified yet: the first check runs within a few minutes"
        in signed_in(audrey).get("/audit/").content.decode()
    )


def test_the_page_shows_the_latest_verification(audrey: User) -> None:
    AuditVerification.objects.create(outcome="intact", checked=10, started_at=timezone.now() - timedelta(days=1))
    AuditVerification.objects.create(outcome="tampered", checked=12, problem="access:2026-04-01 chain broken at #7")
    page = signed_in(audrey).get("/audit/").content.decode()
    assert "tampered" in page and "chain broken at #7" in page and "12 records checked" in page
    assert "never verified yet" not in page


def test_bursts_of_failed_sign_ins_are_shown_as_alerts(audrey: User) -> None:
    for _ in range(6):
        record(Kind.SIGNIN, "failure", as_actor("carol", "192.0.2.7"))
    page = signed_in(audrey).get("/audit/").content.decode()
    assert "6 failed sign-ins for" in page and ">carol</a> in 15 minutes" in page
    assert ">192.0.2.7</a> in 15 minutes" in page


# --- why denied ----------------------------------------------------------------------------


def test_why_denied_shows_the_engines_reasons_as_the_rules_stand_now(audrey: User, carol: User) -> None:
    services.create_grant(carol, "web/app", "read", context=SYSTEM)
    attempt = record(
        Kind.ACCESS,
        "partial",
        as_actor("carol", "192.0.2.7", actor_id=carol.pk),
        registry="registry",
        repository="web/app",
        actions=[scope("web/app", ["pull", "push"], ["pull"])],
        detail={"method": "GET"},
    )
    response = signed_in(audrey).get(f"/audit/{attempt.pk}/")
    page = response.content.decode()
    assert "as the rules stand now" in page
    assert "push needs write; carol&#x27;s own grant read on web/app grants pull" in page
    explained = response.context["scopes"][0]
    assert explained.name == "web/app" and explained.denied == ["push"] and explained.allowed_now == ["pull"]
    assert "carol's own grant read on web/app grants pull" in explained.reasons
    assert "&quot;method&quot;: &quot;GET&quot;" in page  # the detail, pretty-printed


def test_why_denied_says_when_the_user_no_longer_exists(audrey: User) -> None:
    attempt = record(
        Kind.ACCESS,
        "denied",
        as_actor("ghost", actor_id=999_999),
        registry="registry",
        repository="web/app",
        actions=[scope("web/app", ["push"], [])],
    )
    page = signed_in(audrey).get(f"/audit/{attempt.pk}/").content.decode()
    assert "user ghost no longer exists" in page


def test_a_granted_record_has_no_why_denied_section(audrey: User, seeded: dict[str, AuditRecord]) -> None:
    response = signed_in(audrey).get(f"/audit/{seeded['bob_pull'].pk}/")
    assert not response.context["explained"] and 'id="why"' not in response.content.decode()


def test_an_unknown_record_is_404(audrey: User) -> None:
    assert signed_in(audrey).get("/audit/999999/").status_code == 404


# --- exports ------------------------------------------------------------------------------


def streamed(response: Any) -> str:
    assert response.status_code == 200
    return b"".join(response.streaming_content).decode()


def export_records() -> list[AuditRecord]:
    return list(AuditRecord.objects.filter(kind=Kind.ADMIN_CHANGE, detail__action="audit.export").order_by("id"))


def test_the_csv_download_streams_the_filtered_records_and_is_recorded(
    audrey: User, seeded: dict[str, AuditRecord]
) -> None:
    response = signed_in(audrey).get("/audit/export.csv", {"user": "carol"})
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(streamed(response))))
    assert tuple(rows[0]) == FIELDS
    assert [int(row["id"]) for row in rows] == [seeded["carol_push"].pk, seeded["carol_delete"].pk]
    assert json.loads(rows[0]["actions"])[0]["denied"] == ["push"]
    (exported,) = export_records()
    assert exported.actor == "audrey" and exported.actor_id == audrey.pk
    assert exported.detail == {
        "action": "audit.export",
        "filters": {"user": "carol"},
        "format": "csv",
        "delivery": "download",
        "rows": 2,
    }


def test_the_jsonl_download_has_one_record_per_line_and_leaves_out_its_own_record(
    audrey: User, seeded: dict[str, AuditRecord]
) -> None:
    response = signed_in(audrey).get("/audit/export.jsonl", {"kind": "admin_change", "text": "zürich"})
    assert response["Content-Type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in streamed(response).splitlines()]
    assert [line["id"] for line in lines] == [seeded["ada_change"].pk]
    assert export_records()[0].detail["filters"] == {"kind": "admin_change", "text": "zürich"}
    everything = [json.loads(line) for line in streamed(signed_in(audrey).get("/audit/export.jsonl")).splitlines()]
    assert export_records()[0].pk in {line["id"] for line in everything}  # the first export, seen by the second
    assert export_records()[1].pk not in {line["id"] for line in everything}


def test_too_many_records_for_a_download_offer_an_export_job(
    audrey: User, seeded: dict[str, AuditRecord], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(exporting, "STREAM_LIMIT", 2)
    response = signed_in(audrey).get("/audit/export.csv", {"kind": "access"})
    assert response.status_code == 409
    page = response.content.decode()
    assert "Too many records" in page and 'action="/audit/exports/"' in page
    assert 'name="kind" value="access"' in page
    assert export_records() == []


@pytest.fixture
def queued(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Export ids handed to Celery, instead of a broker."""
    ids: list[int] = []
    monkeypatch.setattr(tasks.run_export, "delay", ids.append)
    return ids


def test_an_export_job_is_created_recorded_and_queued_after_commit(
    audrey: User,
    seeded: dict[str, AuditRecord],
    queued: list[int],
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    client = signed_in(audrey)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/audit/exports/", {"user": "carol", "format": "jsonl"})
    export = AuditExport.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/audit/exports/{export.pk}/"
    assert queued == [export.pk]
    assert export.requested_by == "audrey" and export.format == "jsonl" and export.status == "queued"
    assert export.filters["user"] == "carol" and "until" in export.filters  # frozen at request time
    (exported,) = export_records()
    assert exported.detail["delivery"] == "job" and exported.detail["export_id"] == export.pk
    status = client.get(response["Location"])
    assert status["Refresh"] == "3" and "queued" in status.content.decode()


def test_an_export_job_writes_its_file_with_progress_and_is_then_downloadable(
    audrey: User, bob: User, seeded: dict[str, AuditRecord], queued: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    export = tasks.start_export(AuditFilter(repository="web/"), "csv", AuditContext.for_user(audrey))
    progress: list[dict[str, Any]] = []
    update = exporting._update
    monkeypatch.setattr(exporting, "PROGRESS_EVERY", 2)
    monkeypatch.setattr(exporting, "_update", lambda pk, **values: (progress.append(values), update(pk, **values)))
    exporting.run(export.pk)
    export.refresh_from_db()
    assert export.status == "done" and export.rows == export.total == 5 and export.error == ""
    assert [values["rows"] for values in progress if set(values) == {"rows"}] == [2, 4]
    assert progress[0]["status"] == "running" and progress[0]["total"] == 5
    path = exporting.file_path(export)
    assert export.path == str(path) and path.name == f"export-{export.pk}.csv"
    assert not path.with_name(path.name + ".part").exists()
    assert len(list(csv.reader(io.StringIO(path.read_text())))) == 6
    client = signed_in(audrey)
    status = client.get(f"/audit/exports/{export.pk}/")
    assert "Refresh" not in status and f'href="/audit/exports/{export.pk}/download"' in status.content.decode()
    download = client.get(f"/audit/exports/{export.pk}/download")
    assert download.status_code == 200 and b"".join(download.streaming_content) == path.read_bytes()
    assert export_records()[-1].detail["delivery"] == "file"
    assert signed_in(bob).get(f"/audit/exports/{export.pk}/download").status_code == 403
    assert Client().get(f"/audit/exports/{export.pk}/download").status_code == 302


def test_a_failing_export_job_says_why_and_leaves_no_file(audrey: User) -> None:
    export = AuditExport.objects.create(requested_by="audrey", filters={"ip": "not-an-address"}, format="jsonl")
    exporting.run(export.pk)
    export.refresh_from_db()
    assert export.status == "failed" and "neither an IP address" in export.error
    assert not exporting.file_path(export).exists()
    assert signed_in(audrey).get(f"/audit/exports/{export.pk}/download").status_code == 404
    assert "The export failed" in signed_in(audrey).get(f"/audit/exports/{export.pk}/").content.decode()


def test_a_finished_job_is_not_run_twice(finished_export: AuditExport, monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*args: object, **kwargs: object) -> Iterator[str]:
        raise AssertionError("ran again")

    monkeypatch.setattr(exporting, "render", explode)
    exporting.run(finished_export.pk)
    finished_export.refresh_from_db()
    assert finished_export.status == "done"


def test_the_search_page_shows_how_far_sealing_lags(audrey) -> None:
    from django.test import Client

    client = Client()
    client.force_login(audrey)
    record("access", "granted", AuditContext(actor="bob"), repository="web/app")
    assert "oldest unsealed record is" in client.get("/audit/").content.decode()
    seal(now=timezone.now() + timedelta(minutes=5))
    assert "every record is sealed" in client.get("/audit/").content.decode()
