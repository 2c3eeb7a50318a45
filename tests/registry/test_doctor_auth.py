"""The doctor's auth_settings and token_trust checks against a registry played in process (no real one).

``FakeRegistry`` answers ``GET /v2/`` as distribution 2.8 does: a challenge without credentials, and in
token mode it verifies the bearer token (x5c certificate in its bundle, issuer, audience); in htpasswd
mode it reads the file it was told to, on every request. alice is a user, so our file has an entry.
"""

from __future__ import annotations

import base64
import fcntl
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
import jwt
import pytest
from cryptography import x509
from django.conf import settings as django_settings

from accounts import services
from accounts.models import KeyState, Registry, SigningKey
from accounts.registry import config, htpasswd
from accounts.registry.doctor import Target
from accounts.registry.doctor.checks import auth_settings, token_trust
from accounts.registry.doctor.http import Answer, TLSRefused, Unreachable
from accounts.registry.doctor.model import State
from accounts.registry.signing import libtrust_kid
from tests.conftest import SYSTEM, make_user

URL = "http://registry.example.org:5000"
PUBLIC_URL = "https://registryadmin.example.org"


@dataclass
class FakeRegistry:
    """A registry's answers to ``GET /v2/``; ``calls`` keeps what was asked (headers included)."""

    mode: str = "token"
    realm: str = f"{PUBLIC_URL}/auth/token"
    service: str = "registry"
    issuer: str = "registryadmin"
    trusted: set[str] = field(default_factory=set)  # libtrust kids of the certificates in its bundle
    htpasswd: Path | None = None
    status_without_auth: int = 401
    calls: list[dict[str, str]] = field(default_factory=list)

    def __call__(self, method: str, url: str, headers: dict[str, str] | None = None, **_: Any) -> Answer:
        assert method == "GET" and url == f"{URL}/v2/"
        headers = headers or {}
        self.calls.append(headers)
        given = headers.get("Authorization", "")
        if self.mode == "none":
            return Answer(200)
        if self.mode == "htpasswd":
            return self._basic(given)
        if given.startswith("Bearer ") and self._valid(given.removeprefix("Bearer ")):
            return Answer(200)
        error = ',error="invalid_token"' if given else ""
        challenge = f'Bearer realm="{self.realm}",service="{self.service}"{error}'
        return Answer(self.status_without_auth, {"www-authenticate": [challenge]})

    def _valid(self, token: str) -> bool:
        header = jwt.get_unverified_header(token)
        cert = x509.load_der_x509_certificate(base64.b64decode(header["x5c"][0]))
        if libtrust_kid(cert.public_key()) not in self.trusted:
            return False
        try:
            jwt.decode(token, cert.public_key(), algorithms=["ES256"], audience=self.service, issuer=self.issuer)
        except jwt.InvalidTokenError:
            return False
        return True

    def _basic(self, given: str) -> Answer:
        refused = Answer(401, {"www-authenticate": ['Basic realm="registry"']})
        if not given.startswith("Basic ") or self.htpasswd is None:
            return refused
        name, _, password = base64.b64decode(given.removeprefix("Basic ")).decode().partition(":")
        for line in self.htpasswd.read_text().splitlines():
            user, _, hashed = line.partition(":")
            if user == name and bcrypt.checkpw(password.encode(), ("$2b$" + hashed[4:]).encode()):
                return Answer(200)
        return refused


