"""Directory (LDAP) users and groups on the dashboard: team pages, user pages and the registry page.

alice leads team web and bob is a local member; web takes members from the directory group
cn=web-devs (member), which holds bob (so he is local and directory) and dora, a directory user who is
in web only through it. ada is the admin, audrey the auditor, carol an outsider. The directory is "on"
(LDAP_SERVER_URI set) unless a test turns it off; no directory server is needed: memberships are made
by ``apply_groups``, as a sign-in or the sync would.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts import services
from accounts.models import DirectoryGroup, Membership, Team, User
from accounts.services.directory import apply_groups, load_mappings
from audit.models import AuditRecord
from tests.conftest import SYSTEM, client_for

pytestmark = pytest.mark.django_db

WEB_DEVS = "cn=web-devs,ou=groups,dc=example,dc=org"
WEB_LEADS = "cn=web-leads,ou=groups,dc=example,dc=org"
DORA_DN = "uid=dora,ou=people,dc=example,dc=org"


@pytest.fixture(autouse=True)
def directory_on(settings) -> None:
    settings.LDAP_SERVER_URI = "ldap://127.0.0.1:1"
    settings.LDAP_GROUP_SEARCH_BASE = "ou=groups,dc=example,dc=org"


def directory_user(username: str, dn: str, **profile: str) -> User:
    """A directory-managed account as sign-in makes one (test setup: the DN is the directory's to set)."""
    user = services.create_user(username, context=SYSTEM, **profile)
    User.objects.filter(pk=user.pk).update(directory_dn=dn)
    return User.objects.get(pk=user.pk)


def join_groups(user: User, *groups: str) -> None:
    apply_groups(user, set(groups), SYSTEM, mappings=load_mappings())


@pytest.fixture
def world(ada: User, audrey: User, alice: User, bob: User, carol: User, web: Team) -> dict[str, object]:
    services.directory.set_directory_groups(web, [(WEB_DEVS, "member")], context=SYSTEM)
    dora = directory_user("dora", DORA_DN, email="dora@example.org", first_name="Dora", last_name="Dir")
    join_groups(dora, WEB_DEVS)
    join_groups(bob, WEB_DEVS)
    return {"ada": ada, "audrey": audrey, "alice": alice, "bob": bob, "carol": carol, "dora": dora, "web": web}


def team_page(persona: str, world: dict[str, object]) -> str:
    response = client_for(persona, world).get(reverse("teams:detail", kwargs={"name": "web"}))
    assert response.status_code == 200
    return response.content.decode()


def remove_url(username: str) -> str:
    return reverse("teams:remove_member", kwargs={"name": "web", "username": username})


ADD_GROUP = reverse("teams:add_directory_group", kwargs={"name": "web"})


def remove_group_url(dn: str = WEB_DEVS, team: str = "web") -> str:
    pk = DirectoryGroup.objects.get(team__name=team, dn=dn).pk
    return reverse("teams:remove_directory_group", kwargs={"name": "web", "pk": pk})


# --- members' sources --------------------------------------------------------------------


def test_the_team_page_shows_each_members_sources(world) -> None:
    body = team_page("audrey", world)
    assert "local (member)" in body
    assert f"directory group <code>{WEB_DEVS}</code> (member)" in body


def test_a_lead_gets_no_remove_button_for_a_member_only_the_directory_gives(world) -> None:
    body = team_page("alice", world)
    assert f'action="{remove_url("dora")}"' not in body
    assert f"From directory group <code>{WEB_DEVS}</code>: change it in the directory." in body


def test_a_lead_is_told_removing_a_local_and_directory_member_keeps_them_through_the_group(world) -> None:
    body = team_page("alice", world)
    assert f'action="{remove_url("bob")}"' in body
    assert f"Removes the local role only: they stay in the team through <code>{WEB_DEVS}</code>." in body


def test_removing_a_local_and_directory_member_keeps_them_through_the_group(world) -> None:
    response = client_for("alice", world).post(remove_url("bob"), follow=True)
    assert response.status_code == 200
    membership = Membership.objects.get(team__name="web", user__username="bob")
    assert (membership.local_role, membership.role) == ("", "member")
    assert f"they stay a member of team web through {WEB_DEVS}" in response.content.decode()


def test_removing_a_member_only_the_directory_gives_is_refused_with_the_reason(world) -> None:
    response = client_for("alice", world).post(remove_url("dora"))
    assert response.status_code == 400
    assert "change the group in the directory" in response.content.decode()
    assert Membership.objects.filter(team__name="web", user__username="dora").exists()


# --- the mappings, read-only ----------------------------------------------------------------


@pytest.mark.parametrize("persona", ["alice", "bob", "audrey"])
def test_leads_members_and_auditors_see_the_mappings_but_no_editor(world, persona: str) -> None:
    body = team_page(persona, world)
    assert f"<td><code>{WEB_DEVS}</code></td>" in body
    assert f'action="{ADD_GROUP}"' not in body
    assert f'action="{remove_group_url()}"' not in body


def test_an_admin_sees_the_editor_while_the_directory_is_on(world) -> None:
    body = team_page("ada", world)
    assert f'action="{ADD_GROUP}"' in body and f'action="{remove_group_url()}"' in body


def test_with_the_directory_off_the_mappings_show_without_the_editor(world, settings) -> None:
    settings.LDAP_SERVER_URI = ""
    body = team_page("ada", world)
    assert f"<td><code>{WEB_DEVS}</code></td>" in body
    assert "The directory is off" in body
    assert f'action="{ADD_GROUP}"' not in body


def test_with_the_directory_off_and_no_mappings_the_section_is_gone(world, settings) -> None:
    settings.LDAP_SERVER_URI = ""
    services.directory.set_directory_groups(world["web"], [], context=SYSTEM)  # type: ignore[arg-type]
    assert 'id="directory-groups"' not in team_page("ada", world)


# --- the mappings, changed by admins ------------------------------------------------------------


def test_an_admin_maps_a_group_and_the_change_is_audited(world) -> None:
    data = {"group-group": "CN=Web-Leads, OU=groups,DC=example,DC=org", "group-role": "maintainer"}
    response = client_for("ada", world).post(ADD_GROUP, data)
    assert response.status_code == 302
    assert DirectoryGroup.objects.get(team__name="web", dn=WEB_LEADS).role == "maintainer"
    assert DirectoryGroup.objects.filter(team__name="web", dn=WEB_DEVS).exists()  # the other mapping stays
    assert AuditRecord.objects.filter(actor="ada", detail__action="team.directory_group.add").exists()


def test_mapping_a_mapped_group_again_changes_the_role_it_gives(world) -> None:
    data = {"group-group": WEB_DEVS.upper(), "group-role": "maintainer"}
    assert client_for("ada", world).post(ADD_GROUP, data).status_code == 302
    assert list(DirectoryGroup.objects.filter(team__name="web").values_list("dn", "role")) == [(WEB_DEVS, "maintainer")]
    assert Membership.objects.get(team__name="web", user__username="dora").role == "maintainer"


@pytest.mark.parametrize(
    ("dn", "error"),
    [
        ("web-devs", "is not a distinguished name"),
        ("cn=web-devs,ou=people,dc=example,dc=org", "is outside LDAP_GROUP_SEARCH_BASE"),
        ("cn=web\x00devs,ou=groups,dc=example,dc=org", "Null characters are not allowed"),
        ("", "This field is required"),
    ],
)
def test_a_bad_dn_is_a_form_error_not_a_500(world, dn: str, error: str) -> None:
    response = client_for("ada", world).post(ADD_GROUP, {"group-group": dn, "group-role": "member"})
    assert response.status_code == 400
    assert error in response.content.decode()
    assert DirectoryGroup.objects.filter(team__name="web").count() == 1


def test_an_unknown_role_is_a_form_error(world) -> None:
    response = client_for("ada", world).post(ADD_GROUP, {"group-group": WEB_LEADS, "group-role": "owner"})
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()
    assert not DirectoryGroup.objects.filter(dn=WEB_LEADS).exists()


def test_unmapping_a_group_drops_the_memberships_it_alone_gave(world) -> None:
    response = client_for("ada", world).post(remove_group_url())
    assert response.status_code == 302
    assert not DirectoryGroup.objects.filter(team__name="web").exists()
    assert not Membership.objects.filter(team__name="web", user__username="dora").exists()
    bob = Membership.objects.get(team__name="web", user__username="bob")
    assert (bob.local_role, list(bob.directory_groups.all())) == ("member", [])
    assert AuditRecord.objects.filter(actor="ada", detail__action="team.directory_group.remove").exists()


def test_another_teams_mapping_is_not_found_on_this_team(world) -> None:
    ops = services.create_team("ops", context=SYSTEM)
    services.directory.set_directory_groups(ops, [(WEB_LEADS, "member")], context=SYSTEM)
    pk = DirectoryGroup.objects.get(team=ops).pk
    url = reverse("teams:remove_directory_group", kwargs={"name": "web", "pk": pk})
    assert client_for("ada", world).post(url).status_code == 404
    assert DirectoryGroup.objects.filter(team=ops).exists()


@pytest.mark.parametrize("persona", ["alice", "bob", "audrey", "carol"])
def test_nobody_but_an_admin_changes_the_mappings(world, persona: str) -> None:
    client = client_for(persona, world)
    assert client.post(ADD_GROUP, {"group-group": WEB_LEADS, "group-role": "maintainer"}).status_code == 403
    assert client.post(remove_group_url()).status_code == 403
    assert list(DirectoryGroup.objects.values_list("dn", flat=True)) == [WEB_DEVS]


def test_anonymous_visitors_go_to_sign_in(world) -> None:
    response = Client().post(ADD_GROUP, {"group-group": WEB_LEADS, "group-role": "member"})
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_the_mapping_changes_need_a_csrf_token(world) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(world["ada"])  # type: ignore[arg-type]
    assert client.post(ADD_GROUP, {"group-group": WEB_LEADS, "group-role": "member"}).status_code == 403
    assert client.post(remove_group_url()).status_code == 403
    assert list(DirectoryGroup.objects.values_list("dn", flat=True)) == [WEB_DEVS]


def test_the_mapping_changes_reject_get(world) -> None:
    client = client_for("ada", world)
    assert client.get(ADD_GROUP).status_code == 405
    assert client.get(remove_group_url()).status_code == 405


def test_with_the_directory_off_the_mappings_do_not_change(world, settings) -> None:
    settings.LDAP_SERVER_URI = ""
    client = client_for("ada", world)
    response = client.post(ADD_GROUP, {"group-group": WEB_LEADS, "group-role": "member"})
    assert response.status_code == 409
    assert "The directory is off" in response.content.decode()
    assert client.post(remove_group_url()).status_code == 409
    assert list(DirectoryGroup.objects.values_list("dn", flat=True)) == [WEB_DEVS]


def test_the_team_page_needs_the_same_queries_however_many_directory_members(world) -> None:
    client = client_for("ada", world)
    with CaptureQueriesContext(connection) as few:
        assert client.get(reverse("teams:detail", kwargs={"name": "web"})).status_code == 200
    for n in range(5):
        join_groups(directory_user(f"dir{n}", f"uid=dir{n},ou=people,dc=example,dc=org"), WEB_DEVS)
    with CaptureQueriesContext(connection) as many:
        response = client.get(reverse("teams:detail", kwargs={"name": "web"}))
    assert "dir4" in response.content.decode()
    assert len(many) <= len(few)


# --- a directory user's page --------------------------------------------------------------------


def user_url(name: str, username: str = "dora") -> str:
    return reverse(f"users:{name}", kwargs={"username": username})


def dora_edit(**changes: object) -> dict[str, object]:
    data: dict[str, object] = {"email": "dora@example.org", "first_name": "Dora", "last_name": "Dir"}
    return {**data, "is_active": "on", **changes}


def test_a_directory_users_page_says_the_directory_manages_them(world) -> None:
    response = client_for("audrey", world).get(user_url("detail"))
    body = response.content.decode()
    assert f"Directory user (<code>{DORA_DN}</code>)" in body
    assert "email, names and password are managed by the directory" in body


def test_an_admin_gets_read_only_names_and_no_password_form_for_a_directory_user(world) -> None:
    body = client_for("ada", world).get(user_url("detail")).content.decode()
    assert 'name="email" id="id_email" value="dora@example.org" readonly' in body
    assert 'name="first_name" id="id_first_name" value="Dora" readonly' in body
    assert f'action="{user_url("password")}"' not in body
    assert "signs in with their directory password" in body


def test_a_local_user_keeps_the_editable_profile_and_password_form(world) -> None:
    body = client_for("ada", world).get(user_url("detail", "carol")).content.decode()
    assert "readonly" not in body and f'action="{user_url("password", "carol")}"' in body
    assert "Directory user" not in body


def test_an_admin_still_changes_a_directory_users_flags(world) -> None:
    response = client_for("ada", world).post(user_url("edit"), dora_edit(catalog_access="on"))
    assert response.status_code == 302
    assert User.objects.get(username="dora").catalog_access


def test_changing_a_directory_users_email_is_a_form_error(world) -> None:
    response = client_for("ada", world).post(user_url("edit"), dora_edit(email="else@example.org"))
    assert response.status_code == 400
    assert "dora is a directory user: this follows the directory." in response.content.decode()
    assert User.objects.get(username="dora").email == "dora@example.org"


@pytest.mark.parametrize("password", ["", "plum-orbit-glacier-7"])
def test_setting_a_directory_users_password_is_a_form_error(world, password: str) -> None:
    before = User.objects.get(username="dora").password
    response = client_for("ada", world).post(user_url("password"), {"password": password})
    assert response.status_code == 400
    assert "signs in with their directory password; change it in the directory." in response.content.decode()
    assert User.objects.get(username="dora").password == before


# --- the registry page ----------------------------------------------------------------------------


@pytest.fixture
def legacy(settings, tmp_path, db: None):
    settings.DATA_DIR = tmp_path / "data"
    return services.create_registry("legacy", auth_mode="htpasswd", context=SYSTEM)


def registry_page(ada: User, service: str) -> str:
    client = Client()
    client.force_login(ada)
    response = client.get(reverse("registries:detail", kwargs={"service": service}))
    assert response.status_code == 200
    return response.content.decode()


def test_an_htpasswd_registry_says_directory_users_cannot_sign_in(ada: User, legacy) -> None:
    body = registry_page(ada, "legacy")
    assert "Directory users cannot sign in to this registry" in body
    assert "Personal access tokens do not work in htpasswd mode either" in body


def test_without_the_directory_the_htpasswd_registry_does_not_mention_it(ada: User, legacy, settings) -> None:
    settings.LDAP_SERVER_URI = ""
    assert "Directory users cannot sign in" not in registry_page(ada, "legacy")


def test_a_token_registry_does_not_warn_about_directory_users(ada: User, settings, tmp_path) -> None:
    settings.DATA_DIR = tmp_path / "data"
    services.create_registry("registry", context=SYSTEM)
    assert "Directory users cannot sign in" not in registry_page(ada, "registry")


# --- Django's admin keeps the same rules --------------------------------------------------------------


def test_djangos_admin_shows_a_directory_profile_read_only_and_refuses_a_password(world) -> None:
    dora: User = world["dora"]  # type: ignore[assignment]
    client = client_for("ada", world)
    url = reverse("admin:accounts_user_change", args=(dora.pk,))
    page = client.get(url).content.decode()
    assert 'name="email"' not in page and "dora@example.org" in page
    response = client.post(
        reverse("admin:auth_user_password_change", args=(dora.pk,)),
        {"password1": "A-new-pw-123456", "password2": "A-new-pw-123456"},
        follow=True,
    )
    assert response.status_code == 200 and "signs in with their directory password" in response.content.decode()
    dora.refresh_from_db()
    assert not dora.has_usable_password()


def test_djangos_admin_cannot_delete_a_membership_only_a_directory_group_gives(world) -> None:
    client = client_for("ada", world)
    dora_in_web = Membership.objects.get(team__name="web", user__username="dora")
    bob_in_web = Membership.objects.get(team__name="web", user__username="bob")
    assert (
        client.post(reverse("admin:accounts_membership_delete", args=(dora_in_web.pk,)), {"post": "yes"}).status_code
        == 403
    )
    changelist = reverse("admin:accounts_membership_changelist")
    mixed = {"action": "delete_selected", "_selected_action": [dora_in_web.pk, bob_in_web.pk], "post": "yes"}
    assert client.post(changelist, mixed).status_code == 403  # Django refuses the whole bulk delete
    assert Membership.objects.filter(pk__in=[dora_in_web.pk, bob_in_web.pk]).count() == 2
    response = client.post(
        changelist, {"action": "delete_selected", "_selected_action": [bob_in_web.pk], "post": "yes"}, follow=True
    )
    assert response.status_code == 200
    bob_in_web = Membership.objects.get(pk=bob_in_web.pk)  # bob keeps web through the group, not locally
    assert bob_in_web.local_role == "" and bob_in_web.directory_groups.count() == 1
