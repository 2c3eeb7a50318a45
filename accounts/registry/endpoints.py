"""The shared secret a registry sends with its notifications (Authorization: Bearer ...).

We must print it into the registry's config again and again, so it is kept
encrypted (KEY_ENCRYPTION_KEY), not hashed, and compared in constant time.
"""

from __future__ import annotations

import hmac
import secrets

from django.db import transaction

from accounts.constants import NOTIFICATION_SECRET_PREFIX
from accounts.models import NotificationEndpoint, Registry
from audit.context import AuditContext
from audit.models import Kind, SubjectType
from audit.services import record
from registryadmin.keywrap import unwrap, wrap

_plain_cache: dict[bytes, str] = {}


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


def check_bearer(registry: Registry, header: str) -> bool:
    """Constant-time check of ``Authorization: Bearer <secret>`` against the stored secret."""
    scheme, _, presented = header.partition(" ")
    endpoint = NotificationEndpoint.objects.filter(registry=registry).values_list("secret", flat=True).first()
    if endpoint is None:
        return False
    ciphertext = bytes(endpoint)
    expected = _plain_cache.get(ciphertext)
    if expected is None:
        expected = unwrap(ciphertext).decode()
        if len(_plain_cache) > 100:
            _plain_cache.clear()
        _plain_cache[ciphertext] = expected
    return scheme == "Bearer" and hmac.compare_digest(presented.strip().encode(), expected.encode())
