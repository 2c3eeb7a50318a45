"""Policy as code: apply_policy and export_policy, through the audited services."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts import services
from accounts.models import Grant, Membership, Registry, Repository, Team, User
from audit.models import AuditRecord
from tests.conftest import SYSTEM

pytestmark = pytest.mark.django_db

POLICY = """
users:
  - {username: alice, email: a@x.org, password: "alice-long-passphrase", active: true, admin: false, auditor: false}
  - {username: bob, password: "bob-long-passphrase"}
  - {username: carol}
teams:
  - name: web
    members: [{user: alice, role: maintainer}, {user: bob, role: member}]
    grants: [{repository: "web/*", role: write}]
grants:
  - {user: carol, repository: "web/app", role: read, expires: 2030-01-01T00:00:00Z}
repositories:
  - {name: "pub/base", public: true}
"""


def apply(tmp_path: Path, text: str, *args: str) -> str:
    path = tmp_path / "policy.yml"
    path.write_text(text)
    out = io.StringIO()
    call_command("apply_policy", str(path), *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_it_applies_a_policy_through_the_services(tmp_path: Path) -> None:
    output = apply(tmp_path, POLICY)
    assert "+ user alice" in output and "+ team web" in output
    alice = User.objects.get(username="alice")
    assert alice.check_password("alice-long-passphrase") and alice.email == "a@x.org"
    assert not User.objects.get(username="carol").has_usable_password()
    assert Membership.objects.get(user=alice).role == "maintainer"
    assert Grant.objects.get(team__name="web").pattern == "web/*"
    assert Grant.objects.get(user__username="carol").expires_at.year == 2030
    assert Repository.objects.get(name="pub/base").public
    assert AuditRecord.objects.filter(actor="apply_policy policy.yml").count() == 9


def test_dry_run_prints_the_changes_and_changes_nothing(tmp_path: Path) -> None:
    output = apply(tmp_path, POLICY, "--dry-run")
    lines = output.splitlines()
    assert "+ user alice" in lines
    assert "+ grant write on web/* to team web" in lines
    assert not User.objects.exists() and not AuditRecord.objects.exists()


def test_applying_twice_changes_nothing_the_second_time(tmp_path: Path) -> None:
    apply(tmp_path, POLICY)
    count = AuditRecord.objects.count()
    assert apply(tmp_path, POLICY) == ""
    assert AuditRecord.objects.count() == count


def test_a_listed_teams_members_and_grants_are_authoritative(tmp_path: Path) -> None:
    apply(tmp_path, POLICY)
    smaller = POLICY.replace(", {user: bob, role: member}", "").replace(
        'grants: [{repository: "web/*", role: write}]', 'grants: [{repository: "web/**", role: read}]'
    )
    output = apply(tmp_path, smaller).splitlines()
    assert "- member bob of team web" in output
    assert "- grant write on web/* to team web" in output
    assert list(Team.objects.get(name="web").grants.values_list("pattern", "role")) == [("web/**", "read")]
    assert User.objects.filter(username="bob").exists()  # objects not in the file are left alone


def test_objects_absent_from_the_file_are_left_alone(tmp_path: Path) -> None:
    services.create_user("zoe", context=SYSTEM)
    services.create_team("ops", context=SYSTEM)
    apply(tmp_path, POLICY)
    assert User.objects.filter(username="zoe").exists() and Team.objects.filter(name="ops").exists()


def test_a_password_is_set_only_when_it_differs(tmp_path: Path) -> None:
    apply(tmp_path, POLICY)
    assert "password" not in apply(tmp_path, POLICY)
    changed = POLICY.replace("alice-long-passphrase", "alice-new-passphrase")
    assert "~ user alice: password" in apply(tmp_path, changed)
    assert User.objects.get(username="alice").check_password("alice-new-passphrase")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("users: [{username: a, colour: red}]", "users[0]: unknown key 'colour'"),
        ("users: [{username: a}, {username: a}]", "'a' is listed twice"),
        ("users:\n  - username: a\n    username: b\n", "duplicate key 'username'"),
        ("teams: [{name: web, members: [{user: ghost}]}]", "unknown user 'ghost'"),
        ("grants: [{user: nobody, repository: web/app, role: read}]", "unknown user 'nobody'"),
        ("grants: [{user: a, repository: Web/App, role: read}]", "grants[0]"),
        ("grants: [{user: a, team: b, repository: web/app, role: read}]", "exactly one of user or team"),
        ("grants: [{team: web, repository: web/app, role: owner}]", "role must be read, write or admin"),
        ("repositories: [{name: 'pub/base', public: 'yes'}]", "public must be true or false"),
        ("repositories: [{name: 'pub/base', registry: nowhere}]", "unknown registry 'nowhere'"),
        ("grants: [{user: a, repository: web/app, role: read, expires: soon}]", "not an ISO 8601"),
        ("colours: []", "unknown key 'colours'"),
        ("- just a list", "must be a mapping"),
        ("users: [{username: a", "not valid YAML"),
    ],
)
def test_a_bad_file_names_the_entry_and_changes_nothing(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(CommandError) as excinfo:
        apply(tmp_path, text)
    assert message in str(excinfo.value)
    assert "nothing changed" in str(excinfo.value)
    assert not User.objects.exists() and not AuditRecord.objects.exists()


def test_a_failure_late_in_the_file_rolls_back_everything(tmp_path: Path) -> None:
    text = POLICY.replace('password: "bob-long-passphrase"', 'password: "password"')  # too common
    with pytest.raises(CommandError, match="too common"):
        apply(tmp_path, text)
    assert not User.objects.exists() and not AuditRecord.objects.exists()


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="cannot read"):
        call_command("apply_policy", str(tmp_path / "absent.yml"))


def test_export_then_apply_is_a_round_trip(tmp_path: Path) -> None:
    apply(tmp_path, POLICY)
    services.create_registry("hub", context=SYSTEM)
    services.create_grant(
        User.objects.get(username="bob"),
        "web/tools",
        "write",  # inside team web's write on web/* (a managed grant must be)
        registry=Registry.objects.get(service="hub"),
        managed_by=Team.objects.get(name="web"),
        context=SYSTEM,
    )
    out = io.StringIO()
    call_command("export_policy", stdout=out)
    exported = out.getvalue()
    assert "password" not in exported
    assert apply(tmp_path, exported, "--dry-run") == ""
    assert "managed_by: web" in exported and "registry: hub" in exported


def test_a_dry_run_never_rewrites_a_stored_password_hash(tmp_path: Path) -> None:
    apply(tmp_path, POLICY)
    User.objects.filter(username="alice").update(password="pbkdf2_sha256$1000$salt$" + "A" * 43)
    before = User.objects.get(username="alice").password
    apply(tmp_path, POLICY, "--dry-run")
    assert User.objects.get(username="alice").password == before
