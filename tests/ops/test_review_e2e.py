"""Access reviews end to end: a lead answers in real Chromium, and a real worker escalates past the deadline.

(a) gunicorn serves the app; alice (lead of web) signs in with Debian's Chromium, opens the review,
certifies erin's grant and revokes bob's; the token endpoint then refuses bob the push; audrey (the
auditor) sees the decisions and downloads the evidence. Screenshots go to tests/output/.
(b) a review past its deadline; a Celery worker on the real Redis runs the hourly check with
EMAIL_URL pointing at a real SMTP server (aiosmtpd): the review escalates and ada's mail arrives.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from kombu import Connection

from accounts import services
from accounts.models import ReviewCampaign
from accounts.services import ensure_keys
from accounts.tasks import check_access_reviews
from audit.models import AuditRecord, Kind
from tests.conftest import PASSWORD, REPO_ROOT, SYSTEM, make_user
from tests.e2e_stack import AppServer
from tests.ops.test_browser import app, browser, csp_problems, shot, sign_in  # noqa: F401 - fixtures too
from tests.ops.test_celery_worker import REDIS_URL, redis_or_skip, wait_for
from tests.ops.test_mail import Mailbox, smtp_server

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
WORKER = [sys.executable, "-m", "celery", "-A", "registryadmin", "worker", "--pool", "solo", "--loglevel", "INFO"]
WORKER += ["--without-gossip", "--without-mingle"]


def token_actions(base: str, user: str, scope: str) -> list[str]:
    """What the real token endpoint grants ``user`` on one repository scope."""
    raw = base64.b64encode(f"{user}:{PASSWORD}".encode()).decode()
    request = urllib.request.Request(
        f"{base}/auth/token?service=registry&scope={scope}", headers={"Authorization": f"Basic {raw}"}
    )
    with urllib.request.urlopen(request) as response:
        token = json.loads(response.read())["token"]
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return [action for entry in claims["access"] for action in entry["actions"]]


def test_a_lead_answers_a_review_in_the_browser_and_the_revoked_push_is_refused(
    app: AppServer,  # noqa: F811
    browser,  # noqa: F811
) -> None:
    make_user("ada", is_superuser=True)
    alice = make_user("alice", email="alice@example.org")
    bob, erin = make_user("bob"), make_user("erin")
    make_user("audrey", is_auditor=True)
    services.create_registry("registry", context=SYSTEM)
    ensure_keys()
    web = services.create_team("web", description="The web shop", context=SYSTEM)
    services.set_membership(web, alice, "maintainer", context=SYSTEM)
    services.create_grant(web, "web/**", "write", context=SYSTEM)
    services.lead_grant(web, bob, "web/app", "write", acting_user=alice, context=SYSTEM)
    services.lead_grant(web, erin, "web/docs", "read", acting_user=alice, context=SYSTEM)
    services.create_robot(web, "ci", grants=[("web/app", "read")], context=SYSTEM)
    assert token_actions(app.url, "bob", "repository:web/app:pull,push") == ["pull", "push"]
    campaign = services.reviews.start_campaign("Q2 review", context=SYSTEM).campaign

    page = sign_in(browser, app.url, "alice")
    assert "Reviews waiting for you" in page.content()
    page.click("nav a:text-is('Reviews')")
    page.wait_for_load_state("networkidle")
    assert "Q2 review" in page.content()
    shot(page, "reviews-list")
    page.click("a:text-is('Q2 review')")
    page.wait_for_load_state("networkidle")
    page.locator("tr", has_text="user erin").locator("button:text-is('Certify')").click()
    page.wait_for_load_state("networkidle")
    assert "Certified read on web/docs to user erin" in page.content()
    row = page.locator("tr", has_text="user bob")
    row.locator("details.confirm summary").click()  # destructive: red and confirmed
    row.locator("button:text-is('Yes, revoke')").click()
    page.wait_for_load_state("networkidle")
    assert "Revoked write on web/app to user bob" in page.content()
    page.goto(f"{app.url}/reviews/{campaign.pk}/?state=all")
    page.wait_for_load_state("networkidle")
    shot(page, "review-alice")
    assert csp_problems(page) == [] and page.console_errors == []

    assert token_actions(app.url, "bob", "repository:web/app:pull,push") == []
    decided = dict(campaign.items.filter(kind="grant", team_name="web").values_list("subject", "decision"))
    assert decided == {"user bob": "revoked", "user erin": "certified", "robot robot$web+ci": ""}

    page = sign_in(browser, app.url, "audrey")
    page.goto(f"{app.url}/reviews/{campaign.pk}/")
    page.wait_for_load_state("networkidle")
    assert page.locator("button:text-is('Certify')").count() == 0
    shot(page, "review-auditor")
    evidence = page.request.get(f"{app.url}/reviews/{campaign.pk}/export?format=csv")
    assert evidence.status == 200 and evidence.headers["content-type"] == "text/csv; charset=utf-8"
    assert "user bob" in evidence.text() and ",revoked,alice," in evidence.text()
    assert csp_problems(page) == [] and page.console_errors == []


@pytest.fixture
def mailbox() -> Mailbox:
    return Mailbox()


@pytest.fixture
def smtp_port(mailbox: Mailbox) -> Iterator[int]:
    controller = smtp_server(mailbox)
    yield controller.port
    controller.stop()


def test_a_worker_on_redis_escalates_a_review_past_its_deadline_and_mails_the_admins(
    subprocess_env: dict[str, str], tmp_path: Path, mailbox: Mailbox, smtp_port: int
) -> None:
    redis_or_skip()
    make_user("ada", is_superuser=True, email="ada@example.org")
    alice = make_user("alice", email="alice@example.org")
    web = services.create_team("web", context=SYSTEM)
    services.set_membership(web, alice, "maintainer", context=SYSTEM)
    services.create_grant(web, "web/**", "write", context=SYSTEM)
    started = timezone.now() - timedelta(days=15)
    campaign = services.reviews.start_campaign("Late review", days=14, now=started, context=SYSTEM).campaign
    queue = f"test-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "worker.log"
    env = subprocess_env | {"CELERY_BROKER_URL": REDIS_URL, "EMAIL_URL": f"smtp://127.0.0.1:{smtp_port}"}
    with log.open("w") as out:
        worker = subprocess.Popen(
            [*WORKER, "-Q", queue, "--hostname", f"{queue}@%h"],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        with Connection(REDIS_URL) as connection:
            check_access_reviews.apply_async(queue=queue, connection=connection)
        wait_for(
            lambda: ReviewCampaign.objects.filter(pk=campaign.pk, escalated_at__isnull=False).exists(),
            60,
            "the escalation",
            log,
        )
        wait_for(lambda: AuditRecord.objects.filter(kind=Kind.JOB).exists(), 30, "the job record", log)
        deadline = time.monotonic() + 10
        while not mailbox.received and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        worker.terminate()
        worker.wait(timeout=20)
    campaign.refresh_from_db()
    assert campaign.items.filter(escalated_at=campaign.escalated_at).count() == campaign.items.count() == 2
    (message,) = mailbox.messages()
    assert message["To"] == "ada@example.org"
    assert message["Subject"] == '[registryadmin] Access review "Late review" escalated'
    assert "2 item(s) unanswered" in message.get_payload(decode=True).decode()
    job = AuditRecord.objects.get(kind=Kind.JOB)
    assert job.detail["job"] == "check_access_reviews" and job.detail["result"]["escalation_mails"] == 1
    assert AuditRecord.objects.filter(detail__action="review.escalate", actor="review deadline").count() == 1
