"""Writing audit records. Callers run these inside their own transaction."""

from __future__ import annotations

import json
from typing import Any

from django.db import DatabaseError, connection
from django.db.models import CharField
from django.utils import timezone

from audit.chain import current_key, record_mac, segment_name
from audit.context import AuditContext
from audit.models import AuditRecord, Kind, SubjectType
from registryadmin.metrics import AUDIT_WRITE_FAILURES


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
    values = record_values(
        kind,
        outcome,
        context,
        subject_type=subject_type,
        registry=registry,
        repository=repository,
        actions=actions,
        detail=detail,
    )
    try:
        return AuditRecord.objects.create(**values)
    except DatabaseError:
        AUDIT_WRITE_FAILURES.labels(values["kind"]).inc()  # the caller decides what a missing record means
        raise


def record_values(
    kind: str,
    outcome: str,
    context: AuditContext,
    *,
    subject_type: str = SubjectType.USER,
    registry: str = "",
    repository: str = "",
    actions: list[dict[str, Any]] | None = None,
    detail: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Exactly what the row will hold, its MAC and key id included (made here, before the INSERT, without a query)."""
    key_id, key = current_key()  # cached per process: no per-record key derivation
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
    values["key_id"] = key_id
    values["mac"] = record_mac(values, key)
    return values


def insert(values: dict[str, Any], *, guard: tuple[str, list[Any]] | None = None) -> bool:
    """Append ``record_values``' row in one raw statement; with ``guard``, only while its condition holds.

    The token endpoint's record: the ORM's ``create`` costs more Python than the database takes to
    write the row. Each value goes through its field's own ``get_db_prep_save`` (what ``create``
    sends), so the stored row, and so its MAC's inputs, are the same either way. ``guard`` is an SQL
    condition with its parameters (``accounts.access.version.guard``): the row is written only
    while it holds, in the same statement, and the answer says whether it was.
    """
    fields = _insert_fields()
    params = [field.get_db_prep_save(values[field.name], connection) for field in fields]
    columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    table = connection.ops.quote_name(AuditRecord._meta.db_table)
    if connection.vendor == "postgresql":
        # Typed placeholders: in INSERT ... SELECT PostgreSQL reads an untyped parameter as text.
        slots = ", ".join(f"%s::{'text' if isinstance(f, CharField) else f.db_type(connection)}" for f in fields)
    else:
        slots = ", ".join("%s" for _ in fields)
    if guard is None:
        sql = f"INSERT INTO {table} ({columns}) VALUES ({slots})"
    else:
        condition, guard_params = guard
        sql = f"INSERT INTO {table} ({columns}) SELECT {slots} WHERE {condition}"
        params += guard_params
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.rowcount == 1
    except DatabaseError:
        AUDIT_WRITE_FAILURES.labels(values["kind"]).inc()
        raise


def _insert_fields() -> list[Any]:
    return [field for field in AuditRecord._meta.concrete_fields if not field.primary_key]


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
    cause: dict[str, Any] | None = None,
) -> AuditRecord:
    """An admin change: ``action`` like ``grant.create``, ``target`` a readable name.

    ``cause`` names the change that brought this one about (a team grant revoked ends the grants
    its leads handed out inside it: each of those records names that team grant).
    """
    detail: dict[str, Any] = {"action": action, "target": target}
    if before is not None:
        detail["before"] = before
    if after is not None:
        detail["after"] = after
    if cause is not None:
        detail["cause"] = cause
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
