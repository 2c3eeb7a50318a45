"""The people API: users, teams, members and the members search, per persona.

ada is an admin, audrey an auditor, alice leads team web, bob is a member of web, carol is in no team.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from accounts import services
from accounts.models import DirectoryGroup, Membership, Team, User
from audit.models import AuditRecord, Kind
from tests.conftest import PASSWORD, SYSTEM, make_user

Api = Callable[..., APIClient]
CSRF = "k" * 32

pytestmark = pytest.mark.django_db


def change(action: str) -> AuditRecord:
    return AuditRecord.objects.filter(kind=Kind.ADMIN_CHANGE, detail__action=action).latest("id")


def changes(action: str) -> int:
    return AuditRecord.objects.filter(kind=Kind.ADMIN_CHANGE, detail__action=action).count()


def usernames(response: Any) -> list[str]:
    return [row["username"] for row in response.json()["results"]]


def assert_error(response: Any, code: int) -> dict[str, Any]:
    assert response.status_code == code, response.content
    body = response.json()
    assert body["status"] == code
    assert set(body) == {"status", "error", "detail", "fields"}
    return body


# --- the user list -----------------------------------------------------------------------


def test_admins_and_auditors_list_every_user(api: Api, ada: User, audrey: User, web: Team, carol: User) -> None:
    for person in (ada, audrey):
        response = api(person).get("/api/users/")
        assert response.status_code == 200
        assert usernames(response) == ["ada", "alice", "audrey", "bob", "carol"]
        assert response.json()["count"] == 5
    alice_row = next(row for row in api(ada).get("/api/users/").json()["results"] if row["username"] == "alice")
    assert alice_row["is_lead"] is True
    assert alice_row["email"] == "alice@example.org"
    assert "password" not in alice_row


def test_plain_users_and_leads_may_not_list_users(api: Api, web: Team, alice: User, bob: User) -> None:
    for person in (alice, bob):
        assert_error(api(person).get("/api/users/"), 403)


def test_the_user_list_needs_credentials() -> None:
    body = assert_error(APIClient().get("/api/users/"), 401)
    assert body["error"] == "not_authenticated"


def test_the_user_list_filters_by_words_role_and_state(
    api: Api, ada: User, audrey: User, web: Team, dave: User
) -> None:
    client = api(ada)
    assert usernames(client.get("/api/users/", {"q": "alice example"})) == ["alice"]
    assert usernames(client.get("/api/users/", {"role": "admin"})) == ["ada"]
    assert usernames(client.get("/api/users/", {"role": "auditor"})) == ["audrey"]
    assert usernames(client.get("/api/users/", {"role": "lead"})) == ["alice"]
    assert usernames(client.get("/api/users/", {"role": "other"})) == ["bob", "dave"]
    assert usernames(client.get("/api/users/", {"active": "false"})) == ["dave"]
    assert "dave" not in usernames(client.get("/api/users/", {"active": "true"}))
    assert usernames(client.get("/api/users/", {"ordering": "-username"}))[0] == "dave"


def test_bad_user_list_parameters_are_a_400_naming_them(api: Api, ada: User) -> None:
    client = api(ada)
    assert "role" in assert_error(client.get("/api/users/", {"role": "wizard"}), 400)["fields"]
    assert "active" in assert_error(client.get("/api/users/", {"active": "maybe"}), 400)["fields"]
    assert "ordering" in assert_error(client.get("/api/users/", {"ordering": "password"}), 400)["fields"]
    assert "q" in assert_error(client.get("/api/users/", {"q": "a\x00b"}), 400)["fields"]


def test_the_user_list_pages(api: Api, ada: User) -> None:
    for n in range(4):
        make_user(f"user{n}")
    body = api(ada).get("/api/users/", {"page_size": 2, "page": 2}).json()
    assert body["count"] == 5
    assert [row["username"] for row in body["results"]] == ["user1", "user2"]
    assert body["next"] and body["previous"]


def test_a_page_that_does_not_exist_is_a_bad_parameter(api: Api, ada: User) -> None:
    for page in ("0", "7", "x"):
        assert "page" in assert_error(api(ada).get("/api/users/", {"page": page}), 400)["fields"]


def test_lists_read_a_fixed_number_of_queries_however_many_rows(
    api: Api, ada: User, django_assert_max_num_queries: Any
) -> None:
    client = api(ada)
    client.get("/api/teams/")  # the token's first use is touched once a minute: not part of the count
    for n in range(30):
        person = make_user(f"user{n:02}")
        team = services.create_team(f"team{n:02}", context=SYSTEM)
        services.set_membership(team, person, "maintainer", context=SYSTEM)
        services.set_membership(team, ada, "member", context=SYSTEM)
    for url in ("/api/users/", "/api/teams/", "/api/teams/team01/members/"):
        with django_assert_max_num_queries(6):
            assert client.get(url).status_code == 200


# --- creating users ------------------------------------------------------------------------


def test_an_admin_creates_a_user_with_a_generated_password_shown_once(api: Api, ada: User) -> None:
    response = api(ada).post("/api/users/", {"username": "erin", "email": "erin@example.org"}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["username"] == "erin" and body["is_active"] is True
    assert len(body["password"]) >= 20
    assert "no-store" in response["Cache-Control"] or "no-cache" in response["Cache-Control"]
    assert User.objects.get(username="erin").check_password(body["password"])
    record = change("user.create")
    assert record.detail["target"] == "erin" and record.actor == "ada"
    assert body["password"] not in str(record.detail)
    # Never again: reading the user shows no password.
    assert "password" not in api(ada).get("/api/users/erin/").json()


def test_an_admin_creates_a_user_with_a_given_password_which_is_not_echoed(api: Api, ada: User) -> None:
    response = api(ada).post(
        "/api/users/", {"username": "erin", "password": "a-long-enough-passphrase-9", "is_auditor": True}, format="json"
    )
    assert response.status_code == 201
    assert response.json()["password"] is None
    assert response.json()["is_auditor"] is True
    assert User.objects.get(username="erin").check_password("a-long-enough-passphrase-9")


def test_a_weak_password_is_a_400_on_the_password_field(api: Api, ada: User) -> None:
    response = api(ada).post("/api/users/", {"username": "erin", "password": "123"}, format="json")
    assert "password" in assert_error(response, 400)["fields"]
    assert not User.objects.filter(username="erin").exists()


def test_a_taken_or_malformed_username_is_a_400(api: Api, ada: User, bob: User) -> None:
    assert "username" in assert_error(api(ada).post("/api/users/", {"username": "bob"}, format="json"), 400)["fields"]
    bad = api(ada).post("/api/users/", {"username": "no spaces!"}, format="json")
    assert "username" in assert_error(bad, 400)["fields"]
    unknown = api(ada).post("/api/users/", {"username": "erin", "is_admin": True}, format="json")
    assert "is_admin" in assert_error(unknown, 400)["fields"]


def test_only_admins_create_users_and_never_with_a_limited_token(
    api: Api, ada: User, audrey: User, web: Team, alice: User
) -> None:
    body = {"username": "erin"}
    for person in (audrey, alice):
        assert_error(api(person).post("/api/users/", body, format="json"), 403)
    assert "read-only" in assert_error(api(ada, read_only=True).post("/api/users/", body, format="json"), 403)["detail"]
    assert_error(api(ada, patterns=["web/*"]).post("/api/users/", body, format="json"), 403)
    assert not User.objects.filter(username="erin").exists()


def test_a_session_write_needs_the_csrf_token(session_api: Callable[[User], APIClient], ada: User) -> None:
    response = session_api(ada).post("/api/users/", {"username": "erin"}, format="json")
    assert_error(response, 403)
    assert not User.objects.filter(username="erin").exists()


def test_the_browser_session_reads_and_with_its_csrf_token_writes(
    session_api: Callable[[User], APIClient], web: Team, alice: User, carol: User
) -> None:
    client = session_api(alice)
    assert team_names(client.get("/api/teams/")) == ["web"]
    refused = client.post("/api/teams/web/members/", {"username": "carol"}, format="json")
    assert_error(refused, 403)
    client.cookies["csrftoken"] = CSRF  # what a page of the dashboard would have set
    added = client.post("/api/teams/web/members/", {"username": "carol"}, format="json", HTTP_X_CSRFTOKEN=CSRF)
    assert added.status_code == 201, added.content
    assert change("membership.add").actor == "alice"


# --- one user ----------------------------------------------------------------------------


def test_a_person_reads_themselves_but_not_others(api: Api, web: Team, bob: User, alice: User) -> None:
    assert api(bob).get("/api/users/bob/").json()["username"] == "bob"
    assert_error(api(bob).get("/api/users/alice/"), 403)
    # Asking about someone who does not exist says no more than asking about someone who does.
    assert_error(api(bob).get("/api/users/nobody/"), 403)


def test_overseers_read_anyone_and_unknown_users_are_404(api: Api, ada: User, audrey: User, bob: User) -> None:
    assert api(audrey).get("/api/users/bob/").json()["is_superuser"] is False
    assert_error(api(ada).get("/api/users/nobody/"), 404)


def test_an_admin_changes_a_users_flags_with_an_audit_record(api: Api, ada: User, bob: User) -> None:
    response = api(ada).patch("/api/users/bob/", {"is_auditor": True, "first_name": "Bob"}, format="json")
    assert response.status_code == 200
    assert response.json()["is_auditor"] is True and response.json()["first_name"] == "Bob"
    record = change("user.update")
    assert record.detail["after"] == {"is_auditor": True, "first_name": "Bob"}
    assert record.actor == "ada"


def test_deactivating_a_user_through_the_api_is_audited(api: Api, ada: User, bob: User) -> None:
    assert api(ada).patch("/api/users/bob/", {"is_active": False}, format="json").json()["is_active"] is False
    assert change("user.update").detail["after"]["is_active"] is False


def test_nobody_removes_their_own_admin_flag_or_deactivates_themselves(api: Api, ada: User) -> None:
    client = api(ada)
    body = assert_error(client.patch("/api/users/ada/", {"is_superuser": False}, format="json"), 409)
    assert "own administrator flag" in body["detail"]
    assert (
        "deactivate yourself"
        in assert_error(client.patch("/api/users/ada/", {"is_active": False}, format="json"), 409)["detail"]
    )
    assert "delete yourself" in assert_error(client.delete("/api/users/ada/"), 409)["detail"]
    ada.refresh_from_db()
    assert ada.is_superuser and ada.is_active
    assert changes("user.update") == 0


def test_a_directory_users_names_are_refused_as_the_service_refuses_them(api: Api, ada: User, bob: User) -> None:
    User.objects.filter(pk=bob.pk).update(directory_dn="uid=bob,ou=people,dc=example,dc=org")
    response = api(ada).patch("/api/users/bob/", {"email": "new@example.org"}, format="json")
    assert "email" in assert_error(response, 400)["fields"]
    assert api(ada).patch("/api/users/bob/", {"catalog_access": True}, format="json").status_code == 200


def test_bad_changes_are_a_400_in_the_json_shape(api: Api, ada: User, bob: User) -> None:
    body = assert_error(api(ada).patch("/api/users/bob/", {"email": "not-an-address"}, format="json"), 400)
    assert body["error"] == "invalid" and "email" in body["fields"]
    assert (
        "username"
        in assert_error(api(ada).patch("/api/users/bob/", {"username": "robert"}, format="json"), 400)["fields"]
    )


def test_only_admins_change_or_delete_users(api: Api, audrey: User, web: Team, alice: User, bob: User) -> None:
    for person in (audrey, alice, bob):
        assert_error(api(person).patch("/api/users/bob/", {"first_name": "X"}, format="json"), 403)
        assert_error(api(person).delete("/api/users/bob/"), 403)
    assert User.objects.filter(username="bob", first_name="").exists()


def test_limited_tokens_never_change_users(api: Api, ada: User, bob: User) -> None:
    assert_error(api(ada, read_only=True).patch("/api/users/bob/", {"first_name": "X"}, format="json"), 403)
    assert_error(api(ada, patterns=["web/*"]).delete("/api/users/bob/"), 403)
    assert User.objects.filter(username="bob").exists()


def test_an_admin_deletes_a_user(api: Api, ada: User, bob: User) -> None:
    assert api(ada).delete("/api/users/bob/").status_code == 204
    assert not User.objects.filter(username="bob").exists()
    assert change("user.delete").detail["target"] == "bob"
    assert_error(api(ada).delete("/api/users/bob/"), 404)


# --- passwords and refresh tokens -----------------------------------------------------------


def test_an_admin_sets_a_generated_password_shown_once(api: Api, ada: User, bob: User) -> None:
    response = api(ada).post("/api/users/bob/password", {}, format="json")
    assert response.status_code == 200
    password = response.json()["password"]
    bob.refresh_from_db()
    assert bob.check_password(password) and not bob.check_password(PASSWORD)
    assert change("user.set_password").detail["target"] == "bob"


def test_an_admin_sets_a_given_password(api: Api, ada: User, bob: User) -> None:
    response = api(ada).post("/api/users/bob/password", {"password": "another-long-passphrase-7"}, format="json")
    assert response.status_code == 200 and response.json()["password"] is None
    bob.refresh_from_db()
    assert bob.check_password("another-long-passphrase-7")


def test_a_directory_users_password_is_the_directorys(api: Api, ada: User, bob: User) -> None:
    User.objects.filter(pk=bob.pk).update(directory_dn="uid=bob,ou=people,dc=example,dc=org")
    assert "password" in assert_error(api(ada).post("/api/users/bob/password", {}, format="json"), 400)["fields"]


def test_only_admins_with_a_full_token_set_passwords(api: Api, ada: User, audrey: User, bob: User) -> None:
    assert_error(api(audrey).post("/api/users/bob/password", {}, format="json"), 403)
    assert_error(api(bob).post("/api/users/bob/password", {}, format="json"), 403)
    assert_error(api(ada, read_only=True).post("/api/users/bob/password", {}, format="json"), 403)
    assert_error(api(ada, patterns=["web/*"]).post("/api/users/bob/password", {}, format="json"), 403)
    assert_error(api(ada).post("/api/users/nobody/password", {}, format="json"), 404)
    assert changes("user.set_password") == 0


def test_an_admin_revokes_a_users_refresh_tokens(api: Api, ada: User, bob: User) -> None:
    services.new_refresh_token(bob, "registry", "docker")
    response = api(ada).post("/api/users/bob/revoke-refresh-tokens")
    assert response.status_code == 200
    assert response.json() == {"username": "bob", "revoked": 1}
    assert not bob.refresh_tokens.filter(revoked_at__isnull=True).exists()
    assert change("user.revoke_refresh_tokens").detail["target"] == "bob"
    assert_error(api(bob).post("/api/users/bob/revoke-refresh-tokens"), 403)


# --- the members search ----------------------------------------------------------------------


def test_a_lead_finds_usernames_only(api: Api, web: Team, alice: User, carol: User) -> None:
    User.objects.filter(pk=carol.pk).update(first_name="Caroline", email="secret@example.org")
    response = api(alice).get("/api/users/search", {"q": "carol"})
    assert response.status_code == 200
    assert response.json() == {"usernames": ["carol"]}
    # Emails are not searched: a lead cannot find out who owns an address.
    assert api(alice).get("/api/users/search", {"q": "secret@"}).json() == {"usernames": []}


def test_the_search_skips_inactive_people_and_stops_at_twenty(api: Api, ada: User, dave: User) -> None:
    for n in range(25):
        make_user(f"dev{n:02}")
    found = api(ada).get("/api/users/search", {"q": "d"}).status_code
    assert found == 400  # one character is too short
    names = api(ada).get("/api/users/search", {"q": "dev"}).json()["usernames"]
    assert len(names) == 20 and names[0] == "dev00"
    assert api(ada).get("/api/users/search", {"q": "dave"}).json() == {"usernames": []}


def test_the_search_needs_a_query(api: Api, audrey: User) -> None:
    assert "q" in assert_error(api(audrey).get("/api/users/search"), 400)["fields"]


def test_people_who_lead_no_team_may_not_search(api: Api, web: Team, bob: User, carol: User) -> None:
    for person in (bob, carol):
        assert_error(api(person).get("/api/users/search", {"q": "alice"}), 403)
    assert_error(APIClient().get("/api/users/search", {"q": "alice"}), 401)


# --- teams ------------------------------------------------------------------------------------


@pytest.fixture
def ops(carol: User) -> Team:
    team = services.create_team("ops", description="Operations", context=SYSTEM)
    services.set_membership(team, carol, "maintainer", context=SYSTEM)
    return team


def team_names(response: Any) -> list[str]:
    assert response.status_code == 200, response.content
    return [row["name"] for row in response.json()["results"]]


def test_overseers_list_every_team_and_others_their_own(
    api: Api, ada: User, audrey: User, web: Team, ops: Team, alice: User, bob: User, carol: User
) -> None:
    assert team_names(api(ada).get("/api/teams/")) == ["ops", "web"]
    assert team_names(api(audrey).get("/api/teams/")) == ["ops", "web"]
    assert team_names(api(bob).get("/api/teams/")) == ["web"]
    assert team_names(api(carol).get("/api/teams/")) == ["ops"]
    row = api(alice).get("/api/teams/").json()["results"][0]
    assert row["my_role"] == "maintainer" and row["member_count"] == 2
    assert api(ada).get("/api/teams/").json()["results"][1]["my_role"] is None


def test_the_team_list_filters_orders_and_refuses_bad_parameters(api: Api, ada: User, web: Team, ops: Team) -> None:
    assert team_names(api(ada).get("/api/teams/", {"q": "op"})) == ["ops"]
    assert team_names(api(ada).get("/api/teams/", {"ordering": "-name"})) == ["web", "ops"]
    assert "ordering" in assert_error(api(ada).get("/api/teams/", {"ordering": "secret"}), 400)["fields"]
    assert_error(APIClient().get("/api/teams/"), 401)


def test_a_team_is_read_by_its_members_and_overseers_only(
    api: Api, ada: User, audrey: User, web: Team, bob: User, carol: User
) -> None:
    for person in (ada, audrey, bob):
        assert api(person).get("/api/teams/web/").json()["name"] == "web"
    assert_error(api(carol).get("/api/teams/web/"), 403)
    assert_error(api(ada).get("/api/teams/nothing/"), 404)


def test_an_admin_makes_describes_and_deletes_a_team(api: Api, ada: User) -> None:
    client = api(ada)
    made = client.post("/api/teams/", {"name": "data", "description": "Data"}, format="json")
    assert made.status_code == 201 and made.json()["member_count"] == 0
    assert change("team.create").detail["target"] == "data"
    assert client.patch("/api/teams/data/", {"description": "Data science"}, format="json").json()["description"] == (
        "Data science"
    )
    assert change("team.update").detail["after"] == {"description": "Data science"}
    assert client.delete("/api/teams/data/").status_code == 204
    assert change("team.delete").detail["target"] == "data"
    assert not Team.objects.filter(name="data").exists()


def test_bad_or_taken_team_names_are_a_400(api: Api, ada: User, web: Team) -> None:
    assert "name" in assert_error(api(ada).post("/api/teams/", {"name": "web"}, format="json"), 400)["fields"]
    assert "name" in assert_error(api(ada).post("/api/teams/", {"name": "no spaces"}, format="json"), 400)["fields"]
    assert "description" in assert_error(api(ada).patch("/api/teams/web/", {}, format="json"), 400)["fields"]


def test_only_admins_with_a_full_token_change_teams(api: Api, ada: User, audrey: User, web: Team, alice: User) -> None:
    for client in (api(audrey), api(alice), api(ada, read_only=True), api(ada, patterns=["web/*"])):
        assert_error(client.post("/api/teams/", {"name": "data"}, format="json"), 403)
        assert_error(client.patch("/api/teams/web/", {"description": "x"}, format="json"), 403)
        assert_error(client.delete("/api/teams/web/"), 403)
    assert Team.objects.filter(name="web", description="").exists()
    assert not Team.objects.filter(name="data").exists()


# --- members ----------------------------------------------------------------------------------


def test_who_sees_the_team_lists_its_members(api: Api, audrey: User, web: Team, bob: User, carol: User) -> None:
    response = api(bob).get("/api/teams/web/members/")
    assert response.status_code == 200
    assert response.json()["results"] == [
        {"username": "alice", "role": "maintainer", "local_role": "maintainer", "directory_groups": []},
        {"username": "bob", "role": "member", "local_role": "member", "directory_groups": []},
    ]
    assert usernames(api(audrey).get("/api/teams/web/members/", {"q": "bo"})) == ["bob"]
    assert usernames(api(audrey).get("/api/teams/web/members/", {"ordering": "-username"})) == ["bob", "alice"]
    assert_error(api(carol).get("/api/teams/web/members/"), 403)
    assert_error(api(audrey).get("/api/teams/web/members/", {"ordering": "email"}), 400)
    assert api(bob).get("/api/teams/web/members/alice").json()["role"] == "maintainer"
    assert_error(api(bob).get("/api/teams/web/members/carol"), 404)


def test_a_lead_adds_a_member_with_an_audit_record(api: Api, web: Team, alice: User, carol: User) -> None:
    response = api(alice).post("/api/teams/web/members/", {"username": "carol"}, format="json")
    assert response.status_code == 201
    assert response.json() == {"username": "carol", "role": "member", "local_role": "member", "directory_groups": []}
    record = change("membership.add")
    assert record.detail["target"] == "carol in web" and record.actor == "alice"


def test_adding_someone_who_is_a_member_already_sets_their_role(api: Api, web: Team, alice: User, bob: User) -> None:
    response = api(alice).post("/api/teams/web/members/", {"username": "bob", "role": "maintainer"}, format="json")
    assert response.status_code == 200
    assert response.json()["role"] == "maintainer"
    assert change("membership.change").detail["target"] == "bob in web"


def test_a_lead_changes_a_role_and_removes_a_member(api: Api, web: Team, alice: User, bob: User) -> None:
    client = api(alice)
    assert client.patch("/api/teams/web/members/bob", {"role": "maintainer"}, format="json").json()["role"] == (
        "maintainer"
    )
    assert change("membership.change").detail["after"] == {"role": "maintainer"}
    assert client.delete("/api/teams/web/members/bob").status_code == 204
    assert change("membership.remove").detail["target"] == "bob in web"
    assert not Membership.objects.filter(team=web, user=bob).exists()


def test_an_admin_who_is_not_a_member_manages_members(api: Api, ada: User, web: Team, carol: User) -> None:
    assert (
        api(ada).post("/api/teams/web/members/", {"username": "carol", "role": "maintainer"}, format="json").status_code
        == 201
    )
    assert Membership.objects.get(team=web, user=carol).role == "maintainer"


def test_members_and_outsiders_may_not_change_members(
    api: Api, audrey: User, web: Team, ops: Team, bob: User, carol: User
) -> None:
    for person in (audrey, bob, carol):
        client = api(person)
        assert_error(client.post("/api/teams/web/members/", {"username": "carol"}, format="json"), 403)
        assert_error(client.patch("/api/teams/web/members/bob", {"role": "maintainer"}, format="json"), 403)
        assert_error(client.delete("/api/teams/web/members/bob"), 403)
    assert Membership.objects.get(team=web, user=bob).role == "member"
    assert changes("membership.remove") == 0


def test_an_auditor_who_is_a_maintainer_still_changes_nothing(api: Api, audrey: User, web: Team, bob: User) -> None:
    services.set_membership(web, audrey, "maintainer", context=SYSTEM)
    assert_error(api(audrey).delete("/api/teams/web/members/bob"), 403)
    assert Membership.objects.filter(team=web, user=bob).exists()


def test_a_leads_limited_tokens_may_not_change_members(api: Api, web: Team, alice: User, bob: User) -> None:
    assert_error(api(alice, read_only=True).delete("/api/teams/web/members/bob"), 403)
    limited = api(alice, patterns=["web/*"]).patch("/api/teams/web/members/bob", {"role": "maintainer"}, format="json")
    assert "limited to repository patterns" in assert_error(limited, 403)["detail"]
    assert Membership.objects.get(team=web, user=bob).role == "member"


def test_bad_member_input_is_a_400_and_unknown_members_a_404(api: Api, web: Team, alice: User) -> None:
    client = api(alice)
    assert (
        "username"
        in assert_error(client.post("/api/teams/web/members/", {"username": "nobody"}, format="json"), 400)["fields"]
    )
    assert (
        "role"
        in assert_error(
            client.post("/api/teams/web/members/", {"username": "bob", "role": "boss"}, format="json"), 400
        )["fields"]
    )
    assert_error(client.patch("/api/teams/web/members/nobody", {"role": "member"}, format="json"), 404)
    assert_error(client.delete("/api/teams/nothing/members/bob"), 404)


def directory_member(team: Team, user: User, *, local: bool) -> Membership:
    """``user`` in ``team`` through a directory group (and a local role too when ``local``)."""
    group = DirectoryGroup.objects.create(team=team, dn="cn=web,ou=groups,dc=example,dc=org", role="member")
    membership, _ = Membership.objects.get_or_create(team=team, user=user, defaults={"role": "member"})
    membership.local_role = "member" if local else ""
    membership.save()
    membership.directory_groups.add(group)
    return membership


def test_removing_a_member_the_directory_also_gives_keeps_the_directorys_role(
    api: Api, web: Team, alice: User, bob: User
) -> None:
    directory_member(web, bob, local=True)
    response = api(alice).delete("/api/teams/web/members/bob")
    assert response.status_code == 200
    assert response.json()["local_role"] is None
    assert response.json()["directory_groups"] == ["cn=web,ou=groups,dc=example,dc=org"]


def test_a_membership_only_the_directory_gives_is_not_removed_here(
    api: Api, web: Team, alice: User, carol: User
) -> None:
    directory_member(web, carol, local=False)
    body = assert_error(api(alice).delete("/api/teams/web/members/carol"), 400)
    assert "directory" in body["detail"]
    assert Membership.objects.filter(team=web, user=carol).exists()
