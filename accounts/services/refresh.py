"""Refresh tokens' writes: one made at ``docker login``, all of a user's revoked at once.

Only the hash is stored; ``accounts.registry.refresh`` looks a presented token up.
Moved from ``accounts/refresh.py``.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from accounts.constants import REFRESH_TOKEN_PREFIX
from accounts.models import RefreshToken, User
from accounts.registry.secrets import new_secret, secret_hash


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


def revoke_refresh_tokens(user: User, reason: str) -> int:
    """Revoke every live refresh token of ``user`` (callers hold a transaction)."""
    return RefreshToken.objects.filter(user=user, revoked_at__isnull=True).update(
        revoked_at=timezone.now(), revoked_reason=reason[:100]
    )
