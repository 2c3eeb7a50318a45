"""Who used which right, and when: the usage rollups behind the "unused rights" report.

The sealer counts each freshly sealed access record once (``add``, in its batch's transaction,
under the sealer lock); retention forgets a day's uses with that day's records (``forget_day``).
The report reads ``last_uses`` and ``day_counts`` instead of scanning millions of access records.
What a record counts as, and under which subject, is ``AccessUse``'s docstring.
"""

from __future__ import annotations

import bisect
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, TypeVar

from django.db import connection
from django.db.models import BigIntegerField, Func, Max, Min, Q, Sum
from django.utils import timezone

from accounts.access.patterns import pattern_matcher
from accounts.constants import ACTIONS
from audit.models import AccessUse, AccessUseDay, Kind, SubjectType, UseAction

# Outcomes of an access record that issued a token; the others (invalid, auth_failed, limited) refused.
# A probe's push was granted (only its mount check's pull was not): its granted actions are uses.
ISSUED = frozenset({"granted", "probe", "partial", "denied"})
COUNTED_SUBJECTS = frozenset({SubjectType.USER, SubjectType.ROBOT, SubjectType.TOKEN})
KEY_FIELDS = ("subject_type", "actor", "registry", "repository", "action")
DAY_FIELDS = ("day", *KEY_FIELDS)
# Registries refuse longer names (and the columns hold no more): such a grant cannot have been used.
MAX_NAME = 255
# Values per IN (...) query: SQLite allows 999 bound parameters (a few more go to other filters).
IN_CHUNK = 900

T = TypeVar("T")
Key = tuple[str, str, str, str, str]  # KEY_FIELDS
Subject = tuple[str, str]  # (subject_type, actor)
UseModel = type[AccessUse] | type[AccessUseDay]


@dataclass(frozen=True)
class UseRow:
    """One right a subject used within retention: the newest use and how many uses."""

    registry: str
    repository: str
    action: str
    last_at: datetime
    count: int


@dataclass
class _Tally:
    count: int
    first_at: datetime
    last_at: datetime

    def absorb(self, other: _Tally) -> None:
        self.count += other.count
        self.first_at = min(self.first_at, other.first_at)
        self.last_at = max(self.last_at, other.last_at)


# --- Counting sealed records --------------------------------------------------------------


def uses_of(row: Mapping[str, Any]) -> set[Key]:
    """The keys one access record counts under, each once; none for refusals, anonymous and other kinds."""
    if row["kind"] != Kind.ACCESS or row["outcome"] not in ISSUED or row["subject_type"] not in COUNTED_SUBJECTS:
        return set()
    actor, registry = row["actor"], row["registry"]
    if not actor:
        return set()
    # A PAT's rights are part of its user's: its uses are the user's uses too.
    subject_type = SubjectType.USER.value if row["subject_type"] == SubjectType.TOKEN else str(row["subject_type"])
    keys = {(subject_type, actor, registry, "", UseAction.LOGIN.value)}
    for entry in row["actions"] or []:
        if not isinstance(entry, dict) or entry.get("type") != "repository":
            continue
        name = entry.get("name")
        if not isinstance(name, str) or not name or len(name) > MAX_NAME:
            continue
        granted = [action for action in entry.get("granted") or () if action in ACTIONS]  # never "*"
        keys.update((subject_type, actor, registry, name, action) for action in granted)
    detail = row["detail"] if isinstance(row["detail"], dict) else {}
    label = detail.get("credential") if row["subject_type"] == SubjectType.TOKEN else None
    if isinstance(label, str) and label and len(label) <= MAX_NAME:
        keys.add((SubjectType.TOKEN.value, label, registry, "", UseAction.LOGIN.value))
    return keys


def add(rows: Iterable[Mapping[str, Any]]) -> None:
    """Count freshly sealed records (dicts of their frozen fields) into both tables.

    The caller holds the sealer lock, so reading the existing rows and then writing them is
    safe on every backend: no other batch touches these tables meanwhile.
    """
    days: dict[tuple[Any, ...], _Tally] = {}
    for row in rows:
        keys = uses_of(row)
        if keys:
            at = _utc(row["time"])
            for key in keys:
                _merge(days, (at.date(), *key), _Tally(1, at, at))
    if not days:
        return
    totals: dict[tuple[Any, ...], _Tally] = {}
    for (_, *key), tally in days.items():
        _merge(totals, tuple(key), tally)
    _upsert(AccessUseDay, DAY_FIELDS, days)
    _upsert(AccessUse, KEY_FIELDS, totals)


def _merge(tallies: dict[tuple[Any, ...], _Tally], key: tuple[Any, ...], tally: _Tally) -> None:
    current = tallies.get(key)
    if current is None:
        tallies[key] = _Tally(tally.count, tally.first_at, tally.last_at)
    else:
        current.absorb(tally)


