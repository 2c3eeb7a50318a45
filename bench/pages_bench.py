"""``python -m bench.pages_bench`` (``make bench-pages``): server time and SQL queries of every main page at scale.

Issue 7 asks: "At 10k users, 1k teams, 50k grants and 1M audit records, a benchmark reports
server time per main page (goal < 50 ms, constant query count)". For each of two seeds, a small
one first (20 users, 5 teams, 50 grants, 1,000 records) and then the full one, the parent creates a
throwaway PostgreSQL database (``registryadmin_bench_pages_<seed>``, dropped at the end), migrates
it and runs one child (``--child <size as JSON>``) that:

* seeds accounts with ``bulk_create``: users, teams (about 10 members and 1 lead each, one big team),
  grants to users, teams and robots (mixed patterns and roles, some expiring within 7 days, some
  for one registry), robots, personal access tokens, repositories (some public), 2 registries;
* seeds audit records with ``bench.audit_bench.child_seed`` (COPY with valid MACs, sealed chains,
  segment heads, and the rollups computed in SQL from the same rows: what the sealer would have
  written, without sealing 1M rows one batch at a time), then makes the signing keys and runs the
  real ``seal_audit`` task once for what that recorded;
* measures each page of ``PAGES`` in-process with ``django.test.Client`` signed in (``force_login``)
  as the persona who uses it: 3 warm-ups, 20 timed requests (median, p95), one more under
  ``CaptureQueriesContext`` for the query count, the status and the response size. A page whose
  URL name does not exist yet, or that answers 404 or 500, is reported as not available.

The table shows both seeds' query counts side by side and flags the pages whose count grew and
those over 50 ms. Results: stdout and bench/output/pages.json (bench/output/ is ignored by git).

Knobs: BENCH_PAGES_USERS (10000), BENCH_PAGES_TEAMS (1000), BENCH_PAGES_GRANTS (50000),
BENCH_PAGES_ROBOTS (2000), BENCH_PAGES_TOKENS (5000), BENCH_PAGES_REPOSITORIES (5000),
BENCH_PAGES_RECORDS (1000000), BENCH_PAGES_RUNS (20), BENCH_PAGES_WARMUPS (3),
BENCH_PAGES_SMALL (1; 0 skips the small seed), BENCH_PG_ADMIN_URL, and for profiling:

* BENCH_PAGES_ONLY: comma-separated words; only the pages whose label holds one are measured
  (``BENCH_PAGES_ONLY="teams,grants"``).
* BENCH_PAGES_KEEP (0): 1 keeps each seed's database and its data directory
  (bench/output/kept/<seed>/, with ``env`` to source for ``manage.py dbshell`` or a profiler) instead
  of dropping them, and a later run with it finds them there and measures again without re-seeding
  (the sizes must not have changed: delete the directory to seed afresh). A run without it drops
  the databases; ``rm -r bench/output/kept`` removes the rest.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from bench import audit_bench
from bench.audit_bench import PG_ADMIN_URL, ROOT, _log, _percentile

OUTPUT = ROOT / "bench" / "output"
KEPT = OUTPUT / "kept"
PG_DB = "registryadmin_bench_pages"
GOAL_MS = 50.0
RECORD_SPAN = timedelta(days=30)
SLOW_WARMUP_S = 2.0  # a page this slow gets 3 timed runs, not 20: the whole run stays bounded
UNUSABLE_PASSWORD = "!bench"  # Django's mark for "no password": personas sign in by force_login


def _knob(name: str, default: int) -> int:
    return int(os.environ.get(f"BENCH_PAGES_{name}", str(default)))


@dataclass(frozen=True)
class Size:
    """How many of each thing a seed holds."""

    users: int
    teams: int
    grants: int
    robots: int
    tokens: int
    repositories: int
    records: int


FULL = Size(
    users=_knob("USERS", 10_000),
    teams=_knob("TEAMS", 1_000),
    grants=_knob("GRANTS", 50_000),
    robots=_knob("ROBOTS", 2_000),
    tokens=_knob("TOKENS", 5_000),
    repositories=_knob("REPOSITORIES", 5_000),
    records=_knob("RECORDS", 1_000_000),
)
SMALL = Size(users=20, teams=5, grants=50, robots=10, tokens=10, repositories=20, records=1_000)
RUNS, WARMUPS = _knob("RUNS", 20), _knob("WARMUPS", 3)
KEEP = bool(_knob("KEEP", 0))
ONLY = [word.strip() for word in os.environ.get("BENCH_PAGES_ONLY", "").split(",") if word.strip()]

# The personas, by username. user0001 leads the big team (web) and one more; user0007 is a member
# of web with grants and tokens of their own, and the busiest actor of the seeded audit log.
PERSONAS = {"admin": "admin", "auditor": "auditor", "lead": "user0001", "plain": "user0007"}
BIG_TEAM, BIG_TEAM_MEMBERS, REPOSITORY = "web", 200, "web/app"

# (label, persona, url name, URL kwargs, query); "{name}" in a value is filled from ``facts``.
PAGES: list[tuple[str, str, str, dict[str, str], dict[str, str]]] = [
    ("home (admin)", "admin", "accounts:home", {}, {}),
    ("home (team lead)", "lead", "accounts:home", {}, {}),
    ("home (auditor)", "auditor", "accounts:home", {}, {}),
    ("home (plain user)", "plain", "accounts:home", {}, {}),
    ("my access", "plain", "accounts:my_access", {}, {}),
    ("my tokens", "plain", "tokens:list", {}, {}),
    ("client setup", "plain", "setup:index", {}, {}),
    ("teams list", "admin", "teams:list", {}, {}),
    ("team detail (big team)", "lead", "teams:detail", {"name": BIG_TEAM}, {}),
    ("who can access web/app", "auditor", "access:who", {}, {"repository": REPOSITORY, "registry": "registry"}),
    ("what can user do", "auditor", "access:user", {"username": "{plain}"}, {}),
    ("what can robot do", "auditor", "access:robot", {"login": "{robot}"}, {}),
    ("why denied (scope)", "auditor", "access:why", {}, {"user": "{plain}", "scope": f"repository:{REPOSITORY}:*"}),
    ("audit search", "auditor", "audit:search", {}, {}),
    ("audit search (user)", "auditor", "audit:search", {}, {"user": "{plain}"}),
    ("audit record", "auditor", "audit:record", {"pk": "{denied_record}"}, {}),
    ("users list", "admin", "users:list", {}, {}),
    ("users search", "admin", "users:list", {}, {"q": "user00"}),
    ("user detail", "admin", "users:detail", {"username": "{plain}"}, {}),
    ("grants list", "admin", "grants:list", {}, {}),
    ("grants filtered", "admin", "grants:list", {}, {"pattern": "web/", "role": "write"}),
    ("robots list", "admin", "robots:list", {}, {}),
    ("repositories list", "admin", "repositories:list", {}, {}),
    ("repository page (web/app)", "admin", "repositories:detail", {"pk": "{repository}"}, {"registry": "registry"}),
    ("registries list", "admin", "registries:list", {}, {}),
    ("registry detail", "admin", "registries:detail", {"service": "registry"}, {}),
    ("keys list", "admin", "keys:list", {}, {}),
    ("jobs list", "admin", "jobs:list", {}, {}),
    ("unused access (admin, 90 days)", "admin", "access:unused", {}, {}),
    ("unused access (team lead)", "lead", "access:unused", {}, {}),
    ("unused access JSON (auditor, 30 days)", "auditor", "access:unused", {}, {"format": "json", "days": "30"}),
    ("reviews list (admin)", "admin", "reviews:list", {}, {}),
    ("reviews list (team lead)", "lead", "reviews:list", {}, {}),
    ("review checklist (admin)", "admin", "reviews:detail", {"pk": "{campaign}"}, {}),
    ("review checklist (team lead)", "lead", "reviews:detail", {"pk": "{campaign}"}, {}),
    ("review evidence CSV (auditor)", "auditor", "reviews:export", {"pk": "{campaign}"}, {"format": "csv"}),
]


# --- the population (pure: names and shapes only) ----------------------------------------------


def team_names(count: int) -> list[str]:
    """The audit bench's 100 team names first (its records name them), then group000, group001..."""
    extra = [f"group{n:03d}" for n in range(max(0, count - len(audit_bench.TEAMS)))]
    return (audit_bench.TEAMS + extra)[:count]


