"""The notification secret's writes: made on first use, rotated on request; each audited.

The registry sends it as ``Authorization: Bearer rgn_...``; ``accounts.registry.endpoints`` checks it.
Moved from ``accounts/endpoints.py``.
"""

from __future__ import annotations

import secrets

from django.db import transaction

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


@transaction.atomic
def rotate_notification_secret(registry: Registry, context: AuditContext) -> str:
    secret = _new_secret()
    NotificationEndpoint.objects.update_or_create(registry=registry, defaults={"secret": wrap(secret.encode())})
    record(
        Kind.CREDENTIAL,
        "success",
        context,
        subject_type=SubjectType.SYSTEM,
        registry=registry.service,
        detail={"action": "notification_secret.rotate"},
    )
    return secret
