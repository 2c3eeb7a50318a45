"""The rights API per persona: repositories, grants, robots and personal access tokens.

ada is the admin, audrey the auditor, alice leads team web (which holds write on web/**), bob is a
member of web, carol an outsider; team ops (with its own grant and robot) is nobody's here. Every
write is checked for its audit record; every list for what it shows whom.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from accounts import services
from accounts.models import Grant, PersonalAccessToken, Repository, Robot, Team, User
from audit.models import AuditRecord, Kind
from tests.conftest import SYSTEM

Api = Callable[..., APIClient]
CSRF = "k" * 32  # a CSRF secret as the browser would hold it in its cookie and send back in the header

pytestmark = pytest.mark.django_db


def changes(action: str) -> list[AuditRecord]:
    return list(AuditRecord.objects.filter(kind=Kind.ADMIN_CHANGE, detail__action=action).order_by("time", "pk"))


def credential_records(action: str) -> list[AuditRecord]:
    return list(AuditRecord.objects.filter(kind=Kind.CREDENTIAL, detail__action=action).order_by("time", "pk"))


def error(response: Any, code: int) -> dict[str, Any]:
    """The JSON error body, after checking the status and the shape every error has."""
    assert response.status_code == code, (response.status_code, response.content)
    body = response.json()
    assert set(body) == {"status", "error", "detail", "fields"} and body["status"] == code
    return body


def results(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.content
    return response.json()["results"]


def in_days(days: int) -> str:
    return (timezone.now() + timedelta(days=days)).isoformat()


@pytest.fixture
def world(ada: User, audrey: User, alice: User, bob: User, carol: User, web: Team) -> dict[str, Any]:
    """Grants of every kind: the team's, a person's own, one the team manages, a robot's, another team's."""
    registry = services.create_registry("registry", context=SYSTEM)
    ops = services.create_team("ops", context=SYSTEM)
    team_grant = services.create_grant(web, "web/**", "write", context=SYSTEM)
    ops_grant = services.create_grant(ops, "ops/**", "admin", context=SYSTEM)
    bob_own = services.create_grant(bob, "bob/**", "admin", context=SYSTEM)
    carol_own = services.create_grant(carol, "carol/**", "read", context=SYSTEM)
    managed = services.lead_grant(web, carol, "web/app", "read", acting_user=alice, context=SYSTEM)
    web_robot, _ = services.create_robot(web, "ci", grants=[("web/app", "write")], context=SYSTEM)
    ops_robot, _ = services.create_robot(ops, "deploy", grants=[("ops/site", "read")], context=SYSTEM)
    global_robot, _ = services.create_robot(None, "mirror", grants=[("mirror/**", "read")], context=SYSTEM)
    return {
        "registry": registry,
        "ops": ops,
        "team_grant": team_grant,
        "ops_grant": ops_grant,
        "bob_own": bob_own,
        "carol_own": carol_own,
        "managed": managed,
        "web_robot": web_robot,
        "ops_robot": ops_robot,
        "global_robot": global_robot,
        "web_robot_grant": web_robot.grants.get(),
        "ops_robot_grant": ops_robot.grants.get(),
    }


def grant_ids(response: Any) -> set[int]:
    return {row["id"] for row in results(response)}


# --- repositories -------------------------------------------------------------------------------


@pytest.fixture
def repositories(world: dict[str, Any]) -> dict[str, Repository]:
    return {
        "app": services.create_repository("web/app", context=SYSTEM),
        "site": services.create_repository("web/site", public=True, registry=world["registry"], context=SYSTEM),
        "ops": services.create_repository("ops/site", context=SYSTEM),
    }


def test_admins_and_auditors_list_repositories_filtered_by_name_glob_registry_and_public_flag(
    api: Api, ada: User, audrey: User, repositories: dict[str, Repository]
) -> None:
    for person in (ada, audrey):
        assert [r["name"] for r in results(api(person).get("/api/repositories/"))] == [
            "ops/site",
            "web/app",
            "web/site",
        ]
    client = api(audrey)
    assert [r["name"] for r in results(client.get("/api/repositories/", {"q": "web/*"}))] == ["web/app", "web/site"]
    assert [r["name"] for r in results(client.get("/api/repositories/", {"q": "SITE"}))] == ["ops/site", "web/site"]
    assert [r["name"] for r in results(client.get("/api/repositories/", {"public": "true"}))] == ["web/site"]
    assert [r["name"] for r in results(client.get("/api/repositories/", {"registry": "*"}))] == ["ops/site", "web/app"]
    site = results(client.get("/api/repositories/", {"registry": "registry"}))
    assert site == [
        {
            "id": repositories["site"].pk,
            "name": "web/site",
            "registry": "registry",
            "public": True,
            "created_at": site[0]["created_at"],
        }
    ]
    ordered = results(client.get("/api/repositories/", {"ordering": "-name"}))
    assert [r["name"] for r in ordered] == ["web/site", "web/app", "ops/site"]


def test_a_bad_glob_or_an_unknown_ordering_in_the_repository_list_is_a_400_naming_the_parameter(
    api: Api, ada: User
) -> None:
    assert "q" in error(api(ada).get("/api/repositories/", {"q": "web/***x"}), 400)["fields"]
    assert "ordering" in error(api(ada).get("/api/repositories/", {"ordering": "secret"}), 400)["fields"]


def test_team_leads_members_and_outsiders_may_not_see_repositories_and_nobody_anonymous(
    api: Api, alice: User, bob: User, carol: User, repositories: dict[str, Repository]
) -> None:
    for person in (alice, bob, carol):
        error(api(person).get("/api/repositories/"), 403)
        error(api(person).get(f"/api/repositories/{repositories['app'].pk}/"), 403)
    error(APIClient().get("/api/repositories/"), 401)


def test_an_admin_adds_a_repository_and_the_change_is_audited(api: Api, ada: User, world: dict[str, Any]) -> None:
    response = api(ada).post(
        "/api/repositories/", {"name": "web/new", "registry": "registry", "public": True}, format="json"
    )
    assert response.status_code == 201, response.content
    assert response.json()["name"] == "web/new" and response.json()["registry"] == "registry"
    assert Repository.objects.get(name="web/new").public
    [record] = changes("repository.create")
    assert record.actor == "ada" and record.repository == "web/new"


def test_a_bad_repository_name_a_duplicate_or_an_unknown_registry_is_a_400_with_its_field(
    api: Api, ada: User, repositories: dict[str, Repository]
) -> None:
    client = api(ada)
    assert "name" in error(client.post("/api/repositories/", {"name": "Web App"}, format="json"), 400)["fields"]
    assert "name" in error(client.post("/api/repositories/", {"name": "web/app"}, format="json"), 400)["fields"]
    unknown = client.post("/api/repositories/", {"name": "web/x", "registry": "nowhere"}, format="json")
    assert "registry" in error(unknown, 400)["fields"]
    assert (
        "public"
        in error(client.patch(f"/api/repositories/{repositories['app'].pk}/", {}, format="json"), 400)["fields"]
    )
    assert not changes("repository.create")[3:]  # only the fixture's three


def test_an_auditor_a_read_only_token_and_a_pattern_limited_token_cannot_change_repositories(
    api: Api, ada: User, audrey: User, repositories: dict[str, Repository]
) -> None:
    app = repositories["app"].pk
    error(api(audrey).post("/api/repositories/", {"name": "web/x"}, format="json"), 403)
    error(api(audrey).patch(f"/api/repositories/{app}/", {"public": True}, format="json"), 403)
    error(api(ada, read_only=True).post("/api/repositories/", {"name": "web/x"}, format="json"), 403)
    error(api(ada, read_only=True).delete(f"/api/repositories/{app}/"), 403)
    limited = api(ada, patterns=["web/**"])
    error(limited.post("/api/repositories/", {"name": "web/x"}, format="json"), 403)
    error(limited.patch(f"/api/repositories/{app}/", {"public": True}, format="json"), 403)
    assert not Repository.objects.filter(name="web/x").exists() and not Repository.objects.get(pk=app).public


def test_an_admin_makes_a_repository_public_and_then_forgets_it_each_change_audited(
    api: Api, ada: User, repositories: dict[str, Repository]
) -> None:
    app = repositories["app"].pk
    response = api(ada).patch(f"/api/repositories/{app}/", {"public": True}, format="json")
    assert response.status_code == 200 and response.json()["public"] is True
    [update] = changes("repository.update")
    assert update.detail["after"] == {"public": True}
    assert api(ada).delete(f"/api/repositories/{app}/").status_code == 204
    assert not Repository.objects.filter(pk=app).exists()
    assert [r.repository for r in changes("repository.delete")] == ["web/app"]
    error(api(ada).get(f"/api/repositories/{app}/"), 404)
    error(api(ada).delete(f"/api/repositories/{app}/"), 404)


# --- grants: what each person sees --------------------------------------------------------------


def test_admins_and_auditors_see_every_grant(api: Api, ada: User, audrey: User, world: dict[str, Any]) -> None:
    every = set(Grant.objects.values_list("pk", flat=True))
    assert grant_ids(api(ada).get("/api/grants/")) == every
    assert grant_ids(api(audrey).get("/api/grants/")) == every


def test_a_team_lead_sees_their_teams_grants_what_the_team_manages_and_its_robots_grants_but_not_others(
    api: Api, alice: User, world: dict[str, Any]
) -> None:
    seen = grant_ids(api(alice).get("/api/grants/"))
    assert seen == {world["team_grant"].pk, world["managed"].pk, world["web_robot_grant"].pk}


def test_a_member_sees_their_own_grants_and_their_teams_grants_only(
    api: Api, bob: User, carol: User, world: dict[str, Any]
) -> None:
    assert grant_ids(api(bob).get("/api/grants/")) == {world["team_grant"].pk, world["bob_own"].pk}
    assert grant_ids(api(carol).get("/api/grants/")) == {world["carol_own"].pk, world["managed"].pk}
    error(api(bob).get(f"/api/grants/{world['managed'].pk}/"), 404)
    error(api(carol).get(f"/api/grants/{world['ops_grant'].pk}/"), 404)
    assert api(carol).get(f"/api/grants/{world['managed'].pk}/").json()["managed_by"] == "web"


def test_a_grant_shows_its_subject_registry_manager_and_the_team_grant_it_lies_in(
    api: Api, audrey: User, world: dict[str, Any]
) -> None:
    managed = api(audrey).get(f"/api/grants/{world['managed'].pk}/").json()
    assert {k: managed[k] for k in ("pattern", "role", "user", "team", "robot", "registry", "managed_by")} == {
        "pattern": "web/app",
        "role": "read",
        "user": "carol",
        "team": None,
        "robot": None,
        "registry": None,
        "managed_by": "web",
    }
    assert managed["lies_in"] == world["team_grant"].pk
    robot = api(audrey).get(f"/api/grants/{world['web_robot_grant'].pk}/").json()
    assert robot["robot"] == "robot$web+ci" and robot["user"] is None


def test_the_grant_list_filters_by_subject_pattern_role_registry_manager_and_state(
    api: Api, audrey: User, ada: User, world: dict[str, Any]
) -> None:
    client = api(audrey)
    assert grant_ids(client.get("/api/grants/", {"user": "carol"})) == {world["carol_own"].pk, world["managed"].pk}
    assert grant_ids(client.get("/api/grants/", {"team": "ops"})) == {world["ops_grant"].pk}
    assert grant_ids(client.get("/api/grants/", {"robot": "robot$web+ci"})) == {world["web_robot_grant"].pk}
    assert grant_ids(client.get("/api/grants/", {"robot": "robot$nobody"})) == set()
    assert grant_ids(client.get("/api/grants/", {"pattern": "OPS/"})) == {
        world["ops_grant"].pk,
        world["ops_robot_grant"].pk,
    }
    assert grant_ids(client.get("/api/grants/", {"role": "admin"})) == {world["ops_grant"].pk, world["bob_own"].pk}
    managed_by_web = {world["managed"].pk, world["web_robot_grant"].pk}
    assert grant_ids(client.get("/api/grants/", {"managed_by": "web"})) == managed_by_web
    services.create_grant(world["ops"], "ops/x", "read", registry=world["registry"], context=SYSTEM)
    assert [g["pattern"] for g in results(client.get("/api/grants/", {"registry": "registry"}))] == ["ops/x"]
    assert len(results(client.get("/api/grants/", {"registry": "*"}))) == Grant.objects.count() - 1
    services.update_grant(world["bob_own"], expires_at=timezone.now() + timedelta(days=2), context=SYSTEM)
    assert grant_ids(client.get("/api/grants/", {"state": "expiring"})) == {world["bob_own"].pk}
    ordered = [g["pattern"] for g in results(client.get("/api/grants/", {"ordering": "-pattern"}))]
    assert ordered == sorted(ordered, reverse=True)


def test_a_bad_grant_filter_is_a_400_naming_it_and_no_credentials_is_a_401(api: Api, ada: User) -> None:
    assert "role" in error(api(ada).get("/api/grants/", {"role": "owner"}), 400)["fields"]
    assert "ordering" in error(api(ada).get("/api/grants/", {"ordering": "user__password"}), 400)["fields"]
    assert "state" in error(api(ada).get("/api/grants/", {"state": "forever"}), 400)["fields"]
    error(APIClient().get("/api/grants/"), 401)
    error(APIClient().get("/api/grants/1/"), 401)


def test_an_unknown_grant_is_a_404(api: Api, ada: User) -> None:
    error(api(ada).get("/api/grants/999999/"), 404)
    error(api(ada).patch("/api/grants/999999/", {"role": "read"}, format="json"), 404)
    error(api(ada).delete("/api/grants/999999/"), 404)


# --- grants: giving -----------------------------------------------------------------------------


def test_an_admin_grants_to_a_user_a_team_or_a_robot_each_grant_audited(
    api: Api, ada: User, world: dict[str, Any]
) -> None:
    client = api(ada)
    to_user = client.post(
        "/api/grants/",
        {"user": "carol", "pattern": "shared/**", "role": "read", "registry": "registry", "expires_at": in_days(30)},
        format="json",
    )
    assert to_user.status_code == 201, to_user.content
    assert to_user.json()["user"] == "carol" and to_user.json()["registry"] == "registry"
    assert to_user.json()["expires_at"] is not None
    to_team = client.post("/api/grants/", {"team": "ops", "pattern": "shared/**", "role": "write"}, format="json")
    assert to_team.status_code == 201 and to_team.json()["team"] == "ops"
    to_robot = client.post(
        "/api/grants/", {"robot": "robot$mirror", "pattern": "shared/**", "role": "read"}, format="json"
    )
    assert to_robot.status_code == 201 and to_robot.json()["robot"] == "robot$mirror"
    managed = client.post(
        "/api/grants/", {"user": "carol", "pattern": "web/docs", "role": "read", "team": "web"}, format="json"
    )
    assert managed.status_code == 201 and managed.json()["managed_by"] == "web"
    created = [r.detail["target"] for r in changes("grant.create") if r.actor == "ada"]
    assert created == [
        "read on shared/** to user carol",
        "write on shared/** to team ops",
        "read on shared/** to robot robot$mirror",
        "read on web/docs to user carol",
    ]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"pattern": "x/*", "role": "read"}, "non_field_errors"),
        ({"user": "carol", "robot": "robot$mirror", "pattern": "x/*", "role": "read"}, "non_field_errors"),
        ({"user": "carol", "team": "ops", "pattern": "x/*", "role": "read"}, "pattern"),
        ({"user": "nobody", "pattern": "x/*", "role": "read"}, "user"),
        ({"team": "nobody", "pattern": "x/*", "role": "read"}, "team"),
        ({"robot": "robot$nobody", "pattern": "x/*", "role": "read"}, "robot"),
        ({"user": "carol", "pattern": "X Y", "role": "read"}, "pattern"),
        ({"user": "carol", "pattern": "x/*", "role": "owner"}, "role"),
        ({"user": "carol", "pattern": "x/*", "role": "read", "registry": "nowhere"}, "registry"),
        ({"user": "carol", "pattern": "x/*", "role": "read", "team": "nobody"}, "team"),
        ({"user": "carol", "pattern": "x/*", "role": "read", "expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
        ({"user": "carol", "pattern": "x/*", "role": "read", "expires_at": "soon"}, "expires_at"),
        ({"user": "carol", "pattern": "carol/**", "role": "read"}, "pattern"),
        ({"robot": "robot$web+ci", "pattern": "ops/**", "role": "read"}, "pattern"),
    ],
)
def test_a_bad_grant_is_a_400_naming_the_field_and_nothing_is_granted(
    api: Api, ada: User, world: dict[str, Any], body: dict[str, str], field: str
) -> None:
    before = Grant.objects.count()
    assert field in error(api(ada).post("/api/grants/", body, format="json"), 400)["fields"]
    assert Grant.objects.count() == before


def test_a_team_lead_grants_inside_the_teams_grants_and_the_team_manages_the_grant(
    api: Api, alice: User, world: dict[str, Any]
) -> None:
    response = api(alice).post(
        "/api/grants/", {"user": "bob", "pattern": "web/tools/*", "role": "write", "team": "web"}, format="json"
    )
    assert response.status_code == 201, response.content
    grant = Grant.objects.get(pk=response.json()["id"])
    assert (grant.user.username, grant.managed_by.name, grant.role) == ("bob", "web", "write")
    assert response.json()["lies_in"] == world["team_grant"].pk
    [record] = [r for r in changes("grant.create") if r.actor == "alice" and r.detail["target"].endswith("user bob")]
    assert record.detail["after"]["managed_by"] == "web"
    to_robot = api(alice).post(
        "/api/grants/",
        {"robot": "robot$web+ci", "pattern": "web/lib", "role": "read", "team": "web"},
        format="json",
    )
    assert to_robot.status_code == 201 and to_robot.json()["robot"] == "robot$web+ci"


def test_a_team_lead_cannot_grant_beyond_the_teams_role_or_outside_its_patterns(
    api: Api, alice: User, world: dict[str, Any]
) -> None:
    client = api(alice)
    beyond = {"user": "bob", "pattern": "web/app", "role": "admin", "team": "web"}
    assert "pattern" in error(client.post("/api/grants/", beyond, format="json"), 400)["fields"]
    outside = {"user": "bob", "pattern": "ops/site", "role": "read", "team": "web"}
    assert "pattern" in error(client.post("/api/grants/", outside, format="json"), 400)["fields"]
    other_robot = {"robot": "robot$ops+deploy", "pattern": "web/app", "role": "read", "team": "web"}
    assert "robot" in error(client.post("/api/grants/", other_robot, format="json"), 400)["fields"]
    assert not [r for r in changes("grant.create") if r.actor == "alice"]


def test_a_team_lead_grants_only_for_a_team_they_lead_and_never_to_a_team(
    api: Api, alice: User, world: dict[str, Any]
) -> None:
    client = api(alice)
    error(client.post("/api/grants/", {"user": "bob", "pattern": "web/x", "role": "read"}, format="json"), 403)
    body = {"user": "bob", "pattern": "ops/x", "role": "read", "team": "ops"}
    error(client.post("/api/grants/", body, format="json"), 403)
    to_the_team = {"team": "web", "pattern": "web/x", "role": "read"}
    assert (
        "Only administrators grant to a team"
        in error(client.post("/api/grants/", to_the_team, format="json"), 403)["detail"]
    )
    assert not [r for r in changes("grant.create") if r.actor == "alice"]


def test_members_outsiders_and_auditors_may_not_grant(
    api: Api, bob: User, carol: User, audrey: User, world: dict[str, Any]
) -> None:
    body = {"user": "carol", "pattern": "web/x", "role": "read", "team": "web"}
    for person in (bob, carol, audrey):
        error(api(person).post("/api/grants/", body, format="json"), 403)
    error(APIClient().post("/api/grants/", body, format="json"), 401)
    assert not Grant.objects.filter(pattern="web/x").exists()


def test_a_read_only_token_cannot_grant_and_a_pattern_limited_token_grants_only_inside_its_patterns(
    api: Api, ada: User, world: dict[str, Any]
) -> None:
    body = {"user": "carol", "pattern": "web/x", "role": "read"}
    error(api(ada, read_only=True).post("/api/grants/", body, format="json"), 403)
    limited = api(ada, patterns=["web/**"])
    assert limited.post("/api/grants/", body, format="json").status_code == 201
    outside = {"user": "carol", "pattern": "ops/x", "role": "read"}
    assert "outside" in error(limited.post("/api/grants/", outside, format="json"), 403)["detail"]
    assert not Grant.objects.filter(pattern="ops/x").exists()


# --- grants: changing and revoking --------------------------------------------------------------


def test_an_admin_changes_a_grants_role_and_expiry_and_removes_the_expiry_each_audited(
    api: Api, ada: User, world: dict[str, Any]
) -> None:
    url = f"/api/grants/{world['bob_own'].pk}/"
    response = api(ada).patch(url, {"role": "read", "expires_at": in_days(10)}, format="json")
    assert response.status_code == 200 and response.json()["role"] == "read"
    assert response.json()["expires_at"] is not None
    cleared = api(ada).patch(url, {"expires_at": None}, format="json")
    assert cleared.json()["expires_at"] is None and cleared.json()["role"] == "read"
    records = [r for r in changes("grant.update") if r.actor == "ada"]
    assert [r.detail["after"]["role"] for r in records] == ["read", "read"]
    assert records[1].detail["after"]["expires_at"] is None


def test_an_empty_or_bad_change_of_a_grant_is_a_400(api: Api, ada: User, world: dict[str, Any]) -> None:
    url = f"/api/grants/{world['bob_own'].pk}/"
    assert "non_field_errors" in error(api(ada).patch(url, {}, format="json"), 400)["fields"]
    assert "role" in error(api(ada).patch(url, {"role": "owner"}, format="json"), 400)["fields"]
    assert (
        "expires_at" in error(api(ada).patch(url, {"expires_at": "2001-01-01T00:00:00Z"}, format="json"), 400)["fields"]
    )


def test_a_team_lead_changes_the_expiry_of_what_the_team_manages_but_not_its_role(
    api: Api, alice: User, world: dict[str, Any]
) -> None:
    url = f"/api/grants/{world['managed'].pk}/"
    response = api(alice).patch(url, {"expires_at": in_days(5)}, format="json")
    assert response.status_code == 200 and response.json()["expires_at"] is not None
    [record] = [r for r in changes("grant.update") if r.actor == "alice"]
    assert record.detail["target"] == "read on web/app to user carol"
    error(api(alice).patch(url, {"role": "write"}, format="json"), 403)
    error(api(alice).patch(f"/api/grants/{world['team_grant'].pk}/", {"expires_at": in_days(5)}, format="json"), 403)
    assert Grant.objects.get(pk=world["team_grant"].pk).expires_at is None


def test_a_member_or_an_auditor_cannot_change_or_revoke_a_grant(
    api: Api, bob: User, audrey: User, world: dict[str, Any]
) -> None:
    url = f"/api/grants/{world['bob_own'].pk}/"
    for person in (bob, audrey):
        error(api(person).patch(url, {"expires_at": in_days(3)}, format="json"), 403)
        error(api(person).delete(url), 403)
    assert Grant.objects.filter(pk=world["bob_own"].pk, expires_at=None).exists()


def test_an_admin_revokes_any_grant_and_a_lead_what_the_team_manages_each_audited(
    api: Api, ada: User, alice: User, world: dict[str, Any]
) -> None:
    assert api(alice).delete(f"/api/grants/{world['managed'].pk}/").status_code == 204
    error(api(alice).delete(f"/api/grants/{world['team_grant'].pk}/"), 403)
    error(api(alice).delete(f"/api/grants/{world['ops_grant'].pk}/"), 404)
    assert api(ada).delete(f"/api/grants/{world['ops_grant'].pk}/").status_code == 204
    revoked = {(r.actor, r.detail["target"]) for r in changes("grant.revoke")}
    assert revoked == {
        ("alice", "read on web/app to user carol"),
        ("ada", "admin on ops/** to team ops"),
        ("ada", "read on ops/site to robot robot$ops+deploy"),  # what ops managed inside it goes with it
    }
    [cascade] = [r for r in changes("grant.revoke") if "cause" in r.detail]
    assert cascade.detail["cause"]["change"] == "revoked"
    assert not Grant.objects.filter(pk__in=[world["managed"].pk, world["ops_grant"].pk]).exists()


def test_read_only_and_pattern_limited_tokens_cannot_change_or_revoke_grants_outside_their_reach(
    api: Api, ada: User, world: dict[str, Any]
) -> None:
    url = f"/api/grants/{world['ops_grant'].pk}/"
    error(api(ada, read_only=True).delete(url), 403)
    error(api(ada, read_only=True).patch(url, {"role": "read"}, format="json"), 403)
    limited = api(ada, patterns=["web/**"])
    error(limited.delete(url), 403)
    error(limited.patch(url, {"role": "read"}, format="json"), 403)
    assert Grant.objects.get(pk=world["ops_grant"].pk).role == "admin"
    assert limited.delete(f"/api/grants/{world['managed'].pk}/").status_code == 204


# --- robots -------------------------------------------------------------------------------------


def robot_logins(response: Any) -> list[str]:
    return [row["login"] for row in results(response)]


def test_admins_and_auditors_see_every_robot_and_a_lead_their_teams_robots(
    api: Api, ada: User, audrey: User, alice: User, world: dict[str, Any]
) -> None:
    every = ["robot$mirror", "robot$ops+deploy", "robot$web+ci"]
    assert robot_logins(api(ada).get("/api/robots/")) == every
    assert robot_logins(api(audrey).get("/api/robots/")) == every
    assert robot_logins(api(alice).get("/api/robots/")) == ["robot$web+ci"]
    error(api(alice).get(f"/api/robots/{world['ops_robot'].pk}/"), 404)
    shown = api(alice).get(f"/api/robots/{world['web_robot'].pk}/").json()
    assert shown["team"] == "web" and shown["state"] == "active"
    assert [(g["pattern"], g["role"]) for g in shown["grants"]] == [("web/app", "write")]
    assert "secret" not in shown


def test_members_and_outsiders_may_not_see_robots(api: Api, bob: User, carol: User, world: dict[str, Any]) -> None:
    for person in (bob, carol):
        error(api(person).get("/api/robots/"), 403)
        error(api(person).get(f"/api/robots/{world['web_robot'].pk}/"), 403)
    error(APIClient().get("/api/robots/"), 401)


def test_the_robot_list_filters_by_team_search_and_state(api: Api, audrey: User, world: dict[str, Any]) -> None:
    client = api(audrey)
    assert robot_logins(client.get("/api/robots/", {"team": "$global"})) == ["robot$mirror"]
    assert robot_logins(client.get("/api/robots/", {"team": "ops"})) == ["robot$ops+deploy"]
    assert robot_logins(client.get("/api/robots/", {"q": "robot$web+c"})) == ["robot$web+ci"]
    services.revoke_robot(world["ops_robot"], context=SYSTEM)
    assert robot_logins(client.get("/api/robots/", {"state": "revoked"})) == ["robot$ops+deploy"]
    assert "state" in error(client.get("/api/robots/", {"state": "sleeping"}), 400)["fields"]
    assert "ordering" in error(client.get("/api/robots/", {"ordering": "secret_hash"}), 400)["fields"]


def test_an_admin_makes_a_global_robot_and_its_secret_is_shown_once(api: Api, ada: User, world: dict[str, Any]) -> None:
    body = {"name": "backup", "description": "nightly", "grants": [{"pattern": "backup/**", "role": "read"}]}
    response = api(ada).post("/api/robots/", body, format="json")
    assert response.status_code == 201, response.content
    made = response.json()
    assert made["login"] == "robot$backup" and made["team"] is None and made["secret"].startswith("rgb_")
    assert response["Cache-Control"] == "no-store"
    assert [(g["pattern"], g["role"]) for g in made["grants"]] == [("backup/**", "read")]
    listed = api(ada).get("/api/robots/").content.decode()
    assert made["secret"] not in listed and "secret" not in api(ada).get(f"/api/robots/{made['id']}/").json()
    [record] = [r for r in credential_records("robot.create") if r.actor == "ada"]
    assert record.detail["credential"] == "robot$backup" and made["secret"] not in str(record.detail)


def test_a_team_lead_makes_a_robot_of_their_team_with_grants_inside_the_teams(
    api: Api, alice: User, world: dict[str, Any]
) -> None:
    body = {"team": "web", "name": "deploy", "grants": [{"pattern": "web/app", "role": "read"}]}
    response = api(alice).post("/api/robots/", body, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["login"] == "robot$web+deploy"
    assert Grant.objects.get(robot__name="deploy", robot__team__name="web").managed_by.name == "web"
    [record] = [r for r in credential_records("robot.create") if r.actor == "alice"]
    assert record.detail["grants"] == ["web/app:read"]


def test_a_team_lead_cannot_make_a_global_robot_or_one_of_another_team_or_with_grants_beyond_the_team(
    api: Api, alice: User, world: dict[str, Any]
) -> None:
    client = api(alice)
    error(client.post("/api/robots/", {"name": "x"}, format="json"), 403)
    error(client.post("/api/robots/", {"team": "ops", "name": "x"}, format="json"), 403)
    beyond = {"team": "web", "name": "x", "grants": [{"pattern": "ops/site", "role": "read"}]}
    assert "pattern" in error(client.post("/api/robots/", beyond, format="json"), 400)["fields"]
    assert not Robot.objects.filter(name="x").exists()


def test_a_bad_robot_is_a_400_naming_the_field(api: Api, ada: User, world: dict[str, Any]) -> None:
    client = api(ada)
    assert "name" in error(client.post("/api/robots/", {"name": "Bad Name"}, format="json"), 400)["fields"]
    assert "name" in error(client.post("/api/robots/", {"team": "web", "name": "ci"}, format="json"), 400)["fields"]
    assert "team" in error(client.post("/api/robots/", {"team": "nope", "name": "x"}, format="json"), 400)["fields"]
    twice = {"name": "x", "grants": [{"pattern": "a/b", "role": "read"}, {"pattern": "a/b", "role": "write"}]}
    assert "grants" in error(client.post("/api/robots/", twice, format="json"), 400)["fields"]
    bad_role = {"name": "x", "grants": [{"pattern": "a/b", "role": "root"}]}
    assert "grants" in error(client.post("/api/robots/", bad_role, format="json"), 400)["fields"]


def test_members_auditors_and_limited_tokens_may_not_make_robots(
    api: Api, ada: User, bob: User, audrey: User, world: dict[str, Any]
) -> None:
    for client in (api(bob), api(audrey), api(ada, read_only=True), api(ada, patterns=["web/**"])):
        error(client.post("/api/robots/", {"team": "web", "name": "x"}, format="json"), 403)
    assert not Robot.objects.filter(name="x").exists()


def test_a_team_lead_revokes_their_teams_robot_and_the_revocation_is_audited(
    api: Api, alice: User, audrey: User, world: dict[str, Any]
) -> None:
    error(api(audrey).delete(f"/api/robots/{world['web_robot'].pk}/"), 403)
    error(api(alice).delete(f"/api/robots/{world['ops_robot'].pk}/"), 404)
    assert api(alice).delete(f"/api/robots/{world['web_robot'].pk}/").status_code == 204
    assert Robot.objects.get(pk=world["web_robot"].pk).revoked_at is not None
    assert [(r.actor, r.detail["credential"]) for r in credential_records("robot.revoke")] == [
        ("alice", "robot$web+ci")
    ]
    assert Robot.objects.get(pk=world["ops_robot"].pk).revoked_at is None


def test_a_team_lead_rotates_their_teams_robot_and_the_old_secret_keeps_working_for_the_grace(
    api: Api, alice: User, world: dict[str, Any]
) -> None:
    url = f"/api/robots/{world['web_robot'].pk}/rotate"
    response = api(alice).post(url, {}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["secret"].startswith("rgb_") and body["robot"]["login"] == "robot$web+ci"
    assert body["previous_valid_until"] is not None and body["notes"]
    assert response["Cache-Control"] == "no-store"
    at_once = api(alice).post(url, {"grace": "0"}, format="json").json()
    assert at_once["previous_valid_until"] is None and at_once["secret"] != body["secret"]
    records = [r for r in credential_records("robot.rotate") if r.actor == "alice"]
    assert len(records) == 2 and records[1].detail["previous_valid_until"] is None


def test_rotating_needs_a_known_grace_a_live_robot_and_the_right_to_it(
    api: Api, alice: User, audrey: User, ada: User, world: dict[str, Any]
) -> None:
    url = f"/api/robots/{world['web_robot'].pk}/rotate"
    assert "grace" in error(api(alice).post(url, {"grace": "1y"}, format="json"), 400)["fields"]
    error(api(audrey).post(url, {}, format="json"), 403)
    error(api(alice).post(f"/api/robots/{world['ops_robot'].pk}/rotate", {}, format="json"), 404)
    error(api(ada, patterns=["web/**"]).post(url, {}, format="json"), 403)
    services.revoke_robot(world["web_robot"], context=SYSTEM)
    error(api(alice).post(url, {}, format="json"), 400)
    assert not credential_records("robot.rotate")
    error(api(ada).post("/api/robots/999999/rotate", {}, format="json"), 404)


# --- personal access tokens ---------------------------------------------------------------------


def token_names(response: Any) -> list[str]:
    return [row["name"] for row in results(response)]


@pytest.fixture
def tokens(bob: User, carol: User) -> dict[str, PersonalAccessToken]:
    laptop, _ = services.create_access_token(bob, "laptop", context=SYSTEM)
    ci, _ = services.create_access_token(bob, "ci", read_only=True, patterns=["bob/**"], context=SYSTEM)
    home, _ = services.create_access_token(carol, "home", context=SYSTEM)
    return {"laptop": laptop, "ci": ci, "home": home}


def test_everyone_lists_their_own_tokens_only_and_never_a_secret(
    api: Api, bob: User, tokens: dict[str, PersonalAccessToken]
) -> None:
    client = api(bob)
    rows = results(client.get("/api/tokens/"))
    assert {row["name"] for row in rows} == {"laptop", "ci", "api-0"}  # api-0: the token this client calls with
    assert all(row["user"] == "bob" and "secret" not in row for row in rows)
    ci = next(row for row in rows if row["name"] == "ci")
    assert ci["read_only"] is True and ci["patterns"] == ["bob/**"] and ci["state"] == "active"
    assert token_names(client.get("/api/tokens/", {"q": "LAP"})) == ["laptop"]
    error(client.get(f"/api/tokens/{tokens['home'].pk}/"), 404)
    assert client.get(f"/api/tokens/{tokens['laptop'].pk}/").json()["name"] == "laptop"


def test_admins_and_auditors_list_another_persons_tokens_and_others_may_not(
    api: Api, ada: User, audrey: User, bob: User, tokens: dict[str, PersonalAccessToken]
) -> None:
    for person in (ada, audrey):
        assert token_names(api(person).get("/api/tokens/", {"user": "carol"})) == ["home"]
        assert api(person).get(f"/api/tokens/{tokens['home'].pk}/").status_code == 200
    error(api(bob).get("/api/tokens/", {"user": "carol"}), 403)
    assert "user" in error(api(ada).get("/api/tokens/", {"user": "nobody"}), 400)["fields"]
    assert "state" in error(api(ada).get("/api/tokens/", {"state": "asleep"}), 400)["fields"]
    error(APIClient().get("/api/tokens/"), 401)


def test_anyone_makes_a_token_whose_secret_is_shown_once_works_and_is_audited(api: Api, carol: User) -> None:
    body = {"name": "laptop", "read_only": True, "patterns": ["carol/**"], "expires_at": in_days(30)}
    response = api(carol).post("/api/tokens/", body, format="json")
    assert response.status_code == 201, response.content
    made = response.json()
    assert made["secret"].startswith("rga_") and made["read_only"] and made["patterns"] == ["carol/**"]
    assert response["Cache-Control"] == "no-store"
    fresh = APIClient()
    fresh.credentials(HTTP_AUTHORIZATION=f"Bearer {made['secret']}")
    assert fresh.get("/api/me").json()["token"] == {"name": "laptop", "read_only": True, "patterns": ["carol/**"]}
    assert made["secret"] not in api(carol).get("/api/tokens/").content.decode()
    [record] = credential_records("token.create")[-1:]
    assert record.actor == "carol" and record.detail["credential"] == "carol/laptop"
    assert made["secret"] not in str(record.detail)


def test_a_bad_or_duplicate_token_is_a_400_naming_the_field(api: Api, carol: User) -> None:
    client = api(carol)
    assert client.post("/api/tokens/", {"name": "laptop"}, format="json").status_code == 201
    assert "name" in error(client.post("/api/tokens/", {"name": "laptop"}, format="json"), 400)["fields"]
    assert "name" in error(client.post("/api/tokens/", {"name": ""}, format="json"), 400)["fields"]
    bad = {"name": "x", "patterns": ["Not A Pattern"]}
    assert "patterns" in error(client.post("/api/tokens/", bad, format="json"), 400)["fields"]
    past = {"name": "x", "expires_at": "2001-01-01T00:00:00Z"}
    assert "expires_at" in error(client.post("/api/tokens/", past, format="json"), 400)["fields"]


def test_a_read_only_token_cannot_make_tokens(api: Api, carol: User) -> None:
    error(api(carol, read_only=True).post("/api/tokens/", {"name": "x", "read_only": True}, format="json"), 403)
    assert not PersonalAccessToken.objects.filter(name="x").exists()


def test_a_pattern_limited_token_makes_only_tokens_limited_within_its_patterns(api: Api, carol: User) -> None:
    limited = api(carol, patterns=["carol/**"])
    error(limited.post("/api/tokens/", {"name": "wide"}, format="json"), 403)
    error(limited.post("/api/tokens/", {"name": "other", "patterns": ["web/**"]}, format="json"), 403)
    narrower = limited.post("/api/tokens/", {"name": "narrow", "patterns": ["carol/app"]}, format="json")
    assert narrower.status_code == 201 and narrower.json()["patterns"] == ["carol/app"]
    assert set(PersonalAccessToken.objects.filter(user__username="carol").values_list("name", flat=True)) == {
        "api-0",
        "narrow",
    }


def test_a_token_that_expires_makes_only_tokens_that_expire_no_later(carol: User) -> None:
    _, secret = services.create_access_token(
        carol, "short", expires_at=timezone.now() + timedelta(days=2), context=SYSTEM
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    error(client.post("/api/tokens/", {"name": "forever"}, format="json"), 403)
    error(client.post("/api/tokens/", {"name": "later", "expires_at": in_days(5)}, format="json"), 403)
    assert client.post("/api/tokens/", {"name": "sooner", "expires_at": in_days(1)}, format="json").status_code == 201


def test_the_owner_revokes_their_token_and_an_admin_anyones_each_audited(
    api: Api, ada: User, bob: User, tokens: dict[str, PersonalAccessToken]
) -> None:
    assert api(bob).delete(f"/api/tokens/{tokens['laptop'].pk}/").status_code == 204
    assert api(ada).delete(f"/api/tokens/{tokens['home'].pk}/").status_code == 204
    revoked = [(r.actor, r.detail["credential"]) for r in credential_records("token.revoke")]
    assert revoked == [("bob", "bob/laptop"), ("ada", "carol/home")]
    assert api(bob).get(f"/api/tokens/{tokens['laptop'].pk}/").json()["state"] == "revoked"


def test_others_cannot_revoke_a_token_auditors_included(
    api: Api, audrey: User, carol: User, tokens: dict[str, PersonalAccessToken]
) -> None:
    error(api(carol).delete(f"/api/tokens/{tokens['laptop'].pk}/"), 404)
    error(api(audrey).delete(f"/api/tokens/{tokens['laptop'].pk}/"), 403)
    error(api(carol, read_only=True).delete(f"/api/tokens/{tokens['home'].pk}/"), 403)
    assert PersonalAccessToken.objects.get(pk=tokens["laptop"].pk).revoked_at is None
    assert not credential_records("token.revoke")


def test_nobody_revokes_the_token_their_request_came_with(api: Api, ada: User) -> None:
    client = api(ada)
    current = PersonalAccessToken.objects.get(user=ada, name="api-0")
    body = error(client.delete(f"/api/tokens/{current.pk}/"), 409)
    assert "this request came with" in body["detail"]
    assert PersonalAccessToken.objects.get(pk=current.pk).revoked_at is None


def test_the_session_revokes_a_token_with_its_csrf_token(
    session_api: Callable[[User], APIClient], bob: User, tokens: dict[str, PersonalAccessToken]
) -> None:
    client = session_api(bob)
    error(client.delete(f"/api/tokens/{tokens['laptop'].pk}/"), 403)  # no CSRF token: refused
    client.cookies["csrftoken"] = CSRF
    response = client.delete(f"/api/tokens/{tokens['laptop'].pk}/", HTTP_X_CSRFTOKEN=CSRF)
    assert response.status_code == 204


def test_lists_come_in_pages_and_a_page_past_the_last_is_a_400(api: Api, audrey: User, world: dict[str, Any]) -> None:
    first = api(audrey).get("/api/grants/", {"page_size": 2}).json()
    assert first["count"] == Grant.objects.count() and len(first["results"]) == 2 and first["next"]
    assert "page" in error(api(audrey).get("/api/grants/", {"page": 99}), 400)["fields"]
    assert "page" in error(api(audrey).get("/api/robots/", {"page": 0}), 400)["fields"]


def queries(client: APIClient, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


def add_rows(world: dict[str, Any], numbers: range) -> None:
    """More of every kind a list shows: robots with grants, grants (managed ones too), tokens, repositories."""
    ada, carol, ops = User.objects.get(username="ada"), User.objects.get(username="carol"), world["ops"]
    for n in numbers:
        services.create_robot(ops, f"r{n}", grants=[(f"ops/r{n}", "read")], context=SYSTEM)
        services.create_grant(carol, f"more/{n}", "read", registry=world["registry"], context=SYSTEM)
        services.lead_grant(ops, carol, f"ops/m{n}", "read", acting_user=ada, context=SYSTEM)
        services.create_access_token(carol, f"t{n}", context=SYSTEM)
        services.create_repository(f"more/{n}", registry=world["registry"], context=SYSTEM)


@pytest.mark.parametrize("url", ["/api/grants/", "/api/robots/", "/api/tokens/?user=carol", "/api/repositories/"])
def test_a_lists_queries_do_not_grow_with_its_rows(api: Api, ada: User, world: dict[str, Any], url: str) -> None:
    add_rows(world, range(1))
    client = api(ada)
    client.get(url)  # the token's last use is written once a minute: not counted below
    before = queries(client, url)
    add_rows(world, range(1, 6))
    assert queries(client, url) == before