def repository_names(count: int, teams: list[str]) -> list[str]:
    """The audit bench's repositories (team/app for its 100 teams), then the same apps under more teams."""
    names = list(audit_bench.REPOSITORIES)
    for team in teams[len(audit_bench.TEAMS) :]:
        if len(names) >= count:
            break
        names += [f"{team}/{app}" for app in audit_bench.APPS]
    return names[:count]


def robot_names(count: int, teams: list[str]) -> list[tuple[str | None, str]]:
    """(team, name) pairs: the audit bench's ``robot$<team>+bot<n>`` first, then ci<n>; every 200th global."""
    robots: list[tuple[str | None, str]] = []
    for n in range(count):
        if n % 200 == 199:
            robots.append((None, f"deploy{n}"))
        elif n < 1000 and len(teams) >= len(audit_bench.TEAMS):
            robots.append((audit_bench.TEAMS[n % len(audit_bench.TEAMS)], f"bot{n // len(audit_bench.TEAMS)}"))
        else:
            robots.append((teams[n % len(teams)], f"ci{n}"))
    return robots


def team_members(size: Size, rng: random.Random) -> list[list[int]]:
    """User indexes per team, the lead first: the big team has 200, the others about 10."""
    lead, plain = int(PERSONAS["lead"][4:]), int(PERSONAS["plain"][4:])
    others = [n for n in range(size.users) if n not in (lead, plain)]
    teams = []
    for index in range(size.teams):
        if index == 0:
            members = [lead, plain, *rng.sample(others, min(BIG_TEAM_MEMBERS, len(others)) - 2)]
        else:
            members = rng.sample(others, min(rng.randint(8, 12), len(others)))
            if index == 1:
                members.insert(0, lead)
        teams.append(members)
    return teams


