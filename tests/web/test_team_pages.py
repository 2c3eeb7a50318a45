"""The team pages: who sees which team, and what a team lead may change there (and nobody else)."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import jwt
import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts import services
from accounts.models import Grant, Membership, Robot, Team, User
from accounts.services import ensure_keys
from accounts.web.forms.common import expiry_from_date
from audit.models import AuditRecord
from tests.conftest import SYSTEM, client_for, make_user

pytestmark = pytest.mark.django_db

PERSONAS = ("anonymous", "carol", "bob", "alice", "audrey", "ada")
TEAM_TABS = ("members", "grants", "robots", "settings")


@pytest.fixture
def world(ada: User, audrey: User, alice: User, bob: User, carol: User, web: Team) -> dict[str, object]:
    """web holds write on web/**; it manages a read grant to bob on web/site; ops is another team."""
    services.create_grant(web, "web/**", "write", context=SYSTEM)
    managed = services.create_grant(bob, "web/site", "read", managed_by=web, context=SYSTEM)
    ops = services.create_team("ops", context=SYSTEM)
    services.create_grant(ops, "ops/**", "admin", context=SYSTEM)
    services.create_robot(web, "ci", context=SYSTEM)
    return {"ada": ada, "audrey": audrey, "alice": alice, "bob": bob, "carol": carol, "web": web, "managed": managed}


def _list(world: dict[str, object]) -> str:
    return reverse("teams:list")


def _detail(world: dict[str, object]) -> str:
    return reverse("teams:detail", kwargs={"name": "web"})


def _add_member(world: dict[str, object]) -> str:
    return reverse("teams:add_member", kwargs={"name": "web"})


def _remove_member(world: dict[str, object]) -> str:
    return reverse("teams:remove_member", kwargs={"name": "web", "username": "bob"})


def _add_grant(world: dict[str, object]) -> str:
    return reverse("teams:add_grant", kwargs={"name": "web"})


def _revoke_grant(world: dict[str, object]) -> str:
    return reverse("teams:revoke_grant", kwargs={"name": "web", "grant_id": world["managed"].pk})  # type: ignore[attr-defined]


UrlFor = Callable[[dict[str, object]], str]
POSTS: dict[str, tuple[UrlFor, dict[str, str]]] = {
    "add_member": (_add_member, {"member-username": "carol", "member-role": "member"}),
    "remove_member": (_remove_member, {}),
    "add_grant": (_add_grant, {"grant-subject": "carol", "grant-pattern": "web/app", "grant-role": "read"}),
    "revoke_grant": (_revoke_grant, {}),
}
# What each persona gets: anonymous goes to sign-in; members and auditors read; leads and admins change.
GET_EXPECTED = {"anonymous": 302, "carol": 403, "bob": 200, "alice": 200, "audrey": 200, "ada": 200}
POST_EXPECTED = {"anonymous": 302, "carol": 403, "bob": 403, "alice": 302, "audrey": 403, "ada": 302}


@pytest.mark.parametrize("persona", PERSONAS)
def test_the_team_list_answers_every_signed_in_persona(world, persona: str) -> None:
    response = client_for(persona, world).get(_list(world))
    assert response.status_code == (302 if persona == "anonymous" else 200)


@pytest.mark.parametrize("persona", PERSONAS)
def test_the_team_page_answers_each_persona_as_the_matrix_says(world, persona: str) -> None:
    response = client_for(persona, world).get(_detail(world))
    assert response.status_code == GET_EXPECTED[persona]
    if persona == "anonymous":
        assert response["Location"].startswith(reverse("accounts:login"))


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("action", sorted(POSTS))
def test_each_change_answers_each_persona_as_the_matrix_says(world, action: str, persona: str) -> None:
    url_for, data = POSTS[action]
    response = client_for(persona, world).post(url_for(world), data)
    assert response.status_code == POST_EXPECTED[persona]
    if persona == "anonymous":
        assert response["Location"].startswith(reverse("accounts:login"))
    elif response.status_code == 302:
        assert response["Location"].startswith(_detail(world))  # back to the section the change was made in


@pytest.mark.parametrize(
    ("url_for", "method"),
    [(_list, "post"), (_detail, "post"), *((url_for, "get") for url_for, _data in POSTS.values())],
)
def test_it_rejects_the_wrong_method(world, url_for: UrlFor, method: str) -> None:
    response = getattr(client_for("ada", world), method)(url_for(world))
    assert response.status_code == 405


def test_a_refused_page_shows_none_of_the_teams_data(world) -> None:
    response = client_for("carol", world).get(_detail(world))
    assert response.status_code == 403
    body = response.content.decode()
    for secret in ("bob", "alice", "web/**", "web/site", "robot$web+ci"):
        assert secret not in body


def test_a_refused_change_changes_nothing(world) -> None:
    for persona in ("carol", "bob", "audrey"):
        client_for(persona, world).post(_add_grant(world), POSTS["add_grant"][1])
        client_for(persona, world).post(_revoke_grant(world), {})
    assert not Grant.objects.filter(user__username="carol").exists()
    assert Grant.objects.filter(pk=world["managed"].pk).exists()  # type: ignore[attr-defined]


def test_the_list_shows_members_their_own_teams_and_marks_leads(world) -> None:
    alice_page = client_for("alice", world).get(_list(world)).content.decode()
    assert _detail(world) in alice_page and "lead" in alice_page
    assert reverse("teams:detail", kwargs={"name": "ops"}) not in alice_page
    carol_page = client_for("carol", world).get(_list(world)).content.decode()
    assert _detail(world) not in carol_page
    auditor_page = client_for("audrey", world).get(_list(world)).content.decode()
    assert _detail(world) in auditor_page and reverse("teams:detail", kwargs={"name": "ops"}) in auditor_page


def test_the_list_counts_without_a_query_per_team(world) -> None:
    client = client_for("ada", world)
    with CaptureQueriesContext(connection) as few:
        client.get(_list(world))
    for n in range(5):
        services.create_team(f"more{n}", context=SYSTEM)
    with CaptureQueriesContext(connection) as many:
        response = client.get(_list(world))
    assert len(many) == len(few)
    web_row = response.content.decode().split(_detail(world))[1].split("</tr>")[0]
    assert [cell.split("<")[0] for cell in web_row.split("<td>")[1:5]] == ["2", "1", "1", "1"]


def _every_section(client, world) -> str:
    """The team page's sections one after another (settings answers 404 to all but admins)."""
    return "".join(client.get(f"{_detail(world)}?tab={tab}").content.decode() for tab in TEAM_TABS)


def test_the_team_page_shows_members_grants_and_robots(world) -> None:
    body = _every_section(client_for("bob", world), world)
    for expected in ("alice", "bob", "web/**", "web/site", "robot$web+ci"):
        assert expected in body


@pytest.mark.parametrize("persona", ["bob", "audrey"])
def test_readers_get_no_forms(world, persona: str) -> None:
    body = client_for(persona, world).get(_detail(world)).content.decode()
    assert '<form method="post" action="/teams/' not in body


@pytest.mark.parametrize("persona", ["alice", "ada"])
def test_leads_get_the_forms_with_roles_capped_at_the_teams(world, persona: str) -> None:
    body = _every_section(client_for(persona, world), world)
    for url_for, _data in POSTS.values():
        assert f'action="{url_for(world)}"' in body
    assert 'value="write"' in body and 'value="admin"' not in body


def test_a_lead_grants_inside_the_teams_grants(world) -> None:
    client = client_for("alice", world)
    response = client.post(_add_grant(world), POSTS["add_grant"][1], follow=True)
    grant = Grant.objects.get(user__username="carol")
    assert (grant.pattern, grant.role, grant.managed_by) == ("web/app", "read", world["web"])
    assert "Granted read on web/app to carol" in response.content.decode()
    record = AuditRecord.objects.filter(detail__action="grant.create").latest("id")
    assert record.actor == "alice"


def test_a_lead_grants_to_the_teams_robot_with_an_expiry_day(world) -> None:
    day = (timezone.now() + timedelta(days=3)).date()
    data = {"grant-subject": "robot$web+ci", "grant-pattern": "web/app", "grant-role": "write"}
    response = client_for("alice", world).post(_add_grant(world), {**data, "grant-expires_on": day.isoformat()})
    assert response.status_code == 302
    grant = Grant.objects.get(robot__name="ci")
    assert grant.expires_at == datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=UTC)


def test_an_expiry_day_lasts_through_that_utc_day() -> None:
    assert expiry_from_date(date(2026, 12, 31)) == datetime(2027, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        (
            {"grant-pattern": "web/app", "grant-role": "admin"},
            "role",
            "Team web holds at most write; admin is beyond it.",
        ),
        ({"grant-pattern": "ops/x", "grant-role": "read"}, "pattern", "lies outside what team web holds"),
        ({"grant-pattern": "web//x", "grant-role": "read"}, "pattern", ""),
        ({"grant-subject": "nobody", "grant-pattern": "web/app", "grant-role": "read"}, "subject", "No user or robot"),
        ({"grant-subject": "robot$ops+ci", "grant-pattern": "web/app", "grant-role": "read"}, "subject", "No user"),
        ({"grant-pattern": "web/app", "grant-role": "read", "grant-expires_on": "2001-01-01"}, "expires_on", "over"),
    ],
)
def test_a_lead_is_refused_beyond_the_team_with_an_inline_error(world, data, field: str, message: str) -> None:
    before = Grant.objects.count()
    response = client_for("alice", world).post(_add_grant(world), {"grant-subject": "carol", **data})
    assert response.status_code == 400
    errors = response.context["grant_form"].errors
    assert field in errors and message in " ".join(errors[field])
    assert message in response.content.decode().replace("&#x27;", "'")
    assert Grant.objects.count() == before


def test_a_grant_the_subject_already_has_is_an_inline_error_not_a_crash(world) -> None:
    data = {"grant-subject": "bob", "grant-pattern": "web/site", "grant-role": "read"}
    response = client_for("alice", world).post(_add_grant(world), data)
    assert response.status_code == 400
    assert "already has a grant" in " ".join(response.context["grant_form"].errors["pattern"])


def test_a_lead_revokes_what_the_team_manages(world) -> None:
    response = client_for("alice", world).post(_revoke_grant(world), follow=True)
    assert not Grant.objects.filter(pk=world["managed"].pk).exists()  # type: ignore[attr-defined]
    assert "Revoked read on web/site from user bob" in response.content.decode()
    assert AuditRecord.objects.filter(detail__action="grant.revoke", actor="alice").exists()


def test_a_lead_cannot_revoke_a_grant_an_admin_made(world) -> None:
    by_admin = services.create_grant(world["carol"], "web/tools", "read", context=SYSTEM)
    url = reverse("teams:revoke_grant", kwargs={"name": "web", "grant_id": by_admin.pk})
    assert client_for("alice", world).post(url).status_code == 403
    assert Grant.objects.filter(pk=by_admin.pk).exists()


def test_a_lead_cannot_revoke_another_teams_grant_even_through_its_own_page(world) -> None:
    ops = Team.objects.get(name="ops")
    theirs = services.create_grant(world["carol"], "ops/db", "read", managed_by=ops, context=SYSTEM)
    for team in ("web", "ops"):
        url = reverse("teams:revoke_grant", kwargs={"name": team, "grant_id": theirs.pk})
        assert client_for("alice", world).post(url).status_code == 403
    assert Grant.objects.filter(pk=theirs.pk).exists()


def test_a_lead_adds_a_member_and_changes_a_role(world) -> None:
    client = client_for("alice", world)
    response = client.post(_add_member(world), {"member-username": "carol", "member-role": "member"}, follow=True)
    assert "carol is now a member of team web" in response.content.decode()
    client.post(_add_member(world), {"member-username": "carol", "member-role": "maintainer"})
    assert Membership.objects.get(team__name="web", user__username="carol").role == "maintainer"
    assert AuditRecord.objects.filter(detail__action="membership.change", actor="alice").exists()


def test_adding_an_unknown_user_is_an_inline_error(world) -> None:
    response = client_for("alice", world).post(_add_member(world), {"member-username": "zed", "member-role": "member"})
    assert response.status_code == 400
    assert "No user is called that." in response.content.decode()
    assert not Membership.objects.filter(user__username="zed").exists()


def test_a_lead_removes_a_member(world) -> None:
    response = client_for("alice", world).post(_remove_member(world), follow=True)
    assert "Removed bob from team web" in response.content.decode()
    assert not Membership.objects.filter(team__name="web", user__username="bob").exists()
    assert AuditRecord.objects.filter(detail__action="membership.remove", actor="alice").exists()


def test_removing_someone_who_is_not_a_member_is_not_found(world) -> None:
    url = reverse("teams:remove_member", kwargs={"name": "web", "username": "carol"})
    assert client_for("alice", world).post(url).status_code == 404


def test_a_lead_of_one_team_cannot_change_another(world) -> None:
    url = reverse("teams:add_member", kwargs={"name": "ops"})
    response = client_for("alice", world).post(url, {"member-username": "alice", "member-role": "maintainer"})
    assert response.status_code == 403
    assert not Membership.objects.filter(team__name="ops").exists()


def test_the_changes_need_a_csrf_token(world) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(world["alice"])  # type: ignore[arg-type]
    assert client.post(_add_grant(world), POSTS["add_grant"][1]).status_code == 403
    assert not Grant.objects.filter(user__username="carol").exists()


@pytest.mark.parametrize("persona", ["alice", "bob", "audrey"])
def test_the_team_page_needs_the_same_queries_however_big_the_team(
    world, persona: str, django_assert_max_num_queries
) -> None:
    client = client_for(persona, world)
    with CaptureQueriesContext(connection) as small:
        assert client.get(_detail(world)).status_code == 200
    web = world["web"]
    for n in range(6):
        user = make_user(f"user{n}")
        services.set_membership(web, user, "member", context=SYSTEM)  # type: ignore[arg-type]
        services.create_grant(user, f"web/app{n}", "read", managed_by=web, context=SYSTEM)  # type: ignore[arg-type]
        robot, _secret = services.create_robot(web, f"bot{n}", context=SYSTEM)  # type: ignore[arg-type]
        services.create_grant(robot, f"web/bot{n}", "read", managed_by=web, context=SYSTEM)  # type: ignore[arg-type]
    with django_assert_max_num_queries(len(small)):
        response = client.get(_detail(world))
    assert "user5" in response.content.decode()
    with django_assert_max_num_queries(len(small)):
        response = client.get(f"{_detail(world)}?tab=grants")
    assert "robot$web+bot5" in response.content.decode()


# --- the team's robots (leads) ------------------------------------------------------------


def _add_robot(world: dict[str, object], team: str = "web") -> str:
    return reverse("teams:add_robot", kwargs={"name": team})


def _revoke_robot(world: dict[str, object]) -> str:
    """Revoking the web team's robot ci (made by the world fixture)."""
    pk = Robot.objects.get(team__name="web", name="ci").pk
    return reverse("teams:revoke_robot", kwargs={"name": "web", "pk": pk})


def _robot_secret(response) -> str:
    found = set(re.findall(r"rgb_[A-Za-z0-9_-]{20,}", response.content.decode()))
    assert len(found) == 1, found
    return found.pop()


def _ask_registry(username: str, secret: str, scope: str):
    raw = base64.b64encode(f"{username}:{secret}".encode()).decode()
    return Client().get("/auth/token", {"service": "registry", "scope": scope}, HTTP_AUTHORIZATION=f"Basic {raw}")


ROBOT_POST_EXPECTED = {"anonymous": 302, "carol": 403, "bob": 403, "alice": 201, "audrey": 403, "ada": 201}


@pytest.mark.parametrize("persona", PERSONAS)
def test_making_a_team_robot_answers_each_persona_as_the_matrix_says(world, persona: str) -> None:
    data = {"robot-name": "deployer", "robot-grants": "web/app:read"}
    response = client_for(persona, world).post(_add_robot(world), data)
    assert response.status_code == ROBOT_POST_EXPECTED[persona]
    assert Robot.objects.filter(name="deployer").exists() == (response.status_code == 201)
    if response.status_code == 403:
        assert "rgb_" not in response.content.decode() and "robot$web+ci" not in response.content.decode()


@pytest.mark.parametrize("persona", PERSONAS)
def test_revoking_a_team_robot_answers_each_persona_as_the_matrix_says(world, persona: str) -> None:
    response = client_for(persona, world).post(_revoke_robot(world))
    assert response.status_code == POST_EXPECTED[persona]
    revoked = Robot.objects.get(name="ci").revoked_at is not None
    assert revoked == (response.status_code == 302 and persona != "anonymous")
    if revoked:
        assert response["Location"] == f"{_detail(world)}?tab=robots"


@pytest.mark.parametrize(("url_for", "method"), [(_add_robot, "get"), (_revoke_robot, "get")])
def test_the_robot_actions_reject_the_wrong_method(world, url_for: UrlFor, method: str) -> None:
    assert getattr(client_for("alice", world), method)(url_for(world)).status_code == 405


def test_a_lead_makes_a_team_robot_whose_secret_is_shown_once_and_signs_in(world) -> None:
    services.create_registry("registry", context=SYSTEM)
    ensure_keys()
    client = client_for("alice", world)
    data = {"robot-name": "deployer", "robot-description": "ships", "robot-grants": "web/app:write"}
    response = client.post(_add_robot(world), data)
    assert response.status_code == 201
    secret = _robot_secret(response)
    body = response.content.decode()
    assert "robot$web+deployer" in body and "docker login -u 'robot$web+deployer' --password-stdin" in body
    assert secret not in client.get(_detail(world)).content.decode()
    robot = Robot.objects.get(name="deployer")
    assert (robot.team, robot.description, robot.created_by) == (world["web"], "ships", world["alice"])
    assert robot.grants.get().managed_by == world["web"]
    claims = jwt.decode(
        _ask_registry("robot$web+deployer", secret, "repository:web/app:pull,push").json()["token"],
        options={"verify_signature": False},
    )
    assert claims["access"] == [{"type": "repository", "name": "web/app", "actions": ["pull", "push"]}]
    made = AuditRecord.objects.filter(kind="credential", detail__action="robot.create").latest("id")
    assert (made.actor, made.detail["credential"]) == ("alice", "robot$web+deployer")
    assert secret not in str(made.detail)


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"robot-name": "x", "robot-grants": "ops/db:read"}, "grants", "lies outside what team web holds"),
        ({"robot-name": "x", "robot-grants": "web/app:admin"}, "grants", "lies outside what team web holds"),
        ({"robot-name": "x", "robot-grants": "web/app:push"}, "grants", "Line 1: write pattern:role"),
        ({"robot-name": "ci"}, "name", "robot$web+ci already exists."),
        ({"robot-name": "x", "robot-expires_on": "2001-01-01"}, "expires_on", "already over"),
    ],
)
def test_a_lead_is_refused_a_robot_beyond_the_team_with_an_inline_error(world, data, field: str, message: str) -> None:
    before = (Robot.objects.count(), Grant.objects.count())
    response = client_for("alice", world).post(_add_robot(world), data)
    assert response.status_code == 400
    assert message in " ".join(response.context["robot_form"].errors[field])
    assert message in response.content.decode().replace("&#x27;", "'")
    assert (Robot.objects.count(), Grant.objects.count()) == before


def test_a_lead_of_web_can_neither_make_nor_revoke_robots_of_ops(world) -> None:
    ops = Team.objects.get(name="ops")
    theirs, _secret = services.create_robot(ops, "deploy", context=SYSTEM)
    client = client_for("alice", world)
    assert client.post(_add_robot(world, "ops"), {"robot-name": "mine"}).status_code == 403
    ops_url = reverse("teams:revoke_robot", kwargs={"name": "ops", "pk": theirs.pk})
    assert client.post(ops_url).status_code == 403
    through_web = reverse("teams:revoke_robot", kwargs={"name": "web", "pk": theirs.pk})
    assert client.post(through_web).status_code == 404
    theirs.refresh_from_db()
    assert theirs.revoked_at is None and not Robot.objects.filter(name="mine").exists()


def test_a_lead_revokes_the_teams_robot_and_the_page_says_so(world) -> None:
    response = client_for("alice", world).post(_revoke_robot(world), follow=True)
    body = response.content.decode()
    assert "Revoked robot$web+ci" in body and 'badge bad">revoked' in body
    assert _revoke_robot(world) not in body  # nothing left to revoke
    assert AuditRecord.objects.filter(kind="credential", detail__action="robot.revoke", actor="alice").exists()


@pytest.mark.parametrize("persona", ["alice", "ada"])
def test_leads_get_the_robot_forms(world, persona: str) -> None:
    body = client_for(persona, world).get(_detail(world), {"tab": "robots"}).content.decode()
    assert f'action="{_add_robot(world)}"' in body and f'action="{_revoke_robot(world)}"' in body


@pytest.mark.parametrize("persona", ["bob", "audrey"])
def test_readers_see_robots_and_their_state_but_no_robot_forms(world, persona: str) -> None:
    body = client_for(persona, world).get(_detail(world), {"tab": "robots"}).content.decode()
    assert "robot$web+ci" in body and 'badge ok">active' in body
    assert 'action="/teams/web/robots/' not in body and "rgb_" not in body


# --- big lists: 50 a page, searchable, the same queries whatever the size ---------------------


HTMX = {"HX-Request": "true"}


def _shown_teams(response) -> list[str]:
    return [team.name for team in response.context["page"].object_list]


def test_the_team_list_shows_50_a_page_and_the_rest_on_the_next(world) -> None:
    Team.objects.bulk_create(Team(name=f"crew{n:02}") for n in range(55))
    client = client_for("audrey", world)
    first = client.get(_list(world))
    assert first.status_code == 200
    assert _shown_teams(first) == [f"crew{n:02}" for n in range(50)]
    assert "Page 1 of 2" in first.content.decode() and "?page=2" in first.content.decode()
    second = client.get(_list(world), {"page": "2"})
    assert _shown_teams(second) == [*(f"crew{n:02}" for n in range(50, 55)), "ops", "web"]
    assert client.get(_list(world), {"page": "nope"}).status_code == 200


def test_the_team_list_searches_by_name_and_keeps_the_counts(world) -> None:
    Team.objects.bulk_create(Team(name=f"crew{n:02}") for n in range(55))
    response = client_for("ada", world).get(_list(world), {"q": "WE"})
    assert _shown_teams(response) == ["web"]
    web = response.context["page"].object_list[0]
    assert (web.member_count, web.grant_count, web.managed_count, web.robot_count) == (2, 1, 1, 1)
    assert 'value="WE"' in response.content.decode()
    nothing = client_for("ada", world).get(_list(world), {"q": "nosuchteam"})
    assert nothing.status_code == 200 and "No team matches this search." in nothing.content.decode()


def test_a_member_searches_only_among_their_own_teams(world) -> None:
    assert _shown_teams(client_for("bob", world).get(_list(world), {"q": "o"})) == []  # ops is not bob's
    assert _shown_teams(client_for("bob", world).get(_list(world), {"q": "w"})) == ["web"]


@pytest.mark.parametrize(("q", "message"), [("we\x00b", "Null characters are not allowed"), ("x" * 101, "at most 100")])
def test_a_bad_team_search_is_a_400_with_the_message(world, q: str, message: str) -> None:
    response = client_for("ada", world).get(_list(world), {"q": q})
    assert response.status_code == 400
    assert message in response.content.decode()
    assert _shown_teams(response) == ["ops", "web"]  # the search is ignored, not half applied


def test_htmx_team_search_gets_only_the_results(world) -> None:
    response = client_for("ada", world).get(_list(world), {"q": "op"}, headers=HTMX)
    body = response.content.decode()
    assert response.status_code == 200 and "<html" not in body and "<table" in body
    assert _shown_teams(response) == ["ops"]
    assert 'hx-get="/teams/"' in client_for("ada", world).get(_list(world)).content.decode()


def test_the_team_list_needs_the_same_queries_for_2_or_60_teams(world) -> None:
    client = client_for("ada", world)
    with CaptureQueriesContext(connection) as few:
        client.get(_list(world))
    teams = Team.objects.bulk_create(Team(name=f"crew{n:02}") for n in range(58))
    Membership.objects.bulk_create(Membership(team=team, user=world["bob"], role="member") for team in teams)
    with CaptureQueriesContext(connection) as many:
        response = client.get(_list(world), {"page": "2"})
    assert len(response.context["page"].object_list) == 10
    assert len(many) == len(few)


def _fill_web(world: dict[str, object], count: int) -> None:
    """``count`` more members of web (member00...), each with a read grant the team manages."""
    web = world["web"]
    users = User.objects.bulk_create(User(username=f"member{n:02}", email=f"m{n}@example.org") for n in range(count))
    Membership.objects.bulk_create(Membership(team=web, user=user, role="member") for user in users)  # type: ignore[misc]
    Grant.objects.bulk_create(
        Grant(user=user, pattern=f"web/m{n:02}", role="read", managed_by=web)  # type: ignore[misc]
        for n, user in enumerate(users)
    )


def _members_shown(response) -> list[str]:
    return [membership.user.username for membership in response.context["members"].object_list]


def test_a_big_teams_members_come_50_a_page_with_their_own_pager(world) -> None:
    _fill_web(world, 55)  # with alice and bob: 57 members
    client = client_for("alice", world)
    first = client.get(_detail(world))
    assert _members_shown(first) == ["alice", "bob", *(f"member{n:02}" for n in range(48))]
    assert "?members=2#members" in first.content.decode()
    second = client.get(_detail(world), {"members": "2"})
    assert _members_shown(second) == [f"member{n:02}" for n in range(48, 55)]
    assert f'action="{reverse("teams:remove_member", kwargs={"name": "web", "username": "member54"})}"' in (
        second.content.decode()
    )


def test_the_managed_grants_page_apart_from_the_members(world) -> None:
    _fill_web(world, 55)  # 56 managed grants: bob's web/site and web/m00..web/m54
    client = client_for("audrey", world)
    response = client.get(_detail(world), {"tab": "grants", "members": "2", "managed": "2"})
    assert response.context["members"].object_list[0].user.username == "member48"  # the members page is kept
    assert [grant.pattern for grant in response.context["managed_grants"].object_list] == [
        *(f"web/m{n:02}" for n in range(50, 55)),
        "web/site",
    ]
    body = response.content.decode()
    assert "?tab=grants&amp;members=2&amp;managed=1#managed" in body  # the pager stays in its section
    members = client.get(_detail(world), {"members": "2", "managed": "2"}).content.decode()
    assert "?members=1&amp;managed=2#members" in members


def test_a_lead_finds_a_member_of_a_big_team_by_name(world) -> None:
    _fill_web(world, 55)
    response = client_for("alice", world).get(_detail(world), {"member": "MEMBER5"})
    assert response.status_code == 200
    assert _members_shown(response) == [f"member5{n}" for n in range(5)]
    nobody = client_for("alice", world).get(_detail(world), {"member": "zed"})
    assert "No member matches “zed”." in nobody.content.decode()


@pytest.mark.parametrize(
    ("member", "message"), [("a\x00b", "Null characters are not allowed"), ("x" * 151, "at most 150")]
)
def test_a_bad_member_search_is_a_400_with_the_message(world, member: str, message: str) -> None:
    response = client_for("alice", world).get(_detail(world), {"member": member})
    assert response.status_code == 400
    assert message in response.content.decode()
    assert _members_shown(response) == ["alice", "bob"]


def test_a_refused_team_page_stays_refused_with_a_search(world) -> None:
    response = client_for("carol", world).get(_detail(world), {"member": "bob", "members": "2"})
    assert response.status_code == 403 and "bob" not in response.content.decode()


@pytest.mark.parametrize("persona", ["alice", "bob", "audrey", "ada"])
def test_the_team_page_needs_the_same_queries_for_2_or_57_members(world, persona: str) -> None:
    client = client_for(persona, world)
    with CaptureQueriesContext(connection) as few:
        client.get(_detail(world))
    _fill_web(world, 55)
    with CaptureQueriesContext(connection) as many:
        response = client.get(_detail(world), {"members": "2", "managed": "2"})
    assert len(response.context["members"].object_list) == 7
    assert len(many) == len(few)


def test_the_delete_card_counts_every_membership_not_one_page(world) -> None:
    _fill_web(world, 55)
    body = client_for("ada", world).get(_detail(world), {"tab": "settings"}).content.decode()
    assert "its 57 memberships" in body
    searched = client_for("ada", world).get(_detail(world), {"tab": "settings", "member": "bob"}).content.decode()
    assert "all its memberships" in searched and "its 1 membership" not in searched


# --- A lead extends a grant the team manages (the expiry reminder's link) ---------------------------------


def test_a_lead_extends_a_managed_grant_up_to_the_team_grants_own_expiry(alice: User, bob: User, web: Team) -> None:
    team_ends = timezone.now() + timedelta(days=30)
    services.create_grant(web, "web/**", "write", expires_at=team_ends, context=SYSTEM)
    bobs = services.lead_grant(
        web, bob, "web/app", "read", acting_user=alice, context=SYSTEM, expires_at=timezone.now() + timedelta(days=3)
    )
    url = reverse("teams:grant_expiry", kwargs={"name": "web", "grant_id": bobs.pk})
    client = Client()
    client.force_login(alice)
    day = (timezone.now() + timedelta(days=10)).date()
    assert client.post(url, {"expires_on": day.isoformat()}).status_code == 302
    assert Grant.objects.get(pk=bobs.pk).expires_at == expiry_from_date(day)
    response = client.post(url, {"no_expiry": "on"}, follow=True)
    assert "capped" in response.content.decode()
    assert Grant.objects.get(pk=bobs.pk).expires_at == team_ends
    assert client.post(url, {}).status_code == 400
    bob_client = Client()
    bob_client.force_login(bob)
    assert bob_client.post(url, {"no_expiry": "on"}).status_code == 403


def test_a_lead_cannot_change_the_expiry_of_the_teams_own_grant(alice: User, web: Team) -> None:
    own = services.create_grant(web, "web/**", "write", managed_by=web, context=SYSTEM)
    client = Client()
    client.force_login(alice)
    url = reverse("teams:grant_expiry", kwargs={"name": "web", "grant_id": own.pk})
    assert client.post(url, {"no_expiry": "on"}).status_code == 403
