"""Loading plain data for the permission engine: the only place it touches the database."""

from __future__ import annotations

from django.db.models import Q

from accounts.models import Grant, Repository, User
from accounts.permissions import GrantData, Subject

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


_GRANT_COLUMNS = ("id", "pattern", "role", "registry__service", "expires_at", "user_id", "team_id", "managed_by__name")


def subject_for_user(user: User) -> Subject:
    """The engine's view of a user: flags, teams and every grant that could apply (2 queries).

    Plain tuples instead of model instances: this runs on every token request.
    """
    teams = dict(user.memberships.order_by().values_list("team_id", "team__name"))
    rows = Grant.objects.filter(Q(user=user) | Q(team_id__in=list(teams))).order_by().values_list(*_GRANT_COLUMNS)
    grants = tuple(
        GrantData(
            id=gid,
            pattern=pattern,
            role=role,
            registry=registry,
            expires_at=expires_at,
            user=user.username if user_id else None,
            team=teams.get(team_id) if team_id else None,
            managed_by=managed_by,
        )
        for gid, pattern, role, registry, expires_at, user_id, team_id, managed_by in rows
    )
    return Subject(
        kind="user",
        name=user.username,
        is_active=user.is_active,
        is_superuser=user.is_superuser,
        catalog=user.catalog_access,
        teams=frozenset(teams.values()),
        grants=grants,
    )


def is_public(repository: str, registry: str) -> bool:
    """A repository is public when a row for it (this registry's or every registry's) says so."""
    return Repository.objects.filter(
        Q(registry__isnull=True) | Q(registry__service=registry), name=repository, public=True
    ).exists()
