"""Refresh tokens at the token endpoint: who a presented one belongs to. Stored only hashed.

Docker keeps the refresh token from login and ignores a new one returned on
refresh, so a refresh returns the same token (no rotation on use). Making and revoking them are writes:
``accounts.services.refresh``.

Was ``accounts/refresh.py`` before the layout split.
"""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from accounts.constants import REFRESH_TOKEN_PREFIX
from accounts.models import RefreshToken, User
from accounts.registry.secrets import hash_candidates, kept_peppers


def user_for_refresh_token(token: str, service: str) -> User | None:
    """The live, active owner of ``token`` for ``service``, or None."""
    if not token.startswith(REFRESH_TOKEN_PREFIX) or len(token) > 200:
        return None
    row = (
        RefreshToken.objects.select_related("user")
        .filter(
            token_hash__in=hash_candidates(token, kept_peppers()),
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
