"""The fresh install's home page guides its admin: connect the registry, add people or LDAP, create a team.

Each step is ticked from the data, never by a click, and the guide goes away once all three are done.
ada is the admin, audrey the auditor; alice leads web and bob is in it.
"""

from __future__ import annotations

import pytest
from django.test import Client

from accounts import services
from accounts.models import NotificationEndpoint, User
from audit.context import AuditContext
from audit.models import Kind
from audit.services import record
from tests.conftest import SYSTEM

pytestmark = pytest.mark.django_db

GUIDE = "Your first day"


def home_of(user: User) -> str:
    client = Client()
    client.force_login(user)
    response = client.get("/")
    assert response.status_code == 200
    return response.content.decode()


def step_done(page: str, title: str) -> bool:
    """Whether the step's list item carries the "done" class (the tick and the struck-through title)."""
    start = page.index(f">{title}</a>")
    item = page[page.rindex("<li", 0, start) : start]
    return 'class="done"' in item


def test_a_fresh_install_shows_the_admin_three_steps_none_done(ada: User) -> None:
    page = home_of(ada)
    assert GUIDE in page
    for title in ("Connect your registry", "Add people or connect LDAP", "Create a team"):
        assert not step_done(page, title)


def test_auditors_and_plain_users_never_see_the_guide(ada: User, audrey: User, carol: User) -> None:
    assert GUIDE not in home_of(audrey)
    assert GUIDE not in home_of(carol)


def test_a_registry_without_a_token_or_notification_is_not_connected_yet(ada: User) -> None:
    services.create_registry("registry", url="https://registry.example.org", context=SYSTEM)
    assert not step_done(home_of(ada), "Connect your registry")


def test_a_token_issued_for_a_registry_with_a_url_ticks_connect(ada: User) -> None:
    services.create_registry("registry", url="https://registry.example.org", context=SYSTEM)
    record(Kind.ACCESS, "granted", AuditContext(actor="ada"), registry="registry", repository="web/app")
    assert step_done(home_of(ada), "Connect your registry")


def test_a_notification_received_ticks_connect(ada: User) -> None:
    registry = services.create_registry("registry", url="https://registry.example.org", context=SYSTEM)
    services.rotate_notification_secret(registry, SYSTEM)
    NotificationEndpoint.objects.filter(registry=registry).update(last_used="current", last_used_at="2026-01-01T00:00Z")
    assert step_done(home_of(ada), "Connect your registry")


def test_a_refused_attempt_does_not_count_as_connected(ada: User) -> None:
    services.create_registry("registry", url="https://registry.example.org", context=SYSTEM)
    record(Kind.ACCESS, "denied", AuditContext(actor="carol"), registry="registry", repository="web/app")
    assert not step_done(home_of(ada), "Connect your registry")


def test_a_second_person_ticks_people(ada: User, carol: User) -> None:
    assert step_done(home_of(ada), "Add people or connect LDAP")


def test_ldap_configured_ticks_people(ada: User, settings) -> None:
    settings.LDAP_SERVER_URI = "ldap://127.0.0.1:389"
    assert step_done(home_of(ada), "Add people or connect LDAP")


def test_a_team_ticks_create_a_team(ada: User, web: object) -> None:
    assert step_done(home_of(ada), "Create a team")


def test_the_guide_goes_away_when_every_step_is_done(ada: User, web: object) -> None:
    services.create_registry("registry", url="https://registry.example.org", context=SYSTEM)
    record(Kind.ACCESS, "granted", AuditContext(actor="bob"), registry="registry", repository="web/app")
    assert GUIDE not in home_of(ada)


@pytest.mark.parametrize("outcome", ["partial", "limited"])
def test_every_denial_means_anything_refused(ada: User, outcome: str) -> None:
    record(Kind.ACCESS, outcome, AuditContext(actor="carol"), registry="registry", repository="web/app")
    page = home_of(ada)
    assert "?kind=access&amp;outcome=refused" in page
    assert "No access was denied in the past week" not in page
