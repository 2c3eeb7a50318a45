"""What each persona's home page shows: counts, what needs attention soon, recent denials and failures.

Read-only queries, each bounded (a fixed number of queries, at most ``LIMIT`` rows a list), so the home
page costs the same with ten users or ten thousand. The view decides which parts a person sees.

Was ``accounts/home.py`` before the layout split.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, OuterRef, Q, QuerySet, Subquery

from accounts import authz, services
from accounts.models import (
    DoctorRun,
    DoctorStatus,
    Grant,
    NotificationEndpoint,
    PersonalAccessToken,
    Registry,
    Repository,
    Robot,
    Team,
    User,
)
from audit.charts import Chart, attempts_chart, floor_day
from audit.filters import AuditFilter
from audit.models import AuditRecord, Kind

SOON = timedelta(days=7)
LIMIT = 10
# As the audit filter's outcome=refused: anything was refused, a rate limit included.
DENIED_OUTCOMES = ("denied", "partial", "auth_failed", "limited")
ISSUED_OUTCOMES = ("granted", "partial", "probe")  # a probe issued a token too (its push granted)


@dataclass(frozen=True)
class Headline:
    label: str
    number: int
    url_name: str


@dataclass(frozen=True)
class Step:
    """One step of a fresh install's first-day guide, ``done`` as the data says (not as anyone clicked)."""

    title: str
    advice: str
    url_name: str
    done: bool


@dataclass
class Expiring:
    """Grants and credentials whose expiry falls within the next week."""

    grants: list[Grant]
    robots: list[Robot]
    tokens: list[PersonalAccessToken]

    @property
    def empty(self) -> bool:
        return not (self.grants or self.robots or self.tokens)


def counts() -> list[Headline]:
    """The headline numbers for administrators (one query each, no rows loaded)."""
    return [
        Headline("active users", User.objects.filter(is_active=True).count(), "users:list"),
        Headline("teams", Team.objects.count(), "teams:list"),
        Headline("grants", Grant.objects.count(), "grants:list"),
        Headline("live robots", Robot.objects.filter(revoked_at__isnull=True).count(), "robots:list"),
        Headline("repositories", Repository.objects.count(), "repositories:list"),
        Headline("registries", Registry.objects.count(), "registries:list"),
    ]


def _within(queryset: QuerySet, now: datetime, related: tuple[str, ...]) -> list[Any]:
    """The first ``LIMIT`` rows expiring within ``SOON``, soonest first, with ``related`` joined.

    The ten ids are chosen in a subquery on the expiry index and the joins made only for them: as one
    ordered, limited query over the joins, PostgreSQL spent 10-15 ms planning the six joins of a grant
    for ten rows (measured at 50k grants). Always one query, whatever expires.
    """
    soon = queryset.filter(expires_at__gt=now, expires_at__lte=now + SOON).order_by("expires_at", "pk")
    chosen = queryset.model.objects.filter(pk__in=soon.values("pk")[:LIMIT])
    return list(chosen.select_related(*related).order_by("expires_at", "pk"))


def expiring(now: datetime, team_ids: Iterable[int] | None = None) -> Expiring:
    """Everything expiring soon, or (``team_ids``) what those teams hold, manage or own."""
    grants = Grant.objects.all()
    robots = Robot.objects.filter(revoked_at__isnull=True)
    tokens = PersonalAccessToken.objects.filter(revoked_at__isnull=True)
    if team_ids is not None:
        ids = list(team_ids)
        grants = grants.filter(Q(team_id__in=ids) | Q(managed_by_id__in=ids))
        robots = robots.filter(team_id__in=ids)
        tokens = tokens.none()
    return Expiring(
        grants=_within(grants, now, ("user", "team", "robot__team", "registry", "managed_by")),
        robots=_within(robots, now, ("team",)),
        tokens=_within(tokens, now, ("user",)),
    )


def week_chart(now: datetime) -> Chart:
    """Access attempts per day over the last seven days (today included), from the hourly rollups."""
    return attempts_chart(AuditFilter(since=floor_day(now) - timedelta(days=6), kind=Kind.ACCESS), now)


def recent_denials(now: datetime) -> list[AuditRecord]:
    """The latest refused or partly refused access attempts of the past week."""
    records = AuditRecord.objects.filter(kind=Kind.ACCESS, outcome__in=DENIED_OUTCOMES, time__gte=now - SOON)
    return list(records.order_by("-time", "-id")[:LIMIT])


def failed_jobs(now: datetime) -> list[AuditRecord]:
    """Scheduled jobs that ended in an error during the past week."""
    records = AuditRecord.objects.filter(kind=Kind.JOB, time__gte=now - SOON).exclude(outcome="success")
    return list(records.order_by("-time", "-id")[:LIMIT])


def doctor_failures() -> list[DoctorRun]:
    """The latest doctor run of each registry, where it failed (one query, however long the history)."""
    latest = DoctorRun.objects.filter(registry=OuterRef("pk")).order_by("-started_at", "-id").values("pk")[:1]
    latest_ids = Registry.objects.annotate(latest=Subquery(latest)).values("latest")
    failed = DoctorRun.objects.filter(pk__in=latest_ids, worst=DoctorStatus.FAIL).select_related("registry")
    return list(failed.order_by("registry__service")[:LIMIT])


def led_teams(user: User) -> list[Team]:
    """The teams ``user`` leads, with how many members each has."""
    teams = Team.objects.filter(pk__in=authz.led_team_ids(user)).annotate(member_count=Count("memberships"))
    return list(teams.order_by("name"))


def registry_connected() -> bool:
    """A registry with a URL has asked us for a token or sent us a notification: the round trip works.

    At most three queries; the token lookup is an ``exists()`` on the (kind, time) index that stops at the
    first match, so a busy install answers at once and a fresh one has few rows to look at.
    """
    services_with_url = list(Registry.objects.exclude(url="").values_list("service", flat=True)[:LIMIT])
    if not services_with_url:
        return False
    endpoints = NotificationEndpoint.objects.filter(registry__service__in=services_with_url, last_used_at__isnull=False)
    if endpoints.exists():
        return True
    tokens = AuditRecord.objects.filter(kind=Kind.ACCESS, registry__in=services_with_url, outcome__in=ISSUED_OUTCOMES)
    return tokens.exists()


def first_day_steps() -> list[Step]:
    """The three things a fresh install needs before anyone can pull: a registry, people, a team."""
    people = services.directory.enabled() or User.objects.order_by("pk")[1:2].exists()
    return [
        Step(
            "Connect your registry",
            "Add it with its URL, prepare the configuration, and copy the whole config.yml to the registry.",
            "registries:list",
            registry_connected(),
        ),
        Step(
            "Add people or connect LDAP",
            "Create accounts here, or set LDAP_SERVER_URI so that people sign in with their directory password.",
            "users:new",
            people,
        ),
        Step(
            "Create a team",
            "Teams hold members, grants and robots; a lead manages them.",
            "teams:new",
            Team.objects.exists(),
        ),
    ]
