"""Rotating a robot's secret or a registry's notification secret: the old one works for the grace, then stops.

alice leads team web (write on web/**) and its robot web+ci writes web/app; carol is an outsider.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from unittest import mock

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.utils import timezone

from accounts import services
from accounts.models import NotificationEndpoint, Registry, Robot, Team, User
from accounts.registry.endpoints import check_bearer
from audit.models import AuditRecord, Kind
from tests.conftest import SYSTEM, ask_registry, granted

pytestmark = pytest.mark.django_db
SCOPE = "repository:web/app:pull,push"


@contextmanager
def clock(at: datetime) -> Iterator[None]:
    with mock.patch.object(timezone, "now", return_value=at):
        yield


@pytest.fixture
def robot(web: Team) -> tuple[Robot, str]:
    services.ensure_keys()
    services.create_registry("registry", context=SYSTEM)
    services.create_grant(web, "web/**", "write", context=SYSTEM)
    return services.create_robot(web, "ci", grants=[("web/app", "write")], context=SYSTEM)


def ask(secret: str, at: datetime | None = None):
    with clock(at or timezone.now()):
        return ask_registry("robot$web+ci", secret, SCOPE)


def test_the_old_secret_works_during_the_grace_and_each_use_says_which_secret(robot: tuple[Robot, str]) -> None:
    old = robot[1]
    rotation = services.rotate_robot(robot[0], context=SYSTEM)
    assert rotation.secret != old and rotation.secret.startswith("rgb_")

    assert granted(ask(old)) == {"web/app": ["pull", "push"]}
    assert granted(ask(rotation.secret)) == {"web/app": ["pull", "push"]}
    used = [
        r.detail["secret_used"] for r in AuditRecord.objects.filter(kind=Kind.ACCESS, outcome="granted").order_by("id")
    ]
    assert used == ["previous", "current"]


def test_the_old_secret_stops_when_the_grace_ends_and_the_refusal_says_why(robot: tuple[Robot, str]) -> None:
    old = robot[1]
    rotation = services.rotate_robot(robot[0], context=SYSTEM, grace=timedelta(hours=1))
    assert ask(old, timezone.now() + timedelta(minutes=59)).status_code == 200
    assert ask(old, timezone.now() + timedelta(minutes=61)).status_code == 401
    refused = AuditRecord.objects.filter(kind=Kind.ACCESS, outcome="auth_failed").latest("id")
    assert "used its previous secret after the rotation's grace period ended" in refused.detail["reason"]
    assert ask(rotation.secret, timezone.now() + timedelta(minutes=61)).status_code == 200


def test_a_rotation_without_grace_stops_the_old_secret_at_once(robot: tuple[Robot, str]) -> None:
    services.rotate_robot(robot[0], context=SYSTEM, grace=timedelta(0))
    assert ask(robot[1]).status_code == 401


def test_a_second_rotation_ends_the_first_secret_at_once(robot: tuple[Robot, str]) -> None:
    first = services.rotate_robot(robot[0], context=SYSTEM)
    services.rotate_robot(robot[0], context=SYSTEM)
    assert ask(robot[1]).status_code == 401  # only one previous secret is kept
    assert ask(first.secret).status_code == 200


def test_the_cached_path_sees_the_rotation_on_the_very_next_request(robot: tuple[Robot, str]) -> None:
    assert ask(robot[1]).status_code == 200
    assert ask(robot[1]).status_code == 200  # now answered from the cache
    services.rotate_robot(robot[0], context=SYSTEM, grace=timedelta(0))
    assert ask(robot[1]).status_code == 401


def test_rotation_is_recorded_and_resets_the_secrets_age(robot: tuple[Robot, str]) -> None:
    Robot.objects.filter(pk=robot[0].pk).update(secret_set_at=timezone.now() - timedelta(days=200))
    rotation = services.rotate_robot(robot[0], context=SYSTEM)
    record = AuditRecord.objects.filter(kind=Kind.CREDENTIAL, detail__action="robot.rotate").get()
    assert record.detail["credential"] == "robot$web+ci"
    assert record.detail["previous_valid_until"] == rotation.previous_valid_until.isoformat()
    assert timezone.now() - Robot.objects.get(pk=robot[0].pk).secret_set_at < timedelta(minutes=1)
    assert rotation.secret not in json.dumps(record.detail)


def test_htpasswd_registries_switch_at_once_and_the_rotation_says_so(robot: tuple[Robot, str]) -> None:
    services.create_registry("legacy", auth_mode="htpasswd", context=SYSTEM)
    rotation = services.rotate_robot(robot[0], context=SYSTEM)
    assert any("htpasswd mode (legacy)" in note and "no grace" in note for note in rotation.notes)


def test_a_revoked_robot_is_not_rotated(robot: tuple[Robot, str]) -> None:
    services.revoke_robot(robot[0], context=SYSTEM)
    with pytest.raises(ValidationError, match="revoked"):
        services.rotate_robot(robot[0], context=SYSTEM)


def test_a_lead_rotates_the_teams_robot_and_an_outsider_may_not(
    robot: tuple[Robot, str], alice: User, carol: User
) -> None:
    with pytest.raises(PermissionDenied):
        services.lead_rotate_robot(robot[0], acting_user=carol, context=SYSTEM)
    rotation = services.lead_rotate_robot(robot[0], acting_user=alice, context=SYSTEM)
    assert ask(rotation.secret).status_code == 200


def test_rotate_robot_prints_the_secret_once_and_parses_the_grace(robot: tuple[Robot, str]) -> None:
    out, err = io.StringIO(), io.StringIO()
    call_command("rotate_robot", "robot$web+ci", "--grace", "30m", stdout=out, stderr=err)
    secret = out.getvalue().split("secret: ", 1)[1].strip()
    assert ask(secret).status_code == 200
    assert "keeps working until" in err.getvalue()
    until = Robot.objects.get(pk=robot[0].pk).previous_valid_until
    assert timedelta(minutes=29) < until - timezone.now() <= timedelta(minutes=30)
    with pytest.raises(CommandError, match="not a duration"):
        call_command("rotate_robot", "robot$web+ci", "--grace", "soon", stdout=io.StringIO())
    with pytest.raises(CommandError, match="no robot"):
        call_command("rotate_robot", "robot$web+nope", stdout=io.StringIO())


# --- The notification secret ------------------------------------------------------------------------------


def post_event(secret: str) -> int:
    body = json.dumps({"events": []})
    return (
        Client()
        .post(
            "/registry/registry/events",
            body,
            content_type="application/vnd.docker.distribution.events.v1+json",
            HTTP_AUTHORIZATION=f"Bearer {secret}",
        )
        .status_code
    )


@pytest.fixture
def registry(db: None) -> Registry:
    return services.create_registry("registry", context=SYSTEM)


def test_the_old_notification_secret_is_accepted_during_the_grace_and_which_one_is_shown(registry: Registry) -> None:
    old = services.notification_secret(registry)
    new = services.rotate_notification_secret(registry, SYSTEM, grace=timedelta(hours=2))
    assert post_event(old) == 200
    assert NotificationEndpoint.objects.get(registry=registry).last_used == "previous"
    assert post_event(new) == 200
    assert NotificationEndpoint.objects.get(registry=registry).last_used == "current"
    with clock(timezone.now() + timedelta(hours=2, seconds=1)):
        assert check_bearer(registry, f"Bearer {old}") is None
        assert check_bearer(registry, f"Bearer {new}") == "current"


def test_a_notification_rotation_without_grace_refuses_the_old_secret_at_once(registry: Registry) -> None:
    old = services.notification_secret(registry)
    services.rotate_notification_secret(registry, SYSTEM, grace=timedelta(0))
    assert post_event(old) == 401


def test_rotate_notification_secret_command(registry: Registry) -> None:
    old = services.notification_secret(registry)
    out = io.StringIO()
    call_command("rotate_notification_secret", "--registry", "registry", "--grace", "1h", stdout=out)
    assert "restart the registry within 1h" in out.getvalue()
    assert post_event(old) == 200
    record = AuditRecord.objects.filter(kind=Kind.CREDENTIAL, detail__action="notification_secret.rotate").get()
    assert record.detail["previous_valid_until"] is not None
