"""Helpers the service modules share: state snapshots for audit records, input cleaning, credential records."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.utils import timezone

from accounts.access.patterns import InvalidName, validate_pattern, validate_repository_name
from accounts.models import Grant, Registry, User
from audit.context import AuditContext
from audit.models import Kind, SubjectType
from audit.services import record

USER_FIELDS = (
    "username",
    "email",
    "first_name",
    "last_name",
    "is_active",
    "is_superuser",
    "is_auditor",
    "catalog_access",
)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def user_state(user: User) -> dict[str, Any]:
    return {field: getattr(user, field) for field in USER_FIELDS}


def grant_state(grant: Grant) -> dict[str, Any]:
    return {
        "pattern": grant.pattern,
        "role": grant.role,
        "user": grant.user.username if grant.user_id else None,
        "team": grant.team.name if grant.team_id else None,
        **({"robot": grant.robot.login_name} if grant.robot_id else {}),
        "registry": grant.registry.service if grant.registry_id else None,
        "expires_at": _iso(grant.expires_at),
        "managed_by": grant.managed_by.name if grant.managed_by_id else None,
    }


def _clean_pattern(pattern: str) -> str:
    try:
        return validate_pattern(pattern)
    except InvalidName as exc:
        raise ValidationError({"pattern": str(exc)}) from None


def _clean_repository(name: str) -> str:
    try:
        return validate_repository_name(name)
    except InvalidName as exc:
        raise ValidationError({"name": str(exc)}) from None


def _svc(registry: Registry | None) -> str:
    return registry.service if registry else ""


def _check_expiry(expires_at: datetime | None) -> None:
    if expires_at is not None and timezone.is_naive(expires_at):
        raise ValidationError({"expires_at": "Expiry needs a time zone (e.g. 2026-12-31T00:00:00Z)."})


def _credential_record(context: AuditContext, action: str, credential: str, **detail: Any) -> None:
    record(
        Kind.CREDENTIAL,
        "success",
        context,
        subject_type=SubjectType.USER if context.actor_id else SubjectType.SYSTEM,
        detail={"action": action, "credential": credential, **detail},
    )
