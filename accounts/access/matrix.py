"""Who can access a repository: every user and robot with their actions and the grants behind them.

The same engine as the token endpoint decides each row; this module only finds the
candidates and loads their data in bulk (a constant number of queries however many).
A team grant's reason says so when a directory group is behind the membership it goes through
("through team web (member via directory group cn=web-devs,...)"): read from the models, as the
engine knows nothing of where memberships come from.

Was ``accounts/matrix.py`` before the layout split.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q, QuerySet
from django.utils import timezone

from accounts.access.engine import Ceiling, Decision, GrantData, Reason, Subject, decide
from accounts.access.patterns import InvalidName, pattern_matches
from accounts.access.subjects import is_public
from accounts.constants import ACTIONS
from accounts.models import Grant, Membership, Robot, User


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
    """Every active user and robot who may do something on ``repository`` (public pull aside).

    Eight queries however many subjects: whether it is public, the patterns that select it, every
    grant on those patterns, the memberships of the teams holding one and their directory sources,
    the users, the robots, and the robots' ceilings. Each grant becomes one ``GrantData`` shared by
    everyone it reaches (a team grant reaches all its members), so the work grows with subjects, not
    subjects x grants.
    """
    now = now or timezone.now()
    public = is_public(repository, registry)
    patterns = matching_patterns(repository)
    grants = _Grants(patterns)
    teams = _teams_of_members(grants.by_team)
    sources = directory_sources(Membership.objects.filter(team_id__in=list(grants.by_team))) if grants.by_team else {}
    # Subqueries, not the ids: hundreds of placeholders cost more to send than the database to find.
    holders = Grant.objects.filter(pattern__in=patterns, user__isnull=False).values("user_id")
    members = Membership.objects.filter(team_id__in=list(grants.by_team)).values("user_id")
    users = User.objects.filter(Q(pk__in=holders) | Q(pk__in=members) | Q(is_superuser=True), is_active=True)
    rows = [
        _row("user", s.name, decide(s, repository, registry=registry, public=public, now=now), sources.get(s.name))
        for s in _user_subjects(users, grants, teams)
    ]
    robots = Robot.objects.filter(pk__in=grants.by_robot, revoked_at__isnull=True).select_related("team")
    rows += [
        _row("robot", s.name, decide(s, repository, registry=registry, public=public, now=now))
        for s in _robot_subjects([r for r in robots if not r.refusal(now)], grants, now)
    ]
    kept = tuple(sorted((row for row in rows if row.actions), key=lambda row: (row.kind, row.name)))
    return AccessMatrix(repository, registry, public, kept)


def matching_patterns(repository: str) -> set[str]:
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


def _row(kind: str, name: str, decision: Decision, sources: Mapping[str, str] | None = None) -> AccessRow:
    actions = tuple(a for a in ACTIONS if a in decision.actions)
    return AccessRow(kind, name, actions, reason_texts(decision.reasons, sources or {}))


# --- where a membership comes from ---------------------------------------------------


def directory_sources(memberships: QuerySet[Membership]) -> dict[str, dict[str, str]]:
    """username -> {team name: how they are in it} for those of ``memberships`` a directory group gives (one query).

    Plain local memberships are left out: their reasons need no note.
    """
    through = Membership.directory_groups.through
    rows = (
        through.objects.filter(membership__in=memberships)
        .order_by("directorygroup__dn")
        .values_list(
            "membership__user__username", "membership__team__name", "membership__role", "membership__local_role",
            "directorygroup__dn", "directorygroup__role",
        )
    )  # fmt: skip
    groups: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    roles: dict[tuple[str, str], tuple[str, str]] = {}
    for username, team, role, local_role, dn, group_role in rows:
        groups[username, team].append((dn, group_role))
        roles[username, team] = (role, local_role)
    found: dict[str, dict[str, str]] = defaultdict(dict)
    for (username, team), via in groups.items():
        found[username][team] = membership_text(*roles[username, team], via)
    return dict(found)


def membership_text(role: str, local_role: str, groups: Iterable[tuple[str, str]]) -> str:
    """How someone is in a team: "member via directory group cn=web-devs,...", or
    "maintainer locally and via directory group cn=... (member)".

    A source's own role is named only when it differs from the effective one.
    """

    def source(text: str, given: str) -> str:
        return text if given == role else f"{text} ({given})"

    parts = [source("locally", local_role)] if local_role else []
    parts += [source(f"via directory group {dn}", given) for dn, given in groups]
    return f"{role} {' and '.join(parts)}"


def reason_texts(reasons: Iterable[Reason], sources: Mapping[str, str]) -> tuple[str, ...]:
    """The reasons' texts, each team grant's saying how the subject is in the team when ``sources`` knows."""
    return tuple(_with_source(reason, sources) for reason in reasons)


def _with_source(reason: Reason, sources: Mapping[str, str]) -> str:
    note = sources.get(reason.team or "") if reason.kind == "team_grant" else None
    if not note:
        return reason.text
    marker = f"through team {reason.team}"
    if marker in reason.text:
        return reason.text.replace(marker, f"{marker} ({note})", 1)
    return f"{reason.text} ({note})"


class _Grants:
    """Every grant whose pattern is in ``patterns`` (one query), by the user, team or robot holding it.

    Only those count: the engine decides, and gives its reasons, from the grants that select the
    repository, so a subject built from them alone gets the same answer as from all of its grants.
    """

    def __init__(self, patterns: set[str]) -> None:
        self.by_user: dict[int, list[tuple]] = defaultdict(list)
        self.by_team: dict[int, list[tuple]] = defaultdict(list)
        self.by_robot: dict[int, list[tuple]] = defaultdict(list)
        rows = (
            Grant.objects.filter(pattern__in=patterns)
            .order_by()
            .values_list(
                "id", "pattern", "role", "registry__service", "expires_at", "managed_by__name",
                "user_id", "team_id", "robot_id", "team__name",
            )
        )  # fmt: skip
        for row in rows:
            user_id, team_id, robot_id = row[6:9]
            if user_id:
                self.by_user[user_id].append(row)
            elif team_id:
                self.by_team[team_id].append(row)
            else:
                self.by_robot[robot_id].append(row)
        # A team's grant reaches every member: made once, shared by all of them.
        self.team_grants = {
            team_id: [_grant(row, owner=None, team=row[9]) for row in team_rows]
            for team_id, team_rows in self.by_team.items()
        }


def _teams_of_members(team_grants: dict[int, list[tuple]]) -> dict[int, dict[int, str]]:
    """user id -> {team id: team name} for the members of the teams holding a matching grant."""
    teams: dict[int, dict[int, str]] = defaultdict(dict)
    memberships = Membership.objects.filter(team_id__in=list(team_grants)).order_by()
    for user_id, team_id, team_name in memberships.values_list("user_id", "team_id", "team__name"):
        teams[user_id][team_id] = team_name
    return teams


def _user_subjects(users: QuerySet[User], grants: _Grants, teams: dict[int, dict[int, str]]) -> list[Subject]:
    """One subject per user: their own matching grants, and those of their teams that hold one.

    ``teams`` names only those teams: the engine asks a subject's teams only to tell whether a
    team grant reaches it, so the other teams of a member would change nothing.
    """
    subjects = []
    rows = users.order_by().values_list("pk", "username", "is_active", "is_superuser", "catalog_access")
    for pk, username, is_active, is_superuser, catalog in rows:
        own = [_grant(row, owner=username, team=None) for row in grants.by_user.get(pk, ())]
        mine = teams.get(pk, {})
        via = [grant for team_id in mine for grant in grants.team_grants.get(team_id, ())]
        subjects.append(
            Subject(
                kind="user",
                name=username,
                is_active=is_active,
                is_superuser=is_superuser,
                catalog=catalog,
                teams=frozenset(mine.values()),
                grants=tuple(own + via),
            )
        )
    return subjects


def _robot_subjects(robots: list[Robot], grants: _Grants, now: datetime) -> list[Subject]:
    """Subjects for many robots, built as ``access.subject_for_robot`` builds one.

    Own grants (the matching ones, as for users) are already loaded; the ceilings (their teams'
    unexpired grants, matching or not) take one more query.
    """
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
            grants=tuple(_grant(row, owner=robot.login_name, team=None) for row in grants.by_robot.get(robot.pk, ())),
            ceilings=tuple(ceilings[robot.team_id]) if robot.team_id is not None else None,
            ceiling_label=f"team {robot.team.name}'s grants" if robot.team_id else "",
        )
        for robot in robots
    ]


def _grant(row: tuple, *, owner: str | None, team: str | None) -> GrantData:
    gid, pattern, role, registry, expires_at, managed_by = row[:6]
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
