"""Teams and their memberships."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from accounts.models import Membership, Team, TeamRole, User
from accounts.registry import htpasswd
from accounts.services._common import _credential_record, grant_state
from accounts.services.grants import end_managed_grants
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
    end_managed_grants(team, context=context)  # would be left unmanaged (SET_NULL) and outside any team's
    team.delete()
    record_change(context, "team.delete", state["name"], before=state)
    for login_name in robots:
        _credential_record(context, "robot.delete", login_name, reason=f"team {state['name']} deleted")
    htpasswd.sync_after_commit()  # the team's robots are gone: drop them from htpasswd files now


@transaction.atomic
def set_membership(team: Team, user: User, role: str, *, context: AuditContext) -> Membership:
    """Give ``user`` the local role ``role`` in ``team`` (directory groups may give a higher one)."""
    if role not in TeamRole.values:
        raise ValidationError({"role": f"Unknown team role {role!r}; use maintainer or member."})
    membership, created = Membership.objects.select_for_update().get_or_create(
        team=team, user=user, defaults={"role": role, "local_role": role}
    )
    target = f"{user.username} in {team.name}"
    if created:
        record_change(context, "membership.add", target, after={"role": role})
        return membership
    before = {"role": membership.role, "local_role": membership.local_role}
    membership.local_role = role
    membership.role = membership.effective_role(directory_roles(membership)) or role
    after = {"role": membership.role, "local_role": role}
    if after != before:
        membership.save(update_fields=["role", "local_role"])
        action = "membership.change" if before["local_role"] else "membership.add"
        record_change(context, action, target, before=_shown(before), after=_shown(after))
    return membership


@transaction.atomic
def remove_membership(membership: Membership, *, context: AuditContext) -> None:
    """Remove the local source of ``membership``; the row goes unless a directory group still gives one."""
    membership = Membership.objects.select_for_update().select_related("team", "user").get(pk=membership.pk)
    target = f"{membership.user.username} in {membership.team.name}"
    before = {"role": membership.role, "local_role": membership.local_role}
    remaining = directory_roles(membership)
    if not remaining:
        membership.delete()
        record_change(context, "membership.remove", target, before=_shown(before))
        return
    if not membership.local_role:
        raise ValidationError(
            f"{target} comes only from directory groups; change the group in the directory, not here."
        )
    membership.local_role = ""
    membership.role = membership.effective_role(remaining) or before["role"]
    membership.save(update_fields=["role", "local_role"])
    record_change(
        context,
        "membership.remove",
        target,
        before=_shown(before),
        after={"role": membership.role, "local_role": None, "kept_by": "directory group"},
    )


def directory_roles(membership: Membership) -> list[str]:
    return list(membership.directory_groups.values_list("role", flat=True))


def _shown(state: dict[str, str]) -> dict[str, str | None]:
    """Audit state: the local role only when it differs from the effective one (no directory source = same)."""
    if state["local_role"] == state["role"]:
        return {"role": state["role"]}
    return {"role": state["role"], "local_role": state["local_role"] or None}
