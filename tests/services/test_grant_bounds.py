"""Grants a team manages lean on the team's own: they must lie inside them, and they end with them.

alice leads team web, which holds write on web/*; she gave bob write on web/app and the robot
web+ci write on web/api. carol is an outsider; ada the admin.
"""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from accounts import services
from accounts.models import Grant, Registry, Team, User
from audit.models import AuditRecord, Kind
from tests.conftest import SYSTEM, ask_registry, granted

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(alice: User, bob: User, carol: User, web: Team) -> dict:
    services.ensure_keys()
    services.create_registry("registry", context=SYSTEM)
    team_grant = services.create_grant(web, "web/*", "write", context=SYSTEM)
    bobs = services.lead_grant(web, bob, "web/app", "write", acting_user=alice, context=SYSTEM)
    robot, _ = services.create_robot(web, "ci", grants=[("web/api", "write")], context=SYSTEM)
    return {"team_grant": team_grant, "bobs": bobs, "robot": robot, "web": web, "alice": alice, "bob": bob}


def cascade_records() -> list[dict]:
    return [
        r.detail
        for r in AuditRecord.objects.filter(kind=Kind.ADMIN_CHANGE).order_by("id")
        if isinstance(r.detail, dict) and "cause" in r.detail
    ]


def test_revoking_the_team_grant_revokes_what_its_leads_handed_out_inside_it(world: dict) -> None:
    services.revoke_grant(world["team_grant"], context=SYSTEM)

    assert not Grant.objects.filter(managed_by=world["web"]).exists()
    records = cascade_records()
    assert sorted(r["target"] for r in records) == [
        "write on web/api to robot robot$web+ci",
        "write on web/app to user bob",
    ]
    for record in records:
        assert record["action"] == "grant.revoke"
        assert record["cause"] == {
            "team": "web",
            "pattern": "web/*",
            "role": "write",
            "registry": None,
            "change": "revoked",
        }


def test_bob_can_no_longer_push_after_the_team_grant_goes(world: dict) -> None:
    assert granted(ask_registry("bob", "correct-horse-battery", "repository:web/app:pull,push")) == {
        "web/app": ["pull", "push"]
    }
    services.revoke_grant(world["team_grant"], context=SYSTEM)
    services.remove_membership(world["web"].memberships.get(user=world["bob"]), context=SYSTEM)

    assert granted(ask_registry("bob", "correct-horse-battery", "repository:web/app:pull,push")) == {"web/app": []}


def test_narrowing_the_team_grant_to_read_caps_managed_grants_to_read(world: dict) -> None:
    services.update_grant(world["team_grant"], role="read", context=SYSTEM)

    assert Grant.objects.get(pk=world["bobs"].pk).role == "read"
    records = cascade_records()
    assert {r["action"] for r in records} == {"grant.cap"}
    bobs = next(r for r in records if r["target"] == "write on web/app to user bob")
    assert bobs["before"]["role"] == "write"
    assert bobs["after"]["role"] == "read"
    assert bobs["cause"]["change"] == "narrowed"
    assert bobs["cause"]["pattern"] == "web/*"


def test_a_grant_that_another_team_grant_still_covers_stays(world: dict) -> None:
    services.create_grant(world["web"], "web/**", "admin", context=SYSTEM)
    services.revoke_grant(world["team_grant"], context=SYSTEM)

    assert Grant.objects.get(pk=world["bobs"].pk).role == "write"
    assert cascade_records() == []


def test_a_narrower_remaining_grant_caps_to_the_role_it_still_covers(world: dict) -> None:
    services.create_grant(world["web"], "web/app", "read", context=SYSTEM)
    services.revoke_grant(world["team_grant"], context=SYSTEM)

    assert Grant.objects.get(pk=world["bobs"].pk).role == "read"
    assert not Grant.objects.filter(pk__in=[g.pk for g in world["robot"].grants.all()]).exists()


def test_an_expired_team_grant_takes_its_managed_grants_when_purged(world: dict) -> None:
    Grant.objects.filter(pk=world["team_grant"].pk).update(expires_at=timezone.now() - timedelta(minutes=1))

    assert services.purge_expired_grants() == 1

    assert not Grant.objects.filter(managed_by=world["web"]).exists()
    assert {r["cause"]["change"] for r in cascade_records()} == {"expired"}


def test_moving_a_team_grants_expiry_into_the_past_ends_its_managed_grants_at_once(world: dict) -> None:
    services.update_grant(world["team_grant"], expires_at=timezone.now() - timedelta(seconds=1), context=SYSTEM)

    assert not Grant.objects.filter(managed_by=world["web"]).exclude(team=world["web"]).exists()
    assert {r["cause"]["change"] for r in cascade_records()} == {"expired"}