def _upsert(model: UseModel, fields: Sequence[str], tallies: Mapping[tuple[Any, ...], _Tally]) -> None:
    """Add to the rows that exist (counts add, first/last widen), create the others: a few queries a batch."""
    existing = _existing(model, fields, tallies.keys())
    changed, new = [], []
    for key, tally in tallies.items():
        use = existing.get(key)
        if use is None:
            values = dict(zip(fields, key, strict=True))
            new.append(model(**values, count=tally.count, first_at=tally.first_at, last_at=tally.last_at))
            continue
        current = _Tally(use.count, use.first_at, use.last_at)
        current.absorb(tally)
        use.count, use.first_at, use.last_at = current.count, current.first_at, current.last_at
        changed.append(use)
    model.objects.bulk_update(changed, ["count", "first_at", "last_at"], batch_size=500)
    model.objects.bulk_create(new, batch_size=500)


def _existing(model: UseModel, fields: Sequence[str], keys: Collection[tuple[Any, ...]]) -> dict[tuple[Any, ...], Any]:
    """The rows of ``keys`` that exist, read by actor in chunks (and by day range for the day table)."""
    position = fields.index("actor")
    rows = model.objects.order_by()
    if "day" in fields:
        days = [key[fields.index("day")] for key in keys]
        rows = rows.filter(day__gte=min(days), day__lte=max(days))
    found = {}
    for chunk in _chunks(sorted({key[position] for key in keys})):
        for use in rows.filter(actor__in=chunk):
            key = tuple(getattr(use, name) for name in fields)
            if key in keys:
                found[key] = use
    return found


# --- Retention ----------------------------------------------------------------------------


def forget_day(day: date) -> None:
    """Forget the uses counted on ``day`` (UTC), whose access records retention is dropping.

    Runs in retention's transaction, under the sealer lock. Each ``AccessUse`` row that counted
    that day is recomputed from the days left, so it stays their exact sum, first and last use;
    a row with no day left goes, and "last used" never names a record that is gone.
    """
    dropped = AccessUseDay.objects.filter(day=day)
    keys = set(dropped.values_list(*KEY_FIELDS))
    if not keys:
        return
    dropped.delete()
    left = _totals(keys)
    gone, changed = [], []
    for key, use in _existing(AccessUse, KEY_FIELDS, keys).items():
        tally = left.get(key)
        if tally is None:
            gone.append(use.pk)
        else:
            use.count, use.first_at, use.last_at = tally.count, tally.first_at, tally.last_at
            changed.append(use)
    for chunk in _chunks(gone):
        AccessUse.objects.filter(pk__in=chunk).delete()
    AccessUse.objects.bulk_update(changed, ["count", "first_at", "last_at"], batch_size=500)


def _totals(keys: Collection[Key]) -> dict[Key, _Tally]:
    """Sum, first and last use over the day rows of ``keys``, as they are now."""
    totals: dict[Key, _Tally] = {}
    for chunk in _chunks(sorted({key[1] for key in keys})):
        summed = (
            AccessUseDay.objects.filter(actor__in=chunk)
            .values_list(*KEY_FIELDS)
            .annotate(total=Sum("count"), first=Min("first_at"), last=Max("last_at"))
            .order_by()
        )
        for *key, total, first, last in summed:
            if tuple(key) in keys:
                totals[tuple(key)] = _Tally(total, first, last)
    return totals


# --- Reading, for the report --------------------------------------------------------------


def last_uses(subjects: Iterable[Subject]) -> dict[Subject, list[UseRow]]:
    """Per (subject_type, actor): every right it used within retention, by registry, repository and action.

    Every subject asked about is in the answer; an empty list means no use within retention.
    """
    found: dict[Subject, list[UseRow]] = {subject: [] for subject in subjects}
    for chunk, types in _subject_chunks(found):
        uses = AccessUse.objects.filter(actor__in=chunk, subject_type__in=types).order_by(
            "registry", "repository", "action"
        )
        for subject_type, actor, registry, repository, action, last_at, count in uses.values_list(
            *KEY_FIELDS, "last_at", "count"
        ):
            if (subject_type, actor) in found:
                found[(subject_type, actor)].append(UseRow(registry, repository, action, last_at, count))
    return found


def day_counts(subjects: Iterable[Subject], since: date) -> dict[Key, int]:
    """Uses per (subject_type, actor, registry, repository, action) on UTC days from ``since`` on.

    Keys without a use in that time are absent.
    """
    wanted = set(subjects)
    counts: dict[Key, int] = {}
    for chunk, types in _subject_chunks(wanted):
        summed = (
            AccessUseDay.objects.filter(actor__in=chunk, subject_type__in=types, day__gte=since)
            .values_list(*KEY_FIELDS)
            .annotate(total=Sum("count"))
            .order_by()
        )
        for subject_type, actor, registry, repository, action, total in summed:
            if (subject_type, actor) in wanted:
                counts[(subject_type, actor, registry, repository, action)] = total
    return counts


