"""Reusable queries, on the models' QuerySets: what several pages and services ask the same way.

- ``Robot.objects.with_state(now)`` / ``PersonalAccessToken.objects.with_state(now)``: the one
  definition of a credential's active / expired / revoked, as the ``state`` annotation. The badge on
  every list and the state filter both read it, so what a filter finds is what the badge says.
- ``Robot.objects.with_login()``: a robot's login name (``robot$web+ci``) as ``login``, for searching.
- ``Grant.objects.given_to(text)``: grants to a user, team or robot whose name holds ``text``.
- ``Grant.objects.revocable_by(user)``: what a person may revoke; ``authz.can_revoke`` asks it about one grant.
- ``Registry.objects.login_hosts()``: the hosts ``docker login`` instructions name.

This module is imported by ``models``, so it reaches the other models through relations, never by import
(``user`` arguments are typed ``Any`` for the same reason).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from django.db import models
from django.db.models import Case, CharField, Q, QuerySet, Value, When
from django.db.models.functions import Concat

from accounts.constants import ROBOT_LOGIN_PREFIX

# The most subject ids a "given to" search sends as a list (see ``GrantQuerySet.given_to``).
SUBJECT_IDS = 500


class CredentialState(models.TextChoices):
    """A robot's or personal access token's state; revoked wins over expired, as ``Credential.refusal`` says."""

    ACTIVE = "active", "active"
    EXPIRED = "expired", "expired"
    REVOKED = "revoked", "revoked"


class CredentialQuerySet(QuerySet):
    """Robots and personal access tokens."""

    def with_state(self, now: datetime) -> CredentialQuerySet:
        """Annotate ``state`` (a ``CredentialState``) as of ``now``."""
        return self.annotate(
            state=Case(
                When(revoked_at__isnull=False, then=Value(CredentialState.REVOKED.value)),
                When(Q(expires_at__isnull=False) & Q(expires_at__lte=now), then=Value(CredentialState.EXPIRED.value)),
                default=Value(CredentialState.ACTIVE.value),
                output_field=CharField(),
            )
        )


def robot_login() -> Case:
    """A robot's login name computed in the database (``robot$web+ci``, global ``robot$ci``), on robots."""
    text = CharField()  # the names are slugs, the prefix is text: PostgreSQL needs the result type said
    return Case(
        When(team__isnull=True, then=Concat(Value(ROBOT_LOGIN_PREFIX), "name", output_field=text)),
        default=Concat(Value(ROBOT_LOGIN_PREFIX), "team__name", Value("+"), "name", output_field=text),
        output_field=text,
    )


class RobotQuerySet(CredentialQuerySet):
    def with_login(self) -> RobotQuerySet:
        """Alias ``login``, the robot's login name, for filters such as ``login__icontains``."""
        return self.alias(login=robot_login())


class GrantQuerySet(QuerySet):
    def given_to(self, text: str) -> GrantQuerySet:
        """Grants to a user, team or robot whose name (a robot's login name) holds ``text``.

        The names are looked up first, in their own small tables. Up to ``SUBJECT_IDS`` of them go
        to the grants query as ids, which PostgreSQL estimates well (a few grants: fetched by the
        subject indexes, then sorted); more stay a subquery, rightly estimated to match many grants
        (read in the list's order until a page is full). One subquery for all, or the same test on
        grants joined to the three tables, looked like half of all grants and was read in order
        for tens of thousands of rows to find one person's few.
        """
        users, teams, robots = (self._subject_model(name) for name in ("user", "team", "robot"))
        named = {
            "user": users.objects.filter(username__icontains=text),
            "team": teams.objects.filter(name__icontains=text),
            "robot": robots.objects.with_login().filter(login__icontains=text),
        }
        found = list(_tagged_union(named)[: SUBJECT_IDS + 1])
        if len(found) > SUBJECT_IDS:
            return self.filter(
                Q(user__in=named["user"].values("pk"))
                | Q(team__in=named["team"].values("pk"))
                | Q(robot__in=named["robot"].values("pk"))
            )
        ids: dict[str, list[int]] = {kind: [] for kind in named}
        for kind, pk in found:
            ids[kind].append(pk)
        return self.filter(Q(user__in=ids["user"]) | Q(team__in=ids["team"]) | Q(robot__in=ids["robot"]))

    def revocable_by(self, user: Any) -> GrantQuerySet:
        """The grants ``user`` may revoke: admins any, a team lead those their teams manage, auditors none."""
        if not user.is_active:
            return self.none()
        if user.is_superuser:
            return self.all()
        if user.is_auditor:
            return self.none()  # auditors change nothing, whatever team role they hold
        # "maintainer" is TeamRole.MAINTAINER (models imports this module, so the value is spelled here).
        return self.filter(managed_by__memberships__user=user, managed_by__memberships__role="maintainer")

    def _subject_model(self, field: str) -> Any:
        return self.model._meta.get_field(field).related_model


def _tagged_union(named: dict[str, QuerySet]) -> QuerySet:
    """("user" | "team" | "robot", id) of every subject in ``named``, in one query."""
    tagged = [
        queryset.annotate(kind=Value(kind, output_field=CharField())).values_list("kind", "pk").order_by()
        for kind, queryset in named.items()
    ]
    return tagged[0].union(*tagged[1:], all=True)


class RegistryQuerySet(QuerySet):
    def login_hosts(self, *, token_mode_only: bool = False) -> list[str]:
        """The hosts to put in ``docker login`` instructions (a registry's URL host, else its service name)."""
        registries = self.filter(auth_mode="token") if token_mode_only else self
        return [urlsplit(r.url).netloc or r.service for r in registries.only("service", "url")]
