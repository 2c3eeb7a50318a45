"""Retention: the only code that deletes audit records, a whole segment (kind and UTC day) at a time.

A dropped segment keeps its ``AuditSegment`` row with a keyed checkpoint of the chain that
went, and with it its place in the chain of segments, so ``verify`` still accounts for it and
the remaining chains verify unchanged; a segment removed any other way leaves a gap.
The rollups counted from a dropped segment's records go with them (``usage.forget_day`` keeps
the usage rollups exact for the days left).
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time, timedelta

from django.conf import settings
from django.db.models import Exists, OuterRef
from django.utils import timezone

from audit import chain, usage
from audit.models import AuditHourly, AuditRecord, AuditRollup, AuditSeal, AuditSegment, Kind

logger = logging.getLogger(__name__)


class _Mismatch(Exception):
    """The segment does not hold what its head says: leave it for verify to report."""


def apply(now: datetime | None = None) -> int:
    """Drop every segment past its class's retention; returns how many were dropped."""
    now = now or timezone.now()
    # Records of expiring segments that are still unsealed get sealed first, so they go too.
    chain.seal(now)
    live = list(AuditSegment.objects.filter(dropped_at__isnull=True).order_by("name").values_list("name", flat=True))
    return sum(_drop(name, now) for name in live if is_expired(name, now))


def is_expired(name: str, now: datetime) -> bool:
    """Whether every record of segment ``<kind>:<day>`` is older than its kind's retention."""
    kind, _, day = name.partition(":")
    days = settings.AUDIT_RETENTION_DAYS.get(kind)
    if days is None:
        return False  # a class without a retention period is kept
    try:
        segment_day = date.fromisoformat(day)
    except ValueError:
        return False
    # The segment's last record is just before the next midnight; today's segment never qualifies.
    return segment_day < (chain.utc(now) - timedelta(days=days)).date()


def _drop(name: str, now: datetime) -> bool:
    """Delete one segment's records and seals and leave its keyed checkpoint, in one transaction."""
    try:
        with chain.sealer_lock():
            segment = AuditSegment.objects.get(name=name)
            if segment.dropped_at is not None:
                return False
            if _has_unsealed(name):
                logger.warning("audit segment %s keeps records the sealer refused; not dropping it", name)
                return False
            _delete_contents(segment)
            segment.dropped_at = segment.updated_at = now
            segment.key_id, key = chain.current_key()
            segment.checkpoint = chain.dropped_checkpoint(segment.name, segment.count, segment.head, key)
            segment.save(update_fields=["dropped_at", "updated_at", "checkpoint", "key_id"])
    except _Mismatch as exc:
        logger.warning("audit segment %s not dropped: %s", name, exc)
        return False
    return True


def _has_unsealed(name: str) -> bool:
    # Refused records are evidence of tampering: dropping them would hide it from verify.
    sealed = AuditSeal.objects.filter(record_id=OuterRef("id"))
    return AuditRecord.objects.filter(segment=name).filter(~Exists(sealed)).exists()


def _delete_contents(segment: AuditSegment) -> None:
    """Records (past the append-only guard, as only retention may), seals, and the rollups that counted them."""
    sealed_ids = AuditSeal.objects.filter(segment=segment.name).values("record_id")
    records = AuditRecord.objects.filter(segment=segment.name, id__in=sealed_ids)
    deleted_records = records._raw_delete(records.db)
    deleted_seals, _ = AuditSeal.objects.filter(segment=segment.name).delete()
    if deleted_records != segment.count or deleted_seals != segment.count:
        raise _Mismatch(f"{deleted_records} records and {deleted_seals} seals, but its head counts {segment.count}")
    kind, _, day = segment.name.partition(":")
    start = datetime.combine(date.fromisoformat(day), time.min, tzinfo=UTC)
    # Rollups carry actors and addresses: they go with the records they count.
    AuditRollup.objects.filter(kind=kind, hour__gte=start, hour__lt=start + timedelta(days=1)).delete()
    AuditHourly.objects.filter(kind=kind, hour__gte=start, hour__lt=start + timedelta(days=1)).delete()
    if kind == Kind.ACCESS:
        usage.forget_day(start.date())
