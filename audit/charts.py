"""Counts for the audit page: attempts over time by outcome, and top lists.

Hourly rollups (``AuditRollup``) answer cheaply when the filter only uses
their dimensions (time on whole hours, kind, outcome, registry, exact
repository, user); anything else (globs, IP ranges, teams, text...) counts
the records themselves with one GROUP BY, limited to the chart's window.

The chart is drawn on the server as SVG geometry here and markup in the
template: no JavaScript, and the same numbers are offered as a table.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from django.db.models import Count, QuerySet, Sum
from django.db.models.functions import TruncDay, TruncHour

from audit.filters import REFUSED, REFUSED_OUTCOMES, AuditFilter
from audit.models import AuditHourly, AuditRollup, Kind

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
DEFAULT_SPAN = timedelta(hours=24)
HOURLY_UP_TO = timedelta(days=3)
MAX_SPAN = timedelta(days=92)  # at most ~92 daily bars: wider windows are clamped to their last 92 days
TOP_LIMIT = 10
# Outcomes in stacking order (good first); any other outcome follows, alphabetically. A probe (a push
# granted, only its cross-repository mount check refused) is an allowed push: it stacks beside granted.
OUTCOME_ORDER = ("granted", "success", "probe", "partial", "denied", "auth_failed", "failure", "error")
# "Most denied users": refusals by the rules; a probe's refused mount check is none.
DENIAL_OUTCOMES = ("denied", "partial")
# Filter fields the rollup table can answer; ``repository`` only when exact.
ROLLUP_FIELDS = frozenset({"since", "until", "kind", "outcome", "registry", "repository", "user"})

# SVG geometry, in user units (the SVG scales to its container).
WIDTH, HEIGHT = 720, 200
LEFT, RIGHT, TOP, BOTTOM = 44, 8, 10, 24


def floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def floor_day(moment: datetime) -> datetime:
    return floor_hour(moment).replace(hour=0)


@dataclass(frozen=True)
class Window:
    """The chart's time range, [start, end), and its bar width: an hour up to three days, else a day."""

    start: datetime
    end: datetime
    step: str  # "hour" | "day"
    clamped: bool = False

    @property
    def step_delta(self) -> timedelta:
        return HOUR if self.step == "hour" else DAY

    def bucket_starts(self) -> list[datetime]:
        current = floor_hour(self.start) if self.step == "hour" else floor_day(self.start)
        starts = []
        while current < self.end:
            starts.append(current)
            current += self.step_delta
        return starts


def window_for(audit_filter: AuditFilter, now: datetime) -> Window:
    """The filter's own time range, or the last 24 hours (whole hours) up to ``until`` or now."""
    end = audit_filter.until or now
    start = audit_filter.since or floor_hour(end) - (DEFAULT_SPAN - HOUR)
    clamped = end - start > MAX_SPAN
    if clamped:
        start = end - MAX_SPAN
    return Window(start, end, "hour" if end - start <= HOURLY_UP_TO else "day", clamped)


def outcome_class(outcome: str) -> str:
    """A CSS class for an outcome's colour; outcomes without a colour of their own share one."""
    return f"outcome-{outcome.replace('_', '-')}" if outcome in OUTCOME_ORDER else "outcome-other"


@dataclass
class Segment:
    outcome: str
    count: int
    y: float = 0.0
    height: float = 0.0

    @property
    def css(self) -> str:
        return outcome_class(self.outcome)


@dataclass(frozen=True)
class Rect:
    """One drawn segment, its geometry already as SVG text: the template only places it."""

    css: str
    x: str
    y: str
    width: str
    height: str
    title: str


@dataclass
class Bar:
    start: datetime
    label: str
    segments: list[Segment] = field(default_factory=list)
    x: float = 0.0
    width: float = 0.0

    @property
    def total(self) -> int:
        return sum(segment.count for segment in self.segments)

    def count(self, outcome: str) -> int:
        return next((segment.count for segment in self.segments if segment.outcome == outcome), 0)

    @property
    def counts(self) -> list[int]:
        """Counts in the chart's outcome order (segments follow it), for the table fallback."""
        return [segment.count for segment in self.segments]