@dataclass(frozen=True, slots=True)
class RightUse:
    """What a subject did under one repository of one registry: its newest push or delete, and newest pull.

    Times are whole UTC seconds since the epoch (``at`` turns one into a datetime): the report
    compares hundreds of thousands of them, and integers cost a fraction of datetimes to fetch.
    """

    registry: str
    repository: str
    last_write: int | None
    last_pull: int | None


class EpochSeconds(Func):
    """A datetime expression as whole seconds since the epoch, UTC, on SQLite and PostgreSQL."""

    output_field = BigIntegerField()

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return self.as_sql(compiler, connection, template="CAST(strftime('%%%%s', %(expressions)s) AS INTEGER)")

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return self.as_sql(compiler, connection, template="CAST(EXTRACT(EPOCH FROM %(expressions)s) AS BIGINT)")


def at(seconds: int | None) -> datetime | None:
    """``EpochSeconds`` back to an aware UTC datetime."""
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


class UseIndex:
    """One subject's ``RightUse`` rows sorted by repository: a pattern looks only at names that start as it does."""

    def __init__(self, rows: Iterable[RightUse]) -> None:
        self.rows = sorted(rows, key=lambda row: row.repository)
        self.names = [row.repository for row in self.rows]

    def under(self, pattern: str, service: str | None) -> Iterator[RightUse]:
        """The rows under ``pattern`` (on ``service``; None: every registry)."""
        prefix = pattern.split("*", 1)[0]
        matches = pattern_matcher(pattern)
        for index in range(bisect.bisect_left(self.names, prefix), len(self.names)):
            row = self.rows[index]
            if not row.repository.startswith(prefix):
                return
            if matches(row.repository) and (service is None or row.registry == service):
                yield row

    def newest(self, pattern: str, service: str | None) -> tuple[int | None, int | None]:
        """(newest push or delete, newest pull) under ``pattern``, in epoch seconds."""
        writes, pulls = [], []
        for row in self.under(pattern, service):
            if row.last_write is not None:
                writes.append(row.last_write)
            if row.last_pull is not None:
                pulls.append(row.last_pull)
        return max(writes, default=None), max(pulls, default=None)


UNDER_CHUNK = 200  # (subject, prefix) rows per query: four parameters each
_ABOVE = "\x7f"  # sorts after every character a repository name may hold (byte order)


def prefix_of(pattern: str) -> str:
    """The literal start of a grant pattern: every repository it selects begins with it."""
    return pattern.split("*", 1)[0]


def indexes_under(wanted: Mapping[Subject, Iterable[str]]) -> dict[Subject, UseIndex]:
    """Like ``indexes``, but only the repositories that begin with one of each subject's prefixes.

    The report and the review ask about the repositories under a subject's grants: the database
    reads those by a range of the (actor, subject type, repository) index, instead of every right
    the subject ever used, and folds them as ``rights_used`` does.
    """
    found: dict[Subject, list[RightUse]] = {subject: [] for subject in wanted}
    ranges = [(s, p) for s, prefixes in wanted.items() for p in _outermost(prefixes)]
    for chunk in _chunks(ranges, UNDER_CHUNK):
        for subject_type, actor, registry, repository, last_write, last_pull in _under(chunk):
            found[(subject_type, actor)].append(RightUse(registry, repository, last_write, last_pull))
    return {subject: UseIndex(rows) for subject, rows in found.items()}


def _outermost(prefixes: Iterable[str]) -> list[str]:
    """The prefixes no other one contains ("web/" covers "web/app"): ranges that never overlap."""
    kept: list[str] = []
    for prefix in sorted(set(prefixes)):
        if not kept or not prefix.startswith(kept[-1]):
            kept.append(prefix)
    return kept


