"""Destructive buttons and the htpasswd warning in Chromium (issue 20, items 8 and 9).

ada walks the pages whose destructive buttons became the shared red confirm (her tokens, robots, the
team's robots, a registry, the signing keys, a review, unused access) and the pages that warn about
htpasswd mode, each with one confirm opened: no horizontal overflow at 1366x768 (and 1920x1080), no
console error, no CSP violation. She revokes her token through the confirm, and, with JavaScript off,
revokes the robot the same way: the summary still has to be opened before the real button shows.
"""

from __future__ import annotations

import pytest

from accounts import services
from accounts.models import PersonalAccessToken, Robot
from tests.conftest import PASSWORD, SYSTEM, make_user
from tests.e2e_stack import AppServer
from tests.ops.test_browser import app, browser, check_layout, csp_problems, shot, sign_in  # noqa: F401
from tests.web.test_destructive_buttons import build_world

pytestmark = pytest.mark.e2e


@pytest.fixture
def world(app: AppServer, settings) -> dict:  # noqa: F811
    settings.LDAP_SERVER_URI = "ldap://127.0.0.1:1"  # only to map a directory group (the app runs without one)
    settings.LDAP_GROUP_SEARCH_BASE = "ou=groups,dc=example,dc=org"
    ada, alice, bob, carol = (
        make_user("ada", is_superuser=True),
        make_user("alice"),
        make_user("bob"),
        make_user("carol"),
    )
    web = services.create_team("web", context=SYSTEM)
    services.set_membership(web, alice, "maintainer", context=SYSTEM)
    services.set_membership(web, bob, "member", context=SYSTEM)
    found = build_world(ada, alice, bob, carol, web)
    services.create_registry("legacy", auth_mode="htpasswd", context=SYSTEM)
    services.create_registry("old", auth_mode="htpasswd", context=SYSTEM)
    return found


def test_an_admin_walks_the_confirmed_buttons_and_revokes_her_token(app: AppServer, browser, world: dict) -> None:  # noqa: F811
    page = sign_in(browser, app.url, "ada")
    overflows: list[str] = []
    confirms = {
        "tokens": "/me/tokens/",
        "robots": "/manage/robots/",
        "team-robots": "/teams/web/?tab=robots",
        "registry": "/manage/registries/registry/",
        "keys": "/manage/keys/",
        "review": f"/reviews/{world['campaign'].pk}/",
        "unused": "/access/unused/",
    }
    for name, path in confirms.items():
        page.set_viewport_size({"width": 1366, "height": 768})
        page.goto(app.url + path)
        page.wait_for_load_state("networkidle")
        summary = page.locator("details.confirm summary").first
        yes = page.locator("details.confirm button.danger").first
        assert not yes.is_visible(), name  # the real button hides until its red summary is opened
        summary.click()
        assert yes.is_visible() and yes.inner_text().startswith("Yes, "), name
        overflows += check_layout(page, f"confirm-{name}")

    for name, path in {
        "htpasswd-registry": "/manage/registries/legacy/",
        "htpasswd-new-registry": "/manage/registries/new",
        "htpasswd-setup": "/setup/",
    }.items():
        page.goto(app.url + path)
        page.wait_for_load_state("networkidle")
        assert page.locator("#htpasswd-warning").count() == 1, name
        overflows += check_layout(page, name)

    page.set_viewport_size({"width": 1366, "height": 768})
    page.goto(app.url + "/me/tokens/")
    row = page.locator("tr", has_text="ada-laptop")
    row.locator("details.confirm summary").click()
    row.locator("button:text-is('Yes, revoke')").click()
    page.wait_for_load_state("networkidle")
    assert PersonalAccessToken.objects.get(pk=world["ada_token"].pk).revoked_at is not None
    assert page.locator("tr", has_text="ada-laptop").locator("details.confirm").count() == 0
    shot(page, "confirm-tokens-revoked", full_page=False)

    assert overflows == [], overflows
    assert csp_problems(page) == [], csp_problems(page)
    assert page.console_errors == [], page.console_errors


def test_without_javascript_the_revoke_is_still_confirmed_and_works(app: AppServer, browser, world: dict) -> None:  # noqa: F811
    context = browser.new_context(java_script_enabled=False, viewport={"width": 1366, "height": 768})
    page = context.new_page()
    page.goto(app.url + "/login/")
    page.fill("#id_username", "ada")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.goto(app.url + "/manage/robots/")
    row = page.locator("tr", has_text="robot$web+ci")
    revoke = row.locator("form[action$='/revoke']")
    assert not revoke.locator("button.danger").is_visible()
    revoke.locator("summary").click()
    revoke.locator("button:text-is('Yes, revoke')").click()
    page.wait_for_load_state("load")
    assert Robot.objects.get(pk=world["robot"].pk).revoked_at is not None
    shot(page, "confirm-robots-revoked-nojs", full_page=False)
    context.close()
