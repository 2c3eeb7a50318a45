"""The repository page in Chromium (issue 20, item 10).

ada opens web/app from the repositories list: its tags (one deleted), the pull chart, the commands with
their copy buttons, who can access it (loaded by htmx after the page) and the grants that select it; then
the list's red "Forget" opens onto its confirmation. At 1366x768 and 1920x1080: no horizontal overflow,
no console error, no CSP violation.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts import services
from audit.chain import seal
from audit.intake import store_events
from tests.conftest import SYSTEM, make_user
from tests.e2e_stack import AppServer
from tests.ops.test_browser import app, browser, check_layout, csp_problems, sign_in  # noqa: F401

pytestmark = pytest.mark.e2e


def notify(n: int, action: str, tag: str, digest: str, actor: str = "robot$web+ci") -> dict:
    """A manifest event as the registry sends it."""
    return {
        "id": f"event-{n}",
        "timestamp": (timezone.now() - timedelta(minutes=100 - n)).isoformat(),
        "action": action,
        "target": {
            "repository": "web/app",
            "digest": digest,
            "tag": tag,
            "size": 1234 + n * 100,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
        },
        "request": {"addr": "192.0.2.7:41234", "method": "PUT", "useragent": "skopeo/1.13"},
        "actor": {"name": actor},
    }


def test_an_admin_opens_a_repository_from_the_list(app: AppServer, browser) -> None:  # noqa: F811
    make_user("ada", is_superuser=True)
    bob, carol = make_user("bob"), make_user("carol")
    web = services.create_team("web", context=SYSTEM)
    services.set_membership(web, bob, "maintainer", context=SYSTEM)
    services.create_grant(web, "web/**", "write", context=SYSTEM)
    services.create_grant(carol, "web/app", "read", context=SYSTEM, expires_at=timezone.now() + timedelta(days=3))
    registry = services.create_registry("registry", url="https://registry.example.org", context=SYSTEM)
    services.create_repository("web/app", registry=registry, context=SYSTEM)
    digest = "sha256:" + "ab12" * 16
    events = [notify(n, "push", f"1.{n}", digest[:-2] + f"{n:02d}") for n in range(6)]
    events += [notify(10 + n, "pull", "1.5", digest, actor="carol") for n in range(4)]
    events.append(notify(20, "delete", "", digest[:-2] + "03"))
    store_events(events, "registry")
    seal(now=timezone.now() + timedelta(minutes=5))  # the pull chart counts from the sealer's rollups

    page = sign_in(browser, app.url, "ada")
    page.goto(app.url + "/manage/repositories/")
    page.click("a:has(code:text-is('web/app'))")
    page.wait_for_load_state("networkidle")
    assert page.locator("h1 code").inner_text() == "web/app"
    page.locator("#who table").wait_for()  # htmx swapped the engine's answer in
    assert "through team web" in page.locator("#who").inner_text()
    tags = page.locator(".repository-tags tbody tr")
    assert tags.count() == 6 and tags.first.locator("code").first.inner_text() == "1.5"
    assert page.locator(".repository-tags tr.deleted").count() == 1
    assert page.locator(".repository-pulls svg rect").count() == 1
    assert "docker pull registry.example.org/web/app:1.5" in page.locator(".repository-commands").inner_text()
    assert page.locator(".repository-commands .copy-button").count() == 2
    overflows = check_layout(page, "repository-detail")

    page.goto(app.url + "/manage/repositories/")
    page.locator("details.confirm summary").first.click()
    assert page.locator("details.confirm button.danger").first.is_visible()
    overflows += check_layout(page, "repository-list-forget")

    assert overflows == [], overflows
    assert csp_problems(page) == [], csp_problems(page)
    assert page.console_errors == [], page.console_errors
