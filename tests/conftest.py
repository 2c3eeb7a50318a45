"""Shared personas and helpers.

alice leads team web, bob is a member of web, carol is an outsider, dave is
inactive, ada is the admin and audrey the auditor.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Iterator
from pathlib import Path

import django.test.client
import jwt
import pytest
from django.db import connection
from django.db.backends.base.base import BaseDatabaseWrapper
from django.http import HttpResponse
from django.test import Client

from accounts import services
from accounts.models import Team, User
from accounts.registry.keys import current_signer
from accounts.registry.passwords import verified_cache
from accounts.registry.snapshot import snapshot
from audit.context import AuditContext
from registryadmin.handler import SafeWSGIRequest
from tests.harness import require_binary

# The test client builds its requests the way production's handler does (registryadmin.wsgi).
django.test.client.WSGIRequest = SafeWSGIRequest

__all__ = ["require_binary"]

PASSWORD = "correct-horse-battery"
SYSTEM = AuditContext.system("tests")
REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def ctx() -> AuditContext:
    return SYSTEM


def make_user(username: str, **flags: object) -> User:
    return services.create_user(username, password=PASSWORD, validate=False, context=SYSTEM, **flags)


def client_for(persona: str, world: dict[str, object]) -> Client:
    """A client signed in as ``world[persona]`` (or nobody, for "anonymous")."""
    client = Client()
    if persona != "anonymous":
        client.force_login(world[persona])  # type: ignore[arg-type]
    return client


def ask_registry(username: str, secret: str, *scopes: str) -> HttpResponse:
    """Ask the token endpoint as a registry client would (HTTP Basic, scopes as query parameters)."""
    raw = base64.b64encode(f"{username}:{secret}".encode()).decode()
    query = {"service": "registry", "scope": list(scopes)}
    return Client().get("/auth/token", query, HTTP_AUTHORIZATION=f"Basic {raw}")


def granted(response: HttpResponse) -> dict[str, list[str]]:
    """The actions per repository in the token an answer carries."""
    claims = jwt.decode(response.json()["token"], options={"verify_signature": False})
    return {entry["name"]: entry["actions"] for entry in claims["access"]}


def shown_secret(response: HttpResponse, prefix: str) -> str:
    """The one secret (``rgb_``/``rga_``...) a page shows; fails if it shows none or several."""
    found = re.findall(rf"{prefix}[A-Za-z0-9_-]{{20,}}", response.content.decode())
    assert len(set(found)) == 1, found
    return found[0]


@pytest.fixture
def ada(db: None) -> User:
    return make_user("ada", is_superuser=True)


@pytest.fixture
def audrey(db: None) -> User:
    return make_user("audrey", is_auditor=True)


@pytest.fixture
def alice(db: None) -> User:
    return make_user("alice", email="alice@example.org")


@pytest.fixture
def bob(db: None) -> User:
    return make_user("bob")


@pytest.fixture
def carol(db: None) -> User:
    return make_user("carol")


@pytest.fixture
def dave(db: None) -> User:
    return make_user("dave", is_active=False)


@pytest.fixture
def web(alice: User, bob: User) -> Team:
    team = services.create_team("web", context=SYSTEM)
    services.set_membership(team, alice, "maintainer", context=SYSTEM)
    services.set_membership(team, bob, "member", context=SYSTEM)
    return team


@pytest.fixture
def live_database_url(transactional_db: None) -> str:
    """A DATABASE_URL for subprocesses that points at this test run's database."""
    settings = connection.settings_dict
    if settings["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{settings['NAME']}"
    user = settings.get("USER") or "postgres"
    host = settings.get("HOST") or "127.0.0.1"
    port = settings.get("PORT") or 5432
    return f"postgres://{user}@{host}:{port}/{settings['NAME']}"


@pytest.fixture
def subprocess_env(live_database_url: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    """Environment for a real app process (gunicorn, celery, manage.py) on the test database."""
    env = {k: v for k, v in os.environ.items() if k not in {"DJANGO_SETTINGS_MODULE", "TEST_DATABASE_URL"}}
    env.update(
        DJANGO_SETTINGS_MODULE="registryadmin.settings",
        DATABASE_URL=live_database_url,
        DATA_DIR=str(tmp_path / "data"),
        SECRET_KEY=os.environ["SECRET_KEY"],
        BOOTSTRAP_ON_MIGRATE="false",
        PYTHONPATH=str(REPO_ROOT),
    )
    return env


@pytest.fixture
def allow_scratch_databases(monkeypatch: pytest.MonkeyPatch, django_db_blocker: object) -> None:
    """Let backup verification open its scratch SQLite database (an alias made on the fly) inside a test.

    Django's test case refuses connections to aliases it was not told of; the scratch alias is
    created and removed by the code under test, so it cannot be declared beforehand.
    """
    patched = BaseDatabaseWrapper.ensure_connection

    def ensure_connection(self: BaseDatabaseWrapper, *args: object, **kwargs: object) -> None:
        if self.alias.startswith("backup_verify_"):
            return django_db_blocker._real_ensure_connection(self, *args, **kwargs)  # type: ignore[attr-defined]
        return patched(self, *args, **kwargs)

    monkeypatch.setattr(BaseDatabaseWrapper, "ensure_connection", ensure_connection)


@pytest.fixture(autouse=True)
def _fresh_process_caches() -> Iterator[None]:
    """Per-process caches (signer, verified credentials) must not leak between tests' databases."""
    current_signer.clear()
    verified_cache.clear()
    snapshot.clear()
    services.unused.recent.clear()
    yield
    current_signer.clear()
    verified_cache.clear()
    snapshot.clear()
    services.unused.recent.clear()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that drives Chromium (the ``browser`` fixture) is a browser test: marked so, for ``make test``."""
    for item in items:
        if "browser" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.browser)
