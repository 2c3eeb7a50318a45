"""Who may change what: the rules the dashboard and the services share (admins, team leads).

Pure questions over the database; services raise ``PermissionDenied`` with them, and
list pages filter with the same functions, so what a person sees is what they may change.
"""

from __future__ import annotations

from accounts.models import Grant, Membership, Robot, Team, TeamRole, User


def led_team_ids(user: User) -> set[int]:
    """Teams ``user`` leads (maintainer role). An auditor leads none: auditors change nothing."""
    if not user.is_active or (user.is_auditor and not user.is_superuser):
        return set()
    return set(Membership.objects.filter(user=user, role=TeamRole.MAINTAINER).values_list("team_id", flat=True))


def is_team_lead(user: User, team: Team) -> bool:
    """Admins lead every team; otherwise only the team's maintainers."""
    return user.is_active and (user.is_superuser or team.pk in led_team_ids(user))


def can_revoke(user: User, grant: Grant) -> bool:
    """Admins revoke anything; a team lead revokes only grants their team manages (``Grant.objects.revocable_by``)."""
    return Grant.objects.revocable_by(user).filter(pk=grant.pk).exists()


def can_revoke_robot(user: User, robot: Robot) -> bool:
    """Admins revoke any robot; a team lead only the robots of a team they lead."""
    if robot.team_id is None:
        return user.is_active and user.is_superuser
    return is_team_lead(user, robot.team)
