"""The notification secret's writes: made on first use, rotated on request; each audited.

The registry sends it as ``Authorization: Bearer rgn_...``; ``accounts.registry.endpoints`` checks it.
A rotation keeps the old secret acceptable for a grace period, so the registry can be restarted with
the new one at leisure.
Moved from ``accounts/endpoints.py``.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.constants import NOTIFICATION_SECRET_PREFIX
from accounts.models import NotificationEndpoint, Registry
from audit.context import AuditContext
from audit.models import Kind, SubjectType
from audit.services import record
from registryadmin.keywrap import unwrap, wrap


def _new_secret() -> str:
    return NOTIFICATION_SECRET_PREFIX + secrets.token_urlsafe(32)


@transaction.atomic
def notification_secret(registry: Registry, context: AuditContext | None = None) -> str:
    """The registry's notification secret, made on first use."""
    endpoint = NotificationEndpoint.objects.select_for_update().filter(registry=registry).first()
    if endpoint is None:
        secret = _new_secret()
        NotificationEndpoint.objects.create(registry=registry, secret=wrap(secret.encode()))
        record(
            Kind.CREDENTIAL,
            "success",
            context or AuditContext.system("registry_config"),
            subject_type=SubjectType.SYSTEM,
            registry=registry.service,
            detail={"action": "notification_secret.create"},
        )
        return secret
    return unwrap(endpoint.secret).decode()


DEFAULT_GRACE = timedelta(hours=24)


@transaction.atomic
def rotate_notification_secret(registry: Registry, context: AuditContext, *, grace: timedelta = DEFAULT_GRACE) -> str:
    """A new secret; the old one is still accepted for ``grace`` (restart the registry with the new one meanwhile)."""
    if grace < timedelta(0):
        raise ValidationError({"grace": "The grace period cannot be negative."})
    secret = _new_secret()
    endpoint = NotificationEndpoint.objects.select_for_update().filter(registry=registry).first()
    until = timezone.now() + grace if grace else None
    if endpoint is None:
        NotificationEndpoint.objects.create(registry=registry, secret=wrap(secret.encode()))
        until = None  # nothing was there to keep
    else:
        endpoint.previous_secret, endpoint.previous_valid_until = (endpoint.secret, until) if until else (b"", None)
        endpoint.secret = wrap(secret.encode())
        endpoint.save(update_fields=["secret", "previous_secret", "previous_valid_until"])
    record(
        Kind.CREDENTIAL,
        "success",
        context,
        subject_type=SubjectType.SYSTEM,
        registry=registry.service,
        detail={"action": "notification_secret.rotate", "previous_valid_until": until.isoformat() if until else None},
    )
    return secret
