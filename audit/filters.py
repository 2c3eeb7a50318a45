"""Filters over audit records, shared by the audit pages, export jobs and ``manage.py export_audit``.

One ``AuditFilter`` means the same thing everywhere: the page parses its query
string with ``parse_filter``, an export job stores ``describe()`` and parses it
back, and the command parses its flags the same way.

Portability notes (the suite runs on SQLite and PostgreSQL):

* ``action`` looks inside the ``actions`` JSON list: jsonb containment
  (``@>``) on PostgreSQL, ``json_each`` on SQLite; both are exact.
* ``ip`` with a CIDR range uses ``inet <<= cidr`` on PostgreSQL. SQLite stores
  addresses as text, where no string prefix is exact for every range (IPv6
  zero compression, /20s, ...), so there the test is a small deterministic
  Python function registered on the connection when the query is compiled.
  A single address is an exact match on both.
* ``text`` is a case-insensitive substring match on the ``detail`` JSON as
  text; it matches keys and values, not JSON punctuation (which differs
  between the backends).
"""

from __future__ import annotations

import functools
import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

from django.db.models import BooleanField, F, Func, Q, QuerySet, TextField
from django.db.models.functions import Cast
from django.db.models.lookups import IContains

from accounts.access.patterns import InvalidName, pattern_regex
from accounts.constants import ACTIONS, ROBOT_LOGIN_PREFIX
from accounts.models import Membership, Team
from audit.models import AuditRecord, Kind

MAX_VALUE_LENGTH = 255
MAX_TEXT_LENGTH = 200
_SQLITE_IP_FUNCTION = "audit_ip_in_network"
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


