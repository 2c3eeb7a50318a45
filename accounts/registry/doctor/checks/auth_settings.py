"""The ``auth_settings`` check: ``/v2/`` asks for the credentials this registry's mode expects, from us.

Token mode: ``401`` with ``Bearer realm="PUBLIC_URL/auth/token",service="<service>"``. htpasswd mode:
``401`` with ``Basic``, our file sound, and the registry really reading it. Only a probe entry proves
the last point: a registry that reads another path, or cannot read ours, looks the same from the
file's side. The first answer of ``GET /v2/`` is kept in ``state`` for the later checks.
"""

from __future__ import annotations

import base64
import grp
import ipaddress
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from django.conf import settings

from accounts.models import AuthMode, Registry
from accounts.registry import config, htpasswd
from accounts.registry.doctor.http import Answer, TLSRefused, Unreachable, fetch
from accounts.registry.doctor.model import Check, State, Target

ID = "auth_settings"
PROBE_PREFIX = "doctor-probe-"
PROBE_WAIT = 3.0  # seconds: the registry re-reads the file on its next request; this is the margin
# A random 192-bit password living for seconds needs no work factor; cost 4 keeps the registry's check cheap.
PROBE_COST = 4
TLS_NOTE = "tls_refused"  # state.notes key: the handshake did not verify, later probes look without verifying
_PARAM = re.compile(r'([A-Za-z_]+)=(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))')


@dataclass(frozen=True)
class Challenge:
    """A parsed ``WWW-Authenticate``: the scheme (lower case) and its parameters."""

    scheme: str
    params: dict[str, str]


def parse_challenge(header: str) -> Challenge | None:
    scheme, _, rest = header.strip().partition(" ")
    if not scheme:
        return None
    params = {m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3) for m in _PARAM.finditer(rest)}
    return Challenge(scheme.lower(), params)


def verify_tls(state: State) -> bool:
    """Whether probes verify TLS: not once the handshake was refused (the ``tls`` check says why)."""
    return TLS_NOTE not in state.notes


def base_answer(target: Target, state: State) -> Answer | None:
    """``GET {url}/v2/`` once per run, kept in ``state``; None when the registry cannot be reached."""
    if state.base_answer is not None or state.reachable is False:
        return state.base_answer
    try:
        state.base_answer = fetch("GET", f"{target.url}/v2/")
    except TLSRefused as exc:
        # The auth settings are still worth reading behind a certificate clients would refuse.
        state.notes[TLS_NOTE] = str(exc)
        try:
            state.base_answer = fetch("GET", f"{target.url}/v2/", verify=False)
        except Unreachable as unreachable:
            state.reachable, state.unreachable_reason = False, str(unreachable)
            return None
    except Unreachable as exc:
        state.reachable, state.unreachable_reason = False, str(exc)
        return None
    state.reachable = True
    return state.base_answer


