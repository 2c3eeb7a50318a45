"""Tamper evidence for the audit log: record MACs, per-segment hash chains, and their verification.

Every record carries ``mac`` = HMAC(AUDIT_HMAC_KEY, canonical frozen fields), made by
``audit.services.record`` before the INSERT. Shortly after commit the sealer (``seal``)
appends each record to its segment's chain (``AuditSeal``) and moves the segment's head
(``AuditSegment``); a segment the sealer starts is linked into the chain of segments, whose
newest link ``AuditSegmentChain`` keys, so removing whole segments shows too. ``verify``
walks every chain. The key lives outside the database, so someone with database access alone
can change rows but cannot make them verify again.
Only the sealer and retention write seals, segments and rollups, one at a time
(``sealer_lock``); the token endpoint only INSERTs records and never waits for them.

Keys rotate as Django's SECRET_KEY does: everything new is made with AUDIT_HMAC_KEY, and
values made earlier verify under AUDIT_HMAC_KEY_FALLBACKS too. Each keyed value names its key
by ``key_id`` (16 hex characters of HMAC(key, a fixed message): public, and no help in finding
the key): a record's ``key_id``, a segment's ``key_id`` (its head or retention checkpoint) and
``link_key_id`` (its link in the chain of segments), the tip's ``key_id``. Seals name theirs
only on the first seal each sealing transaction appends to a segment; the next ones use the
key of the seal before, so a key change mid-segment simply continues the chain under the new
key. The id is a selector, not content (no MAC covers it): a value must verify under the key
its id names, so changing an id to another configured key's fails like any change. Values
from before key ids (NULL or blank) are tried under every configured key.
A value naming a key id no configured key has cannot be judged, retired key or forged id:
``verify`` reports tampering found elsewhere first, and otherwise raises ``MissingKeyError``
naming the ids (``verify_audit`` exits 2, never 0); the sealer leaves such records unsealed.
Records, seals and live segments' heads keep their key while their segment is retained; the
values that never change once made (retention checkpoints, the chain of segments and its tip)
are made again under the current key by the sealer (``rekey``), so an old key is needed only
as long as records it made are retained.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import json
import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from types import MappingProxyType
from typing import Any, TypeVar

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from audit import usage
from audit.models import (
    AuditHourly,
    AuditRecord,
    AuditRollup,
    AuditSeal,
    AuditSegment,
    AuditSegmentChain,
    AuditVerification,
    Kind,
)
from registryadmin.locks import exclusive

logger = logging.getLogger(__name__)

# The fields a record's MAC covers, in canonical order; ``id`` and ``mac`` are not frozen content.
FROZEN_FIELDS = (
    "time",
    "kind",
    "outcome",
    "actor",
    "actor_id",
    "subject_type",
    "ip",
    "user_agent",
    "request_id",
    "registry",
    "repository",
    "actions",
    "detail",
    "segment",
)
CANONICAL_VERSION = "audit-record-v1"
ROLLUP_FIELDS = ("hour", "kind", "outcome", "registry", "repository", "actor", "ip")

# The sealer only looks this far behind the newest sealed record, so each run stays cheap on a
# large table. A record committed later than that (a very long transaction) is sealed by the
# daily verification, which scans everything.
LATE_COMMIT_GRACE = timedelta(minutes=10)
# pg_advisory_xact_lock key shared by sealers and retention (arbitrary, fixed: "audt").
SEALER_LOCK_ID = 0x61756474
# Ids per IN (...) query: SQLite allows 999 bound parameters.
IN_CHUNK = 900

T = TypeVar("T")
Row = Mapping[str, Any]


# --- Keys and keyed digests ---------------------------------------------------------------

KEY_ID_MESSAGE = b"registryadmin audit key id"
FALLBACKS_SETTING = "AUDIT_HMAC_KEY_FALLBACKS"


class MissingKeyError(ImproperlyConfigured):
    """Values name key ids no configured key has: verify cannot tell whether they are intact."""


def key_id(key: bytes) -> str:
    """A key's public name: 16 hex characters of HMAC(key, a fixed message), which reveal nothing of it."""
    return hmac.new(key, KEY_ID_MESSAGE, hashlib.sha256).hexdigest()[:16]


@dataclass(frozen=True)
class Keyring:
    """AUDIT_HMAC_KEY, which makes everything new, and the fallbacks, which only verify; by key id."""

    current_id: str
    keys: Mapping[str, bytes]  # the current key first, then the fallbacks in their order

    @property
    def current(self) -> bytes:
        return self.keys[self.current_id]

    def knows(self, key_id: str | None) -> bool:
        """Whether verifying a value made under ``key_id`` can be tried (blank: made before key ids)."""
        return not key_id or key_id in self.keys

    def find(self, key_id: str | None, stored: str, make: Callable[[bytes], str]) -> str | None:
        """The id of the key that made ``stored`` (``make(key) == stored``): the one ``key_id`` names, or any."""
        if key_id:
            key = self.keys.get(key_id)
            return key_id if key is not None and same(make(key), stored) else None
        return next((name for name, key in self.keys.items() if same(make(key), stored)), None)


