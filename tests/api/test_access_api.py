"""The engine's answers over the API: why, who can access, what a user or robot may do.

alice leads team web, which holds write on web/*; bob is a member; carol holds her own read on
web/app; ada is the admin, audrey the auditor; robot$web+ci reads web/*. Everyone may ask about
themselves; admins and auditors about anyone; "who can access" and robots are theirs only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from accounts import services
from accounts.models import Registry, Robot, Team, User
from audit.models import AuditRecord
from tests.conftest import SYSTEM, make_user

pytestmark = pytest.mark.django_db

Api = Callable[..., APIClient]
WHY = reverse("api:access-why")
WHO = reverse("api:access-who")


def user_url(name: str) -> str:
    return reverse("api:access-user", args=[name])


def robot_url(login: str) -> str:
    return reverse("api:access-robot", args=[login])


@pytest.fixture
def world(web: Team, carol: User, ada: User, audrey: User) -> Robot:
    """The grants every test here shares; returns the web team's CI robot."""
    services.create_registry("registry", context=SYSTEM)
    services.create_grant(web, "web/*", "write", context=SYSTEM, managed_by=web)
    services.create_grant(carol, "web/app", "read", context=SYSTEM)
    robot, _secret = services.create_robot(web, "ci", context=SYSTEM, grants=[("web/*", "read")])
    return robot


def persona(request: pytest.FixtureRequest, name: str) -> User:
    return request.getfixturevalue(name)


def ask(client: APIClient, url: str, **query: Any) -> Any:
    return client.get(url, query)


# --- who may ask what ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", [WHY + "?repository=web/app", WHO + "?repository=web/app", user_url("carol"), robot_url("robot$web+ci")]
)
def test_nobody_asks_without_credentials(world: Robot, url: str) -> None:
    response = APIClient().get(url)
    assert response.status_code == 401
    assert response.json()["error"] == "not_authenticated"


@pytest.mark.parametrize("name", ["ada", "audrey"])
def test_admins_and_auditors_ask_about_anyone(
    api: Api, world: Robot, name: str, request: pytest.FixtureRequest
) -> None:
    client = api(persona(request, name))
    assert ask(client, WHY, user="bob", repository="web/app").status_code == 200
    assert ask(client, WHO, repository="web/app").status_code == 200
    assert client.get(user_url("bob")).status_code == 200
    assert client.get(robot_url("robot$web+ci")).status_code == 200


@pytest.mark.parametrize("name", ["alice", "bob", "carol"])
def test_others_ask_only_about_themselves(api: Api, world: Robot, name: str, request: pytest.FixtureRequest) -> None:
    client = api(persona(request, name))
    assert ask(client, WHY, repository="web/app").status_code == 200
    assert client.get(user_url(name)).status_code == 200
    other = "carol" if name != "carol" else "bob"
    for response in (
        ask(client, WHY, user=other, repository="web/app"),
        client.get(user_url(other)),
        ask(client, WHO, repository="web/app"),
        client.get(robot_url("robot$web+ci")),
    ):
        assert response.status_code == 403
        assert response.json()["error"] == "permission_denied"


def test_a_plain_user_learns_nothing_about_whether_others_exist(api: Api, world: Robot, carol: User) -> None:
    client = api(carol)
    assert ask(client, WHY, user="nobody", repository="web/app").status_code == 403
    assert client.get(user_url("nobody")).status_code == 403


def test_read_only_and_pattern_limited_tokens_and_the_session_may_ask(
    api: Api, session_api: Callable[[User], APIClient], world: Robot, carol: User
) -> None:
    assert ask(api(carol, read_only=True), WHY, repository="web/app").status_code == 200
    assert ask(api(carol, patterns=["other/*"]), WHY, repository="web/app").status_code == 200
    assert session_api(carol).get(user_url("carol")).status_code == 200


def test_asking_writes_no_audit_record(api: Api, world: Robot, ada: User) -> None:
    client = api(ada)
    before = AuditRecord.objects.count()
    ask(client, WHY, user="bob", repository="web/app")
    ask(client, WHO, repository="web/app")
    assert AuditRecord.objects.count() == before


