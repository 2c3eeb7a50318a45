"""Grants: give, change, revoke and expire them, and keep what a team manages inside the team's own.

A grant with ``managed_by = T`` (handed out by T's leads, or made with that team by an admin, the
policy file or Django's admin) leans on T's grants: it must lie inside one of T's unexpired grants
(pattern contained, same registry or T's grant for every registry, role at most T's). Every way in
refuses one that does not (``create_grant``, ``update_grant``), and every way T's grants shrink
(revoked, narrowed, expired, the team deleted) ends the managed grants that no longer fit, in the
same transaction: capped to the role T still covers, or revoked, each with its own ``admin_change``
record that names the team grant whose change caused it (``bound_managed_grants``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from accounts.access.engine import role_at_most
from accounts.access.patterns import pattern_contains
from accounts.constants import ROLE_ORDER
from accounts.models import Grant, Registry, Robot, Role, Team, User
from accounts.services._common import _check_expiry, _clean_pattern, _svc, grant_state
from audit.context import AuditContext
from audit.services import record_change


@transaction.atomic
def create_grant(
    subject: User | Team | Robot,
    pattern: str,
    role: str,
    *,
    context: AuditContext,
    registry: Registry | None = None,
    expires_at: datetime | None = None,
    managed_by: Team | None = None,
) -> Grant:
    """Give ``subject`` (a user, team or robot) ``role`` on repositories matching ``pattern``.

    With ``managed_by``, the grant must lie inside that team's unexpired grants.
    """
    pattern = _clean_pattern(pattern)
    _check_role(role)
    _check_expiry(expires_at)
    if isinstance(subject, Robot):
        check_robot_grant(subject, pattern, role, registry)
    if managed_by is not None and not (isinstance(subject, Team) and subject.pk == managed_by.pk):
        _lock_team(managed_by)  # a concurrent change to the team's grants waits: no managed grant slips outside
        check_within_team(managed_by, pattern, role, registry)
    grant = Grant(
        pattern=pattern,
        role=role,
        registry=registry,
        expires_at=expires_at,
        managed_by=managed_by,
        created_by_id=context.actor_id,
        user=subject if isinstance(subject, User) else None,
        team=subject if isinstance(subject, Team) else None,
        robot=subject if isinstance(subject, Robot) else None,
    )
    try:
        with transaction.atomic():
            grant.save()
    except IntegrityError:
        raise ValidationError(
            {"pattern": f"{grant.subject_label} already has a grant on {pattern!r}; change that one instead."}
        ) from None
    record_change(context, "grant.create", str(grant), after=grant_state(grant), registry=_svc(registry))
    return grant


@transaction.atomic
def update_grant(
    grant: Grant,
    *,
    context: AuditContext,
    role: str | None = None,
    expires_at: datetime | object | None = ...,
) -> Grant:
    """Change a grant's role and/or expiry (pass ``expires_at=None`` to remove the expiry).

    A managed grant must still lie inside its team's grants; a team grant that loses role or
    lifetime takes the grants its team manages down with it (``bound_managed_grants``).
    """
    grant = _grants().select_for_update(of=("self",)).get(pk=grant.pk)
    before = grant_state(grant)
    if role is not None:
        _check_role(role)
        grant.role = role
    if expires_at is not ...:
        _check_expiry(expires_at)  # type: ignore[arg-type]
        grant.expires_at = expires_at  # type: ignore[assignment]
    after = grant_state(grant)
    if before == after:
        return grant
    if grant.managed_by_id is not None and grant.team_id != grant.managed_by_id and role_raised(before, after):
        check_within_team(grant.managed_by, grant.pattern, grant.role, grant.registry)
    grant.save(update_fields=["role", "expires_at"])
    record_change(context, "grant.update", str(grant), before=before, after=after, registry=_svc(grant.registry))
    if grant.team_id is not None and _shrank(before, after):
        expired = grant.expires_at is not None and grant.expires_at <= timezone.now()
        bound_managed_grants(grant.team, context=context, cause=_cause(before, "expired" if expired else "narrowed"))
    return grant


@transaction.atomic
def revoke_grant(grant: Grant, *, context: AuditContext, reason: str = "grant.revoke") -> None:
    """Revoke ``grant``; a team grant takes with it what its team manages that no longer fits."""
    state = grant_state(grant)
    label = str(grant)
    team = grant.team
    grant.delete()
    record_change(context, reason, label, before=state, registry=state["registry"] or "")
    if team is not None:
        change = "expired" if reason == "grant.expire" else "revoked"
        bound_managed_grants(team, context=context, cause=_cause(state, change))


def purge_expired_grants(*, now: datetime | None = None) -> int:
    """Delete grants whose expiry has passed, one audit record each (in its own transaction)."""
    now = now or timezone.now()
    context = AuditContext.system("expiry")
    expired = Grant.objects.filter(expires_at__lte=now).select_related("user", "team", "registry", "managed_by")
    count = 0
    # Team grants first: the managed grants they take with them are recorded as caused by them.
    for grant in expired.order_by(F("team_id").asc(nulls_last=True), "pk").iterator():
        with transaction.atomic():
            locked = Grant.objects.select_for_update().filter(pk=grant.pk, expires_at__lte=now).first()
            if locked is None:
                continue  # revoked or extended meanwhile, or ended by its team's grant just before
            revoke_grant(grant, context=context, reason="grant.expire")
            count += 1
    return count


# --- What a team manages stays inside what the team holds ---------------------------------------


def bound_managed_grants(team: Team, *, context: AuditContext, cause: dict[str, Any]) -> list[Grant]:
    """Cap or revoke every grant ``team`` manages that its unexpired grants no longer cover.

    Called inside the transaction of the change that shrank the team's grants. A managed grant
    keeps the highest role still covered on its pattern (``grant.cap``), or is revoked when none
    is (``grant.revoke``); both records carry ``cause`` (the team grant that changed, and how).
    Returns the grants changed or revoked.
    """
    _lock_team(team)
    now = timezone.now()
    held = current_team_grants(team, now)
    touched = []
    managed = _grants().select_for_update(of=("self",)).filter(managed_by=team).exclude(team=team).order_by("pk")
    for grant in managed:
        covered = covered_role(held, grant.pattern, grant.registry_id, now)
        if covered is not None and role_at_most(grant.role, covered):
            continue
        before = grant_state(grant)
        if covered is None:
            grant.delete()
            record_change(
                context, "grant.revoke", str_of(before), before=before, registry=before["registry"] or "", cause=cause
            )
        else:
            grant.role = _lower(grant.role, covered)
            grant.save(update_fields=["role"])
            after = grant_state(grant)
            record_change(
                context,
                "grant.cap",
                str_of(before),
                before=before,
                after=after,
                registry=_svc(grant.registry),
                cause=cause,
            )
        touched.append(grant)
    return touched


@transaction.atomic
def end_managed_grants(team: Team, *, context: AuditContext) -> int:
    """Revoke every grant ``team`` manages (the team is going): one record each, naming the team."""
    cause = {"team": team.name, "change": "team deleted"}
    count = 0
    for grant in _grants().select_for_update(of=("self",)).filter(managed_by=team).exclude(team=team).order_by("pk"):
        before = grant_state(grant)
        grant.delete()
        record_change(
            context, "grant.revoke", str_of(before), before=before, registry=before["registry"] or "", cause=cause
        )
        count += 1
    return count


def current_team_grants(team: Team, now: datetime) -> list[Grant]:
    """``team``'s own grants that have not expired."""
    return [g for g in team.grants.select_related("registry") if g.expires_at is None or g.expires_at > now]


