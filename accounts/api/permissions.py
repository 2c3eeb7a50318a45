"""Who may call what, by the same rules as the pages (``registryadmin.guards``), and what a token limits.

``SignedIn`` is every view's floor: an active user, and a read-only token never writes. ``Overseers``
lets admins and auditors read and admins write; ``Admins`` is admins only. A team lead's finer rules
(inside the team's grants, role capped) live in ``accounts.services.leads``, which the views call.
A token limited to patterns touches grants within them only (``within_token``) and changes nothing
else (``unlimited_token``): its patterns bound grants, not users, teams or keys.
"""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions, permissions
from rest_framework.request import Request

from accounts.access.patterns import pattern_contains
from accounts.models import PersonalAccessToken
from registryadmin.guards import is_admin, is_overseer

READ_ONLY_TOKEN = "This personal access token is read-only: it cannot change anything."


def token_of(request: Request) -> PersonalAccessToken | None:
    return request.auth if isinstance(request.auth, PersonalAccessToken) else None


class SignedIn(permissions.BasePermission):
    message = "Sign in, or send Authorization: Bearer with a personal access token."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if not (user and user.is_authenticated and user.is_active):
            return False
        token = token_of(request)
        if token is not None and token.read_only and request.method not in permissions.SAFE_METHODS:
            raise exceptions.PermissionDenied(READ_ONLY_TOKEN)
        return True


class Overseers(SignedIn):
    """Admins and auditors read; only admins change."""

    message = "Only administrators and auditors may read this; only administrators may change it."

    def has_permission(self, request: Request, view: Any) -> bool:
        if not super().has_permission(request, view):
            return False
        if request.method in permissions.SAFE_METHODS:
            return is_overseer(request.user)
        return is_admin(request.user)


class Admins(SignedIn):
    message = "Only administrators may do this."

    def has_permission(self, request: Request, view: Any) -> bool:
        return super().has_permission(request, view) and is_admin(request.user)


def within_token(request: Request, pattern: str) -> None:
    """Refuse a grant change outside the patterns the request's token is limited to."""
    token = token_of(request)
    if token is None or not token.patterns:
        return
    if not any(pattern_contains(limit, pattern) for limit in token.patterns):
        limits = ", ".join(token.patterns)
        raise exceptions.PermissionDenied(f"This token is limited to {limits}: {pattern!r} is outside them.")


def unlimited_token(request: Request) -> None:
    """Refuse a change other than a grant to a token limited to patterns."""
    token = token_of(request)
    if token is not None and token.patterns:
        raise exceptions.PermissionDenied(
            "This token is limited to repository patterns: it may change grants within them, nothing else."
        )
