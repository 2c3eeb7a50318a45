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
from typing import Any, TypeVar

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError
from django.db.models import Exists, OuterRef, QuerySet
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


# --- Keyed digests ------------------------------------------------------------------------


def hmac_key() -> bytes:
    """AUDIT_HMAC_KEY as bytes; without it nothing can be sealed or verified."""
    key = getattr(settings, "AUDIT_HMAC_KEY", "")
    if not key:
        raise ImproperlyConfigured("AUDIT_HMAC_KEY is not set: audit records cannot be sealed or verified.")
    return key.encode() if isinstance(key, str) else bytes(key)


@functools.lru_cache(maxsize=16)
def _keyed(key: bytes, purpose: bytes) -> hmac.HMAC:
    # Copying a prepared HMAC skips re-padding the key for every record.
    return hmac.new(key, purpose + b"\x00", hashlib.sha256)


def _digest(purpose: bytes, message: bytes) -> str:
    """HMAC-SHA256 with a per-purpose prefix, so a record MAC can never pass as a chain link."""
    mac = _keyed(hmac_key(), purpose).copy()
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


def record_mac(source: AuditRecord | Row) -> str:
    """HMAC of a record's frozen fields: what ``services.record`` stores in ``mac``."""
    return _digest(b"audit-record", canonical(source))


def link(segment: str, seq: int, previous: str, mac: str) -> str:
    """The chain value after appending a record (by its MAC) at ``seq`` of ``segment``."""
    return _digest(b"audit-chain", f"{segment}|{seq}|{previous}|{mac}".encode())


def head_checkpoint(segment: str, count: int, head: str) -> str:
    """Keys a live segment's head: rewinding it to an earlier seal (cutting the tail) shows."""
    return _digest(b"audit-head", f"{segment}|{count}|{head}".encode())


def dropped_checkpoint(segment: str, count: int, head: str) -> str:
    """What retention leaves of a dropped segment: how many records went and the chain they formed."""
    return _digest(b"audit-dropped", f"{segment}|{count}|{head}".encode())


def segment_link(position: int, segment: str, previous: str, previous_link: str) -> str:
    """The chain of segments after linking ``segment`` at ``position``, right after ``previous``."""
    return _digest(b"audit-segments", f"{position}|{segment}|{previous}|{previous_link}".encode())


def tip_checkpoint(count: int, segment: str, link: str) -> str:
    """Keys the newest link of the chain of segments: removing the newest segments, or all, shows."""
    return _digest(b"audit-segments-tip", f"{count}|{segment}|{link}".encode())


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


# --- Sealing ------------------------------------------------------------------------------


@dataclass
class _Pass:
    """One sealing pass: which records it looks at, and the refusals it found."""

    now: datetime
    cutoff: datetime  # records newer than this may still be in an open transaction
    since: datetime | None  # only records at or after this (None: every record)
    create_since: datetime | None  # new segments only for records at or after this (None: any)
    refusals: dict[str, tuple[int, str]] = field(default_factory=dict)  # segment -> lowest refused id

    def refuse(self, row: Row, problem: str) -> None:
        current = self.refusals.get(row["segment"])
        if current is None or row["id"] < current[0]:
            self.refusals[row["segment"]] = (row["id"], problem)


def seal(now: datetime | None = None, batch: int = 5000) -> int:
    """Append records older than AUDIT_SEAL_LAG to their segments' chains; returns how many were sealed.

    Each record is sealed (and counted in ``AuditRollup``) once. Records whose MAC does not
    match, copies of other records and records of dropped segments are left unsealed for
    ``verify`` to report.
    """
    now = now or timezone.now()
    cutoff = now - seal_lag_setting()
    return _seal_pass(_Pass(now, cutoff, since=_window_start(cutoff), create_since=None), batch)


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
        forged = _forged(rows)
        if rows:
            with sealer_lock():
                sealed += _seal_batch(run, _still_unsealed(rows), forged)
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
    return list(_unsealed(records).order_by("time", "id").values("id", "mac", *FROZEN_FIELDS)[:batch])


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
    for row in rows:
        problem = refused.get(row["id"]) or _segment_problem(run, row, segments)
        if problem:
            run.refuse(row, problem)
            continue
        if row["segment"] not in segments:
            segments[row["segment"]] = created[row["segment"]] = AuditSegment(name=row["segment"])
        seals.append(_append(segments[row["segment"]], row, run.now))
        accepted.append(row)
    if seals:
        _save_segments(run.now, {seal.segment for seal in seals}, segments, created)
        AuditSeal.objects.bulk_create(seals, batch_size=500)
        _add_to_rollups(accepted)
        if created:
            _link_segments(run.now)
    return len(seals)


def _append(segment: AuditSegment, row: Row, now: datetime) -> AuditSeal:
    """Move the segment's head past one record; the seal records where it went."""
    segment.count += 1
    segment.head = link(segment.name, segment.count, segment.head, row["mac"])
    return AuditSeal(record_id=row["id"], segment=segment.name, seq=segment.count, chain=segment.head, sealed_at=now)


