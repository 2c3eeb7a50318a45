"""The ``token_trust`` check: the registry accepts a token we sign, with our current key and with the next one.

A registry answers the same ``401 invalid_token`` for a wrong ``iss``, a wrong ``aud`` and a key its
``rootcertbundle`` lacks. From outside, the variants we can sign (the ``service`` it announces as
``aud``, a few likely issuers) tell some apart; the registry's config.yml (``--registry-config``),
and the bundle it names when readable here, name the exact cause. The probe tokens grant nothing
(an empty ``access``: ``GET /v2/`` needs none) and live a minute; they are never shown.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from django.conf import settings

from accounts.models import AuthMode, KeyState, SigningKey
from accounts.registry import config
from accounts.registry.doctor.checks.auth_settings import (
    base_answer,
    dig,
    parse_challenge,
    read_registry_config,
    seen,
    token_lines,
    verify_tls,
)
from accounts.registry.doctor.http import TLSRefused, Unreachable, fetch
from accounts.registry.doctor.model import Check, State, Target
from accounts.registry.keys import current_signer, load_signer
from accounts.registry.signing import Signer, libtrust_kid
from accounts.registry.tokens import NBF_BACKDATE

ID = "token_trust"
PROBE_LIFETIME = 60  # seconds
PROBE_SUBJECT = "registryadmin-doctor"
DEFAULT_ISSUER = "registryadmin"  # settings' default: a registry configured before TOKEN_ISSUER was set


@dataclass(frozen=True)
class Tried:
    """How the registry answered one probe token."""

    status: int  # 0: no answer
    error: str  # the challenge's error= ("invalid_token"), "" when none

    @property
    def accepted(self) -> bool:
        return self.status == 200


def check(target: Target, state: State) -> Check:
    if target.registry.auth_mode == AuthMode.HTPASSWD:
        return Check(ID, "skip", "htpasswd mode: the registry checks passwords, not our tokens")
    answer = base_answer(target, state)
    if answer is None:
        return Check(ID, "skip", "registry unreachable", [state.unreachable_reason])
    challenge = parse_challenge(answer.header("www-authenticate"))
    if answer.status != 401 or challenge is None or challenge.scheme != "bearer":
        return Check(ID, "skip", "the registry does not ask for tokens (see auth_settings)", [seen(answer)])
    current = current_signer.get()
    tried = _try(target, state, current)
    if not tried.accepted:
        return _refused(target, state, challenge.params.get("service", ""), current, tried)
    return _next_key(target, state, current)


def probe_claims(service: str, issuer: str | None = None) -> dict[str, Any]:
    """Claims as the token endpoint makes them, granting nothing and living a minute."""
    now = int(time.time())
    return {
        "iss": settings.TOKEN_ISSUER if issuer is None else issuer,
        "sub": PROBE_SUBJECT,
        "aud": service,
        "exp": now + PROBE_LIFETIME,
        "nbf": now - NBF_BACKDATE,
        "iat": now,
        "jti": uuid.uuid4().hex,
        "access": [],
    }


def _try(target: Target, state: State, signer: Signer, *, aud: str | None = None, iss: str | None = None) -> Tried:
    token = signer.sign(probe_claims(aud if aud is not None else target.registry.service, iss))
    # Trust is the registry's own: asked directly, so a proxy that drops Authorization is the proxy check's
    # finding, not a key or issuer problem here.
    url, verify = (target.direct_url, False) if target.through_proxy else (target.url, verify_tls(state))
    try:
        answer = fetch("GET", f"{url}/v2/", {"Authorization": f"Bearer {token}"}, verify=verify)
    except (Unreachable, TLSRefused):
        return Tried(0, "")
    challenge = parse_challenge(answer.header("www-authenticate"))
    return Tried(answer.status, challenge.params.get("error", "") if challenge else "")


def _next_signer() -> Signer | None:
    key = SigningKey.objects.filter(state=KeyState.NEXT).first()
    return load_signer(key) if key is not None else None


def _kid(signer: Signer) -> str:
    return signer.kid[:14]


# Accepted: and the next key? ---------------------------------------------------


def _next_key(target: Target, state: State, current: Signer) -> Check:
    accepted = f"a probe token signed with our current key ({_kid(current)}...) was accepted"
    upcoming = _next_signer()
    if upcoming is None:
        return Check(ID, "ok", "the registry accepts our tokens (there is no next key yet)", [accepted])
    tried = _try(target, state, upcoming)
    if tried.accepted:
        evidence = [accepted, f"one signed with our next key ({_kid(upcoming)}...) too"]
        return Check(ID, "ok", "the registry accepts tokens signed with our current and our next key", evidence)
    evidence = [accepted, f"one signed with our next key ({_kid(upcoming)}...) got {_shown(tried)}"]
    bundle = _their_bundle(target)
    if bundle is not None:
        evidence.append(_bundle_holds(bundle, upcoming)[1])
    summary = (
        "the registry refuses our next key: a key rotation would break it until it is restarted with the new bundle"
    )
    return Check(ID, "warn", summary, evidence, _bundle_fix(target, restart=True))


def _shown(tried: Tried) -> str:
    if tried.status == 0:
        return "no answer"
    return f"HTTP {tried.status}" + (f" {tried.error}" if tried.error else "")


# Refused: which of issuer, service, bundle? ----------------------------------


def _refused(target: Target, state: State, announced: str, current: Signer, tried: Tried) -> Check:
    evidence = [f"a probe token signed with our current key ({_kid(current)}...) got {_shown(tried)}"]
    if tried.status not in (401, 403):
        summary = f"the registry failed on our token ({_shown(tried)}) instead of judging it"
        return Check(ID, "fail", summary, evidence, ["look at the registry's log for the request to /v2/"])
    cause = _variant_cause(target, state, announced, current, evidence) or _config_cause(target, current, evidence)
    if cause:
        return Check(ID, "fail", f"the registry refuses our tokens: {cause.summary}", evidence, cause.fix)
    evidence.append(
        f"the registry's 401 is the same for a wrong issuer and an untrusted key; left: its auth.token.issuer"
        f" (ours {settings.TOKEN_ISSUER!r}), or its rootcertbundle lacks our certificate;"
        " pass --registry-config FILE to name which"
    )
    evidence += _clock_hint(state)
    summary = "the registry refuses our tokens: a wrong issuer, or a certificate bundle without our key"
    return Check(ID, "fail", summary, evidence, [*_bundle_fix(target), *token_lines(target.registry)])


@dataclass(frozen=True)
class Cause:
    summary: str
    fix: list[str]


def _variant_cause(target: Target, state: State, announced: str, current: Signer, evidence: list[str]) -> Cause | None:
    """Sign what we can vary from outside: the ``aud`` the registry announces, likely issuers, the next key."""
    service = target.registry.service
    if announced and announced != service and _try(target, state, current, aud=announced).accepted:
        evidence.append(f"the same token with aud={announced!r} (the service the registry announces) was accepted")
        fix = [f"in the registry's config.yml: auth.token.service: {service}", "then restart the registry"]
        return Cause(f"its service is {announced!r}, this registry's (our aud) is {service!r}", fix)
    for issuer in _likely_issuers():
        if _try(target, state, current, iss=issuer).accepted:
            evidence.append(f"the same token with iss={issuer!r} was accepted")
            fix = [
                f"in the registry's config.yml: auth.token.issuer: {settings.TOKEN_ISSUER}",
                "then restart the registry",
            ]
            return Cause(f"its issuer is {issuer!r}, ours (TOKEN_ISSUER) is {settings.TOKEN_ISSUER!r}", fix)
    upcoming = _next_signer()
    if upcoming is not None and _try(target, state, upcoming).accepted:
        evidence.append(f"a token signed with our next key ({_kid(upcoming)}...) was accepted")
        return Cause(
            "its certificate bundle holds our next key but not the current one", _bundle_fix(target, restart=True)
        )
    return None


def _likely_issuers() -> list[str]:
    """Issuers a registry set up from an older or hand-written config may carry."""
    public = urlsplit(settings.PUBLIC_URL)
    guesses = [DEFAULT_ISSUER, settings.PUBLIC_URL, f"{settings.PUBLIC_URL}/auth/token", public.hostname or ""]
    return [g for g in dict.fromkeys(guesses) if g and g != settings.TOKEN_ISSUER]


def _config_cause(target: Target, current: Signer, evidence: list[str]) -> Cause | None:
    """With the registry's config.yml: its issuer, its service, and whether its bundle holds our key."""
    token = dig(read_registry_config(target), "auth", "token")
    if not isinstance(token, dict):
        return None
    service = target.registry.service
    evidence.append(
        f"{target.registry_config}: "
        + ", ".join(f"{k} {token.get(k)!r}" for k in ("issuer", "service", "rootcertbundle"))
    )
    if token.get("issuer") != settings.TOKEN_ISSUER:
        fix = [f"in {target.registry_config}: auth.token.issuer: {settings.TOKEN_ISSUER}", "then restart the registry"]
        return Cause(f"its issuer is {token.get('issuer')!r}, ours (TOKEN_ISSUER) is {settings.TOKEN_ISSUER!r}", fix)
    if token.get("service") != service:
        fix = [f"in {target.registry_config}: auth.token.service: {service}", "then restart the registry"]
        return Cause(f"its service is {token.get('service')!r}, this registry's (our aud) is {service!r}", fix)
    return _bundle_cause(target, current, evidence)


