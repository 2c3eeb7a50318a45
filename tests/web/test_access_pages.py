"""The access pages: who can access a repository, what a user or robot can do, and why a request was denied.

alice leads team web, which holds write on web/*; bob is a member; carol holds her own read on
web/app; ada is the admin, audrey the auditor; robot$web+ci reads web/*.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from accounts import services
from accounts.models import Membership, Registry, Robot, Team, User
from tests.conftest import SYSTEM, make_user

pytestmark = pytest.mark.django_db


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def registry(db: None) -> Registry:
    return services.create_registry("registry", context=SYSTEM)


@pytest.fixture
def world(registry: Registry, web: Team, carol: User, ada: User, audrey: User) -> Robot:
    """The grants every test here shares; returns the web team's CI robot."""
    services.create_grant(web, "web/*", "write", context=SYSTEM, managed_by=web)
    services.create_grant(carol, "web/app", "read", context=SYSTEM)
    robot, _secret = services.create_robot(web, "ci", context=SYSTEM, grants=[("web/*", "read")])
    return robot


def users(*names: str) -> dict[str, User]:
    return {user.username: user for user in User.objects.filter(username__in=names)}


WHO = reverse("access:who") + "?repository=web/app&registry=registry"
WHY_CAROL = reverse("access:why") + "?user=carol&scope=repository:web/app:push&registry=registry"
WHY_BOB = reverse("access:why") + "?user=bob&scope=repository:web/app:push"
USER_CAROL = reverse("access:user", args=["carol"])
USER_BOB = reverse("access:user", args=["bob"])
ROBOT = reverse("access:robot", args=["robot$web+ci"])
ALL_URLS = [WHO, WHY_CAROL, WHY_BOB, USER_CAROL, USER_BOB, ROBOT]


# --- who may see what ----------------------------------------------------------------


@pytest.mark.parametrize("url", ALL_URLS)
def test_it_sends_anonymous_visitors_to_sign_in(world: Robot, client: Client, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))


@pytest.mark.parametrize("url", ALL_URLS)
@pytest.mark.parametrize("persona", ["ada", "audrey"])
def test_admins_and_auditors_see_every_page(world: Robot, persona: str, url: str) -> None:
    assert signed_in(users(persona)[persona]).get(url).status_code == 200


@pytest.mark.parametrize(
    ("url", "status"),
    [(USER_CAROL, 200), (WHY_CAROL, 200), (USER_BOB, 403), (WHY_BOB, 403), (WHO, 403), (ROBOT, 403)],
)
def test_an_ordinary_user_sees_only_their_own_access(world: Robot, carol: User, url: str, status: int) -> None:
    assert signed_in(carol).get(url).status_code == status


def test_it_refuses_lookups_of_others_before_saying_whether_they_exist(world: Robot, carol: User) -> None:
    client = signed_in(carol)
    assert client.get(reverse("access:user", args=["nobody"])).status_code == 403
    assert client.get(reverse("access:why") + "?user=nobody&scope=web/app").status_code == 403


def test_the_why_page_asks_about_yourself_by_default(world: Robot, carol: User) -> None:
    response = signed_in(carol).get(reverse("access:why") + "?scope=web/app&action=push")
    assert response.status_code == 200
    assert response.context["answer"].subject == "carol"


@pytest.mark.parametrize("url", ALL_URLS)
def test_it_rejects_post(world: Robot, ada: User, url: str) -> None:
    assert signed_in(ada).post(url).status_code == 405


# --- who can access ------------------------------------------------------------------


def test_it_lists_bob_with_pull_and_push_through_team_web(world: Robot, audrey: User) -> None:
    response = signed_in(audrey).get(WHO)
    rows = {row.name: row for row in response.context["matrix"].rows}
    assert rows["bob"].actions == ("pull", "push")
    assert any("through team web" in reason for reason in rows["bob"].reasons)
    assert rows["carol"].actions == ("pull",)
    assert rows["robot$web+ci"].kind == "robot"
    assert "ada" in rows  # administrators hold everything
    body = response.content.decode()
    assert '<span class="pill push">push</span>' in body
    assert not response.context["matrix"].public
    assert "is public" not in body


def test_it_lists_the_teams_whose_grants_match_and_their_leads(world: Robot, ada: User) -> None:
    teams = signed_in(ada).get(WHO).context["teams"]
    assert [(t.team, t.role, t.pattern, t.leads) for t in teams] == [("web", "write", "web/*", ("alice",))]