@pytest.fixture(autouse=True)
def world(db: None, settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.DATA_DIR = tmp_path / "data"
    settings.PUBLIC_URL = PUBLIC_URL
    settings.TOKEN_ISSUER = "registryadmin"
    settings.HTPASSWD_GROUP = ""
    monkeypatch.setattr(auth_settings, "PROBE_WAIT", 0.2)
    make_user("alice")


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeRegistry:
    registry = FakeRegistry()
    monkeypatch.setattr(auth_settings, "fetch", registry)
    monkeypatch.setattr(token_trust, "fetch", registry)
    return registry


def token_row() -> Registry:
    row = services.create_registry("registry", url=URL, context=SYSTEM)
    config.prepare_token(row, SYSTEM)
    return row


def htpasswd_row() -> Registry:
    row = services.create_registry("registry", url=URL, auth_mode="htpasswd", context=SYSTEM)
    config.prepare_htpasswd(row, SYSTEM)
    return row


def kid(state: str) -> str:
    return SigningKey.objects.get(state=state).kid


def target(row: Registry, url: str = URL, registry_config: Path | None = None) -> Target:
    return Target(row, url, URL, registry_config=registry_config)


def run(row: Registry, check_id: str = "auth_settings", **options: Any) -> Any:
    state = State()
    checks = {"auth_settings": auth_settings.check, "token_trust": token_trust.check}
    return checks[check_id](target(row, **options), state)


# auth_settings, token mode -----------------------------------------------------


def test_it_reads_a_challenge_with_commas_inside_quotes() -> None:
    found = auth_settings.parse_challenge('Bearer realm="https://a/t",service="r",scope="repository:x:pull,push"')
    assert found == auth_settings.Challenge(
        "bearer", {"realm": "https://a/t", "service": "r", "scope": "repository:x:pull,push"}
    )
    assert auth_settings.parse_challenge("") is None


def test_it_passes_a_token_registry_with_our_realm_and_service_and_keeps_the_answer(fake: FakeRegistry) -> None:
    state = State()
    found = auth_settings.check(target(token_row()), state)
    assert found.status == "ok", found
    assert state.reachable is True and state.base_answer.status == 401
    token_trust.check(target(Registry.objects.get()), state)
    assert sum(1 for call in fake.calls if not call) == 1  # one unauthenticated GET for the whole run


def test_it_fails_a_registry_in_htpasswd_mode_with_the_token_lines_to_use(fake: FakeRegistry) -> None:
    fake.mode = "htpasswd"
    found = run(token_row())
    assert found.status == "fail" and "htpasswd mode" in found.summary
    assert "  token:" in found.fix and f"    realm: {PUBLIC_URL}/auth/token" in found.fix
    assert "    issuer: registryadmin" in found.fix
    assert f"    rootcertbundle: {config.bundle_path('registry')}" in found.fix
    assert not any("notifications" in line for line in found.fix)
    assert any("--mode htpasswd" in line for line in found.fix)


def test_it_fails_a_registry_without_auth(fake: FakeRegistry) -> None:
    fake.mode = "none"
    found = run(token_row())
    assert found.status == "fail" and "anyone" in found.summary
    assert "  token:" in found.fix


@pytest.mark.parametrize(
    ("change", "named"),
    [({"realm": "http://old-host/auth/token"}, "realm"), ({"service": "docker-registry"}, "service")],
)
def test_it_fails_a_realm_or_service_mismatch_naming_both_values(
    fake: FakeRegistry, change: dict[str, str], named: str
) -> None:
    for key, value in change.items():
        setattr(fake, key, value)
    found = run(token_row())
    assert found.status == "fail" and named in found.summary
    theirs = next(iter(change.values()))
    assert any(repr(theirs) in line and "ours" in line for line in found.evidence)
    assert "  token:" in found.fix


def test_it_warns_about_a_loopback_realm_when_clients_are_remote(fake: FakeRegistry, settings) -> None:
    settings.PUBLIC_URL = "http://127.0.0.1:8000"
    fake.realm = "http://127.0.0.1:8000/auth/token"
    found = run(token_row())
    assert found.status == "warn" and "loopback" in found.summary
    assert any("PUBLIC_URL" in line for line in found.fix)


def test_it_warns_about_a_plain_http_realm_behind_https(fake: FakeRegistry, settings, monkeypatch) -> None:
    settings.PUBLIC_URL = "http://registryadmin.example.org"
    fake.realm = "http://registryadmin.example.org/auth/token"
    https = "https://registry.example.org:5000"
    monkeypatch.setattr(auth_settings, "fetch", lambda method, url, *a, **k: fake(method, url.replace(https, URL)))
    found = auth_settings.check(Target(token_row(), https, https), State())
    assert found.status == "warn" and "plain http" in found.summary


def test_an_unreachable_registry_is_a_skip_here_and_remembered(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Answer:
        raise Unreachable("registry.example.org", 5000, "Connection refused")

    monkeypatch.setattr(auth_settings, "fetch", refuse)
    state = State()
    found = auth_settings.check(target(token_row()), state)
    assert found.status == "skip" and found.summary == "registry unreachable"
    assert found.evidence == ["registry.example.org:5000 cannot be reached: Connection refused"]
    assert state.reachable is False and "5000" in state.unreachable_reason
    assert token_trust.check(target(Registry.objects.get()), state).status == "skip"


def test_behind_a_refused_certificate_it_still_reads_the_settings(monkeypatch, fake: FakeRegistry) -> None:
    def picky(method: str, url: str, headers: dict[str, str] | None = None, *, verify: bool = True, **_: Any):
        if verify:
            raise TLSRefused("registry.example.org", 5000, "certificate has expired")
        return fake(method, url, headers)

    monkeypatch.setattr(auth_settings, "fetch", picky)
    monkeypatch.setattr(token_trust, "fetch", picky)
    token_row()
    fake.trusted = {kid("current"), kid("next")}
    state = State()
    assert auth_settings.check(target(Registry.objects.get()), state).status == "ok"
    assert auth_settings.TLS_NOTE in state.notes
    assert token_trust.check(target(Registry.objects.get()), state).status == "ok"


# auth_settings, htpasswd mode ----------------------------------------------------


def test_it_passes_when_the_registry_reads_our_file_and_leaves_the_file_as_it_was(fake: FakeRegistry) -> None:
    row = htpasswd_row()
    ours = htpasswd.path_for(row)
    fake.mode, fake.htpasswd = "htpasswd", ours
    before, mtime = ours.read_text(), ours.stat().st_mtime_ns
    found = run(row)
    assert found.status == "ok", found
    assert any("let us in" in line for line in found.evidence)
    assert ours.read_text() == before and ours.stat().st_mtime_ns > mtime  # rewritten: the registry reloads it
    assert stat.S_IMODE(ours.stat().st_mode) == django_settings.HTPASSWD_MODE


def test_it_fails_a_registry_reading_another_file_with_the_path_line(fake: FakeRegistry, tmp_path: Path) -> None:
    row = htpasswd_row()
    other = tmp_path / "elsewhere"
    other.write_text("")
    fake.mode, fake.htpasswd = "htpasswd", other
    their_config = tmp_path / "config.yml"
    their_config.write_text(f"auth:\n  htpasswd:\n    realm: registry\n    path: {other}\n")
    found = run(row, registry_config=their_config)
    assert found.status == "fail" and "another file" in found.summary
    assert "  htpasswd:" in found.fix and f"    path: {htpasswd.path_for(row).resolve()}" in found.fix
    assert any(f"names path {other}" in line for line in found.evidence)
    assert "doctor-probe-" not in htpasswd.path_for(row).read_text()


def test_the_probe_entry_is_removed_when_the_login_breaks(fake: FakeRegistry, monkeypatch) -> None:
    row = htpasswd_row()
    fake.mode, fake.htpasswd = "htpasswd", htpasswd.path_for(row)
    before = htpasswd.path_for(row).read_text()

    def broken(*args: Any, **kwargs: Any) -> int:
        assert "doctor-probe-" in htpasswd.path_for(row).read_text()
        raise RuntimeError("boom")

    monkeypatch.setattr(auth_settings, "_log_in", broken)
    with pytest.raises(RuntimeError):
        run(row)
    assert htpasswd.path_for(row).read_text() == before


def test_the_probe_holds_the_sync_lock_so_no_sync_interleaves(db: None, settings) -> None:
    row = htpasswd_row()
    lock = Path(settings.DATA_DIR) / "registry" / ".htpasswd-sync.lock"
    hashed = htpasswd.hash_password("probe-password", cost=4)
    with htpasswd.probe_entry(row, "doctor-probe-abc", hashed) as path, lock.open("a") as other:
        assert "doctor-probe-abc:" in path.read_text()
        with pytest.raises(BlockingIOError):
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    assert "doctor-probe-abc" not in path.read_text()


def test_it_fails_a_missing_file_and_never_creates_one(fake: FakeRegistry) -> None:
    row = htpasswd_row()
    htpasswd.path_for(row).unlink()
    fake.mode = "htpasswd"
    found = run(row)
    assert found.status == "fail" and "missing" in found.summary
    assert not htpasswd.path_for(row).exists()


def test_it_fails_an_empty_file_and_entries_that_are_not_bcrypt(fake: FakeRegistry) -> None:
    row = htpasswd_row()
    ours = htpasswd.path_for(row)
    fake.mode, fake.htpasswd = "htpasswd", ours
    ours.write_text("")
    assert "nobody can log in" in run(row).summary
    ours.write_text("old:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n")
    found = run(row)
    assert found.status == "fail" and "not bcrypt" in found.summary
    assert found.evidence.count("not bcrypt: old") == 1 and "W6ph" not in " ".join(found.evidence)


def test_it_fails_a_file_the_registry_group_cannot_read(fake: FakeRegistry, settings) -> None:
    row = htpasswd_row()
    ours = htpasswd.path_for(row)
    fake.mode, fake.htpasswd = "htpasswd", ours
    settings.HTPASSWD_GROUP = "nogroup"
    found = run(row)
    assert found.status == "fail" and "nogroup cannot read" in found.summary
    assert any("HTPASSWD_GROUP" in line for line in found.fix)
    settings.HTPASSWD_GROUP = ""
    os.chmod(ours, 0o644)
    assert run(row).status == "ok"  # without a group, only the probe decides


def test_it_fails_a_token_registry_where_ours_is_in_htpasswd_mode(fake: FakeRegistry) -> None:
    found = run(htpasswd_row())
    assert found.status == "fail" and "token mode" in found.summary
    assert "  htpasswd:" in found.fix and any("--mode token" in line for line in found.fix)


# token_trust -----------------------------------------------------------------------


def test_it_trusts_a_registry_holding_current_and_next(fake: FakeRegistry) -> None:
    row = token_row()
    fake.trusted = {kid("current"), kid("next")}
    found = run(row, "token_trust")
    assert found.status == "ok" and "current and our next" in found.summary
    tokens = [call["Authorization"] for call in fake.calls if call]
    assert tokens and all(token not in " ".join(found.evidence + found.fix) for token in tokens)


def test_the_probe_token_grants_nothing_and_lives_a_minute(fake: FakeRegistry) -> None:
    row = token_row()
    fake.trusted = {kid("current"), kid("next")}
    run(row, "token_trust")
    claims = jwt.decode(fake.calls[-1]["Authorization"].split()[1], options={"verify_signature": False})
    assert claims["access"] == [] and claims["aud"] == "registry" and claims["iss"] == "registryadmin"
    assert claims["exp"] - claims["iat"] == token_trust.PROBE_LIFETIME and claims["nbf"] < claims["iat"]


def test_a_next_key_refused_is_a_warning_about_rotation(fake: FakeRegistry, tmp_path: Path) -> None:
    row = token_row()
    fake.trusted = {kid("current")}
    found = run(row, "token_trust")
    assert found.status == "warn" and "rotation" in found.summary
    assert found.fix[-1].startswith("then restart the registry")


def test_a_refusal_from_outside_names_issuer_and_bundle_and_gives_the_lines(fake: FakeRegistry) -> None:
    row = token_row()
    fake.issuer = "somebody-else"
    fake.trusted = {kid("current"), kid("next")}
    found = run(row, "token_trust")
    assert found.status == "fail" and "issuer" in found.summary and "bundle" in found.summary
    assert "    issuer: registryadmin" in found.fix
    assert any(line.startswith("    rootcertbundle: ") for line in found.fix)


def test_a_service_announced_differently_is_found_by_signing_for_it(fake: FakeRegistry) -> None:
    row = token_row()
    fake.service = "docker-registry"
    fake.trusted = {kid("current"), kid("next")}
    found = run(row, "token_trust")
    assert found.status == "fail" and "its service is 'docker-registry'" in found.summary
    assert "in the registry's config.yml: auth.token.service: registry" in found.fix


def test_an_issuer_left_at_the_default_is_found_from_outside(fake: FakeRegistry, settings) -> None:
    settings.TOKEN_ISSUER = PUBLIC_URL
    row = token_row()
    fake.trusted = {kid("current"), kid("next")}
    found = run(row, "token_trust")
    assert found.status == "fail" and "its issuer is 'registryadmin'" in found.summary


def test_a_key_only_the_next_is_trusted_names_the_bundle(fake: FakeRegistry) -> None:
    row = token_row()
    fake.trusted = {kid("next")}
    found = run(row, "token_trust")
    assert found.status == "fail" and "bundle holds our next key but not the current" in found.summary


def registry_config(tmp_path: Path, bundle: Path, issuer: str = "registryadmin", service: str = "registry") -> Path:
    path = tmp_path / "config.yml"
    path.write_text(f"auth:\n  token:\n    issuer: {issuer}\n    service: {service}\n    rootcertbundle: {bundle}\n")
    return path


def test_with_the_config_it_names_the_issuer(fake: FakeRegistry, tmp_path: Path) -> None:
    row = token_row()
    fake.issuer = "somebody-else"
    fake.trusted = {kid("current")}
    found = run(
        row, "token_trust", registry_config=registry_config(tmp_path, config.bundle_path("registry"), "somebody-else")
    )
    assert found.status == "fail" and "its issuer is 'somebody-else'" in found.summary
    assert any("auth.token.issuer: registryadmin" in line for line in found.fix)


def test_with_the_config_it_names_a_bundle_without_our_key(fake: FakeRegistry, tmp_path: Path) -> None:
    row = token_row()
    theirs = tmp_path / "bundle.pem"
    theirs.write_text(SigningKey.objects.get(state=KeyState.NEXT).certificate)
    found = run(row, "token_trust", registry_config=registry_config(tmp_path, theirs))
    assert found.status == "fail" and f"bundle {theirs} lacks our key" in found.summary
    assert f"copy {config.bundle_path('registry')} over {theirs}" in found.fix


def test_with_the_config_and_bundle_right_it_says_restart(fake: FakeRegistry, tmp_path: Path) -> None:
    row = token_row()  # the registry still trusts nothing of ours: it was not restarted since
    found = run(row, "token_trust", registry_config=registry_config(tmp_path, config.bundle_path("registry")))
    assert found.status == "fail" and "restart" in found.summary


def test_an_unreadable_bundle_is_said_and_the_candidates_stay(fake: FakeRegistry, tmp_path: Path) -> None:
    row = token_row()
    found = run(row, "token_trust", registry_config=registry_config(tmp_path, tmp_path / "missing.pem"))
    assert found.status == "fail" and "issuer" in found.summary
    assert any("cannot be read here" in line for line in found.evidence)


def test_token_trust_skips_htpasswd_mode_and_registries_without_tokens(fake: FakeRegistry) -> None:
    assert run(htpasswd_row(), "token_trust").status == "skip"
    Registry.objects.all().delete()
    fake.mode = "none"
    assert run(token_row(), "token_trust").status == "skip"