def _cumulative(weights: list[float]) -> list[float]:
    total, out = 0.0, []
    for weight in weights:
        total += weight
        out.append(total)
    return out


def user_grant_shapes(size: Size, teams: list[str], count: int, rng: random.Random) -> list[dict[str, Any]]:
    """``count`` distinct (user, pattern, registry) grants: busy users and big teams get more."""
    user_cw = _cumulative([1.0 / (n + 1) ** 0.5 for n in range(size.users)])
    team_cw = _cumulative([1.0 / (n + 1) ** 0.6 for n in range(len(teams))])
    seen: set[tuple[int, str, str | None]] = set()
    shapes: list[dict[str, Any]] = []
    for _attempt in range(count * 3):
        if len(shapes) >= count:
            break
        user = rng.choices(range(size.users), cum_weights=user_cw)[0]
        team = rng.choices(range(len(teams)), cum_weights=team_cw)[0]
        shape = _pattern(teams[team], rng)
        shape.update(user=user, managed_by=team if rng.random() < 0.3 else None)
        key = (user, shape["pattern"], shape["registry"])
        if key not in seen:
            seen.add(key)
            shapes.append(shape)
    return shapes


def _pattern(team: str, rng: random.Random) -> dict[str, Any]:
    app = rng.choice(audit_bench.APPS)
    roll = rng.random()
    if roll < 0.4:
        pattern = f"{team}/{app}"
    elif roll < 0.7:
        pattern = f"{team}/*"
    elif roll < 0.85:
        pattern = f"{team}/{app[:2]}*"
    elif roll < 0.98:
        pattern = f"{team}/**"
    else:
        pattern = f"{team}/{app}/**"
    role = rng.choices(("read", "write", "admin"), weights=(60, 30, 10))[0]
    registry = rng.choices((None, "mirror", "registry"), weights=(85, 10, 5))[0]
    roll = rng.random()
    if roll < 0.05:
        expires = timedelta(hours=rng.uniform(1, 7 * 24 - 1))  # within the week: the home pages show them
    elif roll < 0.15:
        expires = timedelta(days=rng.uniform(30, 120))
    elif roll < 0.16:
        expires = -timedelta(days=rng.uniform(1, 10))  # expired, not yet purged
    else:
        expires = None
    return {"pattern": pattern, "role": role, "registry": registry, "expires": expires}