def _bundle_cause(target: Target, current: Signer, evidence: list[str]) -> Cause | None:
    """Issuer and service agree: either the bundle it names lacks our key, or it has not loaded it yet."""
    bundle = _their_bundle(target)
    holds, line = _bundle_holds(bundle, current) if bundle is not None else (None, "")
    evidence += [line] if line else []
    if holds is None:
        return None
    if not holds:
        return Cause(f"its certificate bundle {bundle} lacks our key", _bundle_fix(target, restart=True))
    fix = [
        "restart the registry: it reads rootcertbundle only at start",
        "and check that no REGISTRY_AUTH_TOKEN_* environment variable overrides its config.yml",
    ]
    return Cause("its config and bundle are right, but it has not loaded them since (restart it)", fix)


def _their_bundle(target: Target) -> Path | None:
    """The registry's rootcertbundle (relative paths taken from its config's folder), when a config was given."""
    named = dig(read_registry_config(target), "auth", "token", "rootcertbundle")
    if not named or target.registry_config is None:
        return None
    path = Path(str(named))
    return path if path.is_absolute() else target.registry_config.parent / path


def _bundle_holds(bundle: Path, signer: Signer) -> tuple[bool | None, str]:
    """Whether the certificate file holds ``signer``'s key (None: unreadable here), and the evidence line."""
    try:
        certificates = x509.load_pem_x509_certificates(bundle.read_bytes())
    except (OSError, ValueError) as exc:
        return None, f"the bundle {bundle} cannot be read here ({exc}): check by hand that it holds our certificates"
    keys = [c.public_key() for c in certificates]
    kids = {libtrust_kid(key) for key in keys if isinstance(key, ec.EllipticCurvePublicKey)}
    if signer.kid in kids:
        return True, f"the bundle {bundle} holds our key {_kid(signer)}..."
    return False, f"the bundle {bundle} lacks our key {_kid(signer)}... ({len(certificates)} certificates, none ours)"


RESTART = "then restart the registry (it reads rootcertbundle only at start)"


def _bundle_fix(target: Target, *, restart: bool = False) -> list[str]:
    service = target.registry.service
    ours = config.bundle_path(service)
    theirs = _their_bundle(target)
    written = (
        f"our bundle is {ours}"
        if ours.is_file()
        else f"write our bundle: manage.py registry_config --registry {service}"
    )
    copy = (
        f"copy {ours} over {theirs}"
        if theirs is not None and theirs != ours
        else f"point auth.token.rootcertbundle at {ours}"
    )
    return [written, copy, *([RESTART] if restart else [])]


def _clock_hint(state: State) -> list[str]:
    """A registry clock far from ours refuses tokens too: say so when its Date header shows it."""
    answer = state.base_answer
    date = answer.header("date") if answer is not None else ""
    try:
        skew = abs(time.time() - parsedate_to_datetime(date).timestamp())
    except (TypeError, ValueError):
        return []
    return [f"or its clock: it is {skew:.0f} s away from ours (see clock)"] if skew > NBF_BACKDATE else []
