"""Writing audit records. Callers run these inside their own transaction."""

from __future__ import annotations

from typing import Any

from audit.context import AuditContext
from audit.models import AuditRecord, Kind, SubjectType


def record(
    kind: str,
    outcome: str,
    context: AuditContext,
    *,
    subject_type: str = SubjectType.USER,
    registry: str = "",
    repository: str = "",
    actions: list[dict[str, Any]] | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditRecord:
    """Append one record. Never pass a secret in ``detail``."""
    return AuditRecord.objects.create(
        kind=kind,
        outcome=outcome,
        actor=context.actor[:255],
        actor_id=context.actor_id,
        subject_type=subject_type,
        ip=context.ip or None,
        user_agent=context.user_agent[:512],
        request_id=context.request_id[:64],
        registry=registry[:255],
        repository=repository[:255],
        actions=actions or [],
        detail=detail or {},
    )


def record_change(
    context: AuditContext,
    action: str,
    target: str,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    repository: str = "",
    registry: str = "",
) -> AuditRecord:
    """An admin change: ``action`` like ``grant.create``, ``target`` a readable name."""
    detail: dict[str, Any] = {"action": action, "target": target}
    if before is not None:
        detail["before"] = before
    if after is not None:
        detail["after"] = after
    subject_type = SubjectType.USER if context.actor_id is not None else SubjectType.SYSTEM
    return record(
        Kind.ADMIN_CHANGE,
        "success",
        context,
        subject_type=subject_type,
        registry=registry,
        repository=repository,
        detail=detail,
    )