def current_key() -> tuple[str, bytes]:
    """(key id, key) of AUDIT_HMAC_KEY, worked out once per process and key: the write path asks per record."""
    return _current(getattr(settings, "AUDIT_HMAC_KEY", ""))


def hmac_key() -> bytes:
    """AUDIT_HMAC_KEY as bytes; without it nothing can be sealed or verified."""
    return current_key()[1]


def keyring() -> Keyring:
    """AUDIT_HMAC_KEY and AUDIT_HMAC_KEY_FALLBACKS (settings refuse empty ones), built once per value."""
    return _keyring(getattr(settings, "AUDIT_HMAC_KEY", ""), tuple(getattr(settings, FALLBACKS_SETTING, ())))


def _bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)


@functools.lru_cache(maxsize=8)
def _current(value: str | bytes) -> tuple[str, bytes]:
    if not value:
        raise ImproperlyConfigured("AUDIT_HMAC_KEY is not set: audit records cannot be sealed or verified.")
    key = _bytes(value)
    return key_id(key), key


@functools.lru_cache(maxsize=8)
def _keyring(current: str | bytes, fallbacks: tuple[str | bytes, ...]) -> Keyring:
    current_id, key = _current(current)
    keys = {current_id: key}
    for value in fallbacks:
        if value:
            keys.setdefault(key_id(_bytes(value)), _bytes(value))
    return Keyring(current_id, MappingProxyType(keys))


@functools.lru_cache(maxsize=64)
def _keyed(key: bytes, purpose: bytes) -> hmac.HMAC:
    # Copying a prepared HMAC skips re-padding the key for every record.
    return hmac.new(key, purpose + b"\x00", hashlib.sha256)


def _digest(purpose: bytes, message: bytes, key: bytes | None) -> str:
    """HMAC-SHA256 with a per-purpose prefix, so a record MAC can never pass as a chain link."""
    mac = _keyed(hmac_key() if key is None else key, purpose).copy()
    mac.update(message)
    return mac.hexdigest()


def same(a: str, b: str) -> bool:
    """Constant-time comparison that tolerates anything someone wrote into a column."""
    return hmac.compare_digest(str(a).encode(), str(b).encode())


# --- Canonical form of a record -----------------------------------------------------------


def utc(value: datetime) -> datetime:
    """Aware UTC; a naive value (USE_TZ off) is taken as UTC, as Django stores it."""
    return value.astimezone(UTC) if timezone.is_aware(value) else value.replace(tzinfo=UTC)


def segment_name(kind: str, time: datetime) -> str:
    """The unit of chaining and retention: ``<kind>:<UTC day>``."""
    return f"{kind}:{utc(time):%Y-%m-%d}"


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _time(value: datetime) -> str:
    return utc(value).isoformat(timespec="microseconds")


def _ip(value: Any) -> str | None:
    # PostgreSQL's inet and Django's IPv6 cleaning spell addresses their own way: hash the bytes.
    if value is None or value == "":
        return None
    try:
        address = ipaddress.ip_address(str(value))
    except ValueError:
        return f"raw:{value}"
    return f"{address.version}:{address.packed.hex()}"


def _json(value: Any) -> Any:
    """JSON as PostgreSQL's jsonb returns it: an integral float comes back as an integer."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {str(key): _json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json(item) for item in value]
    return value


_NORMALIZE: dict[str, Callable[[Any], Any]] = {
    "time": _time,
    "actor_id": _optional_int,
    "ip": _ip,
    "actions": _json,
    "detail": _json,
}


def canonical(source: AuditRecord | Row) -> bytes:
    """The frozen fields as bytes, identical for a record before INSERT and as read back on any backend."""
    get = source.get if isinstance(source, Mapping) else functools.partial(getattr, source)
    values = [CANONICAL_VERSION, *(_NORMALIZE.get(name, _text)(get(name)) for name in FROZEN_FIELDS)]
    return json.dumps(values, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


# Each keyed value below is made under ``key`` (default: AUDIT_HMAC_KEY).


def record_mac(source: AuditRecord | Row, key: bytes | None = None) -> str:
    """HMAC of a record's frozen fields: what ``services.record`` stores in ``mac``."""
    return _digest(b"audit-record", canonical(source), key)


def link(segment: str, seq: int, previous: str, mac: str, key: bytes | None = None) -> str:
    """The chain value after appending a record (by its MAC) at ``seq`` of ``segment``."""
    return _digest(b"audit-chain", f"{segment}|{seq}|{previous}|{mac}".encode(), key)


def head_checkpoint(segment: str, count: int, head: str, key: bytes | None = None) -> str:
    """Keys a live segment's head: rewinding it to an earlier seal (cutting the tail) shows."""
    return _digest(b"audit-head", f"{segment}|{count}|{head}".encode(), key)


def dropped_checkpoint(segment: str, count: int, head: str, key: bytes | None = None) -> str:
    """What retention leaves of a dropped segment: how many records went and the chain they formed."""
    return _digest(b"audit-dropped", f"{segment}|{count}|{head}".encode(), key)


def segment_link(position: int, segment: str, previous: str, previous_link: str, key: bytes | None = None) -> str:
    """The chain of segments after linking ``segment`` at ``position``, right after ``previous``."""
    return _digest(b"audit-segments", f"{position}|{segment}|{previous}|{previous_link}".encode(), key)


