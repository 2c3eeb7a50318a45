"""Loading plain data for the permission engine: the only place it touches the database.

Was ``accounts/access.py`` before the layout split.
"""

from __future__ import annotations

from dataclasses import replace

from django.db.models import Q, QuerySet
from django.utils import timezone

from accounts.access.engine import Ceiling, GrantData, Subject
from accounts.constants import ROBOT_LOGIN_PREFIX
from accounts.models import Grant, PersonalAccessToken, Repository, Robot, User

ANONYMOUS = Subject(kind="anonymous")


def grant_data(grant: Grant, *, user_name: str | None = None, team_name: str | None = None) -> GrantData:
    return GrantData(
        id=grant.pk,
        pattern=grant.pattern,
        role=grant.role,
        registry=grant.registry.service if grant.registry_id else None,
        expires_at=grant.expires_at,
        user=user_name,
        team=team_name,
        managed_by=grant.managed_by.name if grant.managed_by_id else None,
    )


_GRANT_COLUMNS = ("id", "pattern", "role", "registry__service", "expires_at", "team_id", "managed_by__name")


def _grant_rows(grants: QuerySet[Grant], *, owner: str, teams: dict[int, str]) -> tuple[GrantData, ...]:
    """Grants as the engine's plain data, read as tuples (this runs on every token request)."""
    return tuple(
        GrantData(
            id=gid,
            pattern=pattern,
            role=role,
            registry=registry,
            expires_at=expires_at,
            user=owner if team_id is None else None,
            team=teams.get(team_id) if team_id else None,
            managed_by=managed_by,
        )
        for gid, pattern, role, registry, expires_at, team_id, managed_by in grants.order_by().values_list(
            *_GRANT_COLUMNS
        )
    )


def subject_for_user(user: User) -> Subject:
    """The engine's view of a user: flags, teams and every grant that could apply (2 queries)."""
    teams = dict(user.memberships.order_by().values_list("team_id", "team__name"))
    rows = Grant.objects.filter(Q(user=user) | Q(team_id__in=list(teams)))
    grants = _grant_rows(rows, owner=user.username, teams=teams)
    return Subject(
        kind="user",
        name=user.username,
        is_active=user.is_active,
        is_superuser=user.is_superuser,
        catalog=user.catalog_access,
        teams=frozenset(teams.values()),
        grants=grants,
    )


def subject_for_robot(robot: Robot) -> Subject:
    """A robot's own grants, capped by what its team holds now (re-read on every request)."""
    name = robot.login_name
    grants = _grant_rows(Grant.objects.filter(robot=robot), owner=name, teams={})
    ceilings = None
    if robot.team_id is not None:
        now = timezone.now()
        team_grants = Grant.objects.filter(team_id=robot.team_id).order_by()
        ceilings = tuple(
            Ceiling(pattern=pattern, role=role, registry=registry)
            for pattern, role, registry, expires_at in team_grants.values_list(
                "pattern", "role", "registry__service", "expires_at"
            )
            if expires_at is None or expires_at > now
        )
    label = f"team {robot.team.name}'s grants" if robot.team_id else ""
    return Subject(kind="robot", name=name, grants=grants, ceilings=ceilings, ceiling_label=label)


def subject_for_token(token: PersonalAccessToken) -> Subject:
    """The token's user, capped to read-only and/or the token's patterns."""
    subject = subject_for_user(token.user)
    role = "read" if token.read_only else "admin"
    patterns = token.patterns or (["**"] if token.read_only else [])
    if not patterns:
        return replace(subject, ceiling_label=f"token {token.name}")
    ceilings = tuple(Ceiling(pattern=pattern, role=role) for pattern in patterns)
    limits = ("read-only" if token.read_only else "") + (f" {', '.join(token.patterns)}" if token.patterns else "")
    return replace(subject, ceilings=ceilings, ceiling_label=f"token {token.name} ({limits.strip()})")


def is_public(repository: str, registry: str) -> bool:
    """A repository is public when a row for it (this registry's or every registry's) says so."""
    return Repository.objects.filter(
        Q(registry__isnull=True) | Q(registry__service=registry), name=repository, public=True
    ).exists()


def find_robot(login: str) -> Robot | None:
    """A robot by its login (``robot$web+ci`` or, global, ``robot$ci``); the prefix may be left out."""
    team_name, plus, name = login.removeprefix(ROBOT_LOGIN_PREFIX).rpartition("+")
    robots = Robot.objects.select_related("team").filter(name=name)
    robots = robots.filter(team__name=team_name) if plus else robots.filter(team__isnull=True)
    return robots.first()
