"""The audit log in Chromium (issue 20, items 1, 2, 3 and 5), as audrey the auditor reads it.

A log with long values (a 200-character repository, an IPv6 address, a long user agent, a robot, a
probe, a grant change and scheduled jobs): /audit/, its kind filter and two record pages at 1366x768
and 1920x1080, with no horizontal overflow of the page or of the records table's own container, no
console error and no CSP violation. Screenshots land in tests/output/audit-*.png.
"""

from __future__ import annotations

import pytest

from accounts import services
from audit.context import AuditContext
from audit.models import AuditRecord, Kind
from audit.services import record
from tests.conftest import SYSTEM, make_user
from tests.e2e_stack import AppServer
from tests.ops.test_browser import app, browser, check_layout, csp_problems, sign_in  # noqa: F401

pytestmark = pytest.mark.e2e

LONG_REPOSITORY = "web/" + "very-long-component-name-" * 8
AGENT = "containerd/v1.7.22 (linux; amd64) go/1.22.7 " + "extra-token/" * 20
TABLE_FITS = (
    "(() => { const box = document.querySelector('.records-scroll'); return box.scrollWidth <= box.clientWidth; })()"
)


def table_fits(page: object) -> bool:
    """At 1366 px, the records table's own container has nothing to scroll sideways."""
    page.set_viewport_size({"width": 1366, "height": 768})
    return page.evaluate(TABLE_FITS)


def scope(name: str, requested: list[str], granted: list[str]) -> dict[str, object]:
    denied = [action for action in requested if action not in granted]
    return {"type": "repository", "name": name, "requested": requested, "granted": granted, "denied": denied}


def _log(carol_id: int) -> dict[str, AuditRecord]:
    team = services.create_team("web", context=SYSTEM)
    robot, _secret = services.create_robot(team, "ci", context=SYSTEM)
    ada = make_user("ada", is_superuser=True)
    as_ada = AuditContext.for_user(ada, ip="2001:db8:85a3::8a2e:370:7334", user_agent=AGENT)
    services.create_grant(team, "web/**", "write", context=as_ada)
    records = {"change": AuditRecord.objects.filter(kind=Kind.ADMIN_CHANGE).order_by("-id").first()}
    carol = AuditContext(actor="carol", actor_id=carol_id, ip="2001:db8::1234:5678:9abc:def0", user_agent=AGENT)
    records["partial"] = record(
        Kind.ACCESS,
        "partial",
        carol,
        registry="registry",
        repository=LONG_REPOSITORY,
        actions=[scope(LONG_REPOSITORY, ["pull", "push"], ["pull"])],
    )
    records["probe"] = record(
        Kind.ACCESS,
        "probe",
        AuditContext(actor=robot.login_name, ip="192.0.2.30", user_agent=AGENT),
        subject_type="robot",
        registry="registry",
        repository="web/app",
        actions=[scope("web/app", ["pull", "push"], ["pull", "push"]), scope("lib/base", ["pull"], [])],
    )
    for _ in range(3):
        record(
            Kind.JOB, "success", AuditContext.system("job:seal_audit"), subject_type="system", detail={"job": "seal"}
        )
    return records


def test_an_auditor_reads_the_log_and_two_records_without_sideways_scrolling(app: AppServer, browser) -> None:  # noqa: F811
    make_user("audrey", is_auditor=True)
    carol = make_user("carol")
    records = _log(carol.pk)
    page = sign_in(browser, app.url, "audrey")

    page.goto(app.url + "/audit/")
    assert page.locator("p.verification.unverified-info").count() == 1
    assert page.locator("select#f-outcome option[value=probe]").inner_text() == "probe (mount check, harmless)"
    assert page.locator("table.records td", has_text="job seal ran").count() == 0  # jobs hidden by default
    assert page.locator("table.records a[href='/manage/users/carol/']").count() >= 1
    assert page.locator("table.records td", has_text="granted write on web/** to team web").count() == 1
    overflows = check_layout(page, "audit-search")
    tables = [table_fits(page)]

    page.check("#f-jobs")
    page.locator("form.audit-filters button[type=submit]").click()
    page.wait_for_load_state("networkidle")
    assert "jobs=1" in page.url
    assert page.locator("table.records td", has_text="job seal ran").count() == 3
    overflows += check_layout(page, "audit-search-jobs")
    tables.append(table_fits(page))

    page.select_option("#f-kind", "access")
    page.select_option("#f-outcome", "probe")
    page.locator("form.audit-filters button[type=submit]").click()
    page.wait_for_load_state("networkidle")
    assert page.locator("table.records tbody tr").count() == 1
    assert page.locator("section.tops h2").first.inner_text() == "Most refused users"
    overflows += check_layout(page, "audit-search-probe")
    tables.append(table_fits(page))

    page.goto(f"{app.url}/audit/{records['change'].pk}/")
    assert page.locator(".record-summary").inner_text() == "ada: granted write on web/** to team web"
    assert page.locator("table.diff tr.changed").count() >= 3
    assert not page.locator("details.raw-record pre").is_visible()
    page.locator("details.raw-record summary").click()
    assert page.locator("details.raw-record pre").is_visible()
    overflows += check_layout(page, "audit-record-change")

    page.goto(f"{app.url}/audit/{records['probe'].pk}/")
    assert "Cross-repository mount check" in page.locator("p.probe-note").inner_text()
    assert page.locator("dd a[href='/access/robot/robot$web+ci']").count() == 1
    overflows += check_layout(page, "audit-record-probe")

    page.goto(f"{app.url}/audit/{records['partial'].pk}/")
    overflows += check_layout(page, "audit-record-partial")

    assert overflows == [], overflows
    assert all(tables), "the records table scrolls sideways in its own container"
    assert csp_problems(page) == [], csp_problems(page)
    assert page.console_errors == [], page.console_errors
