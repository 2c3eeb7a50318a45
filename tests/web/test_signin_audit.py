"""Web sign-ins are recorded from Django's auth signals; bursts of failures raise alerts."""

from __future__ import annotations

import pytest
from django.test import Client

from audit.alerts import failed_login_bursts
from audit.models import AuditRecord
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def test_a_web_sign_in_is_recorded(carol, client: Client) -> None:
    client.post("/login/", {"username": "carol", "password": PASSWORD}, HTTP_USER_AGENT="Firefox")
    record = AuditRecord.objects.get(kind="signin")
    assert (record.outcome, record.actor, record.actor_id, record.user_agent) == (
        "success",
        "carol",
        carol.pk,
        "Firefox",
    )
    assert record.ip == "127.0.0.1"


def test_a_failed_web_sign_in_is_recorded_without_the_password(carol, client: Client) -> None:
    client.post("/login/", {"username": "carol", "password": "guessing-123"})
    record = AuditRecord.objects.get(kind="signin")
    assert (record.outcome, record.actor) == ("failure", "carol")
    assert "guessing-123" not in str(record.detail)


def test_five_failures_for_one_user_make_a_burst_alert(carol, client: Client) -> None:
    for attempt in range(5):
        client.post("/login/", {"username": "carol", "password": f"wrong-{attempt}"})
    bursts = {(b.by, b.value): b.failures for b in failed_login_bursts()}
    assert bursts[("user", "carol")] == 5
    assert bursts[("ip", "127.0.0.1")] == 5


def test_a_few_failures_are_no_alert(carol, client: Client) -> None:
    client.post("/login/", {"username": "carol", "password": "wrong"})
    assert failed_login_bursts() == []
