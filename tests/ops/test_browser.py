"""The pages in a real browser: Debian's Chromium driven by Playwright (never a downloaded browser).

ada (admin) creates team web, makes alice its lead and gives the team write on web/**; alice grants
carol read on web/app; carol sees it in "My access"; an auditor finds carol's denied push and opens
"why denied". Then every persona walks its navigation: every page loads without a console error and,
at 1366x768 and 1920x1080, without horizontal overflow; the live search filters in place. Each page
also reports its CSP violations (the policy allows no inline script, style or eval), and a canary test
proves that report works. Screenshots of every page at both sizes land in tests/output/ (ignored by
git) for a person to look at.
"""

from __future__ import annotations

import base64
import re
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connections
from playwright.sync_api import expect, sync_playwright

from accounts import services
from accounts.services import ensure_keys
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


# Every document reports its CSP violations to the test through a binding (CDP, outside the page's CSP).
REPORT_CSP_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  const blocked = event.blockedURI || "inline";
  window.__reportCspViolation(`${event.violatedDirective} blocked ${blocked} on ${location.pathname}`);
});
"""


def watch(page: object) -> object:
    """Collect the page's console errors and, separately, every CSP violation on any document it loads."""
    errors: list[str] = []
    violations: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.expose_function("__reportCspViolation", lambda text: violations.append(text))
    page.add_init_script(REPORT_CSP_VIOLATIONS)
    page.console_errors = errors
    page.csp_violations = violations
    return page


def csp_problems(page: object) -> list[str]:
    """Violation events plus the console's own CSP reports (Chromium logs each refusal as an error)."""
    return page.csp_violations + [text for text in page.console_errors if "Content Security Policy" in text]


def sign_in(browser: object, base: str, username: str) -> object:
    page = watch(browser.new_page())
    page.goto(base + "/login/")
    assert page.locator("#id_username").count() == 1, page.content()[:2000]
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert "/login/" not in page.url, page.content()[:2000]
    return page


def shot(page: object, name: str, *, full_page: bool = True) -> None:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUTPUT / f"{name}.png"), full_page=full_page)


# The sizes every dashboard page is checked and photographed at: a common laptop and a desktop screen.
VIEWPORTS = ((1366, 768), (1920, 1080))
NO_OVERFLOW = "document.documentElement.scrollWidth <= innerWidth"


def check_layout(page: object, name: str) -> list[str]:
    """At each of VIEWPORTS: no horizontal overflow, and a full-page screenshot ``<name>-<width>.png``.

    Resizing the one page is far cheaper than a page (and a sign-in) per size, and the wide shot is of the
    screen only (the whole page is in the narrow one; a full 1920 px capture doubled the tour's time).
    Returns the overflows found.
    """
    problems = []
    for width, height in VIEWPORTS:
        page.set_viewport_size({"width": width, "height": height})
        if not page.evaluate(NO_OVERFLOW):
            wide = page.evaluate("document.documentElement.scrollWidth")
            problems.append(f"{name} is {wide}px wide at {width}px")
        shot(page, f"{name}-{width}", full_page=width == VIEWPORTS[0][0])
    return problems


def submit(page: object, form: object) -> None:
    form.locator("button[type=submit]").click()
    page.wait_for_load_state("networkidle")


def test_an_admin_sets_up_a_team_its_lead_grants_carol_and_an_auditor_finds_her_denied_push(
    app: AppServer, browser
) -> None:
    make_user("ada", is_superuser=True)
    make_user("alice")
    carol = make_user("carol")
    make_user("audrey", is_auditor=True)
    services.create_registry("registry", context=SYSTEM)
    ensure_keys()

    page = sign_in(browser, app.url, "ada")
    shot(page, "home-admin")
    page.click("nav a:text-is('Teams')")
    page.click("a:text-is('New team')")
    form = page.locator("form:has([name=name])")
    form.locator("[name=name]").fill("web")
    form.locator("[name=description]").fill("The web shop")
    submit(page, form)
    assert "Team web" in page.content()
    form = page.locator("form:has([name=member-username])")
    form.locator("[name=member-username]").fill("alice")
    form.locator("[name=member-role]").select_option("maintainer")
    submit(page, form)
    assert "alice is now a maintainer of team web" in page.content()
    page.click("nav.tabs a:text-is('Grants')")
    page.wait_for_load_state("networkidle")
    page.click("a:text-is('Give the team a grant')")
    page.wait_for_load_state("networkidle")
    form = page.locator("form:has([name=pattern])")
    assert form.locator("[name=subject]").input_value() == "web"
    form.locator("[name=pattern]").fill("web/**")
    form.locator("[name=role]").select_option("write")
    submit(page, form)
    assert "web/**" in page.content()
    assert page.console_errors == []

    page = sign_in(browser, app.url, "alice")
    page.click("nav a:text-is('Teams')")
    page.click("a:text-is('web')")
    shot(page, "team-web")
    page.click("nav.tabs a:text-is('Grants')")
    page.wait_for_load_state("networkidle")
    form = page.locator("form:has([name=grant-subject])")
    form.locator("[name=grant-subject]").fill("carol")
    form.locator("[name=grant-pattern]").fill("web/app")
    form.locator("[name=grant-role]").select_option("read")
    submit(page, form)
    assert "Granted read on web/app to carol" in page.content()
    assert page.console_errors == []

    page = sign_in(browser, app.url, "carol")
    page.click("nav a:text-is('My access')")
    page.wait_for_load_state("networkidle")
    assert "web/app" in page.locator("table.grid").inner_text()
    shot(page, "my-access-carol")
    assert carol.is_active

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
    assert "push needs write" in page.content()
    shot(page, "why-denied-carol")
    assert csp_problems(page) == []
    assert page.console_errors == []


