"""Checking the shared secret a registry sends with its notifications (Authorization: Bearer ...).

We must print it into the registry's config again and again, so it is kept
encrypted (KEY_ENCRYPTION_KEY), not hashed, and compared in constant time. Making and rotating it
are writes: ``accounts.services.endpoints``.

Was ``accounts/endpoints.py`` before the layout split.
"""

from __future__ import annotations

import hmac

from accounts.models import NotificationEndpoint, Registry
from registryadmin.keywrap import unwrap

_plain_cache: dict[bytes, str] = {}


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
