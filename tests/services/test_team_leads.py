"""Team leads grant and revoke inside their own team's grants, never beyond."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from accounts import authz, services
from accounts.models import Grant, Membership, Team, User
from audit.context import AuditContext
from audit.models import AuditRecord
from tests.conftest import SYSTEM, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def ops(carol: User) -> Team:
    team = services.create_team("ops", context=SYSTEM)
    services.set_membership(team, carol, "maintainer", context=SYSTEM)
    services.create_grant(team, "ops/**", "admin", context=SYSTEM)
    return team


@pytest.fixture
def web_grants(web: Team) -> Team:
    services.create_grant(web, "web/**", "write", context=SYSTEM)
    return web


def as_(user: User) -> dict:
    return {"acting_user": user, "context": AuditContext.for_user(user)}


def test_a_lead_grants_inside_the_teams_grants_and_the_team_manages_it(alice, carol, web_grants) -> None:
    grant = services.lead_grant(web_grants, carol, "web/app", "read", **as_(alice))
    assert grant.managed_by == web_grants
    record = AuditRecord.objects.filter(detail__action="grant.create").latest("id")
    assert record.actor == "alice"


@pytest.mark.parametrize(
    ("pattern", "role"),
    [("web/app", "admin"), ("ops/app", "read"), ("web/**/x", "admin"), ("**", "read"), ("web", "read")],
)
def test_a_lead_cannot_grant_beyond_the_team(alice, carol, web_grants, pattern: str, role: str) -> None:
    with pytest.raises(ValidationError, match="outside what team web holds"):
        services.lead_grant(web_grants, carol, pattern, role, **as_(alice))
    assert not Grant.objects.filter(user=carol).exists()


def test_an_expired_team_grant_gives_a_lead_nothing_to_hand_out(alice, carol, web) -> None:
    services.create_grant(web, "web/**", "write", expires_at=timezone.now() - timedelta(seconds=1), context=SYSTEM)
    with pytest.raises(ValidationError):
        services.lead_grant(web, carol, "web/app", "read", **as_(alice))


def test_a_member_or_a_lead_of_another_team_cannot_grant(bob, carol, alice, web_grants, ops) -> None:
    with pytest.raises(PermissionDenied):
        services.lead_grant(web_grants, carol, "web/app", "read", **as_(bob))
    with pytest.raises(PermissionDenied):
        services.lead_grant(web_grants, alice, "web/app", "read", **as_(carol))


def test_a_lead_revokes_only_what_the_team_manages(alice, carol, web_grants, ops) -> None:
    mine = services.lead_grant(web_grants, carol, "web/app", "read", **as_(alice))
    theirs = services.lead_grant(ops, alice, "ops/db", "read", **as_(carol))
    by_admin = services.create_grant(carol, "web/tools", "read", context=SYSTEM)
    with pytest.raises(PermissionDenied):
        services.lead_revoke(theirs, **as_(alice))
    with pytest.raises(PermissionDenied):
        services.lead_revoke(by_admin, **as_(alice))
    services.lead_revoke(mine, **as_(alice))
    assert set(Grant.objects.revocable_by(alice)) == set()
    assert set(Grant.objects.revocable_by(carol)) == {theirs}


def test_admins_lead_every_team(ada, carol, web_grants) -> None:
    grant = services.lead_grant(web_grants, carol, "web/app", "write", **as_(ada))
    services.lead_revoke(grant, **as_(ada))
    assert authz.is_team_lead(ada, web_grants)


def test_a_lead_manages_members_of_their_own_team_only(alice, carol, web, ops) -> None:
    erin = make_user("erin")
    services.lead_set_membership(web, erin, "member", **as_(alice))
    assert Membership.objects.filter(team=web, user=erin).exists()
    with pytest.raises(PermissionDenied):
        services.lead_set_membership(ops, erin, "member", **as_(alice))
    services.lead_remove_membership(Membership.objects.get(team=web, user=erin), **as_(alice))
    assert not Membership.objects.filter(team=web, user=erin).exists()


def test_a_deactivated_lead_leads_nothing(alice, carol, web_grants) -> None:
    services.update_user(alice, is_active=False, context=SYSTEM)
    alice.refresh_from_db()
    with pytest.raises(PermissionDenied):
        services.lead_grant(web_grants, carol, "web/app", "read", **as_(alice))


def test_a_lead_may_grant_to_the_teams_robots_but_not_another_teams(alice, web_grants, ops) -> None:
    robot, _ = services.create_robot(web_grants, "ci", context=SYSTEM)
    other, _ = services.create_robot(ops, "ci", context=SYSTEM)
    services.lead_grant(web_grants, robot, "web/app", "write", **as_(alice))
    with pytest.raises(PermissionDenied):
        services.lead_grant(web_grants, other, "web/app", "read", **as_(alice))


def test_a_lead_cannot_hand_out_longer_than_the_team_holds(alice, carol, web) -> None:
    friday = timezone.now() + timedelta(days=3)
    services.create_grant(web, "web/**", "write", expires_at=friday, context=SYSTEM)
    forever = services.lead_grant(web, carol, "web/app", "read", **as_(alice))
    assert forever.expires_at == friday
    bob = make_user("bobby")
    later = services.lead_grant(web, bob, "web/app", "read", expires_at=friday + timedelta(days=30), **as_(alice))
    assert later.expires_at == friday
    sooner = services.lead_grant(
        web, make_user("erin"), "web/app", "read", expires_at=friday - timedelta(days=1), **as_(alice)
    )
    assert sooner.expires_at == friday - timedelta(days=1)


def test_a_never_ending_team_grant_leaves_the_leads_expiry_alone(alice, carol, web) -> None:
    services.create_grant(web, "web/**", "write", expires_at=timezone.now() + timedelta(days=1), context=SYSTEM)
    services.create_grant(web, "web/app", "read", context=SYSTEM)
    assert services.lead_grant(web, carol, "web/app", "read", **as_(alice)).expires_at is None


def test_an_auditor_who_is_a_maintainer_leads_nothing(carol, web) -> None:
    auditor = make_user("audra", is_auditor=True)
    services.set_membership(web, auditor, "maintainer", context=SYSTEM)
    services.create_grant(web, "web/**", "write", context=SYSTEM)
    assert not authz.is_team_lead(auditor, web)
    with pytest.raises(PermissionDenied):
        services.lead_grant(web, carol, "web/app", "read", **as_(auditor))
