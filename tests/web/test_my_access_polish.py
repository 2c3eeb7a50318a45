"""My access names who granted each grant, shows a pull command, and warns about htpasswd registries once."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from accounts import services
from accounts.models import AuthMode, Team, User
from audit.context import AuditContext
from tests.conftest import SYSTEM, client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def carol_granted_by_alice(ada: User, alice: User, carol: User, web: Team) -> None:
    services.create_registry("registry", url="https://registry.example.org", context=SYSTEM)
    services.create_grant(web, "web/**", "write", context=AuditContext.for_user(ada))
    services.lead_grant(web, carol, "web/app", "read", acting_user=alice, context=AuditContext.for_user(alice))


def test_my_access_names_the_lead_who_granted_and_the_team_that_manages_it(
    carol_granted_by_alice: None, carol: User
) -> None:
    page = client_for("carol", {"carol": carol}).get(reverse("accounts:my_access")).content.decode()
    assert "Granted by" in page
    assert "alice (managed by team web)" in page


def test_my_access_names_the_admin_who_granted_a_team_grant(carol_granted_by_alice: None, bob: User) -> None:
    page = client_for("bob", {"bob": bob}).get(reverse("accounts:my_access")).content.decode()
    assert "<td>ada</td>" in page


def test_my_access_shows_the_pull_command_on_the_registry_host(
    carol_granted_by_alice: None, carol: User, bob: User
) -> None:
    carol_page = client_for("carol", {"carol": carol}).get(reverse("accounts:my_access")).content.decode()
    assert "docker pull registry.example.org/web/app" in carol_page
    bob_page = client_for("bob", {"bob": bob}).get(reverse("accounts:my_access")).content.decode()
    assert "docker pull registry.example.org/web/&lt;name&gt;" in bob_page


def test_the_htpasswd_warning_appears_once_on_my_access_and_on_home(bob: User, web: Team) -> None:
    services.create_registry("legacy", auth_mode=AuthMode.HTPASSWD, context=SYSTEM)
    client = client_for("bob", {"bob": bob})
    for name in ("accounts:my_access", "accounts:home"):
        page = client.get(reverse(name)).content.decode()
        assert page.count("not enforced in this mode") == 1, name


def test_my_access_costs_the_same_queries_with_more_grants(
    carol_granted_by_alice: None, carol: User, alice: User, web: Team, django_assert_max_num_queries
) -> None:
    client: Client = client_for("carol", {"carol": carol})
    client.get(reverse("accounts:my_access"))
    with django_assert_max_num_queries(30) as before:
        client.get(reverse("accounts:my_access"))
    for n in range(5):
        services.lead_grant(web, carol, f"web/tool{n}", "read", acting_user=alice, context=SYSTEM)
    with django_assert_max_num_queries(len(before.captured_queries)):
        client.get(reverse("accounts:my_access"))
