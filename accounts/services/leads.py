"""What team leads may do, checked here and then done through the same services admins use."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.core.exceptions import PermissionDenied
from django.db import transaction

from accounts import authz
from accounts.models import Grant, Membership, Registry, Robot, Team, User
from accounts.services._common import _clean_pattern
from accounts.services.credentials import RobotRotation, create_robot, revoke_robot, rotate_robot
from accounts.services.grants import check_within_team, create_grant, revoke_grant, update_grant
from accounts.services.teams import remove_membership, set_membership
from audit.context import AuditContext


@transaction.atomic
def lead_grant(
    team: Team,
    subject: User | Robot,
    pattern: str,
    role: str,
    *,
    acting_user: User,
    context: AuditContext,
    registry: Registry | None = None,
    expires_at: datetime | None = None,
) -> Grant:
    """A team lead grants a role inside the team's own grants; the team then manages the grant.

    It lasts no longer than the team's grant it lies in: a lead cannot hand out beyond the team's own expiry.
    """
    if not authz.is_team_lead(acting_user, team):
        raise PermissionDenied(f"{acting_user.username} does not lead team {team.name}.")
    if isinstance(subject, Robot) and subject.team_id != team.pk:
        raise PermissionDenied(f"{subject.login_name} is not a robot of team {team.name}.")
    team_ends = check_within_team(team, _clean_pattern(pattern), role, registry)
    if team_ends is not None and (expires_at is None or expires_at > team_ends):
        expires_at = team_ends
    return create_grant(
        subject, pattern, role, registry=registry, expires_at=expires_at, managed_by=team, context=context
    )


@transaction.atomic
def lead_revoke(grant: Grant, *, acting_user: User, context: AuditContext) -> None:
    """Revoke a grant if ``acting_user`` may: admins any, team leads those their team manages."""
    if not authz.can_revoke(acting_user, grant):
        raise PermissionDenied(f"{acting_user.username} may not revoke {grant}.")
    revoke_grant(grant, context=context)


@transaction.atomic
def lead_set_membership(team: Team, user: User, role: str, *, acting_user: User, context: AuditContext) -> Membership:
    if not authz.is_team_lead(acting_user, team):
        raise PermissionDenied(f"{acting_user.username} does not lead team {team.name}.")
    return set_membership(team, user, role, context=context)


@transaction.atomic
def lead_remove_membership(membership: Membership, *, acting_user: User, context: AuditContext) -> None:
    if not authz.is_team_lead(acting_user, membership.team):
        raise PermissionDenied(f"{acting_user.username} does not lead team {membership.team.name}.")
    remove_membership(membership, context=context)


@transaction.atomic
def lead_create_robot(
    team: Team,
    name: str,
    *,
    acting_user: User,
    context: AuditContext,
    expires_at: datetime | None = None,
    grants: list[tuple[str, str]] | None = None,
    description: str = "",
) -> tuple[Robot, str]:
    """A team lead makes a robot of their team; ``create_robot`` keeps its grants inside the team's."""
    if not authz.is_team_lead(acting_user, team):
        raise PermissionDenied(f"{acting_user.username} does not lead team {team.name}.")
    return create_robot(team, name, context=context, expires_at=expires_at, grants=grants, description=description)


@transaction.atomic
def lead_revoke_robot(robot: Robot, *, acting_user: User, context: AuditContext) -> None:
    """Revoke ``robot`` if ``acting_user`` may (``authz.can_revoke_robot``)."""
    if not authz.can_revoke_robot(acting_user, robot):
        raise PermissionDenied(f"{acting_user.username} may not revoke {robot.login_name}.")
    revoke_robot(robot, context=context)


@transaction.atomic
def lead_rotate_robot(
    robot: Robot, *, acting_user: User, context: AuditContext, grace: timedelta | None = None
) -> RobotRotation:
    """Rotate ``robot``'s secret if ``acting_user`` may (admins any robot, a team's leads its robots)."""
    if not authz.can_revoke_robot(acting_user, robot):
        raise PermissionDenied(f"{acting_user.username} may not rotate {robot.login_name}.")
    if grace is None:
        return rotate_robot(robot, context=context)
    return rotate_robot(robot, context=context, grace=grace)


@transaction.atomic
def lead_set_expiry(
    grant: Grant, expires_at: datetime | None, *, acting_user: User, context: AuditContext
) -> tuple[Grant, bool]:
    """A team's lead extends (or shortens) a grant the team manages: never past the team's own grant it lies in.

    Returns the grant and whether the day asked for was capped to that team grant's expiry.
    """
    if not authz.can_revoke(acting_user, grant) or (grant.team_id is not None and not acting_user.is_superuser):
        # A team's own grant is an admin's to change, even when its team manages it.
        raise PermissionDenied(f"{acting_user.username} may not change {grant}.")
    capped = False
    if grant.managed_by_id is not None and grant.team_id != grant.managed_by_id:
        team_ends = check_within_team(grant.managed_by, grant.pattern, grant.role, grant.registry)
        if team_ends is not None and (expires_at is None or expires_at > team_ends):
            expires_at, capped = team_ends, True
    return update_grant(grant, expires_at=expires_at, context=context), capped