# --- child: seeding ------------------------------------------------------------------------------


def seed(size: Size) -> dict[str, Any]:
    """Accounts, then audit records (COPY), then keys and one real sealer run; timings in seconds."""
    from django.core.management.color import no_style
    from django.db import connection, connections

    from accounts.models import User
    from accounts.services import ensure_keys, unused
    from accounts.services.reviews import start_campaign
    from audit.context import AuditContext
    from audit.tasks import seal_audit

    if size.users < 10 or size.teams < 2 or size.repositories < 1:
        raise SystemExit("a seed needs at least 10 users, 2 teams and 1 repository")
    timings: dict[str, float] = {}
    started = time.perf_counter()
    counts = seed_accounts(size, random.Random(7))
    with connection.cursor() as cursor:
        for sql in connection.ops.sequence_reset_sql(no_style(), [User]):
            cursor.execute(sql)
    timings["accounts_s"] = time.perf_counter() - started
    _log(f"accounts seeded in {timings['accounts_s']:.1f} s: {counts}")
    mark = time.perf_counter()
    connections.close_all()
    audit = audit_bench.child_seed(rows=size.records, span=RECORD_SPAN)
    timings["audit_s"] = time.perf_counter() - mark
    mark = time.perf_counter()
    ensure_keys()
    seal_audit()  # the real sealer, for the records the seeding itself wrote (keys, the job record)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    timings["keys_seal_analyze_s"] = time.perf_counter() - mark
    mark = time.perf_counter()
    review = start_campaign("Bench review", context=AuditContext.system("bench"))
    timings["review_start_s"] = time.perf_counter() - mark
    _log(f"review started in {timings['review_start_s']:.1f} s: {review.counts}")
    with connection.cursor() as cursor:  # its 60k items too: autovacuum would, within a minute of a real start
        cursor.execute("ANALYZE accounts_reviewitem")
    # The pages keep a computed report for a minute: this is what the first view costs.
    mark = time.perf_counter()
    proposals = len(unused.report(unused.DEFAULT_DAYS).proposals)
    timings["unused_report_s"] = time.perf_counter() - mark
    _log(f"unused-rights report in {timings['unused_report_s']:.1f} s: {proposals} proposals")
    timings["total_s"] = time.perf_counter() - started
    _log(f"seeded in {timings['total_s']:.1f} s")
    return {
        "counts": counts,
        "audit": {k: audit[k] for k in ("rows", "segments", "rollup_rows", "table_sizes")},
        "seconds": {k: round(v, 1) for k, v in timings.items()},
    }


def _bulk(model: type, objects: list[Any]) -> list[Any]:
    return model.objects.bulk_create(objects, batch_size=2000)


def seed_accounts(size: Size, rng: random.Random) -> dict[str, int]:
    """Every account row in bulk; users keep the ids the audit bench's records carry (user<n> = n + 2)."""
    from django.utils import timezone

    from accounts.models import Membership, Registry, Repository, Team, TeamRole, User

    now = timezone.now()
    rows = [Registry(service=service, url=f"https://{service}.example.org") for service in ("registry", "mirror")]
    registries = {registry.service: registry for registry in _bulk(Registry, rows)}
    _bulk(User, list(_users(size, now)))
    names = team_names(size.teams)
    teams = _bulk(Team, [Team(name=name, description=f"The {name} team") for name in names])
    members = team_members(size, rng)
    _bulk(
        Membership,
        [
            Membership(team=team, user_id=user + 2, role=TeamRole.MAINTAINER if rank == 0 else TeamRole.MEMBER)
            for team, users in zip(teams, members, strict=True)
            for rank, user in enumerate(users)
        ],
    )
    repositories = [
        Repository(name=name, registry=_registry_of(n, registries), public=n % 10 == 3)
        for n, name in enumerate(repository_names(size.repositories, names))
    ]
    _bulk(Repository, repositories)
    robots = seed_robots(size, teams, now, rng)
    tokens = seed_tokens(size, names, now, rng)
    grants = seed_grants(size, teams, robots, registries, now, rng)
    _spread_ages()
    return {
        "users": size.users + 2,
        "teams": len(teams),
        "memberships": sum(len(m) for m in members),
        "repositories": len(repositories),
        "robots": len(robots),
        "tokens": tokens,
        "grants": grants,
        "registries": len(registries),
    }


