"""The pages in a real browser: Debian's Chromium driven by Playwright (never a downloaded browser).

alice leads team web and grants carol read on web/app; carol sees it in "My access";
an auditor finds carol's denied push and opens "why denied". Screenshots land in
tests/output/ (ignored by git) for a person to look at.
"""

from __future__ import annotations

import base64
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connections
from playwright.sync_api import sync_playwright

from accounts import services
from accounts.keys import ensure_keys
from tests.conftest import PASSWORD, REPO_ROOT, SYSTEM, make_user
from tests.e2e_stack import AppServer
from tests.harness import require_binary

pytestmark = pytest.mark.e2e
OUTPUT = REPO_ROOT / "tests" / "output"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def app(transactional_db: None, subprocess_env: dict[str, str], tmp_path: Path) -> Iterator[AppServer]:
    server = AppServer(subprocess_env, tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    chromium = require_binary("chromium")
    # Playwright's sync API keeps an event loop in this thread; the test's own ORM calls are still sync.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=shutil.which("chromium") or chromium, args=CHROMIUM_ARGS, headless=True
        )
        yield instance
        instance.close()
        # ORM calls made while Playwright's loop runs open their own connection: close it, or
        # PostgreSQL refuses to drop the test database at the end of the run.
        connections.close_all()


def sign_in(browser: object, base: str, username: str) -> object:
    page = browser.new_page()
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.console_errors = errors
    page.goto(base + "/login/")
    assert page.locator("#id_username").count() == 1, page.content()[:2000]
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")
    return page


def shot(page: object, name: str) -> None:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUTPUT / f"{name}.png"), full_page=True)


def test_a_lead_grants_carol_who_sees_it_and_an_auditor_finds_her_denied_push(app: AppServer, browser) -> None:
    alice, carol = make_user("alice"), make_user("carol")
    make_user("audrey", is_auditor=True)
    web = services.create_team("web", context=SYSTEM)
    services.set_membership(web, alice, "maintainer", context=SYSTEM)
    services.create_grant(web, "web/**", "write", context=SYSTEM)
    services.create_registry("registry", context=SYSTEM)
    ensure_keys()
    assert carol.is_active

    page = sign_in(browser, app.url, "alice")
    page.click("nav a:text-is('Teams')")
    page.click("a:text-is('web')")
    shot(page, "team-web")
    form = page.locator("form:has([name=grant-subject])")
    form.locator("[name=grant-subject]").fill("carol")
    form.locator("[name=grant-pattern]").fill("web/app")
    form.locator("[name=grant-role]").select_option("read")
    form.locator("button[type=submit]").click()
    page.wait_for_load_state("networkidle")
    assert "Granted read on web/app to carol" in page.content()
    assert page.console_errors == []

    page = sign_in(browser, app.url, "carol")
    assert "web/app" in page.locator("table.grid").inner_text()
    shot(page, "my-access-carol")

    raw = base64.b64encode(f"carol:{PASSWORD}".encode()).decode()
    request = urllib.request.Request(
        app.url + "/auth/token?service=registry&scope=repository:web/app:pull,push",
        headers={"Authorization": f"Basic {raw}"},
    )
    urllib.request.urlopen(request).read()

    page = sign_in(browser, app.url, "audrey")
    page.click("nav a:text-is('Audit')")
    page.wait_for_load_state("networkidle")
    page.fill("[name=user]", "carol")
    page.press("[name=user]", "Enter")
    page.wait_for_load_state("networkidle")
    shot(page, "audit-carol")
    page.click("table a:text-is('why denied')")
    page.wait_for_load_state("networkidle")
    text = page.content()
    assert "push needs write" in text
    shot(page, "why-denied-carol")
    assert page.console_errors == []