@dataclass
class Chart:
    """Stacked bars per hour or day and outcome, with the SVG geometry already worked out."""

    title: str
    window: Window
    source: str  # "rollups" | "records"
    outcomes: list[str]
    bars: list[Bar]
    peak: int = 0
    width: int = WIDTH
    height: int = HEIGHT
    ticks: list[tuple[float, int]] = field(default_factory=list)  # (y, value) for the y axis
    labels: list[tuple[float, str]] = field(default_factory=list)  # (x, text) under the bars

    @property
    def total(self) -> int:
        return sum(bar.total for bar in self.bars)

    @property
    def totals(self) -> list[tuple[str, int, str]]:
        """(outcome, total, CSS class) for the legend."""
        return [
            (outcome, sum(bar.count(outcome) for bar in self.bars), outcome_class(outcome)) for outcome in self.outcomes
        ]

    @property
    def rects(self) -> list[Rect]:
        """The non-empty segments of every bar, formatted here once (the template's
        ``floatformat`` on ~700 numbers was most of the audit page's rendering time)."""
        return [
            Rect(
                segment.css,
                f"{bar.x:.2f}",
                f"{segment.y:.2f}",
                f"{bar.width:.2f}",
                f"{segment.height:.2f}",
                f"{bar.start:%Y-%m-%d %H:%M} UTC: {segment.count} {segment.outcome}",
            )
            for bar in self.bars
            for segment in bar.segments
            if segment.count
        ]

    @property
    def baseline(self) -> float:
        return HEIGHT - BOTTOM

    @property
    def left(self) -> int:
        return LEFT


def uses_rollup_dimensions(audit_filter: AuditFilter, window: Window) -> bool:
    """Whether rollups give the exact answer: only their dimensions, and hour-aligned bounds."""
    if not set(audit_filter.describe()) <= ROLLUP_FIELDS:
        return False
    repository = audit_filter.repository
    if repository is not None and ("*" in repository or repository.endswith("/")):
        return False
    # Rollups count whole hours; a bound inside an hour needs the records themselves.
    return window.start == floor_hour(window.start) and (
        audit_filter.until is None or window.end == floor_hour(window.end)
    )


def attempts_chart(audit_filter: AuditFilter, now: datetime) -> Chart:
    """Counts per bar and outcome for the filter (kind: the filter's, else access attempts)."""
    window = window_for(audit_filter, now)
    scoped = replace(audit_filter, since=window.start, until=window.end, kind=audit_filter.kind or Kind.ACCESS)
    if uses_rollup_dimensions(audit_filter, window):
        source, counts = "rollups", _rollup_counts(scoped, window)
    else:
        source, counts = "records", _record_counts(scoped, window)
    title = f"{Kind(scoped.kind).label}s per {window.step}"
    return _layout(title, window, source, counts)


def _rollup_counts(audit_filter: AuditFilter, window: Window) -> dict[tuple[datetime, str], int]:
    # The coarse table answers the common chart (no actor or repository) from a few rows per hour.
    coarse = audit_filter.repository is None and audit_filter.user is None
    model = AuditHourly if coarse else AuditRollup
    rollups = model.objects.filter(hour__gte=window.start, hour__lt=window.end, kind=audit_filter.kind)
    refused = audit_filter.outcome == REFUSED
    dimensions = {
        "outcome": None if refused else audit_filter.outcome,
        "outcome__in": REFUSED_OUTCOMES if refused else None,  # outcome=refused is a set, not a stored value
        "registry": audit_filter.registry,
    }
    if not coarse:
        dimensions |= {"repository": audit_filter.repository, "actor": audit_filter.user}
    rollups = rollups.filter(**{name: value for name, value in dimensions.items() if value is not None})
    trunc = TruncHour if window.step == "hour" else TruncDay
    rows = rollups.annotate(bucket=trunc("hour", tzinfo=UTC)).values("bucket", "outcome").annotate(n=Sum("count"))
    return _keyed(rows.order_by())