class FilterError(ValueError):
    """Bad filter values; ``errors`` maps each field to a message a person can act on."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{name}: {message}" for name, message in errors.items()))


def parse_time(value: str) -> datetime:
    """ISO 8601; a date alone means midnight UTC; no zone means UTC."""
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{value!r} is not an ISO 8601 time (e.g. 2026-11-01 or 2026-11-01T12:00:00Z).") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _bounded_time(text: str) -> datetime:
    """A time the pages can do arithmetic around (hours and days either side) without overflowing."""
    moment = parse_time(text)
    if not EARLIEST <= moment <= LATEST:
        raise ValueError(f"{text!r} is out of range: give a time between {EARLIEST.year} and {LATEST.year}.")
    return moment


def parse_network(value: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """An address (a /32 or /128) or a CIDR range; host bits in a range are ignored (192.0.2.7/24 = 192.0.2.0/24)."""
    try:
        return ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        example = "e.g. 192.0.2.7 or 192.0.2.0/24"
        raise ValueError(f"{value!r} is neither an IP address nor a CIDR range ({example}).") from None


# "refused" is not an outcome a record holds: it means any of the outcomes that refused the client
# (the home page's "Every denial" link), so one filter finds them all.
REFUSED = "refused"
REFUSED_OUTCOMES = ("denied", "partial", "auth_failed", "limited")
# Every outcome a record can hold, with what the audit page's choice list says about it: access
# attempts (accounts/registry/tokens.py), sign-ins, changes and jobs, registry events (audit/intake.py).
OUTCOME_CHOICES = (
    (REFUSED, "refused: denied, partial, auth failed or limited"),
    ("granted", "granted"),
    ("partial", "partial (some of it refused)"),
    ("denied", "denied"),
    ("auth_failed", "auth failed"),
    ("limited", "limited (too many failures)"),
    ("probe", "probe (mount check, harmless)"),
    ("invalid", "invalid (malformed request)"),
    ("success", "success"),
    ("failure", "failure"),
    ("error", "error"),
    ("push", "push"),
    ("pull", "pull"),
    ("delete", "delete"),
    ("mount", "mount"),
)
OUTCOMES = tuple(value for value, _label in OUTCOME_CHOICES)
# ``jobs``: "0" leaves scheduled-job records out unless ``kind`` asks for them (the audit page's
# default: the sealer and the htpasswd writer add two a minute), "1" keeps them; unset keeps them.
JOBS_VALUES = ("0", "1")


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Every criterion is optional and they all combine (AND).

    ``repository`` is exact, a prefix when it ends with ``/`` (``web/``), or a
    grant-style glob when it holds ``*`` (``web/*``, ``web/**``). ``robot`` is
    ``*`` for every robot, a name (``web+ci`` or ``robot$web+ci``), or a prefix
    ending in ``*`` (``web+*``). ``team`` selects the records of the team's
    current members. ``action`` selects access attempts that requested it and
    registry events of that action. ``ip`` is an address or a CIDR range.
    ``jobs="0"`` leaves scheduled-job records out unless ``kind`` is set.
    """

    since: datetime | None = None
    until: datetime | None = None
    kind: str | None = None
    outcome: str | None = None
    user: str | None = None
    repository: str | None = None
    robot: str | None = None
    team: str | None = None
    action: str | None = None
    ip: str | None = None
    registry: str | None = None
    text: str | None = None
    jobs: str | None = None

    def apply(self, queryset: QuerySet[AuditRecord] | None = None) -> QuerySet[AuditRecord]:
        queryset = AuditRecord.objects.all() if queryset is None else queryset
        lookups = {
            "time__gte": self.since,
            "time__lt": self.until,
            "kind": self.kind,
            "outcome": None if self.outcome == REFUSED else self.outcome,
            "outcome__in": REFUSED_OUTCOMES if self.outcome == REFUSED else None,
            "actor": self.user,
            "registry": self.registry,
        }
        queryset = queryset.filter(**{k: v for k, v in lookups.items() if v is not None})
        if self.hides_jobs:
            queryset = queryset.exclude(kind=Kind.JOB)
        for condition in (
            _repository_condition(self.repository),
            _robot_condition(self.robot),
            _team_condition(self.team),
            _action_condition(self.action),
            _ip_condition(self.ip),
            _text_condition(self.text),
        ):
            if condition is not None:
                queryset = queryset.filter(condition)
        return queryset

    def describe(self) -> dict[str, str]:
        """The filter as plain strings: for recording who exported what, query strings and export jobs."""
        return {
            field.name: value.isoformat() if isinstance(value, datetime) else value
            for field in fields(self)
            if (value := getattr(self, field.name)) is not None
        }

    @property
    def is_empty(self) -> bool:
        return not self.describe()

    @property
    def hides_jobs(self) -> bool:
        return self.jobs == "0" and self.kind is None


def parse_filter(data: Mapping[str, Any]) -> AuditFilter:
    """Build a filter from strings (a query string, command flags, a stored ``describe()``).

    Blank values mean "no filter". Raises ``FilterError`` naming every bad field.
    """
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for field in fields(AuditFilter):
        raw = data.get(field.name)
        text = "" if raw is None else str(raw).strip()
        if not text:
            continue
        try:
            values[field.name] = _clean(field.name, text)
        except ValueError as exc:
            errors[field.name] = str(exc)
    since, until = values.get("since"), values.get("until")
    if since and until and since >= until:
        errors["until"] = "until must be later than since."
    if "team" in values and "team" not in errors and not _team_exists(values["team"]):
        errors["team"] = f"there is no team named {values['team']!r}."
    if errors:
        raise FilterError(errors)
    return AuditFilter(**values)


