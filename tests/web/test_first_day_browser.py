"""The admin's first day in Chromium: the home page's guide, then the registry page with its whole config.yml.

ada, on a fresh install with one registry, sees the three steps, prepares the registry's configuration,
finds a copy button on the config block (added by static/js/copy.js under the CSP) and the test-connection
button. Both pages at 1366x768 and 1920x1080: no horizontal overflow, no console error, no CSP violation.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from accounts import services
from tests.conftest import SYSTEM, make_user
from tests.e2e_stack import AppServer
from tests.ops.test_browser import app, browser, check_layout, csp_problems, sign_in, submit  # noqa: F401

pytestmark = pytest.mark.e2e


def test_a_fresh_install_guides_the_admin_to_a_whole_config_with_copy_buttons(app: AppServer, browser) -> None:  # noqa: F811
    make_user("ada", is_superuser=True)
    services.create_registry("registry", url="http://127.0.0.1:9", context=SYSTEM)
    page = sign_in(browser, app.url, "ada")
    assert page.locator(".first-day li").count() == 3
    assert page.locator(".first-day li.done").count() == 0
    overflows = check_layout(page, "firstday-home")

    page.goto(app.url + "/manage/registries/registry/")
    page.wait_for_load_state("networkidle")
    prepare = page.locator("form[action$='/prepare']")
    if prepare.count():  # a fresh install has no keys yet; made here as the admin would
        submit(page, prepare)
    config = page.locator("#fragment").inner_text()
    assert "storage:" in config and "http:" in config and "notifications:" in config
    copy = page.locator(".copyable .copy-button")
    assert copy.count() >= 1
    copy.first.click()
    # The answer shows for 2 s, then the button reads "Copy" again: wait for it, do not sample it once.
    expect(copy.first).to_have_text(re.compile("Copied|Select and copy"), timeout=2000)
    assert page.get_by_role("button", name="Test connection").count() == 1
    overflows += check_layout(page, "firstday-registry")

    assert overflows == [], overflows
    assert csp_problems(page) == [], csp_problems(page)
    assert page.console_errors == [], page.console_errors