def _under(chunk: Sequence[tuple[Subject, str]]) -> list[tuple[Any, ...]]:
    postgres = connection.vendor == "postgresql"
    cast = "::text" if postgres else ""
    rows = ", ".join(f"(%s{cast}, %s{cast}, %s{cast}, %s{cast})" for _ in chunk)
    params: list[str] = []
    for (subject_type, actor), prefix in chunk:
        params += [subject_type, actor, prefix, prefix + _ABOVE]
    if postgres:  # byte order, as the varchar_pattern_ops index sorts (a collation could sort otherwise)
        in_range = "u.repository ~>=~ w.lo AND u.repository ~<~ w.hi"
        epoch = "CAST(EXTRACT(EPOCH FROM MAX(CASE WHEN {} THEN u.last_at END)) AS BIGINT)"
    else:
        in_range = "u.repository >= w.lo AND u.repository < w.hi"
        epoch = "CAST(strftime('%%s', MAX(CASE WHEN {} THEN u.last_at END)) AS INTEGER)"
    table = AccessUse._meta.db_table
    last_write = epoch.format("u.action IN ('push', 'delete')")
    last_pull = epoch.format("u.action = 'pull'")
    sql = (
        f"WITH w(subject_type, actor, lo, hi) AS (VALUES {rows}) "
        f"SELECT u.subject_type, u.actor, u.registry, u.repository, {last_write}, {last_pull} "
        f"FROM w JOIN {table} u ON u.actor = w.actor AND u.subject_type = w.subject_type AND {in_range} "
        "WHERE u.action IN ('pull', 'push', 'delete') GROUP BY u.subject_type, u.actor, u.registry, u.repository"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def indexes(subjects: Iterable[Subject]) -> dict[Subject, UseIndex]:
    """``rights_used`` as one ``UseIndex`` per subject (every subject asked about is there)."""
    return {subject: UseIndex(rows) for subject, rows in rights_used(subjects).items()}


def rights_used(subjects: Iterable[Subject]) -> dict[Subject, list[RightUse]]:
    """Per subject, one row per (registry, repository) it pulled, pushed or deleted in, within retention.

    Folded in the database (one row where ``last_uses`` has up to three, and no logins): the
    report reads this for every subject that holds a grant.
    """
    found: dict[Subject, list[RightUse]] = {subject: [] for subject in subjects}
    writes = [UseAction.PUSH.value, UseAction.DELETE.value]
    for chunk, types in _subject_chunks(found):
        rows = (
            AccessUse.objects.filter(actor__in=chunk, subject_type__in=types, action__in=ACTIONS)
            .values_list("subject_type", "actor", "registry", "repository")
            .annotate(
                last_write=EpochSeconds(Max("last_at", filter=Q(action__in=writes))),
                last_pull=EpochSeconds(Max("last_at", filter=Q(action=UseAction.PULL.value))),
            )
            .order_by()
        )
        for subject_type, actor, registry, repository, last_write, last_pull in rows:
            if (subject_type, actor) in found:
                found[(subject_type, actor)].append(RightUse(registry, repository, last_write, last_pull))
    return found


def last_seen(subjects: Iterable[Subject]) -> dict[Subject, datetime | None]:
    """Per subject, when it last authenticated at any registry (its newest "login"; None: not within retention)."""
    found: dict[Subject, datetime | None] = dict.fromkeys(subjects)
    for chunk, types in _subject_chunks(found):
        rows = (
            AccessUse.objects.filter(actor__in=chunk, subject_type__in=types, action=UseAction.LOGIN.value)
            .values_list("subject_type", "actor")
            .annotate(last=Max("last_at"))
            .order_by()
        )
        for subject_type, actor, last in rows:
            if (subject_type, actor) in found:
                found[(subject_type, actor)] = last
    return found


def pull_counts(subjects: Iterable[Subject], since: date) -> dict[tuple[str, str, str, str], int]:
    """Pulls per (subject_type, actor, registry, repository) on UTC days from ``since`` on."""
    wanted = set(subjects)
    counts: dict[tuple[str, str, str, str], int] = {}
    for chunk, types in _subject_chunks(wanted):
        summed = (
            AccessUseDay.objects.filter(
                actor__in=chunk, subject_type__in=types, day__gte=since, action=UseAction.PULL.value
            )
            .values_list("subject_type", "actor", "registry", "repository")
            .annotate(total=Sum("count"))
            .order_by()
        )
        for subject_type, actor, registry, repository, total in summed:
            if (subject_type, actor) in wanted:
                counts[(subject_type, actor, registry, repository)] = total
    return counts


def _subject_chunks(subjects: Collection[Subject]) -> Iterator[tuple[Sequence[str], list[str]]]:
    """Actors a chunk at a time, with the subject types asked about (a handful) for the same query."""
    types = sorted({subject_type for subject_type, _ in subjects})
    for chunk in _chunks(sorted({actor for _, actor in subjects}), max(1, IN_CHUNK - len(types))):
        yield chunk, types


# --- Helpers ------------------------------------------------------------------------------


def _chunks(items: Sequence[T], size: int = IN_CHUNK) -> Iterator[Sequence[T]]:
    # ``audit.chain`` has the same helper, but chain imports this module.
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _utc(value: datetime) -> datetime:
    """Aware UTC (a naive value, with USE_TZ off, is UTC as Django stores it): its date is the segment's day."""
    return value.astimezone(UTC) if timezone.is_aware(value) else value.replace(tzinfo=UTC)