def _clean(name: str, text: str) -> Any:
    """One field's value, checked and normalised; ``ValueError`` with a message otherwise."""
    limit = MAX_TEXT_LENGTH if name == "text" else MAX_VALUE_LENGTH
    if len(text) > limit:
        raise ValueError(f"at most {limit} characters.")
    if "\x00" in text:
        # PostgreSQL refuses NUL in text: without this check the query itself would fail.
        raise ValueError("must not contain NUL characters.")
    if name in ("since", "until"):
        return _bounded_time(text)
    if name == "kind" and text not in Kind.values:
        raise ValueError(f"{text!r} is not a kind; use one of {', '.join(Kind.values)}.")
    if name == "outcome" and text not in OUTCOMES:
        raise ValueError(f"{text!r} is not an outcome; use one of {', '.join(OUTCOMES)}.")
    if name == "jobs" and text not in JOBS_VALUES:
        raise ValueError("use 1 to show scheduled jobs, 0 to hide them.")
    if name == "action" and text not in ACTIONS:
        raise ValueError(f"{text!r} is not an action; use one of {', '.join(ACTIONS)}.")
    if name == "ip":
        network = parse_network(text)
        single = network.prefixlen == network.max_prefixlen
        return str(network.network_address) if single else str(network)
    if name == "repository" and "*" in text:
        _repository_regex(text)  # raises with the grammar's own explanation
    if name == "robot":
        return _robot_name(text)
    return text


# --- conditions ----------------------------------------------------------------
# Each returns None when its criterion is unset, else a condition for .filter().


def _repository_regex(pattern: str) -> str:
    try:
        return pattern_regex(pattern)
    except InvalidName as exc:
        raise ValueError(f"{pattern!r} is not a valid pattern: {exc.problem}.") from None


def _repository_condition(repository: str | None) -> Q | None:
    if repository is None:
        return None
    if "*" in repository:
        return Q(repository__regex=_repository_regex(repository))
    if repository.endswith("/"):
        return Q(repository__startswith=repository)
    return Q(repository=repository)


def _robot_name(text: str) -> str:
    """A robot's login name: ``*``, ``web+ci`` and ``robot$web+ci`` all accepted."""
    if text == "*":
        return text
    return text if text.startswith(ROBOT_LOGIN_PREFIX) else ROBOT_LOGIN_PREFIX + text


def _robot_condition(robot: str | None) -> Q | None:
    if robot is None:
        return None
    name = _robot_name(robot)
    if name == "*":
        return Q(actor__startswith=ROBOT_LOGIN_PREFIX)
    if name.endswith("*"):
        return Q(actor__startswith=name.rstrip("*"))
    return Q(actor=name)


def _team_exists(team: str) -> bool:
    return Team.objects.filter(name=team).exists()


def _team_condition(team: str | None) -> Q | None:
    if team is None:
        return None
    # A subquery, not a list: membership is resolved by the database in the same query.
    members = Membership.objects.filter(team__name=team).values("user__username")
    return Q(actor__in=members)


def _action_condition(action: str | None) -> Q | None:
    if action is None:
        return None
    # Registry events store their action as the outcome (push, pull, delete).
    return Q(kind=Kind.REGISTRY_EVENT, outcome=action) | Q(RequestedAction(action))


def _ip_condition(ip: str | None) -> Q | None:
    if ip is None:
        return None
    network = parse_network(ip)
    if network.prefixlen == network.max_prefixlen:
        return Q(ip=str(network.network_address))
    return Q(InNetwork(network))


def _text_condition(text: str | None) -> Q | None:
    if text is None:
        return None
    detail = Cast("detail", output_field=TextField())
    condition = Q(IContains(detail, text))
    # SQLite keeps JSON as Django wrote it (ASCII-escaped): search the escaped form too.
    escaped = json.dumps(text)[1:-1]
    if escaped != text:
        condition |= Q(IContains(detail, escaped))
    return condition


# --- expressions ----------------------------------------------------------------