@pytest.mark.parametrize("url", [WHY, WHO])
def test_it_refuses_writes(api: Api, world: Robot, ada: User, url: str) -> None:
    assert api(ada).post(url, {}, format="json").status_code == 405


# --- why ------------------------------------------------------------------------------------


def test_carol_learns_that_push_needs_write_and_who_leads_web(api: Api, world: Robot, carol: User) -> None:
    response = ask(api(carol), WHY, repository="web/app", action="push", registry="registry")
    assert response.status_code == 200
    body = response.json()
    assert (body["subject"], body["wanted"], body["allowed"], body["denied"]) == ("carol", ["push"], [], ["push"])
    assert body["decisions"] == [{"action": "push", "allowed": False}]
    assert body["explanation"].startswith("push needs write")
    assert [(t["team"], t["pattern"], t["leads"]) for t in body["teams"]] == [("web", "web/*", ["alice"])]


def test_without_an_action_it_decides_every_action(api: Api, world: Robot, carol: User) -> None:
    body = ask(api(carol), WHY, repository="web/app").json()
    assert body["decisions"] == [
        {"action": "pull", "allowed": True},
        {"action": "push", "allowed": False},
        {"action": "delete", "allowed": False},
    ]
    assert any("carol's own grant read on web/app" in reason for reason in body["reasons"])


def test_an_auditor_sees_bobs_push_through_team_web(api: Api, world: Robot, audrey: User) -> None:
    body = ask(api(audrey), WHY, user="bob", repository="web/app", action="push").json()
    assert (body["allowed"], body["denied"]) == (["push"], [])
    assert any("through team web" in reason for reason in body["reasons"])


def test_a_full_scope_works_under_the_pages_parameter_name_too(api: Api, world: Robot, ada: User) -> None:
    body = ask(api(ada), WHY, user="robot$web+ci", scope="repository:web/app:pull,push").json()
    assert (body["allowed"], body["denied"]) == (["pull"], ["push"])


def test_an_inactive_users_answer_says_so(api: Api, world: Robot, ada: User, dave: User) -> None:
    body = ask(api(ada), WHY, user="dave", repository="web/app").json()
    assert body["allowed"] == [] and any("inactive" in reason for reason in body["reasons"])


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({}, "repository"),
        ({"repository": "Not A Name"}, "repository"),
        ({"scope": "registry:catalog:*"}, "scope"),
        ({"repository": "web/app", "action": "fly"}, "action"),
        ({"repository": "repository:web/app:pull", "action": "push"}, "action"),
        ({"repository": "web/app", "registry": "nope"}, "registry"),
        ({"repository": "web/app", "user": "nobody"}, "user"),
        ({"repository": "web/app", "user": "x" * 300}, "user"),
        ({"repository": "web/\x00app"}, "repository"),
    ],
)
def test_a_bad_question_is_a_400_naming_the_field(
    api: Api, world: Robot, ada: User, query: dict[str, str], field: str
) -> None:
    response = api(ada).get(WHY, query)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid"
    assert field in response.json()["fields"]


# --- who ----------------------------------------------------------------------------------


def rows_of(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["name"]: row for row in body["results"]}


def test_it_lists_everyone_with_access_and_the_grants_behind_it(api: Api, world: Robot, audrey: User) -> None:
    body = ask(api(audrey), WHO, repository="web/app", registry="registry").json()
    rows = rows_of(body)
    assert rows["bob"]["actions"] == ["pull", "push"]
    assert any("through team web" in reason for reason in rows["bob"]["reasons"])
    assert rows["carol"]["actions"] == ["pull"]
    assert rows["robot$web+ci"]["kind"] == "robot"
    assert "ada" in rows and body["public"] is False
    assert body["counts"] == {"pull": 5, "push": 3, "delete": 1}
    assert [(t["team"], t["role"], t["leads"]) for t in body["teams"]] == [("web", "write", ["alice"])]


