"""A real slapd as the app's directory: its LDAP_* environment, and the settings the app derives from it.

``directory_settings`` runs the real ``registryadmin/settings.py`` with that environment and returns
what it derived (``LDAP_*``, ``AUTH_LDAP_*``, ``AUTHENTICATION_BACKENDS``, the beat schedule), so the
in-process tests use exactly what an operator's environment would produce, validation included.
"""

from __future__ import annotations

import os
import runpy
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

from django.test import override_settings

from tests.harness.slapd import Slapd

SETTINGS_FILE = Path(__file__).resolve().parents[1] / "registryadmin" / "settings.py"
DERIVED = ("AUTHENTICATION_BACKENDS", "CELERY_BEAT_SCHEDULE")


def ldap_environment(server: Slapd, **overrides: str | None) -> dict[str, str]:
    """The LDAP_* variables an operator would set for ``server`` (``None`` in overrides drops one)."""
    env: dict[str, str | None] = {
        "LDAP_SERVER_URI": server.uri,
        "LDAP_BIND_DN": server.bind_dn,
        "LDAP_BIND_PASSWORD": server.bind_password,
        "LDAP_USER_SEARCH_BASE": server.people_base,
        "LDAP_GROUP_SEARCH_BASE": server.groups_base,
        "LDAP_TIMEOUT": "2",
    }
    env.update(overrides)
    return {name: value for name, value in env.items() if value is not None}


def directory_settings(env: dict[str, str]) -> dict[str, Any]:
    """What registryadmin/settings.py derives from ``env`` (on top of the test environment)."""
    cleared = {name: "" for name in os.environ if name.startswith("LDAP_")}
    with mock.patch.dict(os.environ, {**cleared, **env}):
        namespace = runpy.run_path(str(SETTINGS_FILE))
    return {
        name: value
        for name, value in namespace.items()
        if name.startswith(("LDAP_", "AUTH_LDAP_")) or name in DERIVED or name == "SCHEDULE_SYNC_LDAP"
    }


@contextmanager
def directory(server: Slapd, **overrides: str | None) -> Iterator[dict[str, Any]]:
    """The app configured for ``server`` for the duration of the block."""
    derived = directory_settings(ldap_environment(server, **overrides))
    with override_settings(**derived):
        yield derived
