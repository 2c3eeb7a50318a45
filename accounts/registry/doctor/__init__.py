"""The registry doctor: the classic registry authentication failures, found on the live registry, each with its fix.

``run(target)`` runs every check of ``CHECKS`` in order against one registry (``Target``) and returns a
``Report``: one ``Check`` per id with a status (``ok``, ``warn``, ``fail``, ``skip``), a one-line
summary, the evidence it saw and the fix to apply. ``manage.py doctor``, the registry's doctor page and
the daily job all call it. Each check lives in its own module under ``checks/`` and is a function
``check(target, state) -> Check``; ``state`` carries what earlier checks learnt (the registry's first
answer, whether it is reachable) so that the probes are not repeated.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from accounts.registry.doctor.checks import auth_settings, clock, cors, proxy, rate_limit, roles, tls, token_trust
from accounts.registry.doctor.model import CHECK_IDS, Check, Report, State, Target

__all__ = ["CHECKS", "CHECK_IDS", "Check", "Report", "State", "Target", "run"]

CHECKS: dict[str, Callable[[Target, State], Check]] = {
    "auth_settings": auth_settings.check,
    "token_trust": token_trust.check,
    "tls": tls.check,
    "roles": roles.check,
    "clock": clock.check,
    "proxy": proxy.check,
    "cors": cors.check,
    "rate_limit": rate_limit.check,
}
assert tuple(CHECKS) == CHECK_IDS


def run(target: Target) -> Report:
    """Every check against ``target``; a check that breaks is reported as one that could not run, never raised."""
    started = time.monotonic()
    state = State()
    checks = []
    for check_id, check in CHECKS.items():
        try:
            found = check(target, state)
        except Exception as exc:
            found = Check(check_id, "warn", f"the doctor could not run this check: {type(exc).__name__}: {exc}")
        checks.append(found)
    return Report(target.registry.service, target.url, checks, round(time.monotonic() - started, 3))
