"""The daily signing-key check: rotate a key past its age through the preflight, retire what is done.

The registry "registry" is in token mode. Without a URL nothing can ask it whether it loaded the
next key, so a scheduled rotation refuses (unless ROTATE_WITHOUT_PREFLIGHT); with a URL the
preflight asks it (here a small HTTP server that answers like a registry that trusts every key).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from accounts import services, tasks
from accounts.models import KeyState, Registry, SigningKey, User
from accounts.registry import config
from audit.models import AuditRecord, Kind
from registryadmin.celery import app
from tests.conftest import SYSTEM, client_for, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def registry(db: None) -> Registry:
    row = services.create_registry("registry", context=SYSTEM)
    services.ensure_keys()
    return row


def age_current_key(days: int) -> SigningKey:
    current = SigningKey.objects.get(state=KeyState.CURRENT)
    SigningKey.objects.filter(pk=current.pk).update(activated_at=timezone.now() - timedelta(days=days))
    return current


@pytest.fixture
def trusting_registry() -> Iterator[str]:
    """A loopback server that answers /v2/ with 200 to any bearer token, as a registry that loaded the bundle."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.headers.get("Authorization", "").startswith("Bearer ") else 401)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()


def test_a_young_key_is_left_alone(registry: Registry) -> None:
    age_current_key(3)
    outcome = config.rotate_if_due(SYSTEM)
    assert not outcome.due and outcome.rotation is None and not outcome.refusal


def test_an_old_key_with_a_url_less_token_registry_is_not_rotated_and_the_refusal_says_why(registry: Registry) -> None:
    old = age_current_key(31)
    outcome = config.rotate_if_due(SYSTEM)
    assert outcome.due and outcome.rotation is None
    assert "registry registry has no URL" in outcome.refusal and "ROTATE_WITHOUT_PREFLIGHT" in outcome.refusal
    assert SigningKey.objects.get(state=KeyState.CURRENT).pk == old.pk
    refused = AuditRecord.objects.get(kind=Kind.CREDENTIAL, detail__action=config.REFUSED_ACTION)
    assert refused.outcome == "failure" and refused.detail["age_days"] == 31


def test_the_task_records_a_refused_rotation_as_a_failed_job_with_the_remedy(registry: Registry) -> None:
    age_current_key(40)
    with pytest.raises(tasks.RotationRefused):
        tasks.rotate_signing_key()
    job = AuditRecord.objects.filter(kind=Kind.JOB, detail__job="rotate_signing_key").latest("id")
    assert job.outcome == "error" and "Set its URL on its registry page" in job.detail["error"]


def test_rotate_without_preflight_rotates_a_url_less_registry(registry: Registry, settings) -> None:
    settings.ROTATE_WITHOUT_PREFLIGHT = True
    old = age_current_key(31)
    outcome = config.rotate_if_due(SYSTEM)
    assert outcome.rotation is not None and outcome.rotation.promoted is not None
    assert SigningKey.objects.get(pk=old.pk).state == KeyState.PREVIOUS


def test_an_old_key_rotates_when_the_preflight_passes(registry: Registry, trusting_registry: str) -> None:
    services.update_registry(registry, url=trusting_registry, context=SYSTEM)
    old = age_current_key(31)
    outcome = tasks.rotate_signing_key()
    assert outcome["rotated_to"] == SigningKey.objects.get(state=KeyState.CURRENT).kid != old.kid
    assert outcome["preflight"] == ["registry: accepts the next key"]
    assert SigningKey.objects.get(pk=old.pk).state == KeyState.PREVIOUS


def test_a_failed_preflight_rotates_nothing(registry: Registry) -> None:
    services.update_registry(registry, url="http://127.0.0.1:9", context=SYSTEM)  # nothing listens there
    old = age_current_key(31)
    outcome = config.rotate_if_due(SYSTEM)
    assert outcome.rotation is not None and outcome.rotation.promoted is None
    assert "unreachable" in outcome.refusal and "Restart each registry named" in outcome.refusal
    assert SigningKey.objects.get(state=KeyState.CURRENT).pk == old.pk


