"""Rotating secrets from the pages: a robot's (admins, the team's leads) and a registry's notification secret.

alice leads web and its robot web+ci; carol is an outsider; ada is the admin, audrey the auditor.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts import services
from accounts.models import ExpiryReminder, NotificationEndpoint, Registry, Robot, Team, User
from accounts.services import reminders
from tests.conftest import SYSTEM, ask_registry, client_for, shown_secret

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(ada: User, audrey: User, alice: User, carol: User, web: Team) -> dict:
    services.ensure_keys()
    registry = services.create_registry("registry", context=SYSTEM)
    services.create_grant(web, "web/**", "write", context=SYSTEM)
    robot, secret = services.create_robot(web, "ci", grants=[("web/app", "write")], context=SYSTEM)
    return {
        "ada": ada,
        "audrey": audrey,
        "alice": alice,
        "carol": carol,
        "robot": robot,
        "secret": secret,
        "registry": registry,
    }


def rotate_url(robot: Robot) -> str:
    return reverse("robots:rotate", kwargs={"pk": robot.pk})


@pytest.mark.parametrize("persona", ["alice", "ada"])
def test_a_lead_or_an_admin_gets_a_new_secret_once_and_the_old_one_keeps_working(world: dict, persona: str) -> None:
    response = client_for(persona, world).post(rotate_url(world["robot"]), {"grace": "1h"})
    assert response.status_code == 200 and response["Cache-Control"].startswith("max-age=0")
    new = shown_secret(response, "rgb_")
    assert "keeps working until" in response.content.decode()
    assert ask_registry("robot$web+ci", new, "repository:web/app:pull").status_code == 200
    assert ask_registry("robot$web+ci", world["secret"], "repository:web/app:pull").status_code == 200


@pytest.mark.parametrize("persona", ["carol", "audrey"])
def test_others_may_not_rotate_a_robot(world: dict, persona: str) -> None:
    assert client_for(persona, world).post(rotate_url(world["robot"]), {"grace": "24h"}).status_code == 403
    assert Robot.objects.get(pk=world["robot"].pk).previous_secret_hash == ""


def test_a_bad_grace_is_a_400_and_rotates_nothing(world: dict) -> None:
    response = client_for("ada", world).post(rotate_url(world["robot"]), {"grace": "forever"})
    assert response.status_code == 400
    assert Robot.objects.get(pk=world["robot"].pk).previous_secret_hash == ""


def test_rotating_needs_post_and_a_csrf_token(world: dict) -> None:
    assert client_for("ada", world).get(rotate_url(world["robot"])).status_code == 405
    client = Client(enforce_csrf_checks=True)
    client.force_login(world["ada"])
    assert client.post(rotate_url(world["robot"]), {"grace": "24h"}).status_code == 403


def test_the_team_page_offers_rotation_and_flags_an_old_secret(world: dict, settings) -> None:
    Robot.objects.filter(pk=world["robot"].pk).update(secret_set_at=timezone.now() - timedelta(days=100))
    team_robots = reverse("teams:detail", kwargs={"name": "web"}) + "?tab=robots"  # robots have their own section
    body = client_for("alice", world).get(team_robots).content.decode()
    assert rotate_url(world["robot"]) in body and "old: rotate it" in body
    home = client_for("alice", world).get("/").content.decode()
    assert "Robot secrets to rotate" in home and "robot$web+ci" in home


def test_leads_are_mailed_once_per_old_secret(world: dict, mailoutbox: list) -> None:
    Robot.objects.filter(pk=world["robot"].pk).update(secret_set_at=timezone.now() - timedelta(days=100))
    assert reminders.send_stale_robot_secrets()["sent"] == 1
    assert mailoutbox[0].to == ["alice@example.org"] and "robot$web+ci: rotate its secret" in mailoutbox[0].subject
    assert world["secret"] not in mailoutbox[0].body
    assert reminders.send_stale_robot_secrets()["sent"] == 0  # once per secret
    services.rotate_robot(world["robot"], context=SYSTEM)
    assert reminders.send_stale_robot_secrets()["stale"] == 0
    assert ExpiryReminder.objects.filter(kind="robot_secret").count() == 1


def test_an_admin_rotates_the_notification_secret_and_the_page_shows_which_one_the_registry_sent(world: dict) -> None:
    registry = world["registry"]
    services.notification_secret(registry)
    client = client_for("ada", world)
    url = reverse("registries:rotate_secret", kwargs={"service": "registry"})
    response = client.post(url, {"grace": "24h"}, follow=True)
    assert response.status_code == 200 and "the old secret is accepted until" in response.content.decode()
    NotificationEndpoint.objects.filter(registry=registry).update(last_used="previous", last_used_at=timezone.now())
    body = client.get(reverse("registries:detail", kwargs={"service": "registry"})).content.decode()
    assert "It last sent the <strong>previous</strong> one" in body and "The registry still sends it" in body
    assert client_for("audrey", world).post(url, {"grace": "24h"}).status_code == 403


def test_a_notification_rotation_needs_a_valid_grace(world: dict) -> None:
    services.notification_secret(world["registry"])
    url = reverse("registries:rotate_secret", kwargs={"service": "registry"})
    assert client_for("ada", world).post(url, {"grace": "?"}).status_code == 400
    assert not Registry.objects.get(service="registry").notification_endpoint.previous_secret
