"""Checking the shared secret a registry sends with its notifications (Authorization: Bearer ...).

We must print it into the registry's config again and again, so it is kept
encrypted (KEY_ENCRYPTION_KEY), not hashed, and compared in constant time. Making and rotating it
are writes: ``accounts.services.endpoints``.

Was ``accounts/endpoints.py`` before the layout split.
"""

from __future__ import annotations

import hmac
from datetime import timedelta

from django.utils import timezone

from accounts.models import NotificationEndpoint, Registry
from registryadmin.keywrap import unwrap

_plain_cache: dict[bytes, str] = {}
NOTE_EVERY = timedelta(minutes=1)
CURRENT, PREVIOUS = "current", "previous"


def check_bearer(registry: Registry, header: str) -> str | None:
    """Constant-time check of ``Authorization: Bearer <secret>``: "current", "previous" (in its grace) or None.

    Both secrets are compared whatever the first answer, so the time taken does not tell them apart.
    Which one the registry used is kept on the endpoint, at most once a minute (the registry page shows it).
    """
    scheme, _, presented = header.partition(" ")
    endpoint = NotificationEndpoint.objects.filter(registry=registry).first()
    if endpoint is None:
        return None
    given = presented.strip().encode()
    now = timezone.now()
    current = hmac.compare_digest(given, _plain(endpoint.secret))
    in_grace = bool(endpoint.previous_secret) and endpoint.previous_valid_until is not None
    in_grace = in_grace and now < endpoint.previous_valid_until  # an old one past its grace is not even decrypted
    previous = hmac.compare_digest(given, _plain(endpoint.previous_secret) if in_grace else b"\0")
    used = CURRENT if current else PREVIOUS if previous else None
    if scheme != "Bearer" or used is None:
        return None
    if endpoint.last_used != used or endpoint.last_used_at is None or now - endpoint.last_used_at >= NOTE_EVERY:
        NotificationEndpoint.objects.filter(pk=endpoint.pk).update(last_used=used, last_used_at=now)
    return used


def _plain(ciphertext: bytes) -> bytes:
    ciphertext = bytes(ciphertext)
    expected = _plain_cache.get(ciphertext)
    if expected is None:
        expected = unwrap(ciphertext).decode()
        if len(_plain_cache) > 100:
            _plain_cache.clear()
        _plain_cache[ciphertext] = expected
    return expected.encode()
