"""Refresh tokens: what ``docker login`` keeps instead of the password. Stored only hashed.

Docker keeps the refresh token from login and ignores a new one returned on
refresh, so a refresh returns the same token (no rotation on use).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from accounts.models import RefreshToken, User

REFRESH_PREFIX = "rgr_"


def _hash(token: str) -> str:
    key = hashlib.sha256(b"registryadmin refresh token pepper\0" + settings.SECRET_KEY.encode()).digest()
    return hmac.new(key, token.encode(), hashlib.sha256).hexdigest()


def new_refresh_token(user: User, service: str, client_id: str) -> str:
    """A new refresh token for ``user``; only its hash is stored."""
    token = REFRESH_PREFIX + secrets.token_urlsafe(32)
    RefreshToken.objects.create(
        user=user,
        token_hash=_hash(token),
        client_id=client_id[:100],
        service=service,
        expires_at=timezone.now() + timedelta(seconds=settings.REFRESH_TOKEN_TTL),
    )
    return token


def user_for_refresh_token(token: str, service: str) -> User | None:
    """The live, active owner of ``token`` for ``service``, or None."""
    if not token.startswith(REFRESH_PREFIX) or len(token) > 200:
        return None
    row = (
        RefreshToken.objects.select_related("user")
        .filter(token_hash=_hash(token), revoked_at__isnull=True, expires_at__gt=timezone.now(), service=service)
        .first()
    )
    if row is None or not row.user.is_active:
        return None
    if row.last_used_at is None or timezone.now() - row.last_used_at > timedelta(minutes=1):
        RefreshToken.objects.filter(pk=row.pk).update(last_used_at=timezone.now())
    return row.user


def revoke_refresh_tokens(user: User, reason: str) -> int:
    """Revoke every live refresh token of ``user`` (callers hold a transaction)."""
    return RefreshToken.objects.filter(user=user, revoked_at__isnull=True).update(
        revoked_at=timezone.now(), revoked_reason=reason[:100]
    )