@pytest.mark.parametrize(
    ("query", "names"),
    [({"kind": "robot"}, ["robot$web+ci"]), ({"action": "delete"}, ["ada"]), ({"name": "CAR"}, ["carol"])],
)
def test_rows_narrow_by_kind_action_and_name(
    api: Api, world: Robot, ada: User, query: dict[str, str], names: list[str]
) -> None:
    body = ask(api(ada), WHO, repository="web/app", **query).json()
    assert sorted(rows_of(body)) == names and body["count"] == len(names)
    assert body["counts"]["pull"] == 5  # the summary counts every row, whatever the narrowing


def test_rows_come_a_page_at_a_time(api: Api, world: Robot, ada: User) -> None:
    client = api(ada)
    first = ask(client, WHO, repository="web/app", page_size=2).json()
    assert first["count"] == 5 and len(first["results"]) == 2 and first["previous"] is None
    second = client.get(first["next"]).json()
    assert len(second["results"]) == 2 and not set(rows_of(first)) & set(rows_of(second))


def test_its_query_count_does_not_grow_with_users(
    api: Api, world: Robot, web: Team, ada: User, django_assert_max_num_queries: Any
) -> None:
    client = api(ada)
    with django_assert_max_num_queries(40) as few:
        ask(client, WHO, repository="web/app")
    for number in range(20):
        member = make_user(f"member{number}")
        services.set_membership(web, member, "member", context=SYSTEM)
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert ask(client, WHO, repository="web/app", page_size=500).json()["count"] == 25


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({}, "repository"),
        ({"repository": "Bad Name"}, "repository"),
        ({"repository": "web/app", "kind": "team"}, "kind"),
        ({"repository": "web/app", "action": "fly"}, "action"),
        ({"repository": "web/app", "registry": "nope"}, "registry"),
        ({"repository": "web/app", "name": "x" * 300}, "name"),
        ({"repository": "web/app", "page": "99"}, "page"),
        ({"repository": "web/app", "page": "zero"}, "page"),
    ],
)
def test_a_bad_who_question_is_a_400_naming_the_field(
    api: Api, world: Robot, ada: User, query: dict[str, str], field: str
) -> None:
    response = api(ada).get(WHO, query)
    assert response.status_code == 400
    assert field in response.json()["fields"]


# --- what one user or robot may do ----------------------------------------------------------------


def test_a_user_sees_their_own_entries_and_teams(api: Api, world: Robot, bob: User) -> None:
    body = api(bob).get(user_url("bob")).json()
    assert [(e["pattern"], e["actions"], e["via"]) for e in body["entries"]] == [
        ("web/*", ["pull", "push"], "team web")
    ]
    assert body["teams"] == [{"team": "web", "membership": "member"}]
    assert body["refusal"] == ""


def test_an_inactive_user_has_no_access_at_all(api: Api, world: Robot, audrey: User, dave: User) -> None:
    body = api(audrey).get(user_url("dave")).json()
    assert body["entries"] == [] and "inactive" in body["refusal"]


def test_a_robot_holds_its_grants_within_its_team(api: Api, world: Robot, audrey: User) -> None:
    body = api(audrey).get(robot_url("robot$web+ci")).json()
    assert (body["login"], body["team"], body["refusal"]) == ("robot$web+ci", "web", "")
    assert [(e["pattern"], e["actions"]) for e in body["entries"]] == [("web/*", ["pull"])]


def test_a_revoked_robot_says_it_cannot_sign_in(api: Api, world: Robot, ada: User) -> None:
    services.revoke_robot(world, context=SYSTEM)
    assert api(ada).get(robot_url("robot$web+ci")).json()["refusal"].startswith("robot$web+ci cannot sign in: revoked")


@pytest.mark.parametrize("url", [user_url("nobody"), robot_url("robot$web+nope"), user_url("a%00b")])
def test_unknown_subjects_are_404(api: Api, world: Robot, ada: User, url: str) -> None:
    response = api(ada).get(url)
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_the_registry_defaults_to_the_first(api: Api, world: Robot, ada: User) -> None:
    services.create_registry("second", context=SYSTEM)
    assert list(Registry.objects.values_list("service", flat=True)) == ["registry", "second"]
    assert ask(api(ada), WHY, user="bob", repository="web/app").json()["registry"] == "registry"