def covering_grants(held: Iterable[Grant], pattern: str, registry_id: int | None, now: datetime) -> list[Grant]:
    """The unexpired grants among ``held`` whose pattern contains ``pattern`` on that registry."""
    return [
        g
        for g in held
        if (g.expires_at is None or g.expires_at > now)
        and (g.registry_id is None or g.registry_id == registry_id)
        and pattern_contains(g.pattern, pattern)
    ]


def covered_role(held: Iterable[Grant], pattern: str, registry_id: int | None, now: datetime) -> str | None:
    """The highest role ``held`` gives on all of ``pattern`` (None: no grant covers it)."""
    roles = [g.role for g in covering_grants(held, pattern, registry_id, now)]
    return max(roles, key=ROLE_ORDER.index, default=None)


def lies_in(held: Iterable[Grant], grant: Grant, now: datetime) -> Grant | None:
    """The team grant ``grant`` lies in: the narrowest of those covering it with at least its role."""
    enough = [
        g for g in covering_grants(held, grant.pattern, grant.registry_id, now) if role_at_most(grant.role, g.role)
    ]
    # Narrowest first (it contains the fewest of the others), then one that never expires.
    return min(
        enough,
        key=lambda g: (sum(pattern_contains(g.pattern, o.pattern) for o in enough), g.expires_at is not None),
        default=None,
    )


