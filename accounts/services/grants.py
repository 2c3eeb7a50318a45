"""Grants: give, change, revoke and expire them, and keep a team's robots and leads inside the team's own."""

from __future__ import annotations

from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.access.engine import role_at_most
from accounts.access.patterns import pattern_contains
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
    """Give ``subject`` (a user or a team) ``role`` on repositories matching ``pattern``."""
    pattern = _clean_pattern(pattern)
    if role not in Role.values:
        raise ValidationError({"role": f"Unknown role {role!r}; use read, write or admin."})
    _check_expiry(expires_at)
    if isinstance(subject, Robot):
        check_robot_grant(subject, pattern, role, registry)
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
    """Change a grant's role and/or expiry (pass ``expires_at=None`` to remove the expiry)."""
    grant = _grants().select_for_update(of=("self",)).get(pk=grant.pk)
    before = grant_state(grant)
    if role is not None:
        if role not in Role.values:
            raise ValidationError({"role": f"Unknown role {role!r}; use read, write or admin."})
        grant.role = role
    if expires_at is not ...:
        grant.expires_at = expires_at  # type: ignore[assignment]
    after = grant_state(grant)
    if before != after:
        grant.save(update_fields=["role", "expires_at"])
        record_change(context, "grant.update", str(grant), before=before, after=after, registry=_svc(grant.registry))
    return grant


@transaction.atomic
def revoke_grant(grant: Grant, *, context: AuditContext, reason: str = "grant.revoke") -> None:
    state = grant_state(grant)
    label = str(grant)
    grant.delete()
    record_change(context, reason, label, before=state, registry=state["registry"] or "")


def purge_expired_grants(*, now: datetime | None = None) -> int:
    """Delete grants whose expiry has passed, one audit record each (in its own transaction)."""
    now = now or timezone.now()
    context = AuditContext.system("expiry")
    expired = Grant.objects.filter(expires_at__lte=now).select_related("user", "team", "registry", "managed_by")
    count = 0
    for grant in expired.iterator():
        with transaction.atomic():
            locked = Grant.objects.select_for_update().filter(pk=grant.pk, expires_at__lte=now).first()
            if locked is None:
                continue  # revoked or extended meanwhile
            revoke_grant(grant, context=context, reason="grant.expire")
            count += 1
    return count


def _grants():
    return Grant.objects.select_related("user", "team", "registry", "managed_by")


def check_within_team(team: Team, pattern: str, role: str, registry: Registry | None = None) -> datetime | None:
    """``role`` on ``pattern`` must lie inside one of the team's unexpired grants (engine's containment test).

    Returns when the longest-lived of those containing grants ends (None: one of them never does).
    """
    now = timezone.now()
    ends: list[datetime | None] = []
    for grant in Grant.objects.filter(team=team).select_related("registry"):
        if grant.expires_at is not None and grant.expires_at <= now:
            continue
        if grant.registry_id is not None and grant.registry_id != (registry.pk if registry else None):
            continue
        if pattern_contains(grant.pattern, pattern) and role_at_most(role, grant.role):
            ends.append(grant.expires_at)
    if not ends:
        raise ValidationError({"pattern": f"{role} on {pattern!r} lies outside what team {team.name} holds."})
    return None if None in ends else max(end for end in ends if end is not None)


def check_robot_grant(robot: Robot, pattern: str, role: str, registry: Registry | None = None) -> None:
    """A team robot may only be granted what lies inside its team's grants."""
    if robot.team_id is not None:
        check_within_team(robot.team, pattern, role, registry)