def tip_checkpoint(count: int, segment: str, link: str, key: bytes | None = None) -> str:
    """Keys the newest link of the chain of segments: removing the newest segments, or all, shows."""
    return _digest(b"audit-segments-tip", f"{count}|{segment}|{link}".encode(), key)


# --- Helpers ------------------------------------------------------------------------------


def _chunks(items: Sequence[T], size: int = IN_CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _unsealed(queryset: QuerySet[AuditRecord]) -> QuerySet[AuditRecord]:
    # NOT EXISTS on AuditSeal's primary key: one index probe per record.
    return queryset.filter(~Exists(AuditSeal.objects.filter(record_id=OuterRef("id"))))


def _sealed(queryset: QuerySet[AuditRecord]) -> QuerySet[AuditRecord]:
    return queryset.filter(Exists(AuditSeal.objects.filter(record_id=OuterRef("id"))))


def seal_lag_setting() -> timedelta:
    return timedelta(seconds=getattr(settings, "AUDIT_SEAL_LAG", 5))


@contextmanager
def sealer_lock() -> Iterator[None]:
    """A transaction in which this process is the only sealer (or retention run).

    Record writers never take this lock, so the token endpoint never waits for the sealer
    on PostgreSQL (and only for one short batch on SQLite, as for any writer).
    """
    with exclusive(SEALER_LOCK_ID):
        yield


# --- Checking under the configured keys ----------------------------------------------------


@dataclass
class _Keys:
    """The keyring one sealing or verifying run works with, and what it met: keys used, keys missing."""

    ring: Keyring = field(default_factory=keyring)
    used: set[str] = field(default_factory=set)
    missing: Counter[tuple[str, str]] = field(default_factory=Counter)  # (key id, "record"|"chain") -> values

    def holds(self, key_id: str | None, stored: str, make: Callable[[bytes], str], what: str = "chain") -> bool:
        """Whether ``stored`` was made by the key ``key_id`` names (``make(key) == stored``).

        A value made under a key that is not configured cannot be judged: it passes here and is
        counted in ``missing``, which ``verify`` reports when nothing else is wrong.
        """
        if not self.ring.knows(key_id):
            self.missing[(str(key_id), what)] += 1
            return True
        found = self.ring.find(key_id, stored, make)
        if found is None:
            return False
        self.used.add(found)
        return True

    def set_aside(self, row: Row) -> bool:
        """Whether a record names a key that is not configured: the sealer leaves it for when it is."""
        if self.ring.knows(row["key_id"]):
            return False
        self.missing[(row["key_id"], "record")] += 1
        return True

    def missing_text(self) -> str:
        """Which key ids to bring back: ``records made under key id 0123456789abcdef (3 records); put ...``."""
        parts = []
        for name in sorted({name for name, _ in self.missing}):
            records, others = self.missing[(name, "record")], self.missing[(name, "chain")]
            counts = [f"{records} records"] * bool(records) + [f"{others} seals or checkpoints"] * bool(others)
            parts.append(f"{name} ({', '.join(counts)})")
        one = len(parts) == 1
        return (
            f"records made under key id{'' if one else 's'} {', '.join(parts)} cannot be verified with the "
            f"configured keys; put {'that key' if one else 'those keys'} in {FALLBACKS_SETTING}"
        )


# --- Sealing ------------------------------------------------------------------------------


@dataclass
class _Pass:
    """One sealing pass: which records it looks at, and the refusals it found."""

    now: datetime
    cutoff: datetime  # records newer than this may still be in an open transaction
    since: datetime | None  # only records at or after this (None: every record)
    create_since: datetime | None  # new segments only for records at or after this (None: any)
    refusals: dict[str, tuple[int, str]] = field(default_factory=dict)  # segment -> lowest refused id
    keys: _Keys = field(default_factory=_Keys)

    def refuse(self, row: Row, problem: str) -> None:
        current = self.refusals.get(row["segment"])
        if current is None or row["id"] < current[0]:
            self.refusals[row["segment"]] = (row["id"], problem)


def seal(now: datetime | None = None, batch: int = 5000) -> int:
    """Append records older than AUDIT_SEAL_LAG to their segments' chains; returns how many were sealed.

    Each record is sealed (and counted in ``AuditRollup``) once. Records whose MAC does not
    match, copies of other records and records of dropped segments are left unsealed for
    ``verify`` to report; so are records made under a key that is not configured, until it is.
    Then the values that never change once made are made again under a new key (``rekey``).
    """
    now = now or timezone.now()
    cutoff = now - seal_lag_setting()
    run = _Pass(now, cutoff, since=_window_start(cutoff), create_since=None)
    sealed = _seal_pass(run, batch)
    if run.keys.missing:
        logger.warning("audit records left unsealed: %s", run.keys.missing_text())
    rekey(now)
    return sealed


def seal_lag(now: datetime | None = None) -> timedelta | None:
    """Age of the oldest record not sealed yet (None when every record is): shown on the dashboard."""
    now = now or timezone.now()
    records = AuditRecord.objects.order_by()
    since = _window_start(now)
    if since is not None:
        records = records.filter(time__gte=since)
    oldest = _unsealed(records).order_by("time").values_list("time", flat=True).first()
    return None if oldest is None else max(now - oldest, timedelta(0))


def _window_start(cutoff: datetime) -> datetime | None:
    """Where a sealer run starts looking: a grace period before the newest sealed record."""
    newest = _sealed(AuditRecord.objects.order_by()).order_by("-time").values_list("time", flat=True).first()
    if newest is None:
        return None  # never sealed: look at everything
    # A record dated in the future (a skewed clock) must not push the window past the cutoff.
    return min(newest, cutoff) - LATE_COMMIT_GRACE


def _seal_pass(run: _Pass, batch: int) -> int:
    """Seal candidates in (time, id) order, one short locked transaction per batch."""
    sealed = 0
    after: tuple[datetime, int] | None = None
    while True:
        # Finding candidates (a full scan, for verify) and checking MACs happen outside the lock:
        # on SQLite the lock is the database's write lock, which record writers wait for.
        rows = _candidates(run, after, batch)
        sealable = [row for row in rows if not run.keys.set_aside(row)]
        forged = _forged(run.keys, sealable)
        if sealable:
            with sealer_lock():
                sealed += _seal_batch(run, _still_unsealed(sealable), forged)
        if len(rows) < batch:
            return sealed
        # Refused records stay unsealed; the keyset moves past them instead of re-reading them.
        after = (rows[-1]["time"], rows[-1]["id"])


def _candidates(run: _Pass, after: tuple[datetime, int] | None, batch: int) -> list[dict[str, Any]]:
    records = AuditRecord.objects.filter(time__lte=run.cutoff)
    if run.since is not None:
        records = records.filter(time__gte=run.since)
    if after is not None:
        records = records.filter(time__gte=after[0]).exclude(time=after[0], id__lte=after[1])
    return list(_unsealed(records).order_by("time", "id").values("id", "mac", "key_id", *FROZEN_FIELDS)[:batch])


def _still_unsealed(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drop rows another sealer sealed since we read them (we hold the lock now)."""
    ids = [row["id"] for row in rows]
    sealed: set[int] = set()
    for chunk in _chunks(ids):
        sealed.update(AuditSeal.objects.filter(record_id__in=chunk).values_list("record_id", flat=True))
    return [row for row in rows if row["id"] not in sealed]


def _seal_batch(run: _Pass, rows: list[dict[str, Any]], forged: Mapping[int, str]) -> int:
    """Chain the acceptable rows, write their seals, move the heads and count them in the rollups."""
    refused = dict(forged)
    refused.update(_copies([row for row in rows if row["id"] not in refused]))
    segments = AuditSegment.objects.in_bulk({row["segment"] for row in rows})
    created: dict[str, AuditSegment] = {}
    seals, accepted = [], []
    named: set[str] = set()  # segments whose first seal in this transaction names the key
    for row in rows:
        problem = refused.get(row["id"]) or _segment_problem(run, row, segments)
        if problem:
            run.refuse(row, problem)
            continue
        if row["segment"] not in segments:
            segments[row["segment"]] = created[row["segment"]] = AuditSegment(name=row["segment"])
        seals.append(_append(segments[row["segment"]], row, run.now, run.keys.ring, row["segment"] not in named))
        named.add(row["segment"])
        accepted.append(row)
    if seals:
        _save_segments(run.now, run.keys.ring, {seal.segment for seal in seals}, segments, created)
        AuditSeal.objects.bulk_create(seals, batch_size=500)
        _add_to_rollups(accepted)
        if created:
            _link_segments(run.now, run.keys.ring)
    return len(seals)


def _append(segment: AuditSegment, row: Row, now: datetime, ring: Keyring, first: bool) -> AuditSeal:
    """Move the segment's head past one record, under the current key; the seal records where it went.

    The first seal a transaction appends to a segment names the key; the next ones use the same.
    """
    segment.count += 1
    segment.head = link(segment.name, segment.count, segment.head, row["mac"], ring.current)
    return AuditSeal(
        record_id=row["id"],
        segment=segment.name,
        seq=segment.count,
        chain=segment.head,
        sealed_at=now,
        key_id=ring.current_id if first else None,
    )


def _forged(keys: _Keys, rows: Iterable[Row]) -> dict[int, str]:
    """Rows whose MAC does not match their content under the key they name: inserted or changed without it.

    A record made under a fallback key (written just before a key change) is as valid as any.
    """
    return {
        row["id"]: f"record #{row['id']} was inserted or changed outside the application: its MAC does not match"
        for row in rows
        if not keys.holds(row["key_id"], row["mac"], functools.partial(record_mac, row), "record")
    }


def _copies(rows: list[dict[str, Any]]) -> dict[int, str]:
    """Rows repeating another record (same time to the microsecond, same MAC): a replayed row.

    The MAC cannot cover the id (assigned by the INSERT), so a copied row carries a valid MAC;
    the original is the sealed twin, or the lower id while neither is sealed.
    """
    twins: defaultdict[tuple[datetime, str], list[int]] = defaultdict(list)
    times = sorted({row["time"] for row in rows})
    for chunk in _chunks(times):
        for record_id, time, mac in (
            AuditRecord.objects.filter(time__in=chunk).order_by().values_list("id", "time", "mac")
        ):
            twins[(time, mac)].append(record_id)
    others = {row["id"]: [i for i in twins[(row["time"], row["mac"])] if i != row["id"]] for row in rows}
    suspects = sorted({i for ids in others.values() for i in ids})
    sealed: set[int] = set()
    for chunk in _chunks(suspects):
        sealed.update(AuditSeal.objects.filter(record_id__in=chunk).values_list("record_id", flat=True))
    copies = {}
    for record_id, ids in others.items():
        originals = [i for i in ids if i in sealed or i < record_id]
        if originals:
            copies[record_id] = f"record #{record_id} was inserted: it repeats record #{min(originals)}"
    return copies


def _segment_problem(run: _Pass, row: Row, segments: Mapping[str, AuditSegment]) -> str | None:
    segment = segments.get(row["segment"])
    if segment is not None and segment.dropped_at is not None:
        return f"record #{row['id']} was inserted into segment {row['segment']} after retention dropped it"
    if segment is None and run.create_since is not None and row["time"] < run.create_since:
        # Only the windowed sealer starts chains; an old record without one means its seals
        # and head were removed, and re-sealing it would hide that.
        return f"record #{row['id']} is not sealed and segment {row['segment']} has no chain: its seals were removed"
    return None


def _save_segments(
    now: datetime,
    ring: Keyring,
    touched: set[str],
    segments: Mapping[str, AuditSegment],
    created: Mapping[str, AuditSegment],
) -> None:
    for name in touched:
        segment = segments[name]
        segment.updated_at = now
        segment.checkpoint = head_checkpoint(segment.name, segment.count, segment.head, ring.current)
        segment.key_id = ring.current_id
    AuditSegment.objects.bulk_create([created[name] for name in touched if name in created])
    existing = [segments[name] for name in touched if name not in created]
    fields = ["count", "head", "checkpoint", "key_id", "updated_at"]
    AuditSegment.objects.bulk_update(existing, fields, batch_size=500)


def _link_segments(now: datetime, ring: Keyring) -> None:
    """Append the segments not linked yet (new ones, or rows from before the chain) to the chain of segments.

    In the transaction that created them, so a segment is never unlinked once committed.
    """
    unlinked = list(AuditSegment.objects.filter(position__isnull=True).order_by("name"))
    tip = _intact_tip(ring) if unlinked else None
    if tip is None:
        return
    for segment in unlinked:
        segment.position, segment.previous = tip.count + 1, tip.segment
        segment.link = segment_link(segment.position, segment.name, tip.segment, tip.link, ring.current)
        segment.link_key_id = ring.current_id
        tip.count, tip.segment, tip.link = segment.position, segment.name, segment.link
    AuditSegment.objects.bulk_update(unlinked, ["position", "previous", "link", "link_key_id"], batch_size=500)
    _key_tip(tip, ring, now)
    tip.save()


def _key_tip(tip: AuditSegmentChain, ring: Keyring, now: datetime) -> None:
    tip.checkpoint = tip_checkpoint(tip.count, tip.segment, tip.link, ring.current)
    tip.key_id = ring.current_id
    tip.updated_at = now


def _intact_tip(ring: Keyring) -> AuditSegmentChain | None:
    """The tip to link onto; None when the chain of segments does not end where its keyed tip says.

    Building on a chain someone cut would make the cut look whole: new segments then stay
    unlinked (their records are still sealed) and ``verify`` keeps reporting the cut. A tip made
    under a key that is not configured cannot be checked, so nothing is linked onto it either.
    """
    tip = AuditSegmentChain.objects.first()
    last = AuditSegment.objects.filter(position__isnull=False).order_by("-position").first()
    if tip is None:
        return AuditSegmentChain() if last is None else None
    if not ring.knows(tip.key_id):
        logger.warning("the tip of the chain of audit segments was made under key id %s, not configured", tip.key_id)
        return None
    if last is None or ring.find(tip.key_id, tip.checkpoint, _tip_maker(tip)) is None or not _ends_at(tip, last):
        logger.warning("the chain of audit segments does not end at its keyed tip; new segments stay unlinked")
        return None
    return tip


def _tip_maker(tip: AuditSegmentChain) -> Callable[[bytes], str]:
    return functools.partial(tip_checkpoint, tip.count, tip.segment, tip.link)


def _ends_at(tip: AuditSegmentChain, segment: AuditSegment) -> bool:
    return (segment.position, segment.name) == (tip.count, tip.segment) and same(segment.link, tip.link)


# --- Making values again under a new key --------------------------------------------------


def rekey(now: datetime | None = None) -> int:
    """Make the keyed values that never change once made again under AUDIT_HMAC_KEY; returns how many.

    Retention checkpoints of dropped segments, the links of the chain of segments and its tip
    outlive every record: made again after a key change, they no longer need the old key. Each is
    checked under its own key first; one that does not verify, or whose key is not configured, is
    left as it is for ``verify`` to report. Two cheap queries when nothing is stale (every sealer run).
    """
    now = now or timezone.now()
    ring = keyring()
    dropped = Q(dropped_at__isnull=False) & ~Q(key_id=ring.current_id)
    linked = Q(position__isnull=False) & ~Q(link_key_id=ring.current_id)
    stale = AuditSegment.objects.filter(dropped | linked).exists()
    if not stale and not AuditSegmentChain.objects.exclude(key_id=ring.current_id).exists():
        return 0
    with sealer_lock():
        return _rekey_dropped(ring) + _rekey_segment_chain(ring, now)


def _rekey_dropped(ring: Keyring) -> int:
    rekeyed = []
    for segment in AuditSegment.objects.filter(dropped_at__isnull=False).exclude(key_id=ring.current_id):
        make = functools.partial(dropped_checkpoint, segment.name, segment.count, segment.head)
        if ring.find(segment.key_id, segment.checkpoint, make) is None:
            logger.info("the retention checkpoint of audit segment %s does not verify: left for verify", segment.name)
            continue
        segment.checkpoint, segment.key_id = make(ring.current), ring.current_id
        rekeyed.append(segment)
    AuditSegment.objects.bulk_update(rekeyed, ["checkpoint", "key_id"], batch_size=500)
    return len(rekeyed)


def _rekey_segment_chain(ring: Keyring, now: datetime) -> int:
    """The chain of segments again from its first link under an old key (each link covers the one before), and its tip.

    Only a chain that verifies whole, up to its tip, is made again: one someone cut stays as it is.
    """
    tip = AuditSegmentChain.objects.first()
    linked = list(AuditSegment.objects.filter(position__isnull=False).order_by("position"))
    keys = _Keys(ring)
    if tip is None or tip.count != len(linked) or _check_segment_chain(tip, linked, keys) or keys.missing:
        logger.info("the chain of audit segments does not verify whole: left under its keys for verify")
        return 0
    first = next((i for i, segment in enumerate(linked) if segment.link_key_id != ring.current_id), len(linked))
    previous_link = linked[first - 1].link if first else ""
    for segment in linked[first:]:
        segment.link = segment_link(segment.position, segment.name, segment.previous, previous_link, ring.current)
        segment.link_key_id, previous_link = ring.current_id, segment.link
    AuditSegment.objects.bulk_update(linked[first:], ["link", "link_key_id"], batch_size=500)
    tip.link = previous_link
    _key_tip(tip, ring, now)
    tip.save()
    return len(linked) - first + 1


HOURLY_FIELDS = ("hour", "kind", "outcome", "registry")


def _key(row: Row, fields: Sequence[str]) -> tuple[Any, ...]:
    """A record's key in a rollup table: the hour it falls in, then the other fields."""
    hour = utc(row["time"]).replace(minute=0, second=0, microsecond=0)
    return (hour, *(row[name] for name in fields[1:]))


def _add_to_rollups(rows: Iterable[Row]) -> None:
    """Count freshly sealed records into the rollup tables and the usage rollups (the caller holds the sealer lock)."""
    rows = list(rows)
    _upsert_counts(AuditRollup, ROLLUP_FIELDS, Counter(_key(row, ROLLUP_FIELDS) for row in rows))
    _upsert_counts(AuditHourly, HOURLY_FIELDS, Counter(_key(row, HOURLY_FIELDS) for row in rows))
    usage.add(rows)


def _upsert_counts(model: type[AuditRollup] | type[AuditHourly], fields: Sequence[str], counts: Counter) -> None:
    hours = sorted({key[0] for key in counts})
    kinds = {key[1] for key in counts}
    existing: dict[tuple[Any, ...], Any] = {}
    for chunk in _chunks(hours):
        for rollup in model.objects.filter(hour__in=chunk, kind__in=kinds):
            existing[(utc(rollup.hour), *(getattr(rollup, name) for name in fields[1:]))] = rollup
    changed, new = [], []
    for key, count in counts.items():
        rollup = existing.get(key)
        if rollup is None:
            new.append(model(**dict(zip(fields, key, strict=True)), count=count))
        else:
            rollup.count += count
            changed.append(rollup)
    model.objects.bulk_update(changed, ["count"], batch_size=500)
    model.objects.bulk_create(new, batch_size=500)


def rebuild_usage(progress: Callable[[str, int], None] | None = None, batch: int = 5000) -> int:
    """Count every sealed access record into the usage rollups again, one UTC day at a time.

    For records sealed before the usage rollups existed (an upgrade) or a database restored from
    elsewhere. Each day is forgotten and counted again inside the sealer lock, so the day ends
    exact whatever the sealer did before or does after (it counts only records it seals itself);
    writers wait at most one day's batch on SQLite. Returns how many records were counted.
    """
    names = AuditSegment.objects.filter(name__startswith=f"{Kind.ACCESS}:", dropped_at__isnull=True)
    counted = 0
    for name in sorted(names.values_list("name", flat=True)):
        try:
            day = date.fromisoformat(name.partition(":")[2])
        except ValueError:
            continue
        with sealer_lock():
            usage.forget_day(day)
            records, after = _sealed(AuditRecord.objects.filter(segment=name)), 0
            while rows := list(records.filter(id__gt=after).order_by("id").values("id", *FROZEN_FIELDS)[:batch]):
                usage.add(rows)
                counted += len(rows)
                after = rows[-1]["id"]
        if progress is not None:
            progress(name, counted)
    return counted


# --- Verification -------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifyResult:
    """What ``verify`` found: ``problem`` names the first changed, inserted or removed record.

    ``keys``: the ids of the configured keys that verified something, the ones still needed.
    """

    outcome: str  # "intact" | "tampered"
    checked: int
    problem: str = ""
    record_id: int | None = None
    keys: frozenset[str] = field(default=frozenset(), compare=False)


@dataclass(frozen=True)
class _Problem:
    text: str
    record_id: int | None = None


def verify(now: datetime | None = None, chunk: int = 5000) -> VerifyResult:
    """Walk every segment's chain and report the first problem, by segment name then position.

    Seals everything sealable first (including records committed long after their time), so
    an unsealed record left over is one the sealer refused: inserted, copied or forged.
    Raises ``MissingKeyError`` when nothing was found tampered but values name keys that are
    not configured: those could not be judged.
    """
    now = now or timezone.now()
    cutoff = now - seal_lag_setting()
    # One full pass: seals late commits, collects refusals; only recent records may start a chain.
    run = _Pass(now, cutoff, since=None, create_since=_window_start(cutoff))
    _seal_pass(run, chunk)
    keys = run.keys
    tip = AuditSegmentChain.objects.first()  # before the segments: a sealer may link newer ones meanwhile
    with_seals = set(AuditSeal.objects.order_by().values_list("segment", flat=True).distinct())
    segments = AuditSegment.objects.in_bulk()  # read after the seal names: a new segment has its head
    checked = 0
    for name in sorted(with_seals | set(segments) | set(run.refusals)):
        problem, count = _check_segment(name, segments.get(name), name in with_seals, chunk, keys)
        checked += count
        if problem is None and name in run.refusals:
            problem = _Problem(run.refusals[name][1], run.refusals[name][0])
        if problem is not None:
            return VerifyResult("tampered", checked, problem.text, problem.record_id)
    problem = _check_segment_chain(tip, segments.values(), keys)
    if problem is not None:
        # A sealer may have made the chain again under a new key (``rekey``) between the two reads.
        problem = _check_segment_chain(AuditSegmentChain.objects.first(), AuditSegment.objects.all(), keys)
    if problem is not None:
        return VerifyResult("tampered", checked, problem.text)
    if keys.missing:
        raise MissingKeyError(keys.missing_text())
    return VerifyResult("intact", checked, keys=frozenset(keys.used))


def _check_segment(
    name: str, segment: AuditSegment | None, has_seals: bool, chunk: int, keys: _Keys
) -> tuple[_Problem | None, int]:
    if segment is None:
        if has_seals:
            return _Problem(f"the chain head of segment {name} was removed"), 0
        return None, 0
    if segment.dropped_at is not None:
        return _check_dropped(segment, has_seals, keys), 0
    problem, count = _walk(segment, chunk, keys)
    if problem is not None:
        # Retention may have dropped the segment while we walked it.
        fresh = AuditSegment.objects.filter(name=name).first()
        if fresh is not None and fresh.dropped_at is not None:
            return _check_dropped(fresh, AuditSeal.objects.filter(segment=name).exists(), keys), 0
    return problem, count


def _check_dropped(segment: AuditSegment, has_seals: bool, keys: _Keys) -> _Problem | None:
    make = functools.partial(dropped_checkpoint, segment.name, segment.count, segment.head)
    if not keys.holds(segment.key_id, segment.checkpoint, make):
        return _Problem(f"the retention checkpoint of segment {segment.name} was altered")
    if has_seals:
        return _Problem(f"segment {segment.name} was dropped by retention but still has seals")
    return None


def _check_segment_chain(
    tip: AuditSegmentChain | None, segments: Iterable[AuditSegment], keys: _Keys
) -> _Problem | None:
    """The linked segments must form one unbroken chain, reaching the keyed tip read before them.

    Dropped segments keep their rows, so retention leaves the chain whole; a segment removed
    outright leaves a gap, named by the segment after it (or by the tip, for the newest).
    """
    if tip is not None and not keys.holds(tip.key_id, tip.checkpoint, _tip_maker(tip)):
        return _Problem("the head of the chain of segments was altered")
    linked = sorted((segment for segment in segments if segment.position is not None), key=lambda s: s.position)
    previous, previous_link = "", ""
    for position, segment in enumerate(linked, start=1):
        if segment.position != position:
            return _Problem(_segments_removed(segment.position - position, segment.previous))
        make = functools.partial(segment_link, position, segment.name, previous, previous_link)
        if segment.previous != previous or not keys.holds(segment.link_key_id, segment.link, make):
            return _Problem(f"the chain of segments was altered at segment {segment.name}")
        if tip is not None and position == tip.count and not _ends_at(tip, segment):
            return _Problem("the head of the chain of segments was altered")
        previous, previous_link = segment.name, segment.link
    if tip is None:
        return _Problem("the head of the chain of segments was removed") if linked else None
    if not linked:
        return _Problem(f"the audit log was emptied: {_segments_removed(tip.count, tip.segment)}")
    if len(linked) < tip.count:
        return _Problem(_segments_removed(tip.count - len(linked), tip.segment))
    return None


def _segments_removed(missing: int, last: str) -> str:
    if missing == 1:
        return f"segment {last} was removed"
    return f"{missing} segments were removed, the last of them {last}"


def _walk(segment: AuditSegment, chunk: int, keys: _Keys) -> tuple[_Problem | None, int]:
    """Recompute each record's MAC and the chain, seal by seal, up to the head read beforehand.

    A seal without a key id was made under the key of the seal before it (none: before key ids).
    """
    previous, checked, seal_key = "", 0, None
    for seals in _seal_chunks(segment.name, segment.count, chunk):
        records = _records_by_id([seal_row[1] for seal_row in seals])
        for seq, record_id, stored_chain, named in seals:
            seal_key = named or seal_key
            problem = _follow(
                segment.name,
                checked + 1,
                (seq, record_id, stored_chain),
                seal_key,
                records.get(record_id),
                previous,
                keys,
            )
            if problem is not None:
                return problem, checked
            previous = stored_chain
            checked += 1
    return _head_problem(segment, checked, previous, keys), checked


def _follow(
    name: str,
    expected_seq: int,
    seal_row: tuple[int, int, str],
    seal_key: str | None,
    row: Row | None,
    previous: str,
    keys: _Keys,
) -> _Problem | None:
    """Check one link: the seal is where it should be, its record is there and unchanged, the chain holds."""
    seq, record_id, stored_chain = seal_row
    where = f"record #{record_id} (seq {seq} of segment {name})"
    if seq != expected_seq:
        return _Problem(f"a record was removed before {where}")
    if row is None:
        return _Problem(f"{where} was removed", record_id)
    mac = row["mac"]
    if row["segment"] != name or not keys.holds(row["key_id"], mac, functools.partial(record_mac, row), "record"):
        return _Problem(f"{where} was changed", record_id)
    if not keys.holds(seal_key, stored_chain, functools.partial(link, name, seq, previous, mac)):
        return _Problem(f"{where} does not fit its chain: records were replaced or reordered", record_id)
    return None


def _head_problem(segment: AuditSegment, checked: int, last_link: str, keys: _Keys) -> _Problem | None:
    """The walk must end exactly at the keyed head: anything else means the tail was cut."""
    if checked < segment.count:
        missing = segment.count - checked
        return _Problem(f"{missing} record(s) at the end of segment {segment.name} were removed (after seq {checked})")
    make = functools.partial(head_checkpoint, segment.name, segment.count, segment.head)
    if not same(last_link, segment.head) or not keys.holds(segment.key_id, segment.checkpoint, make):
        return _Problem(f"the chain head of segment {segment.name} was altered")
    return None


def _seal_chunks(name: str, count: int, chunk: int) -> Iterator[list[tuple[int, int, str, str | None]]]:
    """A segment's seals up to ``count`` in seq order, a chunk at a time (flat memory)."""
    last = 0
    while True:
        seals = AuditSeal.objects.filter(segment=name, seq__gt=last, seq__lte=count).order_by("seq")
        rows = list(seals.values_list("seq", "record_id", "chain", "key_id")[:chunk])
        if not rows:
            return
        yield rows
        last = rows[-1][0]


def _records_by_id(ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    found: dict[int, dict[str, Any]] = {}
    for chunk in _chunks(ids):
        for row in AuditRecord.objects.filter(id__in=chunk).order_by().values("id", "mac", "key_id", *FROZEN_FIELDS):
            found[row["id"]] = row
    return found


def verify_and_record(now: datetime | None = None) -> AuditVerification:
    """Run ``verify`` and store its result (or its error, then re-raise) for auditors and admins."""
    return verify_and_report(now)[0]


def verify_and_report(now: datetime | None = None) -> tuple[AuditVerification, VerifyResult]:
    """``verify_and_record``, also returning what ``verify`` found (``verify_audit`` prints the keys it needed)."""
    started = timezone.now()
    try:
        result = verify(now)
    except Exception as exc:
        _store_error(started, exc)
        raise
    stored = AuditVerification.objects.create(
        started_at=started,
        finished_at=timezone.now(),
        outcome=result.outcome,
        checked=result.checked,
        problem=result.problem,
    )
    return stored, result


def needed_keys(used: Iterable[str], ring: Keyring | None = None) -> str:
    """Which configured keys verified something (keep them) and which fallbacks nothing needs any more."""
    ring = ring or keyring()
    roles = {name: "current" if name == ring.current_id else f"fallback {n}" for n, name in enumerate(ring.keys)}
    used = set(used) | {ring.current_id}  # the current key makes everything new
    needed = ", ".join(f"{name} ({roles[name]})" for name in ring.keys if name in used)
    spare = ", ".join(f"{name} ({roles[name]})" for name in ring.keys if name not in used)
    return f"key ids still needed: {needed}" + (f"; no longer needed: {spare}" if spare else "")


def _store_error(started: datetime, exc: Exception) -> None:
    try:
        AuditVerification.objects.create(
            started_at=started, finished_at=timezone.now(), outcome="error", problem=f"{type(exc).__name__}: {exc}"
        )
    except DatabaseError:
        # The database being unreachable is a likely reason verification failed at all.
        logger.warning("could not store the failed audit verification", exc_info=True)