def attach_parents(grants: Iterable[Grant], now: datetime) -> None:
    """Set ``grant.parent`` on each managed grant: the team grant it lies in (None: none any more).

    One query for the teams of a whole page; other grants get ``parent = None``.
    """
    grants = list(grants)
    team_ids = {g.managed_by_id for g in grants if g.managed_by_id and g.team_id != g.managed_by_id}
    held: dict[int, list[Grant]] = {team_id: [] for team_id in team_ids}
    for team_grant in Grant.objects.filter(team_id__in=team_ids).select_related("registry"):
        held[team_grant.team_id].append(team_grant)
    for grant in grants:
        grant.parent = lies_in(held[grant.managed_by_id], grant, now) if grant.managed_by_id in held else None


def check_within_team(team: Team, pattern: str, role: str, registry: Registry | None = None) -> datetime | None:
    """``role`` on ``pattern`` must lie inside one of the team's unexpired grants (engine's containment test).

    Returns when the longest-lived of those containing grants ends (None: one of them never does).
    """
    now = timezone.now()
    ends = [
        g.expires_at
        for g in covering_grants(current_team_grants(team, now), pattern, registry.pk if registry else None, now)
        if role_at_most(role, g.role)
    ]
    if not ends:
        raise ValidationError({"pattern": f"{role} on {pattern!r} lies outside what team {team.name} holds."})
    return None if None in ends else max(end for end in ends if end is not None)


def check_robot_grant(robot: Robot, pattern: str, role: str, registry: Registry | None = None) -> None:
    """A team robot may only be granted what lies inside its team's grants."""
    if robot.team_id is not None:
        check_within_team(robot.team, pattern, role, registry)


def role_raised(before: dict[str, Any], after: dict[str, Any]) -> bool:
    return ROLE_ORDER.index(after["role"]) > ROLE_ORDER.index(before["role"])


def str_of(state: dict[str, Any]) -> str:
    """A grant's label from its recorded state (the row is gone)."""
    if state.get("robot"):
        subject = f"robot {state['robot']}"
    else:
        subject = f"user {state['user']}" if state["user"] else f"team {state['team']}"
    return f"{state['role']} on {state['pattern']} to {subject}"


def _shrank(before: dict[str, Any], after: dict[str, Any]) -> bool:
    """Whether a team grant now gives less: a lower role, or an expiry that came closer."""
    if ROLE_ORDER.index(after["role"]) < ROLE_ORDER.index(before["role"]):
        return True
    old, new = before["expires_at"], after["expires_at"]
    return new is not None and (old is None or new < old)


def _cause(state: dict[str, Any], change: str) -> dict[str, Any]:
    """What the records of a cascade name: the team grant (its pattern, role, registry) and how it changed."""
    return {
        "team": state["team"],
        "pattern": state["pattern"],
        "role": state["role"],
        "registry": state["registry"],
        "change": change,
    }


def _lower(role: str, cap: str) -> str:
    return role if ROLE_ORDER.index(role) <= ROLE_ORDER.index(cap) else cap


def _lock_team(team: Team) -> None:
    """Serialise what a team's grants bound: a managed grant made and the team's grants shrinking at once."""
    Team.objects.select_for_update().filter(pk=team.pk).first()


def _check_role(role: str) -> None:
    if role not in Role.values:
        raise ValidationError({"role": f"Unknown role {role!r}; use read, write or admin."})


def _grants():
    return Grant.objects.select_related("user", "team", "robot__team", "registry", "managed_by")