def _spread_ages() -> None:
    """Accounts made over the last 400 days (not all today): the unused-rights report then judges most of them."""
    from django.db import connection

    with connection.cursor() as cursor:
        for table, column in (
            ("accounts_grant", "created_at"),
            ("accounts_user", "date_joined"),
            ("accounts_robot", "created_at"),
            ("accounts_personalaccesstoken", "created_at"),
        ):
            cursor.execute(f"UPDATE {table} SET {column} = now() - (id % 400) * interval '1 day'")  # noqa: S608


def _registry_of(n: int, registries: dict[str, Any]) -> Any:
    """Most repository rows apply to every registry; a tenth each to one of the two."""
    return registries["registry"] if n % 10 == 1 else registries["mirror"] if n % 10 == 2 else None


def _users(size: Size, now: datetime) -> Any:
    from accounts.models import User

    yield User(id=1, username="admin", is_superuser=True, is_staff=True, password=UNUSABLE_PASSWORD)
    personas = {int(PERSONAS["lead"][4:]), int(PERSONAS["plain"][4:])}
    for n in range(size.users):
        yield User(
            id=n + 2,
            username=f"user{n:04d}",
            email=f"user{n:04d}@example.org",
            first_name=f"First{n}",
            last_name=f"Last{n % 997}",
            password=UNUSABLE_PASSWORD,
            is_active=n % 50 != 49 or n in personas,
            last_login=now - timedelta(hours=n % 720) if n % 3 else None,
        )
    yield User(id=size.users + 2, username="auditor", is_auditor=True, password=UNUSABLE_PASSWORD)


def _credential(kind: str, n: int, now: datetime, rng: random.Random) -> dict[str, Any]:
    """Secret hash (unique, of no secret), expiry, revocation and last use for robot or token ``n``."""
    roll = rng.random()
    expires_at = revoked_at = None
    if roll < 0.05:
        expires_at = now + timedelta(hours=rng.uniform(1, 160))  # within the week
    elif roll < 0.3:
        expires_at = now + timedelta(days=90)
    elif roll < 0.34:
        revoked_at = now - timedelta(days=rng.uniform(1, 20))
    return {
        "secret_hash": hashlib.sha256(f"bench-{kind}-{n}".encode()).hexdigest(),
        "expires_at": expires_at,
        "revoked_at": revoked_at,
        "last_used_at": now - timedelta(minutes=rng.uniform(1, 40_000)) if roll > 0.2 else None,
        "created_by_id": 1,
    }


def seed_robots(size: Size, teams: list[Any], now: datetime, rng: random.Random) -> list[Any]:
    from accounts.models import Robot

    by_name = {team.name: team for team in teams}
    robots = [
        Robot(team=by_name.get(team) if team else None, name=name, **_credential("robot", n, now, rng))
        for n, (team, name) in enumerate(robot_names(size.robots, [t.name for t in teams]))
    ]
    return _bulk(Robot, robots)


def seed_tokens(size: Size, teams: list[str], now: datetime, rng: random.Random) -> int:
    from accounts.models import PersonalAccessToken

    plain = int(PERSONAS["plain"][4:]) + 2
    tokens = [
        PersonalAccessToken(
            user_id=plain if n < 3 else rng.randrange(size.users) + 2,
            name=f"token{n}",
            read_only=n % 2 == 0,
            patterns=[f"{rng.choice(teams)}/**"] if n % 3 == 0 else [],
            **_credential("token", n, now, rng),
        )
        for n in range(size.tokens)
    ]
    return len(_bulk(PersonalAccessToken, tokens))