def read_registry_config(target: Target) -> dict[str, Any]:
    """The registry's config.yml (``--registry-config``), or {} when none was given or it does not parse."""
    if target.registry_config is None:
        return {}
    try:
        loaded = yaml.safe_load(target.registry_config.read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def dig(data: Any, *keys: str) -> Any:
    """``data[k1][k2]...`` through nested mappings, None where one is missing."""
    for key in keys:
        data = data.get(key) if isinstance(data, dict) else None
    return data


def seen(answer: Answer) -> str:
    challenge = answer.header("www-authenticate")
    return f"GET /v2/ answered HTTP {answer.status}" + (f", WWW-Authenticate: {challenge}" if challenge else "")


def token_lines(registry: Registry) -> list[str]:
    """The ``auth:`` lines of a token-mode config.yml, as ``registry_config`` renders them."""
    fragment = config.token_fragment(registry.service, config.bundle_path(registry.service), "")
    return _config_lines(fragment)


def htpasswd_lines(registry: Registry) -> list[str]:
    fragment = config.htpasswd_fragment(registry.service, htpasswd.path_for(registry).resolve(), "")
    return _config_lines(fragment)


def _config_lines(fragment: dict[str, Any]) -> list[str]:
    rendered = config.render({"auth": fragment["auth"]}).splitlines()
    return ["in the registry's config.yml:", *rendered, "then restart the registry (it reads auth: at start)"]


def check(target: Target, state: State) -> Check:
    answer = base_answer(target, state)
    if answer is None:
        return Check(ID, "skip", "registry unreachable", [state.unreachable_reason])
    if target.registry.auth_mode == AuthMode.HTPASSWD:
        return _htpasswd_mode(target, state, answer)
    return _token_mode(target, answer)


# Token mode ------------------------------------------------------------------


def _token_mode(target: Target, answer: Answer) -> Check:
    registry = target.registry
    challenge = parse_challenge(answer.header("www-authenticate"))
    wrong = _wrong_scheme(answer, challenge, "bearer")
    if wrong:
        switch = f"or, to keep it as it is: manage.py registry_config --registry {registry.service} --mode htpasswd"
        extra = [switch] if challenge is not None and challenge.scheme == "basic" else []
        return Check(ID, "fail", wrong, [seen(answer)], [*token_lines(registry), *extra])
    assert challenge is not None
    realm, service = challenge.params.get("realm", ""), challenge.params.get("service", "")
    expected = {"realm": f"{settings.PUBLIC_URL}/auth/token", "service": registry.service}
    theirs = {"realm": realm.rstrip("/"), "service": service}
    differ = [name for name in expected if theirs[name] != expected[name]]
    if differ:
        said = [f"the registry's {name} is {theirs[name]!r}; ours is {expected[name]!r}" for name in differ]
        summary = f"token mode, but the {' and '.join(differ)} differ from ours"
        return Check(ID, "fail", summary, [seen(answer), *said], token_lines(registry))
    return _realm_reach(target, answer, realm)


def _wrong_scheme(answer: Answer, challenge: Challenge | None, expected: str) -> str:
    """Why the answer is not a ``401`` with the ``expected`` scheme ("" when it is)."""
    if answer.status == 200:
        return "the registry lets anyone in: GET /v2/ answers 200 without credentials (no auth: configured)"
    if answer.status != 401 or challenge is None:
        status = answer.status
        return f"GET /v2/ answered HTTP {status} without an auth challenge: is this the registry (or a proxy's page)?"
    if challenge.scheme == expected:
        return ""
    if challenge.scheme == "basic":
        return "the registry checks passwords itself (htpasswd mode) while registryadmin has it in token mode"
    if challenge.scheme == "bearer":
        return "the registry asks for tokens (token mode) while registryadmin has it in htpasswd mode"
    return f"the registry asks for {challenge.scheme!r} credentials, which registryadmin does not serve"


def _realm_reach(target: Target, answer: Answer, realm: str) -> Check:
    """The realm matches ours; warn when the clients that reach the registry cannot reach or trust it."""
    fix = [
        "set PUBLIC_URL to the https address clients use for registryadmin, then print the config again:",
        f"manage.py registry_config --registry {target.registry.service}",
        "and restart the registry with its auth: lines",
    ]
    if _on_loopback(realm) and not _on_loopback(target.url):
        summary = "the realm is on loopback: remote clients cannot reach the token server"
        return Check(ID, "warn", summary, [seen(answer), f"registry at {target.url}, realm {realm}"], fix)
    if urlsplit(realm).scheme == "http" and urlsplit(target.url).scheme == "https":
        summary = "the realm is plain http: clients send their passwords to it in clear"
        return Check(ID, "warn", summary, [seen(answer)], fix)
    return Check(ID, "ok", "token mode, with our realm and service", [seen(answer)])


def _on_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# htpasswd mode ---------------------------------------------------------------


def _htpasswd_mode(target: Target, state: State, answer: Answer) -> Check:
    registry = target.registry
    challenge = parse_challenge(answer.header("www-authenticate"))
    wrong = _wrong_scheme(answer, challenge, "basic")
    if wrong:
        switch = f"or, to keep it as it is: manage.py registry_config --registry {registry.service} --mode token"
        extra = [switch] if challenge is not None and challenge.scheme == "bearer" else []
        return Check(ID, "fail", wrong, [seen(answer)], [*htpasswd_lines(registry), *extra])
    path = htpasswd.path_for(registry).resolve()
    if not path.is_file():
        fix = [f"manage.py registry_config --registry {registry.service} --mode htpasswd (writes it)"]
        return Check(ID, "fail", f"our htpasswd file {path} is missing", [seen(answer)], fix)
    found = [*_file_findings(path), _probe(target, state, path)]
    status = next((s for s in ("fail", "warn") if any(f.status == s for f in found)), "ok")
    summaries = [f.summary for f in found if f.status == status and f.summary]
    summary = summaries[0] if summaries else "htpasswd mode, and the registry reads our file"
    evidence = [seen(answer), *(line for f in found for line in f.evidence)]
    return Check(ID, status, summary, evidence, [line for f in found for line in f.fix])


@dataclass
class Finding:
    status: str
    summary: str
    evidence: list[str]
    fix: list[str]


def _file_findings(path: Path) -> list[Finding]:
    """Entries and permissions of our file (the probe says whether the registry reads it)."""
    entries = [line.split(":", 1) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    found = []
    if not entries:
        fix = ["users must set a password (or robots be made) before htpasswd mode knows anyone"]
        found.append(Finding("fail", f"our htpasswd file {path} has no entries: nobody can log in", [], fix))
    ignored = [
        entry[0] for entry in entries if len(entry) < 2 or not entry[1].strip().startswith(htpasswd.BCRYPT_PREFIXES)
    ]
    if ignored:
        fix = ["do not edit the file by hand: the periodic sync rewrites it from the database within a minute"]
        summary = f"the registry ignores {len(ignored)} entries that are not bcrypt"
        found.append(Finding("fail", summary, [f"not bcrypt: {', '.join(ignored[:10])}"], fix))
    return [*found, *_permission_findings(path)]


def _permission_findings(path: Path) -> list[Finding]:
    info = path.stat()
    mode = info.st_mode & 0o777
    described = f"{path}: mode {mode:04o}, uid {info.st_uid}, gid {info.st_gid}"
    group = settings.HTPASSWD_GROUP
    fix_mode = [
        "HTPASSWD_MODE=0640 and HTPASSWD_GROUP=<the registry's group>, then rewrite the file:",
        f"manage.py registry_config --registry {path.parent.name} --mode htpasswd (or wait a minute for the sync)",
    ]
    if not group:
        return [
            Finding(
                "ok",
                "",
                [f"{described}; HTPASSWD_GROUP is not set: the registry must run as the file's owner or in its group"],
                [],
            )
        ]
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        return [Finding("fail", f"HTPASSWD_GROUP={group!r} is not a group on this host", [described], fix_mode)]
    found = [Finding("ok", "", [described], [])]
    if info.st_gid != gid or not mode & 0o040:
        found.append(Finding("fail", f"the registry's group {group} cannot read our htpasswd file", [], fix_mode))
    if mode & 0o007:
        found.append(Finding("warn", "our htpasswd file is readable by everyone (password hashes)", [], fix_mode))
    return found


def _probe(target: Target, state: State, path: Path) -> Finding:
    """Write a throwaway entry to our file, log in with it, remove it: does the registry read this file?"""
    name, password = PROBE_PREFIX + secrets.token_hex(6), secrets.token_urlsafe(24)
    with htpasswd.probe_entry(target.registry, name, htpasswd.hash_password(password, cost=PROBE_COST)):
        status = _log_in(f"{target.url}/v2/", name, password, verify_tls(state))
    if status == 200:
        return Finding("ok", "", [f"a probe entry written to {path} let us in, and was removed"], [])
    if status == 401:
        return _reads_another_file(target, path)
    if status == 0:
        return Finding("fail", "the registry stopped answering during the probe login", [], [])
    summary = f"the registry failed on our probe login (HTTP {status}): it cannot read {path}"
    fix = ["make the file readable by the registry's user: HTPASSWD_GROUP=<its group> and HTPASSWD_MODE=0640"]
    return Finding("fail", summary, [f"a probe entry written to {path} got HTTP {status}"], fix)


def _log_in(url: str, name: str, password: str, verify: bool) -> int:
    """Basic login until it works or PROBE_WAIT passes; the last status (0 when the registry stopped answering)."""
    basic = base64.b64encode(f"{name}:{password}".encode()).decode()
    deadline = time.monotonic() + PROBE_WAIT
    while True:
        try:
            status = fetch("GET", url, {"Authorization": f"Basic {basic}"}, verify=verify).status
        except (Unreachable, TLSRefused):
            return 0
        if status != 401 or time.monotonic() > deadline:
            return status
        time.sleep(0.2)


def _reads_another_file(target: Target, path: Path) -> Finding:
    evidence = [f"a probe entry written to {path} was refused for {PROBE_WAIT:g} s, then removed"]
    their_path = dig(read_registry_config(target), "auth", "htpasswd", "path")
    if their_path:
        evidence.append(f"{target.registry_config} names path {their_path}")
    summary = f"the registry does not read our htpasswd file {path}: it reads another file"
    return Finding("fail", summary, evidence, htpasswd_lines(target.registry))