def _record_counts(audit_filter: AuditFilter, window: Window) -> dict[tuple[datetime, str], int]:
    trunc = TruncHour if window.step == "hour" else TruncDay
    records = audit_filter.apply().annotate(bucket=trunc("time", tzinfo=UTC))
    return _keyed(records.values("bucket", "outcome").annotate(n=Count("id")).order_by())


def _keyed(rows: QuerySet) -> dict[tuple[datetime, str], int]:
    counts: dict[tuple[datetime, str], int] = {}
    for row in rows:
        key = (row["bucket"].astimezone(UTC), row["outcome"])
        counts[key] = counts.get(key, 0) + int(row["n"] or 0)
    return counts


def _ordered_outcomes(outcomes: set[str]) -> list[str]:
    known = [outcome for outcome in OUTCOME_ORDER if outcome in outcomes]
    return known + sorted(outcomes - set(OUTCOME_ORDER))


def _layout(title: str, window: Window, source: str, counts: dict[tuple[datetime, str], int]) -> Chart:
    outcomes = _ordered_outcomes({outcome for _bucket, outcome in counts})
    starts = window.bucket_starts()
    label_format = "%H:%M" if window.step == "hour" else "%m-%d"
    bars = [
        Bar(start, start.strftime(label_format), [Segment(o, counts.get((start, o), 0)) for o in outcomes])
        for start in starts
    ]
    chart = Chart(title, window, source, outcomes, bars)
    chart.peak = max((bar.total for bar in bars), default=0)
    plot_width, plot_height = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    scale = plot_height / chart.peak if chart.peak else 0.0
    slot = plot_width / max(len(bars), 1)
    for index, bar in enumerate(bars):
        bar.x, bar.width = LEFT + index * slot + slot * 0.1, slot * 0.8
        top = HEIGHT - BOTTOM
        for segment in bar.segments:
            segment.height = segment.count * scale
            top -= segment.height
            segment.y = top
    chart.ticks = [(TOP + plot_height * (1 - share), round(chart.peak * share)) for share in (0, 0.5, 1)]
    every = max(1, len(bars) // 8)  # about eight labels, whatever the number of bars
    chart.labels = [(bar.x + bar.width / 2, bar.label) for bar in bars[::every]]
    return chart


@dataclass(frozen=True)
class TopEntry:
    label: str
    count: int
    registry: str = ""


@dataclass(frozen=True)
class TopLists:
    denied_users: list[TopEntry]
    pulled_repositories: list[TopEntry]
    active_ips: list[TopEntry]


def top_lists(window: Window, limit: int = TOP_LIMIT) -> TopLists:
    """Most denied users, most pulled repositories and busiest source addresses (from rollups, whole hours)."""
    rollups = AuditRollup.objects.filter(hour__gte=floor_hour(window.start), hour__lt=window.end).order_by()
    denied = (
        rollups.filter(kind=Kind.ACCESS, outcome__in=DENIAL_OUTCOMES)
        .exclude(actor="")
        .values("actor")
        .annotate(n=Sum("count"))
        .order_by("-n", "actor")[:limit]
    )
    pulled = (
        rollups.filter(kind=Kind.REGISTRY_EVENT, outcome="pull")
        .values("registry", "repository")
        .annotate(n=Sum("count"))
        .order_by("-n", "repository")[:limit]
    )
    addresses = rollups.exclude(ip__isnull=True).values("ip").annotate(n=Sum("count")).order_by("-n", "ip")[:limit]
    return TopLists(
        denied_users=[TopEntry(row["actor"], row["n"]) for row in denied],
        pulled_repositories=[TopEntry(row["repository"], row["n"], row["registry"]) for row in pulled],
        active_ips=[TopEntry(str(row["ip"]), row["n"]) for row in addresses],
    )