def test_deleting_the_team_revokes_the_grants_it_managed_with_a_record_each(world: dict, carol: User) -> None:
    other = services.create_team("ops", context=SYSTEM)
    services.create_grant(other, "web/**", "write", context=SYSTEM)
    carols = services.create_grant(carol, "web/app", "write", managed_by=world["web"], context=SYSTEM)

    services.delete_team(world["web"], context=SYSTEM)

    assert not Grant.objects.filter(pk__in=[carols.pk, world["bobs"].pk]).exists()
    targets = {r["target"] for r in cascade_records()}
    assert {"write on web/app to user carol", "write on web/app to user bob"} <= targets
    assert {r["cause"]["change"] for r in cascade_records()} == {"team deleted"}


def test_a_managed_grant_outside_the_team_is_refused_however_it_is_made(world: dict, carol: User) -> None:
    with pytest.raises(ValidationError, match="lies outside what team web holds"):
        services.create_grant(carol, "ops/app", "read", managed_by=world["web"], context=SYSTEM)
    with pytest.raises(ValidationError, match="lies outside what team web holds"):
        services.create_grant(carol, "web/app", "admin", managed_by=world["web"], context=SYSTEM)
    assert not Grant.objects.filter(user=carol).exists()


def test_raising_a_managed_grant_past_the_team_is_refused_and_lowering_it_is_fine(world: dict) -> None:
    with pytest.raises(ValidationError, match="lies outside"):
        services.update_grant(world["bobs"], role="admin", context=SYSTEM)
    services.update_grant(world["bobs"], role="read", context=SYSTEM)
    assert Grant.objects.get(pk=world["bobs"].pk).role == "read"


def test_a_registry_specific_team_grant_does_not_cover_a_grant_for_every_registry(world: dict, carol: User) -> None:
    registry = Registry.objects.get(service="registry")
    team = services.create_team("ops", context=SYSTEM)
    services.create_grant(team, "ops/*", "write", registry=registry, context=SYSTEM)

    services.create_grant(carol, "ops/app", "write", registry=registry, managed_by=team, context=SYSTEM)
    with pytest.raises(ValidationError, match="lies outside"):
        services.create_grant(carol, "ops/db", "write", managed_by=team, context=SYSTEM)


def test_each_managed_grant_shows_the_team_grant_it_lies_in(world: dict) -> None:
    narrow = services.create_grant(world["web"], "web/app", "write", context=SYSTEM)
    grants = list(Grant.objects.filter(managed_by=world["web"]).exclude(team=world["web"]).order_by("pattern"))

    services.attach_parents(grants, timezone.now())

    parents = {g.pattern: g.parent.pk for g in grants}
    assert parents == {"web/api": world["team_grant"].pk, "web/app": narrow.pk}


def write_policy(tmp_path: Path, text: str) -> str:
    path = tmp_path / "policy.yml"
    path.write_text(text)
    return str(path)


def test_apply_policy_refuses_a_managed_grant_outside_the_teams_grants_after_the_file(
    world: dict, tmp_path: Path
) -> None:
    policy = write_policy(
        tmp_path,
        "teams:\n  - name: web\n    members: [{user: alice, role: maintainer}, {user: bob, role: member}]\n"
        "    grants: [{repository: web/*, role: read}]\n"
        "grants:\n  - {user: bob, repository: web/app, role: write, managed_by: web}\n",
    )
    with pytest.raises(CommandError, match=r"grants\[0\]: write on 'web/app' lies outside what team web holds"):
        call_command("apply_policy", policy, stdout=io.StringIO(), stderr=io.StringIO())
    assert Grant.objects.get(pk=world["bobs"].pk).role == "write"


def test_apply_policy_shows_what_a_narrowed_team_grant_takes_with_it_even_in_a_dry_run(
    world: dict, tmp_path: Path
) -> None:
    policy = write_policy(
        tmp_path,
        "teams:\n  - name: web\n    members: [{user: alice, role: maintainer}, {user: bob, role: member}]\n"
        "    grants: [{repository: web/*, role: read}]\n",
    )
    out = io.StringIO()
    call_command("apply_policy", policy, "--dry-run", stdout=out, stderr=io.StringIO())

    assert "-> capped write on web/app to user bob to read (team web's write on web/* narrowed)" in out.getvalue()
    assert Grant.objects.get(pk=world["bobs"].pk).role == "write"  # a dry run changes nothing

    call_command("apply_policy", policy, stdout=io.StringIO(), stderr=io.StringIO())
    assert Grant.objects.get(pk=world["bobs"].pk).role == "read"
