"""The doctor's auth_settings and token_trust checks against a real docker-registry, each failure reproduced.

A healthy token registry; one in htpasswd mode reading another file than ours; one whose certificate
bundle lacks our key; one with a wrong issuer. The fix the doctor gives is applied and the check re-run.
alice is a user, so our htpasswd file has an entry. No app server is needed: the registry never asks
for a token here, the doctor signs its probes itself.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from accounts import services
from accounts.models import KeyState, Registry, SigningKey
from accounts.registry import config, htpasswd, signing
from accounts.registry.doctor import Check, Target, run
from accounts.registry.doctor.checks import auth_settings, token_trust
from accounts.registry.doctor.model import State
from tests.conftest import REPO_ROOT, SYSTEM, make_user
from tests.harness import require_binary
from tests.harness.registry import RegistryServer, deep_merge, write_htpasswd

pytestmark = pytest.mark.e2e

SERVICE = "registry"
PUBLIC_URL = "http://127.0.0.1:8000"


@pytest.fixture
def world(transactional_db: None, subprocess_env: dict[str, str], settings, tmp_path: Path) -> dict[str, str]:
    """The in-process settings and a subprocess's environment name the same files, keys and token server."""
    require_binary("docker-registry")
    settings.DATA_DIR = Path(subprocess_env["DATA_DIR"])
    settings.PUBLIC_URL = PUBLIC_URL
    make_user("alice")
    return subprocess_env | {"PUBLIC_URL": PUBLIC_URL}


@pytest.fixture
def registries(tmp_path: Path) -> Iterator[list[RegistryServer]]:
    started: list[RegistryServer] = []
    yield started
    for registry in started:
        registry.close()


def start(registries: list[RegistryServer], extra: dict, tmp_path: Path) -> RegistryServer:
    workdir = tmp_path / f"registry-{len(registries)}"
    workdir.mkdir()
    server = RegistryServer(extra, workdir=workdir)
    registries.append(server)
    return server.start()


def token_registry(registries: list[RegistryServer], tmp_path: Path, **token: str) -> tuple[Registry, RegistryServer]:
    """A token-mode row and a registry configured from our fragment, with ``token`` overriding its auth.token."""
    row = services.create_registry(SERVICE, context=SYSTEM, auth_mode="token")
    bundle, secret = config.prepare_token(row, SYSTEM)
    fragment = config.token_fragment(SERVICE, bundle, secret)
    server = start(registries, {"auth": deep_merge(fragment["auth"], {"token": token})}, tmp_path)
    return _with_url(row, server), server


def _with_url(row: Registry, server: RegistryServer) -> Registry:
    return services.update_registry(row, url=server.url, context=SYSTEM)


def doctor(row: Registry, server: RegistryServer, *ids: str, with_config: bool = False) -> dict[str, Check]:
    """Run the named checks in order, sharing one state, as ``doctor.run`` does."""
    target = Target(row, server.url, server.url, registry_config=server.config_path if with_config else None)
    state = State()
    checks = {"auth_settings": auth_settings.check, "token_trust": token_trust.check}
    return {check_id: checks[check_id](target, state) for check_id in ids}


def manage_doctor(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "manage.py", "doctor", "--registry", SERVICE, *args]
    return subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60)


def restart_with(server: RegistryServer, extra: dict) -> None:
    server.stop()
    server.config = deep_merge(server.config, extra)
    server.start()


