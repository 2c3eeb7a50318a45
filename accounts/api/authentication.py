"""Who calls the API: a personal access token (``Authorization: Bearer rga_...``) or the browser session.

A token authenticates as its user, limited by the token (``permissions.TokenLimits``): a read-only
token never writes, a token limited to patterns never touches a grant outside them. Robots do not use
the API: their secrets are refused with a message that says so. A token is looked up by its hash
under every pepper this host knows (its own, then those a restored backup brought), like the token
endpoint does, and compared by the database's unique index: nothing here compares secrets by hand.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from accounts.constants import PAT_PREFIX, ROBOT_SECRET_PREFIX
from accounts.models import PersonalAccessToken, User
from accounts.registry.secrets import hash_candidates, kept_peppers

TOUCH_EVERY = timedelta(minutes=1)
MAX_SECRET = 200


class AccessTokenAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer rga_...``; ``request.auth`` is the ``PersonalAccessToken``."""

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[User, PersonalAccessToken] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer":
            return None
        secret = secret.strip()
        if secret.startswith(ROBOT_SECRET_PREFIX):
            raise exceptions.AuthenticationFailed("Robots do not use the API: use a personal access token.")
        if not secret.startswith(PAT_PREFIX) or len(secret) > MAX_SECRET:
            raise exceptions.AuthenticationFailed(f"Expected a personal access token ({PAT_PREFIX}...).")
        token = (
            PersonalAccessToken.objects.select_related("user")
            .filter(secret_hash__in=hash_candidates(secret, kept_peppers()))
            .first()
        )
        if token is None:
            raise exceptions.AuthenticationFailed("Unknown personal access token.")
        now = timezone.now()
        refusal = token.refusal(now)
        if refusal:
            raise exceptions.AuthenticationFailed(f"This personal access token was {refusal}.")
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("The token's user is deactivated.")
        _touch(token, now, request)
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class SessionAuthentication(authentication.SessionAuthentication):
    """The dashboard's session, with its CSRF check on writes (DRF's), for an active user only."""

    def authenticate(self, request: Request) -> tuple[Any, None] | None:
        found = super().authenticate(request)
        if found is None or not found[0].is_active:
            return None
        return found


def _touch(token: PersonalAccessToken, now: Any, request: Request) -> None:
    """Last use and address, at most once a minute (a script calling in a loop writes no row a call)."""
    if token.last_used_at is not None and now - token.last_used_at < TOUCH_EVERY:
        return
    ip = getattr(request._request, "client_ip", "") or None
    PersonalAccessToken.objects.filter(pk=token.pk).update(last_used_at=now, last_used_ip=ip)