def test_the_previous_key_is_retired_once_its_last_token_has_expired(registry: Registry, settings) -> None:
    settings.ROTATE_WITHOUT_PREFLIGHT = True
    services.rotate_signing_key(SYSTEM)
    previous = SigningKey.objects.get(state=KeyState.PREVIOUS)
    current = SigningKey.objects.get(state=KeyState.CURRENT)

    soon = current.activated_at + timedelta(seconds=settings.TOKEN_TTL)
    assert config.rotate_if_due(SYSTEM, now=soon).retired == ""  # tokens it signed may still be in use
    assert SigningKey.objects.get(pk=previous.pk).state == KeyState.PREVIOUS

    later = soon + services.keys.RETIRE_MARGIN + timedelta(seconds=1)
    assert config.rotate_if_due(SYSTEM, now=later).retired == previous.kid
    assert SigningKey.objects.get(pk=previous.pk).state == KeyState.RETIRED
    assert AuditRecord.objects.filter(kind=Kind.CREDENTIAL, detail__action="signing_key.retire").exists()


def test_retiring_rewrites_a_written_bundle_without_the_previous_certificate(registry: Registry, settings) -> None:
    settings.ROTATE_WITHOUT_PREFLIGHT = True
    services.rotate_signing_key(SYSTEM)
    previous = SigningKey.objects.get(state=KeyState.PREVIOUS)
    bundle = config.bundle_path("registry")
    config.write_atomic(bundle, config.keys.bundle_pem(), 0o644)
    assert previous.certificate.strip() in bundle.read_text()

    config.rotate_if_due(SYSTEM, now=timezone.now() + timedelta(hours=1))

    assert previous.certificate.strip() not in bundle.read_text()
    assert SigningKey.objects.get(state=KeyState.CURRENT).certificate.strip() in bundle.read_text()


def test_the_keys_page_shows_the_schedule_and_a_refused_rotation_with_its_remedy(registry: Registry, ada: User) -> None:
    age_current_key(31)
    config.rotate_if_due(SYSTEM)
    body = client_for("ada", {"ada": ada}).get("/manage/keys/").content.decode()
    assert "The scheduled rotation was refused" in body
    assert "Set its URL on its registry page" in body
    assert "has signed for 31 days" in body


def test_a_refused_rotation_goes_by_mail_to_the_admins(registry: Registry, mailoutbox: list) -> None:
    make_user("root", is_superuser=True, email="root@example.org")
    make_user("quiet", is_superuser=True)  # no address: nobody to write to
    make_user("bob", email="bob@example.org")  # not an admin
    age_current_key(31)
    with pytest.raises(tasks.RotationRefused):
        tasks.rotate_signing_key()
    assert [m.to for m in mailoutbox] == [["root@example.org"]]
    assert "rotate_signing_key failed" in mailoutbox[0].subject
    assert "Set its URL on its registry page" in mailoutbox[0].body


def test_every_beat_entry_names_a_registered_task_with_a_schedule_and_an_expiry_only() -> None:
    """A misplaced entry (one nested in another) would leave its task unscheduled without an error."""
    app.loader.import_default_modules()
    for name, entry in django_settings.CELERY_BEAT_SCHEDULE.items():
        assert set(entry) == {"task", "schedule", "options"}, name
        assert entry["task"] in app.tasks, name
        assert entry["options"]["expires"] > 0, name
    assert django_settings.CELERY_BEAT_SCHEDULE["rotate-signing-key"]["task"] == "accounts.tasks.rotate_signing_key"


def test_a_job_failing_again_within_the_hour_does_not_mail_again(registry: Registry, mailoutbox: list) -> None:
    make_user("root", is_superuser=True, email="root@example.org")
    age_current_key(31)
    for _ in range(3):
        with pytest.raises(tasks.RotationRefused):
            tasks.rotate_signing_key()
    assert len(mailoutbox) == 1
    jobs = AuditRecord.objects.filter(kind=Kind.JOB, detail__job="rotate_signing_key").order_by("id")
    assert [job.detail["mailed"] for job in jobs] == [True, False, False]
