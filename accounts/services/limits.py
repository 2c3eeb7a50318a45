"""Failed sign-ins counted per (username, address) and per address; holds that stop guessing.

Counts live in Django's cache (``CACHE_URL``: Redis in production, the database cache in the
embedded default), so every worker and host sees the same numbers. A count is the sum of ten
buckets of a tenth of ``AUTH_FAIL_WINDOW`` each: a sliding window without a write per read.

- ``AUTH_FAIL_LIMIT_USER`` failures for one username from one address hold that pair;
- ``AUTH_FAIL_LIMIT_IP`` failures from one address, whatever the usernames, hold the address.

A held attempt is answered 429 without checking the guess. Holds start at a tenth of the window;
a failure within a window after a hold ends holds again at once, twice as long, up to
``AUTH_FAIL_MAX_BACKOFF``. The same username from another address is never held by these, so an
attacker cannot lock the real user out; a success resets its pair. Each hold also gets an
``AuthHold`` row, which is what the admin home page lists and what ``lift`` deletes.

The hot path (good credentials) costs one ``get_many`` before the check and nothing after it,
unless that pair had failures to forget.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.access import version
from accounts.models import AuthHold, HoldScope
from audit.context import AuditContext
from audit.models import Kind, SubjectType
from audit.services import record, record_change

BUCKETS = 10
REFRESH_TOKEN_LABEL = "(refresh token)"  # the refresh-token grant names no user: its pair uses ""


@dataclass(frozen=True)
class Hold:
    """Why an attempt is refused without a check, and until when (epoch seconds)."""

    scope: str
    until: float
    failures: int
    username: str
    ip: str

    def retry_after(self, now: float | None = None) -> int:
        return max(1, math.ceil(self.until - (_now() if now is None else now)))

    @property
    def reason(self) -> str:
        minutes = max(1, settings.AUTH_FAIL_WINDOW // 60)
        if self.scope == HoldScope.ADDRESS:
            return f"{self.failures} failed sign-ins from {self.ip} within {minutes} minutes"
        who = self.username or REFRESH_TOKEN_LABEL
        return f"{self.failures} failed sign-ins for {who} from {self.ip} within {minutes} minutes"


@dataclass(frozen=True)
class Check:
    """The answer to ``check``: a hold, or none; ``dirty`` when the pair has failures to forget."""

    hold: Hold | None
    dirty: bool = False


CLEAR = Check(None)


def _now() -> float:
    return time.time()  # a seam for tests: the cache's own expiry keeps real time


# Keys ----------------------------------------------------------------------------


def _pair(username: str, ip: str) -> str:
    return hashlib.sha256(f"{username.casefold()}\0{ip}".encode()).hexdigest()[:40]


def _address(ip: str) -> str:
    return hashlib.sha256(ip.encode()).hexdigest()[:40]


def _state_key(scope: str, ident: str) -> str:
    return f"limits:{scope}:{ident}"


def _bucket_keys(scope: str, ident: str, now: float, *, margin: int = 0) -> list[str]:
    """The window's buckets, oldest first (``margin`` more either side, for forgetting)."""
    current = int(now // _bucket_seconds())
    first, last = current - BUCKETS + 1 - margin, current + margin
    return [f"limits:{scope}:{ident}:{bucket}" for bucket in range(first, last + 1)]


def _bucket_seconds() -> int:
    return max(1, settings.AUTH_FAIL_WINDOW // BUCKETS)


def _row_key(scope: str, ident: str) -> str:
    return f"{scope}:{ident}"


def exempt(ip: str | None) -> bool:
    """No address (tests without REMOTE_ADDR), or one inside ``AUTH_LIMIT_EXEMPT_CIDRS``."""
    if not ip:
        return True
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return True
    return any(address in network for network in settings.AUTH_LIMIT_EXEMPT_CIDRS)


def counted(ip: str | None) -> bool:
    """Whether failures from ``ip`` are counted at all (``check`` answers CLEAR without a read if not)."""
    return _limits_on() and not exempt(ip)


def _limits_on() -> bool:
    return bool(settings.AUTH_FAIL_LIMIT_USER or settings.AUTH_FAIL_LIMIT_IP)


# The hot path ----------------------------------------------------------------------


def check(username: str, ip: str | None) -> Check:
    """Is this (username, address) held right now? One cache read, whatever the answer."""
    if not _limits_on() or exempt(ip):
        return CLEAR
    assert ip is not None
    now = _now()
    pair, address = _pair(username, ip), _address(ip)
    pair_state, address_state = _state_key("user", pair), _state_key("address", address)
    buckets = _bucket_keys("user", pair, now)
    found = cache.get_many([pair_state, address_state, *buckets])
    for scope, key in ((HoldScope.ADDRESS, address_state), (HoldScope.USER, pair_state)):
        state = found.get(key)
        if state and state["until"] > now:
            return Check(Hold(scope, state["until"], state["failures"], username, ip), dirty=True)
    return Check(None, dirty=pair_state in found or any(found.get(key) for key in buckets))


def failed(username: str, ip: str | None) -> Hold | None:
    """Count one failed sign-in; hold the pair or the address when it reaches its limit."""
    if not _limits_on() or exempt(ip):
        return None
    assert ip is not None
    # Token workers that skipped ``check`` for pairs they knew clean learn here that they may not.
    version.bump(version.LIMITS)
    now = _now()
    pair, address = _pair(username, ip), _address(ip)
    timeout = settings.AUTH_FAIL_WINDOW + _bucket_seconds()
    pair_buckets, address_buckets = _bucket_keys("user", pair, now), _bucket_keys("address", address, now)
    for key in (pair_buckets[-1], address_buckets[-1]):
        cache.add(key, 0, timeout=timeout)
        try:
            cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, timeout=timeout)
    pair_state, address_state = _state_key("user", pair), _state_key("address", address)
    found = cache.get_many([pair_state, address_state, *pair_buckets, *address_buckets])
    pair_count = sum(int(found.get(key) or 0) for key in pair_buckets)
    address_count = sum(int(found.get(key) or 0) for key in address_buckets)
    hold = None
    # A failure soon after a hold (its state outlives it by a window) holds again, twice as long.
    if settings.AUTH_FAIL_LIMIT_USER and (pair_count >= settings.AUTH_FAIL_LIMIT_USER or pair_state in found):
        hold = _hold(HoldScope.USER, pair, found.get(pair_state), pair_count, username, ip, now)
    if settings.AUTH_FAIL_LIMIT_IP and (address_count >= settings.AUTH_FAIL_LIMIT_IP or address_state in found):
        hold = _hold(HoldScope.ADDRESS, address, found.get(address_state), address_count, "", ip, now)
    return hold


def succeeded(username: str, ip: str | None, checked: Check) -> None:
    """A success resets its pair's count (and any level of backoff it had built)."""
    if not checked.dirty or exempt(ip):
        return
    assert ip is not None
    _forget(HoldScope.USER, _pair(username, ip))


def _hold(
    scope: str, ident: str, state: dict[str, Any] | None, failures: int, username: str, ip: str, now: float
) -> Hold:
    level = state["level"] + 1 if state else 1
    base = _bucket_seconds()
    seconds = min(base * 2 ** min(level - 1, 30), settings.AUTH_FAIL_MAX_BACKOFF)
    until = now + seconds
    # The state outlives the hold by a window, so that failing again right after it doubles the next one.
    cache.set(
        _state_key(scope, ident),
        {"until": until, "level": level, "failures": failures},
        timeout=seconds + settings.AUTH_FAIL_WINDOW,
    )
    held_until = datetime.fromtimestamp(until, UTC)
    AuthHold.objects.update_or_create(
        key=_row_key(scope, ident),
        defaults={
            "scope": scope,
            "username": username[:150],
            "ip": ip,
            "failures": failures,
            "level": level,
            "held_until": held_until,
            "updated_at": timezone.now(),
        },
    )
    _prune()
    return Hold(scope, until, failures, username, ip)


def _prune() -> None:
    """Rows of holds that ended more than a window ago say nothing any more."""
    cutoff = timezone.now() - timedelta(seconds=settings.AUTH_FAIL_WINDOW + settings.AUTH_FAIL_MAX_BACKOFF)
    AuthHold.objects.filter(held_until__lt=cutoff).delete()


def _forget(scope: str, ident: str) -> None:
    keys = _bucket_keys(scope, ident, _now(), margin=1)  # one more either side: clocks of other hosts
    cache.delete_many([_state_key(scope, ident), *keys])
    AuthHold.objects.filter(key=_row_key(scope, ident)).delete()


# What people see and lift ------------------------------------------------------------


def active_holds(now: datetime | None = None) -> list[AuthHold]:
    return list(AuthHold.objects.filter(held_until__gt=now or timezone.now()).order_by("held_until"))


def describe(hold: AuthHold) -> str:
    if hold.scope == HoldScope.ADDRESS:
        return f"address {hold.ip}"
    return f"{hold.username or REFRESH_TOKEN_LABEL} from {hold.ip}"


def lift(context: AuditContext, *, ip: str | None = None, username: str | None = None) -> list[str]:
    """Lift every hold (and forget the counts) on an address, or on a username from any address.

    Returns what was lifted, as readable names; each lift is one ``limit.lift`` admin change.
    """
    if not ip and username is None:
        raise ValueError("name an address or a username to lift")
    if ip:
        ip = str(ipaddress.ip_address(ip))
    rows = AuthHold.objects.all()
    if ip:
        rows = rows.filter(ip=ip)
    if username is not None:
        rows = rows.filter(scope=HoldScope.USER).filter(Q(username__iexact=username))
    lifted: list[str] = []
    with transaction.atomic():
        for hold in rows.select_for_update():
            scope, _, ident = hold.key.partition(":")
            _forget(scope, ident)
            lifted.append(describe(hold))
            record_change(
                context,
                "limit.lift",
                describe(hold),
                before={
                    "scope": hold.scope,
                    "username": hold.username,
                    "ip": hold.ip,
                    "failures": hold.failures,
                    "level": hold.level,
                    "held_until": hold.held_until.isoformat(),
                },
            )
        if ip and username is None:
            _forget(HoldScope.ADDRESS, _address(ip))  # counts below the limit go too
    return lifted


def record_held_signin(context: AuditContext, hold: Hold, username: str) -> None:
    """A web sign-in refused by a hold: a ``signin`` record with outcome ``limited``."""
    actor = AuditContext(
        actor=username[:150], ip=context.ip, user_agent=context.user_agent, request_id=context.request_id
    )
    detail = {"reason": hold.reason, "hold": str(hold.scope), "retry_after": hold.retry_after()}
    record(Kind.SIGNIN, "limited", actor, subject_type=SubjectType.USER, detail=detail)
