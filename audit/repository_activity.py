"""One repository's activity from its registry events: the manifests pushed, the last push and pull, pulls per day.

Every query here reads one repository's records through its (repository, time) index, newest first or
over a bounded window: the newest ``RECENT_EVENTS`` push and delete events (the newest push among
them), the last pull, and the pull events of the last ``PULL_DAYS`` days counted per UTC day in one
GROUP BY. The hourly rollups (``AuditRollup``) count pulls too, but nothing indexes them by repository:
at the page benchmark's million records they hold nearly a million rows and PostgreSQL scanned the
whole table for one repository's month (230 ms, EXPLAIN ANALYZE). The records cost what the
repository's own month holds instead: about 5,000 for the busiest repository there, 10-20 ms. A
(repository, kind, time) index on the records, or a repository index on the rollups, would make that
a few rows; both are model changes.

``registry`` narrows everything to one registry's events (a service name); None takes every registry's.
A manifest's ``size`` is what the registry's event gives: the manifest's own bytes, not its layers'.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.db.models import QuerySet, Sum
from django.db.models.functions import TruncDay

from audit.models import AuditRecord, AuditRollup, Kind

RECENT_EVENTS = 30
PULL_DAYS = 30
MANIFEST_ACTIONS = ("push", "delete")

# The pull chart's SVG geometry, in user units (it scales to its container).
WIDTH, HEIGHT, BOTTOM, SIDE = 600, 120, 18, 16  # SIDE: room for the first and last day's label


@dataclass(frozen=True)
class Manifest:
    """A tag (or an untagged digest) as its newest push left it; ``deleted`` when a newer delete named it."""

    tag: str
    digest: str
    size: int | None
    pusher: str
    time: datetime
    registry: str
    record_id: int
    deleted: bool


@dataclass(frozen=True)
class PullDay:
    """One bar: its geometry and its day as text are made here once (the template's filters cost more)."""

    day: date
    count: int
    label: str = ""  # YYYY-MM-DD
    x: str = ""
    y: str = ""
    width: str = ""
    height: str = ""


@dataclass(frozen=True)
class PullChart:
    """Pulls per UTC day, oldest first, with each bar's geometry worked out here (the template only places it)."""

    days: list[PullDay]
    peak: int
    total: int
    width: int = WIDTH
    height: int = HEIGHT

    @property
    def baseline(self) -> int:
        return HEIGHT - BOTTOM

    @property
    def labels(self) -> list[tuple[str, str]]:
        """(x, "MM-DD") under about one bar in six."""
        every = max(1, len(self.days) // 5)
        return [(f"{float(day.x) + float(day.width) / 2:.1f}", day.label[5:]) for day in self.days[::every]]


def events(repository: str, registry: str | None) -> QuerySet[AuditRecord]:
    """This repository's registry events (every action), newest first."""
    records = AuditRecord.objects.filter(repository=repository, kind=Kind.REGISTRY_EVENT)
    if registry is not None:
        records = records.filter(registry=registry)
    return records.order_by("-time", "-id")


def manifests(repository: str, registry: str | None, limit: int = RECENT_EVENTS) -> list[Manifest]:
    """Tags and digests from the newest ``limit`` push and delete events, newest first, each once.

    A delete arrives by digest (every tag on that manifest goes) and again by tag with an empty
    digest (../shared/PROTOCOL.md): either marks the pushes older than it.
    """
    rows = events(repository, registry).filter(outcome__in=MANIFEST_ACTIONS)
    rows = rows.values("id", "time", "outcome", "actor", "registry", "detail")[:limit]
    deleted_tags: set[tuple[str, str]] = set()
    deleted_digests: set[tuple[str, str]] = set()
    found: dict[tuple[str, str], Manifest] = {}
    for row in rows:
        detail = row["detail"] if isinstance(row["detail"], dict) else {}
        tag, digest = _text(detail.get("tag")), _text(detail.get("digest"))
        where = row["registry"]
        if row["outcome"] == "delete":
            if tag:
                deleted_tags.add((where, tag))
            if digest:
                deleted_digests.add((where, digest))
            continue
        key = (where, tag or digest)
        if not (tag or digest) or key in found:
            continue
        found[key] = Manifest(
            tag=tag,
            digest=digest,
            size=_size(detail.get("size")),
            pusher=row["actor"],
            time=row["time"],
            registry=where,
            record_id=row["id"],
            deleted=(where, tag) in deleted_tags or (where, digest) in deleted_digests,
        )
    return list(found.values())


def last_event(repository: str, registry: str | None, action: str) -> AuditRecord | None:
    """The newest event of ``action`` (e.g. ``pull``), or None; the newest push is ``manifests``' first."""
    return events(repository, registry).filter(outcome=action).only("id", "time", "actor", "registry").first()


def pulls_per_day(repository: str, registry: str | None, now: datetime, days: int = PULL_DAYS) -> PullChart:
    """Pull events per UTC day over the last ``days`` days, today included, from the sealer's hourly
    rollups (index ``audit_rollup_repository``): a few rows per hour, however busy the repository.

    Records not sealed yet (the last minute or so) are not counted until the sealer has run.
    """
    today = now.astimezone(UTC).date()
    first = today - timedelta(days=days - 1)
    since = datetime(first.year, first.month, first.day, tzinfo=UTC)
    rollups = AuditRollup.objects.filter(
        repository=repository, kind=Kind.REGISTRY_EVENT, outcome="pull", hour__gte=since
    )
    if registry is not None:
        rollups = rollups.filter(registry=registry)
    counted = rollups.annotate(day=TruncDay("hour", tzinfo=UTC)).values("day").annotate(n=Sum("count")).order_by()
    counts = {row["day"].astimezone(UTC).date(): int(row["n"] or 0) for row in counted}
    return _chart([(first + timedelta(days=n), counts.get(first + timedelta(days=n), 0)) for n in range(days)])


def _chart(counts: list[tuple[date, int]]) -> PullChart:
    peak = max((count for _, count in counts), default=0)
    slot = (WIDTH - 2 * SIDE) / max(len(counts), 1)
    plot = HEIGHT - BOTTOM - 4
    days = []
    for index, (day, count) in enumerate(counts):
        height = count * plot / peak if peak else 0.0
        days.append(
            PullDay(
                day,
                count,
                label=day.isoformat(),
                x=f"{SIDE + index * slot + slot * 0.1:.2f}",
                y=f"{HEIGHT - BOTTOM - height:.2f}",
                width=f"{slot * 0.8:.2f}",
                height=f"{height:.2f}",
            )
        )
    return PullChart(days, peak, sum(count for _, count in counts))


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _size(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None