def test_a_healthy_token_registry_is_ok_and_the_command_prints_the_json_contract(
    world: dict[str, str], registries: list[RegistryServer], tmp_path: Path
) -> None:
    row, server = token_registry(registries, tmp_path)
    found = doctor(row, server, "auth_settings", "token_trust")
    assert found["auth_settings"].status == "ok", found["auth_settings"]
    assert found["token_trust"].status == "ok", found["token_trust"]
    assert "current and our next key" in found["token_trust"].summary
    assert not run(Target(row, server.url, server.url)).failed
    result = manage_doctor(world, "--format", "json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["registry"] == SERVICE and report["url"] == server.url
    assert [c["id"] for c in report["checks"]][:2] == ["auth_settings", "token_trust"]
    for entry in report["checks"]:
        assert set(entry) == {"id", "status", "summary", "evidence", "fix"}
        assert entry["status"] in {"ok", "warn", "skip"}
    assert "Bearer ey" not in result.stdout  # the probe tokens are never shown


def test_an_htpasswd_registry_reading_another_file_fails_until_given_our_path(
    world: dict[str, str], registries: list[RegistryServer], tmp_path: Path
) -> None:
    row = services.create_registry(SERVICE, context=SYSTEM, auth_mode="htpasswd")
    ours, _ = config.prepare_htpasswd(row, SYSTEM)
    before = ours.read_text()
    theirs = write_htpasswd(tmp_path / "other-htpasswd", {"someone": "else"})
    server = start(registries, {"auth": {"htpasswd": {"realm": SERVICE, "path": str(theirs)}}}, tmp_path)
    row = _with_url(row, server)
    found = doctor(row, server, "auth_settings", "token_trust", with_config=True)
    check = found["auth_settings"]
    assert check.status == "fail" and "does not read our htpasswd file" in check.summary, check
    assert f"    path: {ours.resolve()}" in check.fix
    assert any(str(theirs) in line for line in check.evidence)
    assert found["token_trust"].status == "skip"
    assert ours.read_text() == before  # the probe entry is gone
    restart_with(server, {"auth": {"htpasswd": {"path": str(ours.resolve())}}})
    fixed = doctor(row, server, "auth_settings")["auth_settings"]
    assert fixed.status == "ok", fixed
    assert ours.read_text() == before
    assert "doctor-probe-" not in ours.read_text()
    assert htpasswd.path_for(row).resolve() == ours.resolve()


def foreign_bundle(path: Path) -> Path:
    key = signing.generate_private_key()
    path.write_text(signing.certificate_pem(signing.make_certificate(key, "someone-else", datetime.now(UTC))))
    return path


def test_a_bundle_without_our_key_fails_naming_the_bundle_and_the_config_names_the_cause(
    world: dict[str, str], registries: list[RegistryServer], tmp_path: Path
) -> None:
    theirs = foreign_bundle(tmp_path / "their-bundle.pem")
    row, server = token_registry(registries, tmp_path, rootcertbundle=str(theirs))
    outside = doctor(row, server, "auth_settings", "token_trust")
    assert outside["auth_settings"].status == "ok"
    check = outside["token_trust"]
    assert check.status == "fail" and "certificate bundle" in check.summary, check
    assert any("issuer" in line for line in check.evidence)
    assert any(line.startswith("    rootcertbundle: ") for line in check.fix)
    inside = doctor(row, server, "token_trust", with_config=True)["token_trust"]
    assert inside.status == "fail" and f"bundle {theirs} lacks our key" in inside.summary, inside
    assert f"copy {config.bundle_path(SERVICE)} over {theirs}" in inside.fix
    shutil.copyfile(config.bundle_path(SERVICE), theirs)  # the fix, applied
    server.restart()
    assert doctor(row, server, "token_trust", with_config=True)["token_trust"].status == "ok"


def test_a_bundle_holding_only_the_current_key_warns_that_a_rotation_would_break(
    world: dict[str, str], registries: list[RegistryServer], tmp_path: Path
) -> None:
    row, server = token_registry(registries, tmp_path)
    only = tmp_path / "current-only.pem"
    only.write_text(SigningKey.objects.get(state=KeyState.CURRENT).certificate)
    restart_with(server, {"auth": {"token": {"rootcertbundle": str(only)}}})
    check = doctor(row, server, "token_trust", with_config=True)["token_trust"]
    assert check.status == "warn" and "rotation" in check.summary, check
    assert any(f"bundle {only} lacks our key" in line for line in check.evidence)


def test_a_wrong_issuer_fails_and_the_config_says_issuer(
    world: dict[str, str], registries: list[RegistryServer], tmp_path: Path
) -> None:
    row, server = token_registry(registries, tmp_path, issuer="not-registryadmin")
    outside = doctor(row, server, "token_trust")["token_trust"]
    assert outside.status == "fail" and "issuer" in outside.summary, outside
    inside = doctor(row, server, "token_trust", with_config=True)["token_trust"]
    assert inside.status == "fail" and "its issuer is 'not-registryadmin'" in inside.summary, inside
    assert any("auth.token.issuer: registryadmin" in line for line in inside.fix)
    printed = manage_doctor(world, "--registry-config", str(server.config_path))
    assert printed.returncode == 1, printed.stdout + printed.stderr
    assert "[FAIL] token_trust: the registry refuses our tokens: its issuer is 'not-registryadmin'" in printed.stdout
    restart_with(server, {"auth": {"token": {"issuer": "registryadmin"}}})
    assert doctor(row, server, "token_trust", with_config=True)["token_trust"].status == "ok"


def test_an_issuer_left_at_the_default_is_found_from_outside(
    world: dict[str, str], registries: list[RegistryServer], tmp_path: Path, settings
) -> None:
    settings.TOKEN_ISSUER = "https://registryadmin.example.org"
    row, server = token_registry(registries, tmp_path, issuer="registryadmin")
    check = doctor(row, server, "token_trust")["token_trust"]
    assert check.status == "fail" and "its issuer is 'registryadmin'" in check.summary, check
    assert any("auth.token.issuer: https://registryadmin.example.org" in line for line in check.fix)
