"""People pickers and the team page's sections in Chromium (issue 20, items 7 and 8).

ada opens carol's page, types a team name and sees htmx fill the datalist, adds carol to web from
there, then walks the team page's four sections and a failed grant with its error summary. Every page
at 1366x768 and 1920x1080: no horizontal overflow, no console error, no CSP violation.
"""

from __future__ import annotations

import pytest

from accounts import services
from tests.conftest import SYSTEM, make_user
from tests.e2e_stack import AppServer
from tests.ops.test_browser import app, browser, check_layout, csp_problems, sign_in, submit  # noqa: F401

pytestmark = pytest.mark.e2e


def test_an_admin_picks_a_team_for_carol_and_walks_the_team_sections(app: AppServer, browser) -> None:  # noqa: F811
    make_user("ada", is_superuser=True)
    make_user("carol")
    web = services.create_team("web", context=SYSTEM)
    services.create_grant(web, "web/**", "write", context=SYSTEM)
    page = sign_in(browser, app.url, "ada")

    page.goto(app.url + "/manage/users/carol/")
    page.locator("#id_team-team").press_sequentially("we")
    page.locator("#suggest-team option").first.wait_for(state="attached")  # htmx filled the datalist
    assert page.locator("#suggest-team option").first.get_attribute("value") == "web"
    overflows = check_layout(page, "people-user-detail")
    page.fill("#id_team-team", "web")
    submit(page, page.locator("#add-to-team"))
    assert page.url.endswith("/manage/users/carol/")
    assert page.locator("a[href='/teams/web/']").count() >= 1

    for tab in ("members", "grants", "robots", "settings"):
        page.goto(f"{app.url}/teams/web/?tab={tab}")
        assert page.locator("nav.tabs a[aria-current=page]").inner_text().lower() == tab
        if tab == "members":  # a destructive button shows only once its red summary is opened
            page.locator("details.confirm summary").first.click()
            assert page.locator("details.confirm button.danger").first.is_visible()
        overflows += check_layout(page, f"people-team-{tab}")

    page.goto(f"{app.url}/teams/web/?tab=grants")
    form = page.locator("form[action='/teams/web/grants/add']")
    form.locator("#id_grant-subject").fill("nobody")
    form.locator("#id_grant-pattern").fill("web/app")
    submit(page, form)
    assert page.locator(".form-errors").count() == 1
    overflows += check_layout(page, "people-team-grant-error")

    assert overflows == [], overflows
    assert csp_problems(page) == [], csp_problems(page)
    errors = [e for e in page.console_errors if "400" not in e]  # the failed grant's own 400 answer
    assert errors == [], page.console_errors
