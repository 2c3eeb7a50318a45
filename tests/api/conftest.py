"""API personas: a client per person that calls with a real personal access token (``Bearer rga_...``).

``api(user)`` gives a client whose every request carries a fresh token of ``user`` (``read_only`` and
``patterns`` limit it like a real one); ``session_api(user)`` signs in through the session instead
(CSRF enforced, as in a browser).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from accounts import services
from accounts.models import User
from tests.conftest import SYSTEM


def token_client(
    user: User, *, read_only: bool = False, patterns: list[str] | None = None, name: str = ""
) -> APIClient:
    _, secret = services.create_access_token(
        user,
        name or f"api-{user.username}-{read_only}-{len(patterns or [])}",
        context=SYSTEM,
        read_only=read_only,
        patterns=patterns,
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    client.secret = secret  # type: ignore[attr-defined]
    return client


@pytest.fixture
def api(db: None) -> Callable[..., APIClient]:
    made: dict[tuple[Any, ...], APIClient] = {}

    def make(user: User, *, read_only: bool = False, patterns: list[str] | None = None) -> APIClient:
        key = (user.pk, read_only, tuple(patterns or ()))
        if key not in made:
            made[key] = token_client(user, read_only=read_only, patterns=patterns, name=f"api-{len(made)}")
        return made[key]

    return make


@pytest.fixture
def session_api(db: None) -> Callable[[User], APIClient]:
    def make(user: User) -> APIClient:
        client = APIClient(enforce_csrf_checks=True)
        client.force_login(user)
        return client

    return make
