"""Teams and their memberships."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from accounts.models import Membership, Team, TeamRole, User
from accounts.registry import htpasswd
from accounts.services._common import _credential_record, grant_state
from audit.context import AuditContext
from audit.services import record_change


@transaction.atomic
def create_team(name: str, *, context: AuditContext, description: str = "") -> Team:
    team = Team(name=name, description=description)
    team.full_clean()
    team.save()
    record_change(context, "team.create", name, after={"name": name, "description": description})
    return team


@transaction.atomic
def update_team(team: Team, *, context: AuditContext, description: str) -> Team:
    team = Team.objects.select_for_update().get(pk=team.pk)
    if team.description != description:
        before = team.description
        team.description = description
        team.full_clean()
        team.save(update_fields=["description"])
        record_change(
            context, "team.update", team.name, before={"description": before}, after={"description": description}
        )
    return team


@transaction.atomic
def delete_team(team: Team, *, context: AuditContext) -> None:
    state = {
        "name": team.name,
        "members": {m.user.username: m.role for m in team.memberships.select_related("user")},
        "grants": [grant_state(g) for g in team.grants.select_related("team", "registry", "managed_by")],
    }
    robots = [robot.login_name for robot in team.robots.select_related("team")]
    team.delete()
    record_change(context, "team.delete", state["name"], before=state)
    for login_name in robots:
        _credential_record(context, "robot.delete", login_name, reason=f"team {state['name']} deleted")
    htpasswd.sync_after_commit()  # the team's robots are gone: drop them from htpasswd files now


@transaction.atomic
def set_membership(team: Team, user: User, role: str, *, context: AuditContext) -> Membership:
    """Add ``user`` to ``team`` with ``role``, or change the role they have."""
    if role not in TeamRole.values:
        raise ValidationError({"role": f"Unknown team role {role!r}; use maintainer or member."})
    membership, created = Membership.objects.select_for_update().get_or_create(
        team=team, user=user, defaults={"role": role}
    )
    target = f"{user.username} in {team.name}"
    if created:
        record_change(context, "membership.add", target, after={"role": role})
    elif membership.role != role:
        before = membership.role
        membership.role = role
        membership.save(update_fields=["role"])
        record_change(context, "membership.change", target, before={"role": before}, after={"role": role})
    return membership


@transaction.atomic
def remove_membership(membership: Membership, *, context: AuditContext) -> None:
    target = f"{membership.user.username} in {membership.team.name}"
    role = membership.role
    membership.delete()
    record_change(context, "membership.remove", target, before={"role": role})