def _nav_links(page: object) -> list[tuple[str, str]]:
    links = page.locator("nav.mainnav a, nav.subnav a:not(.muted)")
    return [(links.nth(i).inner_text(), links.nth(i).get_attribute("href")) for i in range(links.count())]


@pytest.fixture
def populated(transactional_db: None) -> None:
    """A small world for the tour: two teams, grants, robots, tokens, a denial."""
    ada, alice, bob = make_user("ada", is_superuser=True), make_user("alice"), make_user("bob", email="bob@example.org")
    make_user("audrey", is_auditor=True)
    make_user("carol")
    services.create_registry("registry", url="http://127.0.0.1:5000", context=SYSTEM)
    ensure_keys()
    for name, lead in (("web", alice), ("ops", ada)):
        team = services.create_team(name, description=f"The {name} team", context=SYSTEM)
        services.set_membership(team, lead, "maintainer", context=SYSTEM)
        services.set_membership(team, bob, "member", context=SYSTEM)
        services.create_grant(team, f"{name}/**", "write", context=SYSTEM)
        services.create_robot(team, "ci", grants=[(f"{name}/app", "write")], context=SYSTEM)
        services.create_repository(f"{name}/app", context=SYSTEM)
    services.create_access_token(bob, "laptop", read_only=True, context=SYSTEM)


@pytest.mark.parametrize("persona", ["ada", "audrey", "alice", "carol"])
def test_every_page_in_the_navigation_loads_without_console_errors(
    populated: None, app: AppServer, browser, persona: str
) -> None:
    overflows = []
    if persona == "ada":  # the sign-in page once, not per persona: it is the same for everyone
        page = watch(browser.new_page())
        page.goto(app.url + "/login/")
        overflows += check_layout(page, "login")
        assert csp_problems(page) == [] and page.console_errors == [], page.console_errors
        page.close()
    page = sign_in(browser, app.url, persona)
    links = _nav_links(page)
    assert len(links) >= 6
    for text, href in links:
        page.set_viewport_size({"width": VIEWPORTS[0][0], "height": VIEWPORTS[0][1]})
        response = page.goto(app.url + href)
        page.wait_for_load_state("networkidle")
        assert response.status == 200, f"{persona}: {text} ({href}) answered {response.status}"
        overflows += check_layout(page, f"{persona}-{re.sub(r'[^a-z0-9]+', '-', href).strip('-') or 'home'}")
    assert overflows == [], overflows
    assert csp_problems(page) == [], csp_problems(page)
    assert page.console_errors == [], page.console_errors


def test_a_csp_violation_on_a_page_is_caught_by_the_watch(app: AppServer, browser) -> None:
    """The guard behind the tour: an inline style injected into a real page is refused and reported."""
    make_user("ada", is_superuser=True)
    page = sign_in(browser, app.url, "ada")
    assert csp_problems(page) == []
    page.evaluate("document.head.insertAdjacentHTML('beforeend', '<style>body { color: red }</style>')")
    expect(page.locator("body")).not_to_have_css("color", "rgb(255, 0, 0)")
    page.wait_for_timeout(200)  # the violation event is dispatched as a task after the refusal
    assert any(v.startswith("style-src") for v in page.csp_violations), page.csp_violations
    assert any("Content Security Policy" in text for text in page.console_errors), page.console_errors


def test_the_live_search_filters_the_user_list_in_place(populated: None, app: AppServer, browser) -> None:
    page = sign_in(browser, app.url, "ada")
    page.goto(app.url + "/manage/users/")
    page.wait_for_load_state("networkidle")
    assert page.locator("#results").get_by_text("carol").count() >= 1
    page.evaluate("window.__sameDocument = true")
    page.fill("input[name=q]", "bob@")
    # Locator assertions, not wait_for_function: a string predicate needs eval, which the CSP refuses.
    expect(page.locator("#results")).not_to_contain_text("carol", timeout=5000)
    expect(page.locator("#results")).to_contain_text("bob")
    assert page.evaluate("window.__sameDocument === true")  # swapped in place: no page load
    expect(page).to_have_url(re.compile(r"[?&]q=bob"))  # the address bar keeps the search (hx-push-url)
    for name in ("user-detail", "registry-detail"):
        href = "/manage/users/bob/" if name == "user-detail" else "/manage/registries/registry/"
        page.goto(app.url + href)
        page.wait_for_load_state("networkidle")
        shot(page, name)
    assert csp_problems(page) == [], csp_problems(page)
    assert page.console_errors == [], page.console_errors


def test_the_api_docs_load_from_our_own_files_under_the_csp_and_try_a_call(app: AppServer, browser) -> None:
    """Swagger UI at /api/docs/: every asset from this server (no CDN), no CSP violation, and "Try it out"
    on GET /api/me answers with the signed-in person through the session."""
    make_user("ada", is_superuser=True)
    page = sign_in(browser, app.url, "ada")
    foreign: list[str] = []
    page.on("request", lambda request: None if request.url.startswith(app.url) else foreign.append(request.url))
    page.goto(app.url + "/api/docs/")
    page.wait_for_selector(".opblock-summary-path", timeout=15_000)
    shot(page, "api-docs")
    assert page.locator(".opblock-summary-path[data-path='/api/me']").count() == 1
    page.locator(".opblock-summary-path[data-path='/api/me']").click()
    page.locator("button:text-is('Try it out')").click()
    page.locator("button:text-is('Execute')").click()
    page.wait_for_selector(".responses-wrapper .response-col_status", timeout=10_000)
    body = page.locator(".responses-wrapper .live-responses-table").inner_text()
    assert '"username": "ada"' in body, body[:2000]
    assert not foreign, foreign
    assert not csp_problems(page), csp_problems(page)
    assert not page.console_errors, page.console_errors
