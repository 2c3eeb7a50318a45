"""The ``clock`` check: our clock against the registry's ``Date`` header, and our tokens' lifetime.

A token is issued with ``nbf`` backdated by ``NBF_BACKDATE`` and expires ``TOKEN_TTL`` after issue:
a registry whose clock is further off than ``TOKEN_TTL - NBF_BACKDATE`` refuses tokens that are
not yet valid or already expired on its clock. The skew is measured against the midpoint of the
probe (the ``Date`` header has a resolution of one second).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from django.conf import settings

from accounts.registry.doctor.http import TLSRefused, Unreachable, fetch
from accounts.registry.doctor.model import Check, State, Target
from accounts.registry.tokens import NBF_BACKDATE

WARN_SECONDS = 30
MIN_EXPIRES_IN = 60  # clients treat less as 60 anyway


def check(target: Target, state: State) -> Check:
    if state.reachable is False:
        return Check("clock", "skip", f"the registry cannot be reached: {state.unreachable_reason}")
    try:
        ours, date = _probe(target.url)
    except (Unreachable, TLSRefused) as exc:
        return Check("clock", "skip", f"the registry cannot be reached: {exc}")
    ttl = int(settings.TOKEN_TTL)
    if ttl < MIN_EXPIRES_IN:
        summary = f"our tokens live {ttl} s (TOKEN_TTL); clients treat under {MIN_EXPIRES_IN} s as {MIN_EXPIRES_IN}"
        return Check(
            "clock", "fail", summary, [f"expires_in: {ttl} s"], [f"set TOKEN_TTL to at least {MIN_EXPIRES_IN}"]
        )
    if not date:
        summary = "the registry's answer has no usable Date header: its clock cannot be compared"
        return Check("clock", "warn", summary, [f"our clock: {_stamp(ours)}", f"Date: {date or 'missing'}"])
    return _judge(ours, parsedate_to_datetime(date), ttl)


def _probe(url: str) -> tuple[datetime, str]:
    """Our time at the middle of a ``GET /v2/``, and the ``Date`` the registry (or its proxy) sent."""
    before = time.time()
    answer = fetch("GET", f"{url}/v2/", verify=False)
    after = time.time()
    date = answer.header("date")
    try:
        parsedate_to_datetime(date)
    except (TypeError, ValueError):
        date = ""
    return datetime.fromtimestamp((before + after) / 2, UTC), date


def _judge(ours: datetime, theirs: datetime, ttl: int) -> Check:
    skew = float(round((theirs - ours).total_seconds()))  # Date has whole seconds: no "-0 s"
    limit = ttl - NBF_BACKDATE
    direction = "ahead of" if skew > 0 else "behind"
    evidence = [
        f"our clock: {_stamp(ours)}",
        f"the registry's Date: {_stamp(theirs)}",
        f"skew: {skew:+.0f} s (the registry is {abs(skew):.0f} s {direction} us)",
        f"our tokens: expires_in {ttl} s (TOKEN_TTL), nbf backdated {NBF_BACKDATE} s",
    ]
    if abs(skew) > limit:
        effect = "already expired" if skew > 0 else "not yet valid"
        summary = f"the clocks differ by {abs(skew):.0f} s (over {limit} s): our tokens arrive {effect}"
        return Check("clock", "fail", summary, evidence, _fix())
    if abs(skew) > WARN_SECONDS:
        summary = f"the clocks differ by {abs(skew):.0f} s (over {WARN_SECONDS} s; tokens fail past {limit} s)"
        return Check("clock", "warn", summary, evidence, _fix())
    return Check("clock", "ok", f"the clocks agree within {max(1, round(abs(skew)))} s", evidence)


def _fix() -> list[str]:
    return [
        "find the host that is off (compare each with a reference: `chronyc tracking` or `timedatectl`) "
        "and keep it in time with NTP: `apt install chrony` (or `timedatectl set-ntp true`)",
        "a proxy in front of the registry may also rewrite Date: compare with the registry's own address",
    ]


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