def _forged(rows: Iterable[Row]) -> dict[int, str]:
    """Rows whose MAC does not match their content: inserted or changed without the key."""
    return {
        row["id"]: f"record #{row['id']} was inserted or changed outside the application: its MAC does not match"
        for row in rows
        if not same(record_mac(row), row["mac"])
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
    now: datetime, touched: set[str], segments: Mapping[str, AuditSegment], created: Mapping[str, AuditSegment]
) -> None:
    for name in touched:
        segment = segments[name]
        segment.updated_at = now
        segment.checkpoint = head_checkpoint(segment.name, segment.count, segment.head)
    AuditSegment.objects.bulk_create([created[name] for name in touched if name in created])
    existing = [segments[name] for name in touched if name not in created]
    AuditSegment.objects.bulk_update(existing, ["count", "head", "checkpoint", "updated_at"], batch_size=500)


def _link_segments(now: datetime) -> None:
    """Append the segments not linked yet (new ones, or rows from before the chain) to the chain of segments.

    In the transaction that created them, so a segment is never unlinked once committed.
    """
    unlinked = list(AuditSegment.objects.filter(position__isnull=True).order_by("name"))
    tip = _intact_tip() if unlinked else None
    if tip is None:
        return
    for segment in unlinked:
        segment.position, segment.previous = tip.count + 1, tip.segment
        segment.link = segment_link(segment.position, segment.name, tip.segment, tip.link)
        tip.count, tip.segment, tip.link = segment.position, segment.name, segment.link
    AuditSegment.objects.bulk_update(unlinked, ["position", "previous", "link"], batch_size=500)
    tip.checkpoint = tip_checkpoint(tip.count, tip.segment, tip.link)
    tip.updated_at = now
    tip.save()


def _intact_tip() -> AuditSegmentChain | None:
    """The tip to link onto; None when the chain of segments does not end where its keyed tip says.

    Building on a chain someone cut would make the cut look whole: new segments then stay
    unlinked (their records are still sealed) and ``verify`` keeps reporting the cut.
    """
    tip = AuditSegmentChain.objects.first()
    last = AuditSegment.objects.filter(position__isnull=False).order_by("-position").first()
    if tip is None:
        return AuditSegmentChain() if last is None else None
    if last is None or not _keyed_tip(tip) or not _ends_at(tip, last):
        logger.warning("the chain of audit segments does not end at its keyed tip; new segments stay unlinked")
        return None
    return tip


def _keyed_tip(tip: AuditSegmentChain) -> bool:
    return same(tip_checkpoint(tip.count, tip.segment, tip.link), tip.checkpoint)


def _ends_at(tip: AuditSegmentChain, segment: AuditSegment) -> bool:
    return (segment.position, segment.name) == (tip.count, tip.segment) and same(segment.link, tip.link)


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
    """What ``verify`` found: ``problem`` names the first changed, inserted or removed record."""

    outcome: str  # "intact" | "tampered"
    checked: int
    problem: str = ""
    record_id: int | None = None


@dataclass(frozen=True)
class _Problem:
    text: str
    record_id: int | None = None


def verify(now: datetime | None = None, chunk: int = 5000) -> VerifyResult:
    """Walk every segment's chain and report the first problem, by segment name then position.

    Seals everything sealable first (including records committed long after their time), so
    an unsealed record left over is one the sealer refused: inserted, copied or forged.
    """
    now = now or timezone.now()
    hmac_key()
    cutoff = now - seal_lag_setting()
    # One full pass: seals late commits, collects refusals; only recent records may start a chain.
    run = _Pass(now, cutoff, since=None, create_since=_window_start(cutoff))
    _seal_pass(run, chunk)
    tip = AuditSegmentChain.objects.first()  # before the segments: a sealer may link newer ones meanwhile
    with_seals = set(AuditSeal.objects.order_by().values_list("segment", flat=True).distinct())
    segments = AuditSegment.objects.in_bulk()  # read after the seal names: a new segment has its head
    checked = 0
    for name in sorted(with_seals | set(segments) | set(run.refusals)):
        problem, count = _check_segment(name, segments.get(name), name in with_seals, chunk)
        checked += count
        if problem is None and name in run.refusals:
            problem = _Problem(run.refusals[name][1], run.refusals[name][0])
        if problem is not None:
            return VerifyResult("tampered", checked, problem.text, problem.record_id)
    problem = _check_segment_chain(tip, segments.values())
    if problem is not None:
        return VerifyResult("tampered", checked, problem.text)
    return VerifyResult("intact", checked)


def _check_segment(name: str, segment: AuditSegment | None, has_seals: bool, chunk: int) -> tuple[_Problem | None, int]:
    if segment is None:
        if has_seals:
            return _Problem(f"the chain head of segment {name} was removed"), 0
        return None, 0
    if segment.dropped_at is not None:
        return _check_dropped(segment, has_seals), 0
    problem, count = _walk(segment, chunk)
    if problem is not None:
        # Retention may have dropped the segment while we walked it.
        fresh = AuditSegment.objects.filter(name=name).first()
        if fresh is not None and fresh.dropped_at is not None:
            return _check_dropped(fresh, AuditSeal.objects.filter(segment=name).exists()), 0
    return problem, count