def test_it_says_when_everyone_may_pull(world: Robot, registry: Registry, ada: User) -> None:
    services.create_repository("web/app", public=True, context=SYSTEM)
    response = signed_in(ada).get(WHO)
    assert response.context["matrix"].public
    assert "is public: everyone may pull" in response.content.decode()


def test_it_shows_only_the_form_without_a_repository(world: Robot, ada: User) -> None:
    response = signed_in(ada).get(reverse("access:who"))
    assert response.status_code == 200
    assert "matrix" not in response.context
    assert response.context["registry"] == "registry"


def test_its_query_count_does_not_grow_with_users(world: Robot, web: Team, ada: User, django_assert_max_num_queries):
    client = signed_in(ada)
    with django_assert_max_num_queries(40) as few:
        client.get(WHO)
    for number in range(30):
        member = make_user(f"member{number}")
        services.set_membership(web, member, "member", context=SYSTEM)
        services.create_grant(member, "web/app", "read", context=SYSTEM)
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = client.get(WHO)
    assert len(response.context["matrix"].rows) > 30


# --- what a user or robot can do -----------------------------------------------------


def test_a_user_page_shows_the_engine_entries(world: Robot, ada: User) -> None:
    response = signed_in(ada).get(USER_BOB)
    entries = response.context["entries"]
    assert [(e.pattern, e.actions, e.via) for e in entries] == [("web/*", ("pull", "push"), "team web")]
    assert "web (member)" in response.content.decode()


def test_a_robot_page_shows_its_grants_within_its_team(world: Robot, audrey: User) -> None:
    response = signed_in(audrey).get(ROBOT)
    assert response.status_code == 200
    assert [(e.pattern, e.actions) for e in response.context["entries"]] == [("web/*", ("pull",))]
    assert "Belongs to team web" in response.content.decode()


def test_a_revoked_robot_page_says_it_cannot_sign_in(world: Robot, ada: User) -> None:
    services.revoke_robot(world, context=SYSTEM)
    response = signed_in(ada).get(ROBOT)
    assert "robot$web+ci cannot sign in: revoked" in response.content.decode()


def test_unknown_subjects_are_not_found(world: Robot, ada: User) -> None:
    client = signed_in(ada)
    assert client.get(reverse("access:user", args=["nobody"])).status_code == 404
    assert client.get(reverse("access:robot", args=["robot$web+nope"])).status_code == 404


# --- why denied ---------------------------------------------------------------------


def test_carol_learns_that_push_needs_write_and_who_leads_web(world: Robot, carol: User) -> None:
    response = signed_in(carol).get(WHY_CAROL)
    answer = response.context["answer"]
    assert (answer.granted, answer.denied) == ((), ("push",))
    assert answer.explanation.startswith("push needs write")
    assert "carol's own grant read on web/app grants pull" in answer.explanation
    body = response.content.decode()
    assert "push needs write" in body
    assert "team leads of web are alice" in body


def test_a_bare_repository_name_with_an_action_works(world: Robot, ada: User) -> None:
    response = signed_in(ada).get(reverse("access:why") + "?user=bob&scope=web/app&action=push")
    answer = response.context["answer"]
    assert (answer.repository, answer.granted, answer.denied) == ("web/app", ("push",), ())
    assert any("through team web" in reason for reason in answer.reasons)


def test_it_explains_a_robot(world: Robot, ada: User) -> None:
    url = reverse("access:why") + "?user=robot$web%2Bci&scope=repository:web/app:pull,push"
    answer = signed_in(ada).get(url).context["answer"]
    assert (answer.granted, answer.denied) == (("pull",), ("push",))


def test_it_explains_an_inactive_user(world: Robot, dave: User, ada: User) -> None:
    answer = signed_in(ada).get(reverse("access:why") + "?user=dave&scope=web/app").context["answer"]
    assert "inactive" in answer.explanation


# --- invalid input ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"user": "nobody", "scope": "repository:web/app:push"}, "user"),
        ({"user": "robot$web+nope", "scope": "repository:web/app:push"}, "user"),
        ({"user": "carol", "scope": "repository:Web App:push"}, "scope"),
        ({"user": "carol", "scope": "registry:catalog:*"}, "scope"),
        ({"user": "carol", "scope": "web//app"}, "scope"),
        ({"user": "carol", "scope": "web/app", "action": "fly"}, "scope"),
        ({"user": "carol", "scope": "web/app", "registry": "elsewhere"}, "registry"),
    ],
)
def test_the_why_page_answers_bad_input_with_an_inline_error(
    world: Robot, ada: User, query: dict[str, Any], field: str
) -> None:
    response = signed_in(ada).get(reverse("access:why"), query)
    assert response.status_code == 400
    assert field in response.context["errors"]
    assert response.context["answer"] is None
    assert 'class="error"' in response.content.decode()