class RequestedAction(Func):
    """True when any scope in ``actions`` requested ``action``.

    PostgreSQL: jsonb containment, e.g. ``actions @> '[{"requested": ["push"]}]'``.
    SQLite: ``json_each`` over the scopes and their ``requested`` lists, each
    path built from the column itself so a malformed element can never raise.
    """

    output_field = BooleanField()

    def __init__(self, action: str) -> None:
        self.action = action
        super().__init__(F("actions"))

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, tuple[Any, ...]]:
        column, params = compiler.compile(self.source_expressions[0])
        return f"({column} @> %s::jsonb)", (*params, json.dumps([{"requested": [self.action]}]))

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, tuple[Any, ...]]:
        column, params = compiler.compile(self.source_expressions[0])
        # ``column`` is the compiler's quoted column reference; the action travels as a parameter.
        sql = (
            f"(CASE WHEN json_type({column}) = 'array' THEN EXISTS ("  # noqa: S608
            f"SELECT 1 FROM json_each({column}) AS scope, "
            f"json_each({column}, '$[' || scope.key || '].requested') AS wanted "
            "WHERE wanted.value = %s) ELSE 0 END)"
        )
        return sql, (*params, *params, *params, self.action)

    def as_sql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, tuple[Any, ...]]:
        # Other backends: a text match on the quoted action, looser but never wrong the other way.
        column, params = compiler.compile(self.source_expressions[0])
        return f"({column} LIKE %s)", (*params, f'%"{self.action}"%')


class InNetwork(Func):
    """True when the record's ``ip`` lies in ``network`` (IPv4 or IPv6, any prefix length)."""

    output_field = BooleanField()

    def __init__(self, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> None:
        self.network = network
        super().__init__(F("ip"))

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, tuple[Any, ...]]:
        column, params = compiler.compile(self.source_expressions[0])
        return f"({column} <<= %s::cidr)", (*params, str(self.network))

    def as_sql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, tuple[Any, ...]]:
        if connection.vendor != "sqlite":
            raise NotImplementedError(f"IP range filters support PostgreSQL and SQLite, not {connection.vendor}")
        # Compiling happens right before executing on this very connection, so registering
        # here (idempotent and cheap) covers new connections and reconnects alike.
        connection.ensure_connection()
        connection.connection.create_function(_SQLITE_IP_FUNCTION, 2, _sqlite_ip_in_network, deterministic=True)
        column, params = compiler.compile(self.source_expressions[0])
        return f"{_SQLITE_IP_FUNCTION}({column}, %s)", (*params, str(self.network))


@functools.lru_cache(maxsize=256)
def _cached_network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(text)


def _sqlite_ip_in_network(address: str | None, network: str) -> int:
    if not address:
        return 0
    try:
        return int(ipaddress.ip_address(address) in _cached_network(network))
    except ValueError:
        return 0


# --- keyset pagination ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a page ended: the last record's (time, id); the next page holds strictly older records."""

    time: datetime
    id: int

    def encode(self) -> str:
        # "~" needs no escaping in a query string, and RFC 3339 with "Z" holds no "+".
        return f"{self.time.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%S.%fZ')}~{self.id}"


def parse_cursor(text: str | None) -> Cursor | None:
    """The ``cursor`` query parameter; blank means the newest page. ``FilterError`` when malformed."""
    if not text:
        return None
    moment, _, number = text.partition("~")
    try:
        return Cursor(parse_time(moment), int(number))
    except ValueError:
        raise FilterError({"cursor": "this page link is damaged; start again from the newest records."}) from None


def keyset_page(
    queryset: QuerySet[AuditRecord], cursor: Cursor | None, size: int
) -> tuple[list[AuditRecord], Cursor | None]:
    """One page, newest first, after ``cursor``; and the cursor of the next page, if there is one.

    Seeks by (time, id) instead of OFFSET: the cost stays the same on page 1000,
    and records arriving meanwhile never shift what the next page shows.
    """
    if cursor is not None:
        queryset = queryset.filter(Q(time__lt=cursor.time) | Q(time=cursor.time, id__lt=cursor.id))
    records = list(queryset.order_by("-time", "-id")[: size + 1])
    if len(records) <= size:
        return records, None
    last = records[size - 1]
    return records[:size], Cursor(last.time, last.pk)
