"""Refresh tokens: what ``docker login`` keeps instead of the password. Stored only hashed.

Docker keeps the refresh token from login and ignores a new one returned on
refresh, so a refresh returns the same token (no rotation on use).
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from accounts.constants import REFRESH_TOKEN_PREFIX
from accounts.models import RefreshToken, User
from accounts.registry.secrets import hash_candidates, new_secret, secret_hash


def new_refresh_token(user: User, service: str, client_id: str) -> str:
    """A new refresh token for ``user``; only its hash is stored."""
    token = new_secret(REFRESH_TOKEN_PREFIX)
    RefreshToken.objects.create(
        user=user,
        token_hash=secret_hash(token),
        client_id=client_id[:100],
        service=service,
        expires_at=timezone.now() + timedelta(seconds=settings.REFRESH_TOKEN_TTL),
    )
    return token


def user_for_refresh_token(token: str, service: str) -> User | None:
    """The live, active owner of ``token`` for ``service``, or None."""
    if not token.startswith(REFRESH_TOKEN_PREFIX) or len(token) > 200:
        return None
    row = (
        RefreshToken.objects.select_related("user")
        .filter(
            token_hash__in=hash_candidates(token),
            revoked_at__isnull=True,
            expires_at__gt=timezone.now(),
            service=service,
        )
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
