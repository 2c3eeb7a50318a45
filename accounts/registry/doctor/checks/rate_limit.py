"""The ``rate_limit`` check (not written yet: reported as skipped)."""

from __future__ import annotations

from accounts.registry.doctor.model import Check, State, Target


def check(target: Target, state: State) -> Check:
    return Check("rate_limit", "skip", "not checked yet")
