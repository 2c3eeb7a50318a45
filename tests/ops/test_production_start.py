"""The documented production start: migrate (bootstraps), collectstatic, gunicorn."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests.conftest import REPO_ROOT
from tests.harness.ports import free_port, wait_for_http

pytestmark = pytest.mark.e2e


def fresh_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DJANGO_SETTINGS_MODULE", "DATABASE_URL", "TEST_DATABASE_URL", "SECRET_KEY", "DATA_DIR"}
        and k != "BOOTSTRAP_ON_MIGRATE"
    }
    env.update(DATA_DIR=str(tmp_path / "data"), STATIC_ROOT=str(tmp_path / "static"), **extra)
    return env


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=180
    )


def test_migrate_creates_the_first_admin_with_a_password_file(tmp_path: Path) -> None:
    env = fresh_env(tmp_path, REGISTRY_SERVICE="hub", REGISTRY_URL="http://127.0.0.1:5000")
    result = manage(env, "migrate", "--noinput")
    assert result.returncode == 0, result.stderr
    password_file = tmp_path / "data" / "initial-admin-password"
    assert str(password_file) in result.stdout
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    again = manage(env, "migrate", "--noinput")
    assert "Created admin" not in again.stdout
    exported = manage(env, "export_policy").stdout
    assert "username: admin" in exported and "admin: true" in exported
    audit = manage(env, "export_audit", "--kind", "admin_change").stdout.splitlines()
    assert len(audit) == 2  # the registry row and the admin, once each
    assert '"target":"hub"' in audit[0]


def test_admin_password_from_the_environment_is_used(tmp_path: Path) -> None:
    env = fresh_env(tmp_path, ADMIN_USERNAME="root", ADMIN_PASSWORD="an-operator-chosen-phrase")
    result = manage(env, "migrate", "--noinput")
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "data" / "initial-admin-password").exists()
    check = manage(
        env,
        "shell",
        "--verbosity",
        "0",
        "-c",
        "from accounts.models import User;"
        "print(User.objects.get(username='root').check_password('an-operator-chosen-phrase'))",
    )
    assert check.stdout.strip() == "True"


def test_gunicorn_serves_health_sign_in_and_static_files(tmp_path: Path) -> None:
    env = fresh_env(tmp_path, ADMIN_PASSWORD="an-operator-chosen-phrase")
    assert manage(env, "migrate", "--noinput").returncode == 0
    assert manage(env, "collectstatic", "--noinput").returncode == 0
    port = free_port()
    env["PORT"] = str(port)
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "registryadmin.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
        ],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_http(base + "/healthz", timeout=30)
        with urllib.request.urlopen(base + "/healthz") as response:
            assert response.status == 200
        jar = CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        page = opener.open(base + "/").read().decode()
        assert 'name="username"' in page
        css = next(line for line in page.splitlines() if "stylesheet" in line)
        css_url = css.split('href="')[1].split('"')[0]
        with opener.open(base + css_url) as response:
            assert response.status == 200 and b"--brand" in response.read()
        token = next(c.value for c in jar if c.name == "csrftoken")
        body = urlencode(
            {"username": "admin", "password": "an-operator-chosen-phrase", "csrfmiddlewaretoken": token}
        ).encode()
        request = urllib.request.Request(base + "/login/", data=body, headers={"Referer": base + "/login/"})
        home = opener.open(request).read().decode()
        assert "Overview" in home and "active users" in home  # the admin's home
        script = next(line for line in home.splitlines() if "htmx" in line and "<script" in line)
        with opener.open(base + script.split('src="')[1].split('"')[0]) as response:
            assert response.status == 200 and b"htmx" in response.read()  # vendored, served by whitenoise
        assert "administrator" in opener.open(base + "/me/").read().decode()
    finally:
        server.terminate()
        server.wait(timeout=20)


def test_files_under_data_dir_that_hold_secrets_or_hashes_are_owner_only(tmp_path: Path) -> None:
    env = fresh_env(tmp_path, ADMIN_PASSWORD="an-operator-chosen-phrase")
    old = os.umask(0o022)  # a usual umask: the app must not rely on a strict one
    try:
        assert manage(env, "migrate", "--noinput").returncode == 0
        assert manage(env, "create_token", "--help").returncode == 0
    finally:
        os.umask(old)
    data = tmp_path / "data"
    files = {path.relative_to(data).as_posix(): stat.S_IMODE(path.stat().st_mode) for path in data.rglob("*")}
    files = {name: mode for name, mode in files.items() if (data / name).is_file()}
    assert "registryadmin.sqlite3" in files and "secret_key" in files and "audit_hmac_key" in files
    public = {name for name in files if name.endswith((".pem", ".crt"))}  # certificate bundles, read by registries
    loose = {name: oct(mode) for name, mode in files.items() if name not in public and mode & 0o077}
    assert loose == {}
