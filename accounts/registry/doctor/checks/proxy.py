"""The ``proxy`` check: the registry reached directly and through the address clients use (``--url``).

In token mode a short-lived probe token, signed as the token endpoint signs (current key, same
claims, no access), is sent both ways: accepted directly but refused through ``--url`` means the
proxy drops ``Authorization`` or rewrites ``Host``. In htpasswd mode only the plain answers are
compared. The token is never shown: evidence holds statuses only.
"""

from __future__ import annotations

import time
import uuid

from django.conf import settings

from accounts.models import AuthMode
from accounts.registry.doctor.http import Answer, TLSRefused, Unreachable, endpoint, fetch
from accounts.registry.doctor.model import Check, State, Target
from accounts.registry.keys import current_signer
from accounts.registry.tokens import NBF_BACKDATE

PROBE_SECONDS = 60
NGINX_LINES = [
    "proxy_set_header Authorization $http_authorization;",
    "proxy_set_header Host $http_host;",
    "proxy_set_header X-Forwarded-Proto $scheme;",
]


def check(target: Target, state: State) -> Check:
    if not target.through_proxy:
        return _direct_only(target, state)
    headers = _probe_headers(target)
    try:
        direct = fetch("GET", f"{target.direct_url}/v2/", headers, verify=False)
    except (Unreachable, TLSRefused) as exc:
        return _unreachable(exc, "the registry's own address (the registry row's URL)")
    try:
        through = fetch("GET", f"{target.url}/v2/", headers, verify=False)
    except (Unreachable, TLSRefused) as exc:
        return _unreachable(exc, "the address clients use (--url)")
    return _compare(direct, through, with_token=bool(headers))


def _probe_headers(target: Target) -> dict[str, str]:
    if target.registry.auth_mode != AuthMode.TOKEN:
        return {}
    now = int(time.time())
    claims = {
        "iss": settings.TOKEN_ISSUER,
        "sub": "",
        "aud": target.registry.service,
        "exp": now + PROBE_SECONDS,
        "nbf": now - NBF_BACKDATE,
        "iat": now,
        "jti": uuid.uuid4().hex,
        "access": [],
    }
    return {"Authorization": f"Bearer {current_signer.get().sign(claims)}"}


def _compare(direct: Answer, through: Answer, *, with_token: bool) -> Check:
    sent = "with a probe token" if with_token else "without credentials (htpasswd mode)"
    evidence = [f"GET /v2/ {sent}: directly {direct.status}, through --url {through.status}"]
    if through.status == 429:
        return Check("proxy", "warn", "the address clients use answers 429 (see rate_limit)", evidence)
    if with_token and direct.status == 200 and through.status == 401:
        summary = (
            "a token the registry accepts directly is refused through --url: "
            "the proxy drops Authorization or rewrites Host"
        )
        return Check("proxy", "fail", summary, evidence, _proxy_fix())
    if direct.status != through.status:
        summary = f"the registry answers {direct.status} directly but {through.status} through --url"
        return Check("proxy", "fail", summary, evidence, _proxy_fix())
    if with_token and direct.status != 200:
        summary = f"both addresses answer alike ({direct.status}), but the probe token is refused (see token_trust)"
        return Check("proxy", "warn", summary, evidence)
    return Check("proxy", "ok", f"both addresses answer alike ({direct.status})", evidence)


def _direct_only(target: Target, state: State) -> Check:
    answer = state.base_answer
    if answer is None:
        try:
            answer = fetch("GET", f"{target.url}/v2/", verify=False)
        except (Unreachable, TLSRefused) as exc:
            return _unreachable(exc, "the registry's address")
    _, host, port = endpoint(target.url)
    summary = f"{host}:{port} answers (no --url given: no proxy to compare)"
    return Check("proxy", "ok", summary, [f"GET /v2/: {answer.status}"])


def _unreachable(exc: Unreachable | TLSRefused, what: str) -> Check:
    summary = f"{exc.host}:{exc.port}, {what}, cannot be reached: {exc.reason}"
    fix = [
        f"check that something listens on {exc.host}:{exc.port} (a wrong port, a stopped registry or proxy)",
        f"check the firewalls between here and {exc.host} (security groups, nftables/iptables) for TCP port {exc.port}",
    ]
    return Check("proxy", "fail", summary, [f"{exc.host}:{exc.port}: {exc.reason}"], fix)


def _proxy_fix() -> list[str]:
    return [
        "in the proxy's location for /v2/ (nginx), keep these lines:",
        *[f"  {line}" for line in NGINX_LINES],
        "other proxies: forward the Authorization header untouched and the client's Host; set X-Forwarded-Proto",
    ]