def _check_dropped(segment: AuditSegment, has_seals: bool) -> _Problem | None:
    if not same(dropped_checkpoint(segment.name, segment.count, segment.head), segment.checkpoint):
        return _Problem(f"the retention checkpoint of segment {segment.name} was altered")
    if has_seals:
        return _Problem(f"segment {segment.name} was dropped by retention but still has seals")
    return None


def _check_segment_chain(tip: AuditSegmentChain | None, segments: Iterable[AuditSegment]) -> _Problem | None:
    """The linked segments must form one unbroken chain, reaching the keyed tip read before them.

    Dropped segments keep their rows, so retention leaves the chain whole; a segment removed
    outright leaves a gap, named by the segment after it (or by the tip, for the newest).
    """
    if tip is not None and not _keyed_tip(tip):
        return _Problem("the head of the chain of segments was altered")
    linked = sorted((segment for segment in segments if segment.position is not None), key=lambda s: s.position)
    previous, previous_link = "", ""
    for position, segment in enumerate(linked, start=1):
        if segment.position != position:
            return _Problem(_segments_removed(segment.position - position, segment.previous))
        expected = segment_link(position, segment.name, previous, previous_link)
        if segment.previous != previous or not same(expected, segment.link):
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


def _walk(segment: AuditSegment, chunk: int) -> tuple[_Problem | None, int]:
    """Recompute each record's MAC and the chain, seal by seal, up to the head read beforehand."""
    previous, checked = "", 0
    for seals in _seal_chunks(segment.name, segment.count, chunk):
        records = _records_by_id([record_id for _, record_id, _ in seals])
        for seal_row in seals:
            problem, previous = _follow(segment.name, checked + 1, seal_row, records.get(seal_row[1]), previous)
            if problem is not None:
                return problem, checked
            checked += 1
    return _head_problem(segment, checked, previous), checked


def _follow(
    name: str, expected_seq: int, seal_row: tuple[int, int, str], row: Row | None, previous: str
) -> tuple[_Problem | None, str]:
    """Check one link: the seal is where it should be, its record is there and unchanged, the chain holds."""
    seq, record_id, stored_chain = seal_row
    where = f"record #{record_id} (seq {seq} of segment {name})"
    if seq != expected_seq:
        return _Problem(f"a record was removed before {where}"), previous
    if row is None:
        return _Problem(f"{where} was removed", record_id), previous
    if row["segment"] != name or not same(record_mac(row), row["mac"]):
        return _Problem(f"{where} was changed", record_id), previous
    current = link(name, seq, previous, row["mac"])
    if not same(current, stored_chain):
        return _Problem(f"{where} does not fit its chain: records were replaced or reordered", record_id), current
    return None, current


def _head_problem(segment: AuditSegment, checked: int, last_link: str) -> _Problem | None:
    """The walk must end exactly at the keyed head: anything else means the tail was cut."""
    if checked < segment.count:
        missing = segment.count - checked
        return _Problem(f"{missing} record(s) at the end of segment {segment.name} were removed (after seq {checked})")
    keyed = head_checkpoint(segment.name, segment.count, segment.head)
    if not same(last_link, segment.head) or not same(keyed, segment.checkpoint):
        return _Problem(f"the chain head of segment {segment.name} was altered")
    return None


def _seal_chunks(name: str, count: int, chunk: int) -> Iterator[list[tuple[int, int, str]]]:
    """A segment's seals up to ``count`` in seq order, a chunk at a time (flat memory)."""
    last = 0
    while True:
        seals = AuditSeal.objects.filter(segment=name, seq__gt=last, seq__lte=count).order_by("seq")
        rows = list(seals.values_list("seq", "record_id", "chain")[:chunk])
        if not rows:
            return
        yield rows
        last = rows[-1][0]


def _records_by_id(ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    found: dict[int, dict[str, Any]] = {}
    for chunk in _chunks(ids):
        for row in AuditRecord.objects.filter(id__in=chunk).order_by().values("id", "mac", *FROZEN_FIELDS):
            found[row["id"]] = row
    return found


def verify_and_record(now: datetime | None = None) -> AuditVerification:
    """Run ``verify`` and store its result (or its error, then re-raise) for auditors and admins."""
    started = timezone.now()
    try:
        result = verify(now)
    except Exception as exc:
        _store_error(started, exc)
        raise
    return AuditVerification.objects.create(
        started_at=started,
        finished_at=timezone.now(),
        outcome=result.outcome,
        checked=result.checked,
        problem=result.problem,
    )


def _store_error(started: datetime, exc: Exception) -> None:
    try:
        AuditVerification.objects.create(
            started_at=started, finished_at=timezone.now(), outcome="error", problem=f"{type(exc).__name__}: {exc}"
        )
    except DatabaseError:
        # The database being unreachable is a likely reason verification failed at all.
        logger.warning("could not store the failed audit verification", exc_info=True)
