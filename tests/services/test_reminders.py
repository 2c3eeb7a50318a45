"""Expiry reminders: who is mailed before a grant, robot or token expires, once per expiry, never a secret.

alice leads team web (which holds write on web/**), bob is a member; ada is the admin. Things expire
within the week: bob's grant on web/app that web manages (5 days), carol's grant on pub/x that no team
manages (3 days), web's team grant on web/** (6 days), the robot web+ci (2 days), the global robot
mirror (4 days) and bob's token laptop (1 day). Not reminded: erin's grant in 10 days, dave's (inactive)
grant, a revoked robot.
"""

from __future__ import annotations

from datetime import UTC, timedelta
from unittest import mock

import pytest
from django.conf import settings
from django.core import mail as django_mail
from django.utils import timezone

from accounts import services, tasks
from accounts.models import ExpiryReminder, Grant, User
from audit.models import AuditRecord, Kind
from tests.conftest import SYSTEM, make_user

pytestmark = pytest.mark.django_db

NOW = timezone.now().replace(microsecond=0)


def days(n: float):
    return NOW + timedelta(days=n)


@pytest.fixture
def world(db: None) -> dict:
    ada = make_user("ada", is_superuser=True, email="ada@example.org")
    alice = make_user("alice", email="alice@example.org")
    bob = make_user("bob", email="bob@example.org")
    carol = make_user("carol", email="carol@example.org")
    erin = make_user("erin", email="erin@example.org")
    dave = make_user("dave", is_active=False, email="dave@example.org")
    make_user("audrey", is_auditor=True, email="audrey@example.org")
    web = services.create_team("web", context=SYSTEM)
    services.set_membership(web, alice, "maintainer", context=SYSTEM)
    services.set_membership(web, bob, "member", context=SYSTEM)
    team_grant = services.create_grant(web, "web/**", "write", expires_at=days(6), context=SYSTEM)
    bobs = services.create_grant(bob, "web/app", "write", managed_by=web, expires_at=days(5), context=SYSTEM)
    carols = services.create_grant(carol, "pub/x", "read", expires_at=days(3), context=SYSTEM)
    services.create_grant(erin, "pub/y", "read", expires_at=days(10), context=SYSTEM)
    services.create_grant(dave, "pub/z", "read", expires_at=days(2), context=SYSTEM)
    robot, robot_secret = services.create_robot(web, "ci", expires_at=days(2), context=SYSTEM)
    revoked, _ = services.create_robot(web, "old", expires_at=days(2), context=SYSTEM)
    services.revoke_robot(revoked, context=SYSTEM)
    mirror, mirror_secret = services.create_robot(None, "mirror", expires_at=days(4), context=SYSTEM)
    token, token_secret = services.create_access_token(bob, "laptop", expires_at=days(1), context=SYSTEM)
    return {
        "ada": ada,
        "bob": bob,
        "web": web,
        "bobs": bobs,
        "carols": carols,
        "team_grant": team_grant,
        "robot": robot,
        "mirror": mirror,
        "token": token,
        "secrets": [robot_secret, mirror_secret, token_secret],
    }


def sent() -> dict[str, list[str]]:
    """Subject (without the prefix) -> the addresses it went to, sorted."""
    found: dict[str, list[str]] = {}
    for message in django_mail.outbox:
        found.setdefault(message.subject.removeprefix("[registryadmin] "), []).extend(message.to)
    return {subject: sorted(to) for subject, to in found.items()}


