"""Policy as code: a team's directory groups, and members as the local sources only.

alice leads team web and bob is a member (both local); carol is in web only through the
directory group web-devs.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from pytest_django import Settings

from accounts import policy, services
from accounts.models import DirectoryGroup, Membership, Team, User
from audit.models import AuditRecord
from tests.conftest import SYSTEM

pytestmark = pytest.mark.django_db

WEB_DEVS = "cn=web-devs,ou=groups,dc=example,dc=org"
WEB_LEADS = "cn=web-leads,ou=groups,dc=example,dc=org"

POLICY = """
teams:
  - name: web
    members: [{user: alice, role: maintainer}, {user: bob, role: member}]
    directory_groups:
      - {group: "CN=Web-Devs, OU=groups, DC=example, DC=org"}
      - {group: "cn=web-leads,ou=groups,dc=example,dc=org", role: maintainer}
"""
WITHOUT_GROUPS = """
teams:
  - name: web
    members: [{user: alice, role: maintainer}, {user: bob, role: member}]
"""


def apply(tmp_path: Path, text: str, *args: str) -> list[str]:
    path = tmp_path / "policy.yml"
    path.write_text(text)
    out = io.StringIO()
    call_command("apply_policy", str(path), *args, stdout=out, stderr=io.StringIO())
    return out.getvalue().splitlines()


def mappings(team: str = "web") -> list[tuple[str, str]]:
    return list(DirectoryGroup.objects.filter(team__name=team).order_by("dn").values_list("dn", "role"))


def join_through_group(user: User, team: Team, dn: str) -> Membership:
    """What the directory sync does for a member of ``dn`` (without a directory server)."""
    group = DirectoryGroup.objects.get(team=team, dn=dn)
    membership, _ = Membership.objects.get_or_create(team=team, user=user, defaults={"role": group.role})
    membership.directory_groups.add(group)
    return membership


@pytest.fixture
def web_with_devs(web: Team, carol: User) -> Team:
    services.directory.set_directory_groups(web, [(WEB_DEVS, "member")], context=SYSTEM)
    join_through_group(carol, web, WEB_DEVS)
    return web


def test_it_maps_directory_groups_to_a_team_normalized(tmp_path: Path, alice: User, bob: User) -> None:
    output = apply(tmp_path, POLICY)
    assert f"+ directory group {WEB_DEVS} -> team web (member)" in output
    assert f"+ directory group {WEB_LEADS} -> team web (maintainer)" in output
    assert mappings() == [(WEB_DEVS, "member"), (WEB_LEADS, "maintainer")]
    assert AuditRecord.objects.filter(detail__action="team.directory_group.add").count() == 2
    assert apply(tmp_path, POLICY) == []


def test_a_dry_run_shows_the_group_changes_and_changes_nothing(tmp_path: Path, alice: User, bob: User) -> None:
    output = apply(tmp_path, POLICY, "--dry-run")
    assert f"+ directory group {WEB_LEADS} -> team web (maintainer)" in output
    assert (
        not DirectoryGroup.objects.exists()
        and not AuditRecord.objects.filter(detail__action__startswith="team.").exists()
    )


def test_a_team_without_the_key_loses_its_mappings(tmp_path: Path, web_with_devs: Team, carol: User) -> None:
    output = apply(tmp_path, WITHOUT_GROUPS)
    assert output == [f"- directory group {WEB_DEVS} -> team web (member)"]
    assert mappings() == []
    assert not Membership.objects.filter(user=carol).exists()  # her only source went with the group


def test_it_changes_a_groups_role(tmp_path: Path, web_with_devs: Team, carol: User) -> None:
    text = WITHOUT_GROUPS + f'    directory_groups: [{{group: "{WEB_DEVS}", role: maintainer}}]\n'
    assert apply(tmp_path, text) == [f"~ directory group {WEB_DEVS} -> team web: member -> maintainer"]
    assert mappings() == [(WEB_DEVS, "maintainer")]
    assert Membership.objects.get(user=carol).role == "maintainer"


@pytest.mark.parametrize(
    ("groups", "message"),
    [
        ('[{group: "web-devs"}]', "teams[0] (web).directory_groups[0]: 'web-devs' is not a distinguished name"),
        (
            f'[{{group: "cn=web,ou=people,dc=example,dc=org"}}, {{group: "{WEB_DEVS}"}}]',
            "outside LDAP_GROUP_SEARCH_BASE",
        ),
        (f'[{{group: "{WEB_DEVS}"}}, {{group: "CN=web-devs, ou=groups,dc=example,dc=org"}}]', "listed twice"),
        (f'[{{group: "{WEB_DEVS}", role: owner}}]', "role must be maintainer or member"),
        (f'[{{group: "{WEB_DEVS}", rol: member}}]', "directory_groups[0]: unknown key 'rol'"),
        ("[{role: member}]", "directory_groups[0]: missing 'group'"),
        ("[{group: [cn=a]}]", "group must be a string, not a list"),
        ("[{group: 2020-01-01}]", "group must be a string, not a date"),
        (f'[{{group: "{WEB_DEVS}", role: 1}}]', "role must be a string"),
        ("[cn=a]", "directory_groups[0]: must be a mapping"),
        ('{group: "cn=a"}', "directory_groups must be a list, not a mapping"),
    ],
)
def test_a_bad_group_names_the_entry_and_changes_nothing(
    tmp_path: Path, web_with_devs: Team, settings: Settings, groups: str, message: str
) -> None:
    settings.LDAP_GROUP_SEARCH_BASE = "ou=groups,dc=example,dc=org"
    records = AuditRecord.objects.count()
    with pytest.raises(CommandError) as excinfo:
        apply(tmp_path, WITHOUT_GROUPS + f"    directory_groups: {groups}\n")
    assert message in str(excinfo.value) and "nothing changed" in str(excinfo.value)
    assert mappings() == [(WEB_DEVS, "member")] and AuditRecord.objects.count() == records


def test_weird_groups_are_policy_errors_not_crashes() -> None:
    for groups in ("[null]", "[{group: null}]", '[{group: "\\0"}]', '[{group: "cn=\\ud800"}]', "[{? [a]: 1}]", "7"):
        with pytest.raises(policy.PolicyError):
            policy.load(f"teams:\n- name: web\n  directory_groups: {groups}\n")


def test_a_directory_only_member_survives_a_members_list_without_them(
    tmp_path: Path, web_with_devs: Team, carol: User
) -> None:
    text = WITHOUT_GROUPS + f'    directory_groups: [{{group: "{WEB_DEVS}"}}]\n'
    assert apply(tmp_path, text) == []
    membership = Membership.objects.get(user=carol)
    assert membership.role == "member" and membership.local_role == ""


def test_an_omitted_member_with_a_group_loses_only_the_local_source(
    tmp_path: Path, web_with_devs: Team, bob: User
) -> None:
    services.directory.set_directory_groups(
        web_with_devs, [(WEB_DEVS, "member"), (WEB_LEADS, "maintainer")], context=SYSTEM
    )
    join_through_group(bob, web_with_devs, WEB_LEADS)
    text = POLICY.replace(", {user: bob, role: member}", "")
    assert apply(tmp_path, text) == ["- member bob of team web (local role; directory groups keep it)"]
    membership = Membership.objects.get(user=bob)
    assert (membership.role, membership.local_role) == ("maintainer", "")


def test_a_members_role_is_the_local_one(tmp_path: Path, web_with_devs: Team, bob: User) -> None:
    services.directory.set_directory_groups(
        web_with_devs, [(WEB_DEVS, "member"), (WEB_LEADS, "maintainer")], context=SYSTEM
    )
    join_through_group(bob, web_with_devs, WEB_LEADS)  # effective maintainer, local member: nothing to change
    assert apply(tmp_path, POLICY) == []


def test_listing_a_directory_only_member_adds_a_local_source(tmp_path: Path, web_with_devs: Team, carol: User) -> None:
    text = POLICY.replace("{user: bob, role: member}", "{user: bob, role: member}, {user: carol, role: maintainer}")
    assert "+ member carol of team web (maintainer)" in apply(tmp_path, text)
    membership = Membership.objects.get(user=carol)
    assert (membership.role, membership.local_role) == ("maintainer", "maintainer")


def test_export_then_apply_is_a_round_trip(tmp_path: Path, web_with_devs: Team, bob: User) -> None:
    services.directory.set_directory_groups(
        web_with_devs, [(WEB_LEADS, "maintainer"), (WEB_DEVS, "member")], context=SYSTEM
    )
    join_through_group(bob, web_with_devs, WEB_LEADS)
    services.create_team("ops", context=SYSTEM)
    exported = policy.export()
    web, ops = exported["teams"][1], exported["teams"][0]
    assert web["members"] == [{"user": "alice", "role": "maintainer"}, {"user": "bob", "role": "member"}]
    assert web["directory_groups"] == [
        {"group": WEB_DEVS, "role": "member"},
        {"group": WEB_LEADS, "role": "maintainer"},
    ]
    assert "directory_groups" not in ops
    assert apply(tmp_path, policy.dump(exported), "--dry-run") == []