def seed_grants(
    size: Size, teams: list[Any], robots: list[Any], registries: dict[str, Any], now: datetime, rng: random.Random
) -> int:
    """Teams' grants, robots' (inside their team's), then users' up to ``size.grants`` in all."""
    from accounts.models import Grant

    grants = []
    for index, team in enumerate(teams):
        expires = now + timedelta(days=1 + index % 6, hours=index % 24) if index % 20 == 5 else None
        role = "admin" if index % 4 == 0 else "write"
        grants.append(Grant(team=team, pattern=f"{team.name}/**", role=role, expires_at=expires, created_by_id=1))
        if index % 3 == 0:
            grants.append(Grant(team=team, pattern="shared/*", role="read", registry=registries["mirror"]))
    for n, robot in enumerate(robots):
        if robot.team is None:
            grants.append(Grant(robot=robot, pattern="**", role="read", created_by_id=1))
        else:
            pattern, role = (f"{robot.team.name}/*", "write") if n % 2 else (f"{robot.team.name}/app", "read")
            grants.append(Grant(robot=robot, pattern=pattern, role=role, managed_by=robot.team, created_by_id=1))
    for shape in user_grant_shapes(size, [t.name for t in teams], max(0, size.grants - len(grants)), rng):
        grants.append(
            Grant(
                user_id=shape["user"] + 2,
                pattern=shape["pattern"],
                role=shape["role"],
                registry=registries[shape["registry"]] if shape["registry"] else None,
                expires_at=now + shape["expires"] if shape["expires"] is not None else None,
                managed_by=teams[shape["managed_by"]] if shape["managed_by"] is not None else None,
                created_by_id=1,
            )
        )
    return len(_bulk(Grant, grants))


# --- child: measuring ----------------------------------------------------------------------------


def facts() -> dict[str, str]:
    """Values the page list refers to: personas, a robot, the latest denied access attempt of a seeded user.

    A user who exists in both seeds, so the record page does the same work (explaining the denial) in each.
    """
    from accounts.models import Repository, ReviewCampaign, Robot, User
    from audit.models import AuditRecord

    records = AuditRecord.objects.order_by("-time", "-id").values_list("id", flat=True)
    denied = records.filter(kind="access", outcome="denied", subject_type="user")
    record_id = denied.filter(actor__in=User.objects.values("username")).first() or denied.first() or records[0]
    robot = Robot.objects.select_related("team").filter(team__name=BIG_TEAM, revoked_at__isnull=True).first()
    robot = robot or Robot.objects.select_related("team").first()
    campaign = ReviewCampaign.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    robot_login = robot.login_name if robot else "robot$none"
    repository = Repository.objects.filter(name=REPOSITORY).order_by("pk").values_list("pk", flat=True).first() or 0
    known = {"denied_record": str(record_id), "robot": robot_login, "campaign": str(campaign)}
    return {**PERSONAS, **known, "repository": str(repository)}


def page_url(url_name: str, kwargs: dict[str, str], query: dict[str, str], known: dict[str, str]) -> str | None:
    """The page's URL with ``{name}`` placeholders filled; None when the URL name does not exist (yet)."""
    from django.urls import NoReverseMatch, reverse

    try:
        path = reverse(url_name, kwargs={k: v.format(**known) for k, v in kwargs.items()})
    except NoReverseMatch:
        return None
    filled = {k: v.format(**known) for k, v in query.items()}
    return f"{path}?{urlencode(filled)}" if filled else path


def signed_in(username: str) -> Any:
    """A test client as ``username``; 127.0.0.1 is an allowed host without the test environment's patching."""
    from django.test import Client

    from accounts.models import User

    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(User.objects.get(username=username))
    return client


