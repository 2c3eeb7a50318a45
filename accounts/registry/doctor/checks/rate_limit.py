"""The ``rate_limit`` check: a 429 from the registry or a proxy in front of it, and who our own limits hold.

``GET /v2/`` and a few quick repeats: any 429 fails, with its ``Retry-After`` (skopeo and podman
wait that long and retry, so a long one looks like a hung pull). An answer without the registry's
``Docker-Distribution-Api-Version`` header came from something in front of it. Our own limits on
failed sign-ins (``AuthHold`` rows still in force) are shown beside, and warn while they hold anyone.
"""

from __future__ import annotations

from accounts.models import AuthHold
from accounts.registry.doctor.http import Answer, TLSRefused, Unreachable, fetch
from accounts.registry.doctor.model import Check, State, Target
from accounts.services import limits

REPEATS = 2
SHOWN_HOLDS = 5


def check(target: Target, state: State) -> Check:
    if state.reachable is False:
        return _with_holds(Check("rate_limit", "skip", f"the registry cannot be reached: {state.unreachable_reason}"))
    answers: list[Answer] = [] if state.base_answer is None else [state.base_answer]
    try:
        while len(answers) < REPEATS + 1:
            answers.append(fetch("GET", f"{target.url}/v2/", verify=False))
    except (Unreachable, TLSRefused) as exc:
        if not answers:
            return _with_holds(Check("rate_limit", "skip", f"the registry cannot be reached: {exc}"))
    evidence = [f"GET /v2/ {len(answers)} times: {', '.join(str(a.status) for a in answers)}"]
    limited = next((a for a in answers if a.status == 429), None)
    if limited is not None:
        return _with_holds(_limited(limited, evidence))
    return _with_holds(Check("rate_limit", "ok", "no 429 from the registry or in front of it", evidence))


def _limited(answer: Answer, evidence: list[str]) -> Check:
    retry_after = answer.header("retry-after") or "not given"
    who = "the registry" if answer.header("docker-distribution-api-version") else "a proxy in front of the registry"
    evidence.append(f"429 from {who}; Retry-After: {retry_after}")
    summary = f"{who} answers 429 Too Many Requests (Retry-After: {retry_after}): clients wait, then fail"
    fix = [
        "raise the limit for /v2/ in the proxy or load balancer (nginx: `limit_req zone=registry burst=200 nodelay;` "
        "and a larger `rate` in its `limit_req_zone`), or exempt your CI and cluster addresses",
        "one image pull is many requests (manifests, then every layer): size the limit per pull, not per page",
        "a long Retry-After makes skopeo and podman hang for minutes before they report 'too many requests'",
    ]
    return Check("rate_limit", "fail", summary, evidence, fix)


def _with_holds(found: Check) -> Check:
    """Add how many clients our own failed sign-in limits hold right now; warn while any are held."""
    holds = limits.active_holds()
    if not holds:
        found.evidence.append("our own limits hold no one right now")
        return found
    found.evidence.append(f"our own limits hold {len(holds)} right now (token endpoint and sign-in answer 429):")
    found.evidence += [f"  {limits.describe(hold)} until {_until(hold)}" for hold in holds[:SHOWN_HOLDS]]
    found.fix.append(
        "see who is held on the admin home page; lift a hold there or with "
        "`manage.py lift_limit --ip ADDR` / `--user NAME` once you know who it is"
    )
    if found.status in ("ok", "skip"):
        found.status = "warn"
        found.summary += f"; our own limits hold {len(holds)} client{'s' if len(holds) > 1 else ''}"
    return found


def _until(hold: AuthHold) -> str:
    return f"{hold.held_until:%Y-%m-%d %H:%M:%S} UTC"
