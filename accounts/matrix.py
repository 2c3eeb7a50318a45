"""Who can access a repository: every user and robot with their actions and the grants behind them.

The same engine as the token endpoint decides each row; this module only finds the
candidates and loads their data in bulk (a constant number of queries however many).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q
from django.utils import timezone

from accounts.access import is_public
from accounts.models import Grant, Membership, Robot, User
from accounts.patterns import InvalidName, pattern_matches
from accounts.permissions import ACTIONS, Ceiling, Decision, GrantData, Subject, decide


@dataclass(frozen=True)
class AccessRow:
    kind: str  # "user" | "robot"
    name: str
    actions: tuple[str, ...]
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class AccessMatrix:
    repository: str
    registry: str
    public: bool
    rows: tuple[AccessRow, ...]


def who_can_access(repository: str, registry: str, now: datetime | None = None) -> AccessMatrix:
    """Every active user and robot who may do something on ``repository`` (public pull aside)."""
    now = now or timezone.now()
    public = is_public(repository, registry)
    patterns = _matching_patterns(repository)
    grants = Grant.objects.filter(pattern__in=patterns).values_list("user_id", "team_id", "robot_id")
    user_ids, team_ids, robot_ids = set(), set(), set()
    for user_id, team_id, robot_id in grants:
        (user_ids if user_id else team_ids if team_id else robot_ids).add(user_id or team_id or robot_id)
    user_ids |= set(Membership.objects.filter(team_id__in=team_ids).values_list("user_id", flat=True))
    users = User.objects.filter(Q(pk__in=user_ids) | Q(is_superuser=True), is_active=True)
    rows = [
        _row("user", s.name, decide(s, repository, registry=registry, public=public, now=now))
        for s in _user_subjects(users, patterns)
    ]
    robots = Robot.objects.filter(pk__in=robot_ids, revoked_at__isnull=True).select_related("team")
    rows += [
        _row("robot", s.name, decide(s, repository, registry=registry, public=public, now=now))
        for s in _robot_subjects([r for r in robots if not r.refusal(now)], patterns, now)
    ]
    kept = tuple(sorted((row for row in rows if row.actions), key=lambda row: (row.kind, row.name)))
    return AccessMatrix(repository, registry, public, kept)


def _matching_patterns(repository: str) -> set[str]:
    """The patterns of every grant that selects ``repository`` (one query).

    Whatever a pattern selects starts with its text before the first ``*``, so only patterns
    equal to the name, or whose text up to their first ``*`` is a start of the name, can match:
    the database returns those few (not all the distinct patterns, each compiled here), and the
    engine's own matcher decides.
    """
    candidates = Q(pattern=repository)
    for end in range(len(repository) + 1):
        candidates |= Q(pattern__startswith=f"{repository[:end]}*")
    patterns = Grant.objects.filter(candidates).order_by().values_list("pattern", flat=True).distinct()
    return {pattern for pattern in patterns if _selects(pattern, repository)}


def _selects(pattern: str, repository: str) -> bool:
    """The engine's test: a corrupt stored pattern selects nothing (it fails closed, as ``decide`` does)."""
    try:
        return pattern_matches(pattern, repository)
    except InvalidName:
        return False


def _row(kind: str, name: str, decision: Decision) -> AccessRow:
    actions = tuple(a for a in ACTIONS if a in decision.actions)
    return AccessRow(kind, name, actions, tuple(reason.text for reason in decision.reasons))


def _user_subjects(users: object, patterns: set[str]) -> list[Subject]:
    """Subjects for many users in three queries (users, memberships, grants).

    Each holds only its grants whose pattern is in ``patterns`` (those that select the repository):
    the engine decides, and gives its reasons, from those alone.
    """
    users = list(users)
    ids = [u.pk for u in users]
    teams: dict[int, dict[int, str]] = defaultdict(dict)
    for user_id, team_id, team_name in Membership.objects.filter(user_id__in=ids).values_list(
        "user_id", "team_id", "team__name"
    ):
        teams[user_id][team_id] = team_name
    all_team_ids = {t for mapping in teams.values() for t in mapping}
    rows = Grant.objects.filter(Q(user_id__in=ids) | Q(team_id__in=all_team_ids), pattern__in=patterns).values_list(
        "id", "pattern", "role", "registry__service", "expires_at", "user_id", "team_id", "managed_by__name"
    )
    by_user: dict[int, list[tuple]] = defaultdict(list)
    by_team: dict[int, list[tuple]] = defaultdict(list)
    for row in rows:
        (by_user[row[5]] if row[5] else by_team[row[6]]).append(row)
    subjects = []
    for user in users:
        own = [_grant(row, owner=user.username, team=None) for row in by_user[user.pk]]
        via = [
            _grant(row, owner=None, team=name) for team_id, name in teams[user.pk].items() for row in by_team[team_id]
        ]
        subjects.append(
            Subject(
                kind="user",
                name=user.username,
                is_active=user.is_active,
                is_superuser=user.is_superuser,
                catalog=user.catalog_access,
                teams=frozenset(teams[user.pk].values()),
                grants=tuple(own + via),
            )
        )
    return subjects


def _robot_subjects(robots: list[Robot], patterns: set[str], now: datetime) -> list[Subject]:
    """Subjects for many robots in two queries, built as ``access.subject_for_robot`` builds one.

    Own grants (those in ``patterns``, as for users) come from one query, the ceilings (their
    teams' unexpired grants) from another.
    """
    own: dict[int, list[tuple]] = defaultdict(list)
    for row in (
        Grant.objects.filter(robot__in=robots, pattern__in=patterns)
        .order_by()
        .values_list(
            "id", "pattern", "role", "registry__service", "expires_at", "robot_id", "team_id", "managed_by__name"
        )
    ):
        own[row[5]].append(row)
    ceilings: dict[int, list[Ceiling]] = defaultdict(list)
    team_ids = {robot.team_id for robot in robots if robot.team_id is not None}
    for team_id, pattern, role, registry, expires_at in (
        Grant.objects.filter(team_id__in=team_ids)
        .order_by()
        .values_list("team_id", "pattern", "role", "registry__service", "expires_at")
    ):
        if expires_at is None or expires_at > now:
            ceilings[team_id].append(Ceiling(pattern=pattern, role=role, registry=registry))
    return [
        Subject(
            kind="robot",
            name=robot.login_name,
            grants=tuple(_grant(row, owner=robot.login_name, team=None) for row in own[robot.pk]),
            ceilings=tuple(ceilings[robot.team_id]) if robot.team_id is not None else None,
            ceiling_label=f"team {robot.team.name}'s grants" if robot.team_id else "",
        )
        for robot in robots
    ]


def _grant(row: tuple, *, owner: str | None, team: str | None) -> GrantData:
    gid, pattern, role, registry, expires_at, _user, _team, managed_by = row
    return GrantData(
        id=gid,
        pattern=pattern,
        role=role,
        registry=registry,
        expires_at=expires_at,
        user=owner,
        team=team,
        managed_by=managed_by,
    )