def measure(client: Any, url: str, runs: int = RUNS, warmups: int = WARMUPS) -> dict[str, Any]:
    """Median and p95 of ``runs`` requests after ``warmups``; queries counted on one request more."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    try:
        for _ in range(max(1, warmups)):
            began = time.perf_counter()
            response = client.get(url)
            first_s = time.perf_counter() - began
            if response.status_code in (404, 500):
                return {"available": False, "status": response.status_code, "error": ""}
        runs = runs if first_s < SLOW_WARMUP_S else min(runs, 3)
        times = []
        for _ in range(runs):
            began = time.perf_counter()
            client.get(url)
            times.append((time.perf_counter() - began) * 1000)
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url)
    except Exception as exc:  # a half-built page must not stop the bench: report it and go on
        return {"available": False, "status": 500, "error": f"{type(exc).__name__}: {exc}"[:300]}
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return {
        "available": True,
        "status": response.status_code,
        "runs": runs,
        "median_ms": round(statistics.median(times), 2),
        "p95_ms": round(_percentile(times, 0.95), 2),
        "queries": len(queries),
        "bytes": len(body),
    }


def selected_pages(only: list[str]) -> list[tuple[str, str, str, dict[str, str], dict[str, str]]]:
    """The pages of ``PAGES`` whose label holds one of the words of ``BENCH_PAGES_ONLY`` (all without any)."""
    return [page for page in PAGES if not only or any(word in page[0] for word in only)]


def measure_pages(runs: int = RUNS, warmups: int = WARMUPS) -> list[dict[str, Any]]:
    known = facts()
    clients = {persona: signed_in(username) for persona, username in PERSONAS.items()}
    results = []
    for label, persona, url_name, kwargs, query in selected_pages(ONLY):
        try:
            url = page_url(url_name, kwargs, query, known)
        except Exception as exc:  # e.g. a URL module that does not import right now: every page says so
            url, result = None, {"available": False, "status": None, "error": f"{type(exc).__name__}: {exc}"[:300]}
        else:
            result = {"available": False, "status": None, "error": f"no URL named {url_name}"}
        if url is not None:
            result = measure(clients[persona], url, runs, warmups)
        results.append({"label": label, "persona": persona, "url": url, **result})
        _log(f"{label}: {_short(result)}")
    return results


def _short(result: dict[str, Any]) -> str:
    if not result["available"]:
        return f"not available ({result['status']}) {result['error']}".strip()
    return f"{result['status']} median {result['median_ms']} ms, {result['queries']} queries"


def child_main(size: Size, runs: int, warmups: int, seeded_file: Path | None = None) -> dict[str, Any]:
    """Seed (or, given the file a kept seed wrote, only read what it seeded), then measure."""
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    # A half-built page's traceback would bury the table; ``measure`` reports its error in one line.
    logging.getLogger("django.request").setLevel(logging.CRITICAL)
    if seeded_file is not None and seeded_file.is_file():
        seeded = json.loads(seeded_file.read_text())
    else:
        seeded = seed(size)
        if seeded_file is not None:
            seeded_file.write_text(json.dumps(seeded, default=str))
    return {"size": asdict(size), "seed": seeded, "pages": measure_pages(runs, warmups)}


# --- parent --------------------------------------------------------------------------------------


def run_seed(label: str, size: Size, work: Path, runs: int = RUNS, warmups: int = WARMUPS) -> dict[str, Any]:
    """Create the database, migrate it, seed and measure in a child, drop the database (unless kept)."""
    import psycopg

    database = f"{PG_DB}_{label}"
    if KEEP:
        work = KEPT
    env = audit_bench.bench_env(work / label, database)
    # The one sealer run must take what the seeding just wrote; pages need the static manifest.
    env.update(AUDIT_SEAL_LAG="0", STATIC_ROOT=str(work / "static"))
    seeded_file = work / label / "seeded.json" if KEEP else None
    began = time.perf_counter()
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone()
        reuse = bool(seeded_file and seeded_file.is_file() and exists)
        if not reuse:
            if seeded_file is not None:
                seeded_file.unlink(missing_ok=True)  # a new database is seeded afresh
            admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
            admin.execute(f"CREATE DATABASE {database}")
    if seeded_file is not None:
        _write_env(work / label / "env", env)
    try:
        _log(f"{label}: {'measuring the kept' if reuse else 'migrating'} {database}")
        for step in (["collectstatic"],) if reuse else (["migrate"], ["collectstatic"]):
            subprocess.run([sys.executable, "manage.py", *step, "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
        command = [sys.executable, "-m", "bench.pages_bench", "--child", json.dumps(asdict(size)), str(runs)]
        command += [str(warmups), *([str(seeded_file)] if seeded_file else [])]
        child = subprocess.run(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True, check=True)
        result = json.loads(child.stdout.strip().splitlines()[-1])
    finally:
        if KEEP:
            _log(f"{label}: kept {database}; its environment is in {work / label / 'env'}")
        else:
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
                admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
    result["seconds"] = round(time.perf_counter() - began, 1)
    return result


def _write_env(path: Path, env: dict[str, str]) -> None:
    """``set -a; . bench/output/kept/full/env`` points manage.py (or a profiling script) at a kept seed."""
    names = ("DATABASE_URL", "DATA_DIR", "SECRET_KEY", "AUDIT_HMAC_KEY", "STATIC_ROOT", "DJANGO_SETTINGS_MODULE")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{name}={env[name]}\n" for name in names) + "LOG_LEVEL=WARNING\n")


def compare(full: list[dict[str, Any]], small: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """One row a page: the full seed's figures, the small seed's query count, and what to look at."""
    small_by_label = {page["label"]: page for page in small or []}
    rows = []
    for page in full:
        before = small_by_label.get(page["label"], {})
        row = {**page, "small_queries": before.get("queries"), "flags": []}
        if page["available"]:
            if page["median_ms"] >= GOAL_MS:
                row["flags"].append("OVER 50 ms")
            elif page["p95_ms"] >= GOAL_MS:
                row["flags"].append("p95 over 50 ms")
            if row["small_queries"] is not None and page["queries"] > row["small_queries"]:
                row["flags"].append("QUERIES GREW")
            if page["status"] != 200:
                row["flags"].append(f"status {page['status']}")
        rows.append(row)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    head = f"{'page':<24} {'persona':<8} {'status':>6} {'median':>8} {'p95':>8} {'queries':>12} {'KB':>7}  notes"
    lines = [head, f"{'':<24} {'':<8} {'':>6} {'ms':>8} {'ms':>8} {'small/full':>12}"]
    for row in rows:
        if not row["available"]:
            lines.append(f"{row['label']:<24} {row['persona']:<8} {row['status'] or '-':>6}  not available")
            continue
        queries = f"{'-' if row['small_queries'] is None else row['small_queries']}/{row['queries']}"
        lines.append(
            f"{row['label']:<24} {row['persona']:<8} {row['status']:>6} {row['median_ms']:>8.1f} {row['p95_ms']:>8.1f}"
            f" {queries:>12} {row['bytes'] / 1024:>7.1f}  {', '.join(row['flags'])}"
        )
    return "\n".join(lines)


def main() -> int:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="pages-bench-"))
    began = time.perf_counter()
    try:
        small = run_seed("small", SMALL, work) if _knob("SMALL", 1) else None
        _log(f"full seed: {FULL}")
        full = run_seed("full", FULL, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # a kept seed lives under KEPT instead
    rows = compare(full["pages"], small["pages"] if small else None)
    summary = {
        "size": full["size"],
        "seed": full["seed"],
        "small_seed": small["size"] if small else None,
        "runs": RUNS,
        "warmups": WARMUPS,
        "total_seconds": round(time.perf_counter() - began, 1),
        "pages": rows,
    }
    out = OUTPUT / "pages.json"
    out.write_text(json.dumps(summary, indent=2, default=str))
    counts = ", ".join(f"{v:,} {k}" for k, v in full["seed"]["counts"].items())
    print(f"pages bench: {counts}, {full['seed']['audit']['rows']:,} audit records")
    seconds = full["seed"]["seconds"]
    print(f"seeding {seconds['total_s']} s ({seconds}), whole run {summary['total_seconds']} s")
    print(table(rows))
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        size = Size(**json.loads(sys.argv[2]))
        seeded_file = Path(sys.argv[5]) if len(sys.argv) > 5 else None
        result = child_main(size, int(sys.argv[3]), int(sys.argv[4]), seeded_file)
        print(json.dumps(result, default=str), flush=True)
        sys.exit(0)
    sys.exit(main())
