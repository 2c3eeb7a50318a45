"""The audit page's side panels: top lists that follow the kind filter, counted from hourly rollups.

With no kind the page shows the auditor's usual three (most refused users, most pulled
repositories, busiest addresses); with a kind, three lists that describe that kind. Every list
is one GROUP BY over ``AuditRollup`` rows of the chart's window (indexed by hour and kind), so
the cost stays the same at millions of records.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from django.db.models import QuerySet, Sum

from audit.charts import Window, floor_hour
from audit.filters import REFUSED, REFUSED_OUTCOMES
from audit.models import AuditRollup, Kind

TOP_LIMIT = 10


@dataclass(frozen=True)
class Spec:
    """One list: which rollups it counts (kind, outcomes), by which dimension, and the filter it links to."""

    title: str
    kind: str | None
    by: str  # "actor" | "repository" | "ip"
    outcomes: tuple[str, ...] = ()
    outcome_param: str = ""  # the ``outcome`` its entries link with ("refused" for the refusal lists)


@dataclass(frozen=True)
class Entry:
    label: str
    count: int
    query: str  # the audit page's query string for this entry's records


@dataclass(frozen=True)
class Panel:
    title: str
    entries: list[Entry]


_ACCESS_REFUSED = Spec("Most refused users", Kind.ACCESS, "actor", REFUSED_OUTCOMES, REFUSED)
SPECS: dict[str | None, tuple[Spec, ...]] = {
    None: (
        _ACCESS_REFUSED,
        Spec("Most pulled repositories", Kind.REGISTRY_EVENT, "repository", ("pull",), "pull"),
        Spec("Most active source IPs", None, "ip"),
    ),
    Kind.ACCESS: (
        _ACCESS_REFUSED,
        Spec("Most requested repositories", Kind.ACCESS, "repository"),
        Spec("Most active source IPs", Kind.ACCESS, "ip"),
    ),
    Kind.REGISTRY_EVENT: (
        Spec("Most pulled repositories", Kind.REGISTRY_EVENT, "repository", ("pull",), "pull"),
        Spec("Most pushed repositories", Kind.REGISTRY_EVENT, "repository", ("push",), "push"),
        Spec("Busiest clients", Kind.REGISTRY_EVENT, "actor"),
    ),
    Kind.ADMIN_CHANGE: (
        Spec("Who changed most", Kind.ADMIN_CHANGE, "actor"),
        Spec("Failed changes by whom", Kind.ADMIN_CHANGE, "actor", ("failure",), "failure"),
        Spec("From which addresses", Kind.ADMIN_CHANGE, "ip"),
    ),
    Kind.SIGNIN: (
        Spec("Most failed sign-ins", Kind.SIGNIN, "actor", ("failure",), "failure"),
        Spec("Addresses failing to sign in", Kind.SIGNIN, "ip", ("failure",), "failure"),
        Spec("Who signed in most", Kind.SIGNIN, "actor", ("success",), "success"),
    ),
    Kind.CREDENTIAL: (
        Spec("Who changed credentials most", Kind.CREDENTIAL, "actor"),
        Spec("Failed credential operations", Kind.CREDENTIAL, "actor", ("failure",), "failure"),
        Spec("From which addresses", Kind.CREDENTIAL, "ip"),
    ),
    Kind.JOB: (
        Spec("Runs per job", Kind.JOB, "actor"),
        Spec("Failed runs per job", Kind.JOB, "actor", ("error",), "error"),
    ),
}
# The filter parameter each dimension links to.
PARAMS = {"actor": "user", "repository": "repository", "ip": "ip"}


def side_panels(kind: str | None, window: Window, limit: int = TOP_LIMIT) -> list[Panel]:
    """The lists for ``kind`` (None: the general ones) over the window's whole hours."""
    rollups = AuditRollup.objects.filter(hour__gte=floor_hour(window.start), hour__lt=window.end).order_by()
    return [_panel(rollups, spec, limit) for spec in SPECS.get(kind, SPECS[None])]


def _panel(rollups: QuerySet[AuditRollup], spec: Spec, limit: int) -> Panel:
    if spec.kind is not None:
        rollups = rollups.filter(kind=spec.kind)
    if spec.outcomes:
        rollups = rollups.filter(outcome__in=spec.outcomes)
    rollups = rollups.exclude(**{spec.by: ""}) if spec.by != "ip" else rollups.exclude(ip__isnull=True)
    rows = rollups.values(spec.by).annotate(n=Sum("count")).order_by("-n", spec.by)[:limit]
    return Panel(spec.title, [Entry(str(row[spec.by]), int(row["n"]), _query(spec, str(row[spec.by]))) for row in rows])


def _query(spec: Spec, value: str) -> str:
    params = {PARAMS[spec.by]: value}
    if spec.kind is not None:
        params["kind"] = spec.kind
    if spec.outcome_param:
        params["outcome"] = spec.outcome_param
    return urlencode(params)