def when(n: float) -> str:
    return f"{days(n).astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def test_each_expiry_within_the_week_mails_its_people(world, mailoutbox) -> None:
    counts = services.reminders.send_due(now=NOW)
    assert sent() == {
        f"Grant write on web/app to user bob expires {when(5)}": ["alice@example.org", "bob@example.org"],
        f"Grant read on pub/x to user carol expires {when(3)}": ["carol@example.org"],
        f"Grant write on web/** to team web expires {when(6)}": ["alice@example.org"],
        f"Robot robot$web+ci expires {when(2)}": ["alice@example.org"],
        f"Robot robot$mirror expires {when(4)}": ["ada@example.org"],
        f"Personal access token laptop of bob expires {when(1)}": ["bob@example.org"],
    }
    assert counts == {"sent": 7, "reminders": 6, "nobody_to_tell": 0, "not_delivered": 0}
    assert ExpiryReminder.objects.count() == 6


def test_the_mail_links_where_to_extend_it_and_carries_no_secret(world, mailoutbox) -> None:
    services.reminders.send_due(now=NOW)
    bodies = {message.subject: message.body for message in mailoutbox}
    public = settings.PUBLIC_URL
    body = next(b for s, b in bodies.items() if "web/app to user bob" in s)
    assert f"{public}/teams/web/" in body and "Team web's leads extend it" in body
    body = next(b for s, b in bodies.items() if "pub/x to user carol" in s)
    assert f"{public}/manage/grants/?pattern=pub%2Fx&state=expiring" in body and "An administrator" in body
    assert f"{public}/me/tokens/" in next(b for s, b in bodies.items() if "laptop" in s)
    assert f"{public}/teams/web/" in next(b for s, b in bodies.items() if "robot$web+ci" in s)
    assert f"{public}/manage/robots/" in next(b for s, b in bodies.items() if "robot$mirror" in s)
    for message in mailoutbox:
        assert not any(secret in message.body or secret in message.subject for secret in world["secrets"])
        assert "rgb_" not in message.body and "rga_" not in message.body


def test_each_expiry_is_reminded_once_and_again_after_an_extension(world, mailoutbox) -> None:
    services.reminders.send_due(now=NOW)
    mailoutbox.clear()
    assert services.reminders.send_due(now=NOW + timedelta(hours=24))["sent"] == 0
    assert mailoutbox == []
    services.update_grant(world["bobs"], expires_at=days(6.5), context=SYSTEM)
    assert services.reminders.send_due(now=NOW + timedelta(hours=25))["reminders"] == 1
    assert list(sent()) == [f"Grant write on web/app to user bob expires {when(6.5)}"]
    assert ExpiryReminder.objects.filter(kind="grant", object_id=world["bobs"].pk).count() == 2


def test_what_expires_later_than_the_setting_waits(world, mailoutbox, settings) -> None:
    settings.EXPIRY_REMINDER_DAYS = 11
    services.reminders.send_due(now=NOW)
    assert f"Grant read on pub/y to user erin expires {when(10)}" in sent()
    assert not any("pub/z" in subject or "robot$web+old" in subject for subject in sent())


def test_a_mail_server_that_refuses_everything_leaves_the_reminder_due(world, mailoutbox) -> None:
    with mock.patch("registryadmin.mail.send", return_value=0):
        counts = services.reminders.send_due(now=NOW)
    assert counts["not_delivered"] == 6 and counts["reminders"] == 0
    assert not ExpiryReminder.objects.exists()
    assert services.reminders.send_due(now=NOW)["reminders"] == 6


def test_a_robot_whose_team_has_no_lead_with_an_address_is_reminded_to_nobody_once(world, mailoutbox) -> None:
    User.objects.filter(username="alice").update(email="")
    counts = services.reminders.send_due(now=NOW)
    assert counts["nobody_to_tell"] == 2  # web's team grant and its robot
    assert services.reminders.send_due(now=NOW)["reminders"] == 0


def test_the_daily_task_records_how_many_mails_went(world, mailoutbox) -> None:
    Grant.objects.all().delete()
    result = tasks.send_expiry_reminders()
    assert result["sent"] == 3  # the robots and the token: their expiries are days from now
    job = AuditRecord.objects.get(kind=Kind.JOB, detail__job="send_expiry_reminders")
    assert job.outcome == "success" and job.detail["result"]["sent"] == 3
