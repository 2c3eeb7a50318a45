"""Settings come from the environment and refuse malformed values by name."""

from __future__ import annotations

import ipaddress
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from registryadmin.middleware import client_ip

REPO = Path(__file__).resolve().parents[2]
PROBE = (
    "import json, django; from django.conf import settings; django.setup(); "
    "print(json.dumps({'hosts': settings.ALLOWED_HOSTS, 'csrf': settings.CSRF_TRUSTED_ORIGINS, "
    "'engine': settings.DATABASES['default']['ENGINE'], 'secure': settings.SESSION_COOKIE_SECURE, "
    "'csrf_secure': settings.CSRF_COOKIE_SECURE, 'session_age': settings.SESSION_COOKIE_AGE, "
    "'ttl': settings.TOKEN_TTL, 'mode': settings.REGISTRY_AUTH_MODE, 'broker': settings.CELERY_BROKER_URL}))"
)


def load_settings(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DATABASE_URL", "TEST_DATABASE_URL"}}
    clean.update(DJANGO_SETTINGS_MODULE="registryadmin.settings", DATA_DIR=str(tmp_path / "data"), **env)
    return subprocess.run(
        [sys.executable, "-c", PROBE], cwd=REPO, env=clean, capture_output=True, text=True, timeout=60
    )


def test_it_starts_with_no_environment_at_all(tmp_path: Path) -> None:
    result = load_settings(tmp_path)
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert loaded["engine"].endswith("sqlite3")
    assert set(loaded["hosts"]) == {"127.0.0.1", "localhost"}
    assert loaded["csrf"] == ["http://127.0.0.1:8000"]
    assert loaded["ttl"] == 300 and loaded["mode"] == "token"
    assert loaded["broker"] == "filesystem://"


def test_it_creates_the_secret_key_file_with_mode_0600_and_reuses_it(tmp_path: Path) -> None:
    assert load_settings(tmp_path).returncode == 0
    key_file = tmp_path / "data" / "secret_key"
    first = key_file.read_text()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert load_settings(tmp_path).returncode == 0
    assert key_file.read_text() == first


def test_public_url_decides_hosts_csrf_origin_and_secure_cookies(tmp_path: Path) -> None:
    result = load_settings(tmp_path, PUBLIC_URL="https://registry-admin.example.org")
    loaded = json.loads(result.stdout)
    assert "registry-admin.example.org" in loaded["hosts"]
    assert loaded["csrf"] == ["https://registry-admin.example.org"]
    assert loaded["secure"] is True and loaded["csrf_secure"] is True


def test_sessions_last_session_ttl_and_cookies_stay_plain_over_http(tmp_path: Path) -> None:
    loaded = json.loads(load_settings(tmp_path, SESSION_TTL="900").stdout)
    assert loaded["session_age"] == 900
    assert loaded["secure"] is False and loaded["csrf_secure"] is False
    assert load_settings(tmp_path, SESSION_TTL="10").returncode != 0  # below five minutes is refused


def test_secret_key_file_variable_is_read(tmp_path: Path) -> None:
    secret = tmp_path / "key"
    secret.write_text("from-a-docker-secret-0123456789-abcdefghijklmnop\n")
    assert load_settings(tmp_path, SECRET_KEY_FILE=str(secret)).returncode == 0
    assert not (tmp_path / "data" / "secret_key").exists()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PORT", "eighty"),
        ("DEBUG", "maybe"),
        ("TOKEN_TTL", "-5"),
        ("REGISTRY_AUTH_MODE", "ldap"),
        ("TRUSTED_PROXIES", "10.0.0.0/33"),
        ("DATABASE_URL", "mysql://root@localhost/x"),
        ("PUBLIC_URL", "registry.example.org"),
        ("SECRET_KEY_FILE", "/nonexistent/secret"),
        ("SCHEDULE_PURGE_EXPIRED_GRANTS", "every five minutes"),
    ],
)
def test_a_malformed_value_stops_start_up_naming_the_variable(tmp_path: Path, variable: str, value: str) -> None:
    result = load_settings(tmp_path, **{variable: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert variable in result.stderr.strip().splitlines()[-1]


LDAP_ON = {"LDAP_SERVER_URI": "ldap://127.0.0.1:389", "LDAP_USER_SEARCH_BASE": "ou=people,dc=example,dc=org"}


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("LDAP_SERVER_URI", "http://directory.example.org"),
        ("LDAP_SERVER_URI", "ldap.example.org"),
        ("LDAP_USER_SEARCH_BASE", "people"),
        ("LDAP_GROUP_SEARCH_BASE", "not a dn"),
        ("LDAP_BIND_DN", "admin"),
        ("LDAP_USER_FILTER", "uid=%(user)s"),
        ("LDAP_USER_FILTER", "(mail=*)"),
        ("LDAP_USER_FILTER", "(&(uid=%(user)s)(x=%(other)s))"),
        ("LDAP_GROUP_TYPE", "nestedGroups"),
        ("LDAP_TIMEOUT", "0"),
        ("LDAP_TIMEOUT", "five"),
        ("LDAP_BIND_CACHE_TTL", "-1"),
        ("LDAP_START_TLS", "perhaps"),
        ("LDAP_DEACTIVATE_MISSING", "sometimes"),
        ("LDAP_CA_FILE", "/nonexistent/ca.pem"),
        ("LDAP_ADMIN_GROUP", "admins"),
        ("LDAP_AUDITOR_GROUP", "auditors"),
        ("LDAP_BIND_PASSWORD_FILE", "/nonexistent/ldap-password"),
        ("SCHEDULE_SYNC_LDAP", "hourly"),
    ],
)
def test_a_malformed_ldap_value_stops_start_up_naming_the_variable(tmp_path: Path, variable: str, value: str) -> None:
    result = load_settings(tmp_path, **{**LDAP_ON, variable: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert variable in result.stderr.strip().splitlines()[-1]


def test_ldap_needs_a_user_search_base_and_a_group_base_for_the_admin_group(tmp_path: Path) -> None:
    result = load_settings(tmp_path, LDAP_SERVER_URI="ldap://127.0.0.1:389")
    assert result.returncode != 0 and "LDAP_USER_SEARCH_BASE is required" in result.stderr
    result = load_settings(tmp_path, **LDAP_ON, LDAP_ADMIN_GROUP="cn=admins,ou=groups,dc=example,dc=org")
    assert result.returncode != 0 and "LDAP_GROUP_SEARCH_BASE is required" in result.stderr
    result = load_settings(
        tmp_path,
        **LDAP_ON,
        LDAP_GROUP_SEARCH_BASE="ou=groups,dc=example,dc=org",
        LDAP_AUDITOR_GROUP="cn=auditors,ou=elsewhere,dc=example,dc=org",
    )
    assert result.returncode != 0 and "LDAP_AUDITOR_GROUP" in result.stderr.strip().splitlines()[-1]
    assert "outside LDAP_GROUP_SEARCH_BASE" in result.stderr


def test_ldap_on_adds_the_directory_backend_and_the_hourly_sync(tmp_path: Path) -> None:
    probe = (
        "import json, django; from django.conf import settings; django.setup(); "
        "print(json.dumps({'backends': settings.AUTHENTICATION_BACKENDS, 'jobs': list(settings.CELERY_BEAT_SCHEDULE),"
        " 'uri': settings.AUTH_LDAP_SERVER_URI, 'filter': settings.AUTH_LDAP_USER_SEARCH.filterstr,"
        " 'attr': settings.LDAP_USERNAME_ATTR}))"
    )
    clean = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DATABASE_URL", "TEST_DATABASE_URL"}}
    clean.update(
        DJANGO_SETTINGS_MODULE="registryadmin.settings",
        DATA_DIR=str(tmp_path / "data"),
        **LDAP_ON,
        LDAP_USER_FILTER="(&(objectClass=person)(sAMAccountName=%(user)s))",
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=clean, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert loaded["backends"][-1] == "accounts.services.directory.DirectoryBackend"
    assert "sync-ldap" in loaded["jobs"] and loaded["uri"] == "ldap://127.0.0.1:389"
    assert loaded["attr"] == "sAMAccountName"
    off = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; from django.conf import settings; django.setup(); "
            "print(settings.AUTHENTICATION_BACKENDS, list(settings.CELERY_BEAT_SCHEDULE))",
        ],
        cwd=REPO,
        env={k: v for k, v in clean.items() if not k.startswith("LDAP_")},
        capture_output=True,
        text=True,
    )
    assert off.returncode == 0, off.stderr
    assert "DirectoryBackend" not in off.stdout and "sync-ldap" not in off.stdout


def test_forwarded_for_is_believed_only_through_trusted_proxies() -> None:
    proxies = [ipaddress.ip_network("10.0.0.0/8")]
    assert client_ip("203.0.113.9", "198.51.100.1", proxies) == "203.0.113.9"
    assert client_ip("10.1.2.3", "198.51.100.1", proxies) == "198.51.100.1"
    assert client_ip("10.1.2.3", "6.6.6.6, 198.51.100.1, 10.9.9.9", proxies) == "198.51.100.1"
    assert client_ip("10.1.2.3", "not-an-ip", proxies) == "10.1.2.3"
    assert client_ip("10.1.2.3", "", []) == "10.1.2.3"
    assert client_ip("::ffff:10.1.2.3", "198.51.100.1", proxies) == "198.51.100.1"
