"""Issue 20, items 7 and 8: people and teams picked as you type, a person's page adds them to a team
and links to a grant, the team page in sections with their own URLs, and form errors summarised on top."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts import services
from accounts.models import Membership, Team, User
from tests.conftest import SYSTEM, client_for

PERSONAS = ("anonymous", "carol", "bob", "alice", "audrey", "ada")


@pytest.fixture
def world(ada: User, audrey: User, alice: User, bob: User, carol: User, web: Team) -> dict[str, object]:
    services.create_team("ops", context=SYSTEM)
    services.create_grant(web, "web/**", "write", context=SYSTEM)
    bob.first_name = "Robert"
    bob.save()
    return {"ada": ada, "audrey": audrey, "alice": alice, "bob": bob, "carol": carol, "web": web}


SUGGEST_USERS = {"anonymous": 302, "carol": 403, "bob": 403, "alice": 200, "audrey": 200, "ada": 200}


@pytest.mark.parametrize("persona", PERSONAS)
def test_user_suggestions_answer_only_leads_auditors_and_admins(world, persona: str) -> None:
    response = client_for(persona, world).get(reverse("suggest:users"), {"q": "bo"})
    assert response.status_code == SUGGEST_USERS[persona]
    if response.status_code == 200:
        assert '<option value="bob">' in response.content.decode()


def test_a_lead_sees_usernames_only_never_names_or_emails(world) -> None:
    body = client_for("alice", world).get(reverse("suggest:users"), {"q": "rob"}).content.decode()
    assert '<option value="bob"></option>' in body and "Robert" not in body
    assert "@" not in client_for("alice", world).get(reverse("suggest:users"), {"q": "ali"}).content.decode()


def test_an_auditor_sees_the_name_beside_the_username(world) -> None:
    body = client_for("audrey", world).get(reverse("suggest:users"), {"q": "rob"}).content.decode()
    assert '<option value="bob">Robert</option>' in body


def test_suggestions_read_the_field_htmx_sends_under_its_own_name(world) -> None:
    body = client_for("ada", world).get(reverse("suggest:users"), {"member-username": "bo"}).content.decode()
    assert '<option value="bob">' in body


def test_a_lead_is_suggested_only_the_teams_they_lead(world) -> None:
    assert "ops" not in client_for("alice", world).get(reverse("suggest:teams"), {"q": "o"}).content.decode()
    assert '<option value="ops">' in client_for("ada", world).get(reverse("suggest:teams"), {"q": "o"}).content.decode()


def test_suggestion_fields_are_plain_text_fields_with_a_datalist(world) -> None:
    body = client_for("ada", world).get(reverse("grants:new")).content.decode()
    assert 'list="suggest-subject"' in body and '<datalist id="suggest-subject"></datalist>' in body
    assert f'hx-get="{reverse("suggest:users")}"' in body and 'type="text" name="subject"' in body


def test_a_persons_page_offers_add_to_team_and_grant_access_to_admins(world) -> None:
    body = client_for("ada", world).get(reverse("users:detail", args=["carol"])).content.decode()
    assert f'action="{reverse("users:add_to_team", args=["carol"])}"' in body
    assert f"{reverse('grants:new')}?user=carol" in body
    auditor = client_for("audrey", world).get(reverse("users:detail", args=["carol"])).content.decode()
    assert (
        reverse("users:add_to_team", args=["carol"]) not in auditor and f"{reverse('grants:new')}?user" not in auditor
    )


ADD_TO_TEAM = {"anonymous": 302, "carol": 403, "bob": 403, "alice": 403, "audrey": 403, "ada": 302}


@pytest.mark.parametrize("persona", PERSONAS)
def test_adding_to_a_team_from_a_persons_page_is_for_admins_and_redirects(world, persona: str) -> None:
    url = reverse("users:add_to_team", args=["carol"])
    response = client_for(persona, world).post(url, {"team-team": "ops", "team-role": "member"})
    assert response.status_code == ADD_TO_TEAM[persona]
    assert Membership.objects.filter(user__username="carol", team__name="ops").exists() == (persona == "ada")
    if persona == "ada":
        assert response["Location"] == reverse("users:detail", args=["carol"])


def test_an_unknown_team_is_a_400_summarised_at_the_top_of_the_form(world) -> None:
    url = reverse("users:add_to_team", args=["carol"])
    response = client_for("ada", world).post(url, {"team-team": "nope", "team-role": "member"})
    assert response.status_code == 400
    body = response.content.decode()
    assert 'class="form-errors"' in body and "No team is called that." in body


def test_adding_to_a_team_only_takes_post(world) -> None:
    assert client_for("ada", world).get(reverse("users:add_to_team", args=["carol"])).status_code == 405


@pytest.mark.parametrize("tab", ["members", "grants", "robots", "settings"])
def test_each_team_section_has_its_own_url_marked_current(world, tab: str) -> None:
    detail = reverse("teams:detail", args=["web"])
    body = client_for("ada", world).get(detail, {"tab": tab}).content.decode()
    href = detail if tab == "members" else f"{detail}?tab={tab}"
    assert f'<a href="{href}" aria-current="page">' in body
    assert body.count('aria-current="page"') == 1 + body.count('<a href="/" aria-current="page"')


def test_an_unknown_section_is_a_404_and_settings_are_for_admins_only(world) -> None:
    detail = reverse("teams:detail", args=["web"])
    assert client_for("ada", world).get(detail, {"tab": "nope"}).status_code == 404
    assert client_for("alice", world).get(detail, {"tab": "settings"}).status_code == 404
    assert "?tab=settings" not in client_for("alice", world).get(detail).content.decode()


def test_a_failed_team_grant_is_shown_in_the_grants_section_with_its_summary(world) -> None:
    url = reverse("teams:add_grant", args=["web"])
    response = client_for("alice", world).post(url, {"grant-subject": "nobody", "grant-pattern": "web/x"})
    assert response.status_code == 400
    assert response.context["tab"] == "grants" and 'class="form-errors"' in response.content.decode()


def test_granting_from_the_team_page_returns_to_the_team_page(world) -> None:
    client = client_for("ada", world)
    back = reverse("teams:detail", args=["web"]) + "?tab=grants"
    assert "next=%2Fteams%2Fweb%2F%3Ftab%3Dgrants" in client.get(back).content.decode()
    data = {"subject_kind": "team", "subject": "web", "pattern": "web/extra", "role": "read", "next": back}
    response = client.post(reverse("grants:new"), data)
    assert response.status_code == 302 and response["Location"] == back


def test_a_grant_ignores_a_next_that_leaves_the_site(world) -> None:
    data = {"subject_kind": "user", "subject": "carol", "pattern": "web/x", "role": "read", "next": "//evil.example/"}
    response = client_for("ada", world).post(reverse("grants:new"), data)
    assert response.status_code == 302 and response["Location"].startswith(reverse("grants:list"))
