"""The ``cors`` check: whether a browser UI at ``--origin`` may call the registry.

A browser first sends a preflight ``OPTIONS`` (the UI sets ``Authorization``), then the ``GET``
itself; both answers must carry ``Access-Control-Allow-Origin`` for that origin, and the preflight's
``Access-Control-Allow-Headers`` must name ``Authorization`` (a ``*`` does not cover it). A preflight
must also be answered with a 2xx status: registry 2.8 answers ``OPTIONS`` with 401 when auth is on
(checked here), so a UI on another origin needs a proxy that answers it.
"""

from __future__ import annotations

from accounts.registry.doctor.http import Answer, TLSRefused, Unreachable, fetch
from accounts.registry.doctor.model import Check, State, Target


def check(target: Target, state: State) -> Check:
    origin = target.origin
    if not origin:
        return Check("cors", "skip", "no --origin given (the web origin of a browser-based registry UI)")
    if state.reachable is False:
        return Check("cors", "skip", f"the registry cannot be reached: {state.unreachable_reason}")
    asked = {
        "Origin": origin,
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "Authorization",
    }
    try:
        preflight = fetch("OPTIONS", f"{target.url}/v2/", asked, verify=False)
        answer = fetch("GET", f"{target.url}/v2/", {"Origin": origin}, verify=False)
    except (Unreachable, TLSRefused) as exc:
        return Check("cors", "skip", f"the registry cannot be reached: {exc}")
    return _judge(origin, preflight, answer)


def _judge(origin: str, preflight: Answer, answer: Answer) -> Check:
    evidence = [_seen("OPTIONS", preflight), _seen("GET", answer)]
    missing = _missing(origin, preflight, answer)
    if missing:
        summary = f"a browser at {origin} is refused: {'; '.join(missing)}"
        return Check("cors", "warn", summary, evidence, _headers_fix(origin))
    if not 200 <= preflight.status < 300:
        summary = (
            f"the headers are right, but the preflight is answered {preflight.status}: browsers need a 2xx "
            "(the registry asks for credentials on OPTIONS too)"
        )
        return Check("cors", "warn", summary, evidence, _preflight_fix(origin))
    if "docker-content-digest" not in _values(answer, "access-control-expose-headers"):
        evidence.append("Docker-Content-Digest is not exposed: a UI cannot read digests (needed to delete by digest)")
    return Check("cors", "ok", f"a browser at {origin} may call the registry with Authorization", evidence)


def _missing(origin: str, preflight: Answer, answer: Answer) -> list[str]:
    missing = []
    for method, found in (("OPTIONS", preflight), ("GET", answer)):
        allowed = _values(found, "access-control-allow-origin")
        if origin.lower() not in allowed and "*" not in allowed:
            missing.append(f"no Access-Control-Allow-Origin for it on {method}")
    if "authorization" not in _values(preflight, "access-control-allow-headers"):
        missing.append("Access-Control-Allow-Headers lacks Authorization")
    return missing


def _values(answer: Answer, name: str) -> set[str]:
    """Every comma-separated value of every ``name`` header (the registry repeats the header per value)."""
    return {part.strip().lower() for value in answer.headers.get(name, []) for part in value.split(",") if part.strip()}


def _seen(method: str, answer: Answer) -> str:
    shown = [
        f"{name}: {', '.join(values)}"
        for name, values in sorted(answer.headers.items())
        if name.startswith("access-control-")
    ]
    return f"{method} /v2/: {answer.status}; {'; '.join(shown) or 'no Access-Control-* headers'}"


def _headers_fix(origin: str) -> list[str]:
    return [
        "add to the registry's config.yml and restart it:",
        "http:",
        "  headers:",
        f"    Access-Control-Allow-Origin: ['{origin}']",
        "    Access-Control-Allow-Methods: ['HEAD', 'GET', 'OPTIONS', 'DELETE']",
        "    Access-Control-Allow-Headers: ['Authorization', 'Accept', 'Cache-Control']",
        "    Access-Control-Expose-Headers: ['Docker-Content-Digest']",
        "(with a proxy in front, it must pass these headers on, or add them itself)",
    ]


def _preflight_fix(origin: str) -> list[str]:
    return [
        "answer the preflight in the proxy in front of the registry (nginx, in the location for /v2/):",
        "  if ($request_method = OPTIONS) {",
        f"    add_header Access-Control-Allow-Origin '{origin}' always;",
        "    add_header Access-Control-Allow-Methods 'HEAD, GET, OPTIONS, DELETE' always;",
        "    add_header Access-Control-Allow-Headers 'Authorization, Accept, Cache-Control' always;",
        "    return 204;",
        "  }",
        "or serve the UI from the registry's own origin (the same host and port), where no preflight is needed",
    ]
