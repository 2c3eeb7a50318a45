"""Writing audit records. Callers run these inside their own transaction."""

from __future__ import annotations

import json
from typing import Any

from django.utils import timezone

from audit.chain import record_mac, segment_name
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
    """Append one record, with its segment and MAC. Never pass a secret in ``detail``."""
    time = timezone.now()
    values: dict[str, Any] = {
        "time": time,
        "kind": str(kind),
        "outcome": str(outcome),
        "actor": _text(context.actor, 255),
        "actor_id": context.actor_id,
        "subject_type": str(subject_type),
        "ip": context.ip or None,
        "user_agent": _text(context.user_agent, 512),
        "request_id": _text(context.request_id, 64),
        "registry": _text(registry, 255),
        "repository": _text(repository, 255),
        "actions": as_stored(actions or []),
        "detail": as_stored(detail or {}),
        "segment": segment_name(str(kind), time),
    }
    # Made here, before the INSERT and without a query, from exactly what the row will hold.
    values["mac"] = record_mac(values)
    return AuditRecord.objects.create(**values)


def _text(value: str, limit: int) -> str:
    # PostgreSQL refuses NUL in text and jsonb: a probe with %00 must still be recorded, not crash.
    return value.replace("\x00", "\ufffd")[:limit]


def as_stored(value: Any) -> Any:
    """A JSON value as the database will give it back (string keys, lists for tuples), so the MAC matches."""
    return json.loads(json.dumps(value).replace("\\u0000", "\\ufffd"))


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