@pytest.mark.parametrize(
    ("query", "field"),
    [({"repository": "Web/App"}, "repository"), ({"repository": "web/app", "registry": "elsewhere"}, "registry")],
)
def test_the_who_page_answers_bad_input_with_an_inline_error(
    world: Robot, audrey: User, query: dict[str, str], field: str
) -> None:
    response = signed_in(audrey).get(reverse("access:who"), query)
    assert response.status_code == 400
    assert field in response.context["errors"]
    assert "matrix" not in response.context


# --- who can access, at scale: 50 rows a page, narrowed by name, kind or action ------------------


WEB_APP = {"repository": "web/app", "registry": "registry"}


def _crowd(web: Team, count: int) -> None:
    """``count`` more members of web (member00...): each may pull and push web/app through the team."""
    people = User.objects.bulk_create(User(username=f"member{n:02}") for n in range(count))
    Membership.objects.bulk_create(Membership(team=web, user=person, role="member") for person in people)


def _names(response) -> list[str]:
    return [row.name for row in response.context["page"].object_list]


def test_who_can_access_shows_50_rows_a_page_and_counts_them_all(world: Robot, web: Team, audrey: User) -> None:
    _crowd(web, 55)
    client = signed_in(audrey)
    first = client.get(WHO)
    rows = first.context["matrix"].rows
    assert len(rows) == 60  # ada, alice, bob, carol, 55 members and the robot
    assert _names(first) == [row.name for row in rows[:50]]
    body = first.content.decode()
    assert "60 in all · 60 may pull · 58 may push · 1 may delete" in body  # carol and the robot only pull
    assert "&amp;page=2" in body and "repository=web%2Fapp" in body
    second = client.get(reverse("access:who"), {**WEB_APP, "page": "2"})
    assert _names(second) == [row.name for row in rows[50:]]
    assert _names(first)[0] == "robot$web+ci" and _names(second)[-1] == "member54"  # robots first, then users


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"name": "CAR"}, ["carol"]),
        ({"kind": "robot"}, ["robot$web+ci"]),
        ({"action": "delete"}, ["ada"]),
        ({"kind": "user", "action": "push", "name": "a"}, ["ada", "alice"]),
        ({"name": "nobody"}, []),
    ],
)
def test_who_can_access_narrows_by_name_kind_and_action(
    world: Robot, audrey: User, query: dict[str, str], expected: list[str]
) -> None:
    response = signed_in(audrey).get(reverse("access:who"), {**WEB_APP, **query})
    assert response.status_code == 200
    assert _names(response) == expected
    assert len(response.context["matrix"].rows) == 5  # the summary still counts everyone
    if not expected:
        assert "matches these filters" in response.content.decode()


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"kind": "team"}, "kind"),
        ({"action": "fly"}, "action"),
        ({"name": "a\x00"}, "name"),
        ({"name": "x" * 256}, "name"),
    ],
)
def test_who_can_access_answers_a_bad_narrowing_with_an_inline_error(
    world: Robot, audrey: User, query: dict[str, str], field: str
) -> None:
    response = signed_in(audrey).get(reverse("access:who"), {**WEB_APP, **query})
    assert response.status_code == 400
    assert field in response.context["errors"]
    assert "matrix" not in response.context
    assert 'class="error"' in response.content.decode()


def test_who_can_access_needs_the_same_queries_on_any_page(
    world: Robot, web: Team, audrey: User, django_assert_max_num_queries
) -> None:
    client = signed_in(audrey)
    with django_assert_max_num_queries(40) as few:
        client.get(WHO)
    _crowd(web, 120)
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = client.get(reverse("access:who"), {**WEB_APP, "page": "3", "kind": "user"})
    assert len(response.context["page"].object_list) == 24


@pytest.mark.parametrize("name", ["bo\x00b", "x" * 300, "robot$web+c\x00i"])
def test_why_answers_a_name_that_cannot_exist_with_an_inline_error(world: Robot, audrey: User, name: str) -> None:
    response = signed_in(audrey).get("/access/why", {"user": name, "scope": "repository:web/app:push"})
    assert response.status_code == 400
    assert "not a user or robot name" in response.content.decode()
