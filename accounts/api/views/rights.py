"""Rights over HTTP: repositories, grants, robots and personal access tokens (``/api/...``).

The same rules as the pages, through the same services: admins change anything; auditors read
everything and change nothing; a team lead grants inside the team's grants, changes the expiry of
and revokes what the team manages, and makes, rotates and revokes the team's robots
(``services.lead_*`` decide, and refuse with 403); everyone else sees their own grants and manages
their own tokens. Lists show a person only what those rules let them see. A token limited to
patterns changes grants within them only (``within_token``) and, beyond grants, only makes tokens
at most as limited as itself; a secret appears once, in the answer that made it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db.models import F, Prefetch, Q, QuerySet
from django.shortcuts import get_object_or_404
from django.urls import path
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from accounts import authz, services
from accounts.access.patterns import InvalidName, pattern_regex
from accounts.access.subjects import find_robot
from accounts.api import pagination
from accounts.api.errors import Conflict
from accounts.api.permissions import Overseers, SignedIn, token_of, unlimited_token, within_token
from accounts.api.serializers.rights import (
    EVERY_REGISTRY,
    GrantCreateSerializer,
    GrantFilterSerializer,
    GrantSerializer,
    GrantUpdateSerializer,
    RepositoryCreateSerializer,
    RepositoryFilterSerializer,
    RepositorySerializer,
    RepositoryUpdateSerializer,
    RobotCreateSerializer,
    RobotFilterSerializer,
    RobotRotateSerializer,
    RobotRotationSerializer,
    RobotSecretSerializer,
    RobotSerializer,
    TokenCreateSerializer,
    TokenFilterSerializer,
    TokenSecretSerializer,
    TokenSerializer,
)
from accounts.constants import ROBOT_LOGIN_PREFIX
from accounts.models import Grant, Membership, PersonalAccessToken, Registry, Repository, Robot, Team, User
from audit.context import AuditContext
from registryadmin.guards import is_admin, is_overseer

GLOBAL_TEAM = "$global"  # the robot list's team filter for robots of no team (never a team's slug)
SOON = timedelta(days=7)
GRACE = {"24h": timedelta(hours=24), "1h": timedelta(hours=1), "7d": timedelta(days=7), "0": timedelta(0)}
NO_STORE = {"Cache-Control": "no-store"}  # an answer holding a secret is never kept by a cache

REPOSITORIES = Repository.objects.select_related("registry")
GRANTS = Grant.objects.select_related("user", "team", "robot__team", "registry", "managed_by", "created_by")
DELETED = {204: OpenApiResponse(description="Done; nothing to return.")}


# --- shared helpers -----------------------------------------------------------------------------


def _valid(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:
    """``data`` checked by ``serializer_class`` (400 with the field errors otherwise)."""
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def _query(request: Request, serializer_class: type[serializers.Serializer]) -> dict[str, Any]:
    # A plain dict: DRF reads an absent boolean in a QueryDict as false, which would filter by it.
    return _valid(serializer_class, request.query_params.dict())


def _ordered(queryset: QuerySet, ordering: str | None, default: tuple[Any, ...]) -> QuerySet:
    """The asked order (already one of the documented choices), with the id to break ties; else ``default``."""
    if not ordering:
        return queryset.order_by(*default)
    return queryset.order_by(ordering, "-pk" if ordering.startswith("-") else "pk")


def _registry_condition(value: str | None) -> Q:
    if value == EVERY_REGISTRY:
        return Q(registry__isnull=True)
    return Q(registry__service=value) if value else Q()


def _registry(service: str | None) -> Registry | None:
    if not service:
        return None
    registry = Registry.objects.filter(service=service).first()
    if registry is None:
        raise exceptions.ValidationError({"registry": [f"No registry has the service name {service!r}."]})
    return registry


def _context(request: Request) -> AuditContext:
    return AuditContext.from_request(request)


# --- repositories -------------------------------------------------------------------------------


def _repository_filter(query: dict[str, Any]) -> Q:
    condition = _registry_condition(query.get("registry"))
    text = query.get("q", "").lower()
    if "*" in text:
        try:
            # The engine's own regular expression for the glob, run by the database.
            condition &= Q(name__regex=pattern_regex(text))
        except InvalidName as exc:
            raise exceptions.ValidationError({"q": [f"{text!r} is not a valid pattern: {exc.problem}."]}) from None
    elif text:
        condition &= Q(name__icontains=text)
    if "public" in query:
        condition &= Q(public=query["public"])
    return condition


class RepositoryListView(GenericAPIView):
    """Every repository we know of (admins and auditors); admins add one."""

    permission_classes = [Overseers]
    pagination_class = pagination.Pages
    serializer_class = RepositorySerializer

    @extend_schema(
        summary="List repositories",
        parameters=[RepositoryFilterSerializer],
        responses=RepositorySerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        query = _query(request, RepositoryFilterSerializer)
        rows = _ordered(
            REPOSITORIES.filter(_repository_filter(query)), query.get("ordering"), ("name", "registry", "pk")
        )
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(RepositorySerializer(page, many=True).data)

    @extend_schema(
        summary="Add a repository", request=RepositoryCreateSerializer, responses={201: RepositorySerializer}
    )
    def post(self, request: Request) -> Response:
        unlimited_token(request)
        data = _valid(RepositoryCreateSerializer, request.data)
        repository = services.create_repository(
            data["name"], registry=_registry(data.get("registry")), public=data["public"], context=_context(request)
        )
        return Response(RepositorySerializer(repository).data, status=status.HTTP_201_CREATED)


class RepositoryDetailView(GenericAPIView):
    """One repository row: read it (admins and auditors), make it public or private, or forget it (admins).

    Forgetting a row never touches the registry's images.
    """

    permission_classes = [Overseers]
    serializer_class = RepositorySerializer

    @extend_schema(summary="Show a repository", responses=RepositorySerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(RepositorySerializer(get_object_or_404(REPOSITORIES, pk=pk)).data)

    @extend_schema(
        summary="Make a repository public or private",
        request=RepositoryUpdateSerializer,
        responses=RepositorySerializer,
    )
    def patch(self, request: Request, pk: int) -> Response:
        repository = get_object_or_404(REPOSITORIES, pk=pk)
        unlimited_token(request)
        data = _valid(RepositoryUpdateSerializer, request.data)
        repository = services.set_repository_public(repository, data["public"], context=_context(request))
        return Response(RepositorySerializer(get_object_or_404(REPOSITORIES, pk=repository.pk)).data)

    @extend_schema(summary="Forget a repository (the registry keeps its images)", request=None, responses=DELETED)
    def delete(self, request: Request, pk: int) -> Response:
        repository = get_object_or_404(REPOSITORIES, pk=pk)
        unlimited_token(request)
        services.delete_repository(repository, context=_context(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- grants -------------------------------------------------------------------------------------


def visible_grants(user: User) -> QuerySet[Grant]:
    """Admins and auditors: every grant. A team lead: also what the teams they lead manage and their robots'.

    Everyone: their own grants and their teams' grants.
    """
    if is_overseer(user):
        return GRANTS.all()
    teams = Membership.objects.filter(user=user).values("team_id")
    led = authz.led_team_ids(user)
    return GRANTS.filter(Q(user=user) | Q(team__in=teams) | Q(managed_by__in=led) | Q(robot__team__in=led))


def _grant_state(state: str | None, now: datetime) -> Q:
    if state == "current":
        return Q(expires_at__isnull=True) | Q(expires_at__gt=now)
    if state == "expiring":
        return Q(expires_at__gt=now, expires_at__lte=now + SOON)
    if state == "expired":
        return Q(expires_at__lte=now)
    return Q()


def _filter_grants(grants: QuerySet[Grant], query: dict[str, Any], now: datetime) -> QuerySet[Grant]:
    grants = grants.filter(_registry_condition(query.get("registry")), _grant_state(query.get("state"), now))
    exact = {"user": "user__username", "team": "team__name", "role": "role", "managed_by": "managed_by__name"}
    grants = grants.filter(**{field: query[key] for key, field in exact.items() if key in query})
    if "pattern" in query:
        # Patterns are lowercase by validation: a plain LIKE is the same test without UPPER() on every row.
        grants = grants.filter(pattern__contains=query["pattern"].lower())
    if "robot" in query:
        robot = find_robot(query["robot"])
        grants = grants.filter(robot=robot) if robot is not None else grants.none()
    return grants


def _grant_answer(grant: Grant) -> dict[str, Any]:
    grant = get_object_or_404(GRANTS, pk=grant.pk)
    services.attach_parents([grant], timezone.now())
    return GrantSerializer(grant).data


def _grant_subject(data: dict[str, Any], team: Team | None) -> User | Team | Robot:
    """Who gets the grant: the user; the robot (one of ``team``'s when a team hands it out); else the team."""
    if data.get("user"):
        user = User.objects.filter(username=data["user"]).first()
        if user is None:
            raise exceptions.ValidationError({"user": [f"No user is called {data['user']!r}."]})
        return user
    if data.get("robot"):
        robot = find_robot(data["robot"])
        if robot is None or (team is not None and robot.team_id != team.pk):
            owner = f"of team {team.name} " if team is not None else ""
            raise exceptions.ValidationError({"robot": [f"No robot {owner}is called {data['robot']!r}."]})
        return robot
    if team is None:  # the serializer lets no body through without a subject; kept for the type
        raise exceptions.ValidationError("Name who gets the grant: a user, a robot or a team.")
    return team


def _named_team(data: dict[str, Any], user: User) -> Team | None:
    """The team named: for an admin any (unknown: 400); anyone else must lead it and give a user or robot (403)."""
    name = data.get("team")
    team = Team.objects.filter(name=name).first() if name else None
    if is_admin(user):
        if name and team is None:
            raise exceptions.ValidationError({"team": [f"No team is called {name!r}."]})
        return team
    if team is None or not authz.is_team_lead(user, team):
        raise exceptions.PermissionDenied(
            "A team lead grants by naming a team they lead in team (with a user or robot); "
            "only administrators grant outside a team."
        )
    if not (data.get("user") or data.get("robot")):
        raise exceptions.PermissionDenied("Only administrators grant to a team; a lead grants to users and robots.")
    return team


class GrantListView(GenericAPIView):
    """Grants: admins and auditors every one, a team lead their teams' and what they manage, others their own."""

    pagination_class = pagination.Pages
    serializer_class = GrantSerializer
    permission_classes = [SignedIn]

    @extend_schema(summary="List grants", parameters=[GrantFilterSerializer], responses=GrantSerializer(many=True))
    def get(self, request: Request) -> Response:
        query = _query(request, GrantFilterSerializer)
        now = timezone.now()
        grants = _filter_grants(visible_grants(request.user), query, now)
        page = self.paginate_queryset(_ordered(grants, query.get("ordering"), ("pattern", "pk")))
        services.attach_parents(page, now)  # the team grant each managed one lies in (one query a page)
        return self.get_paginated_response(GrantSerializer(page, many=True).data)

    @extend_schema(summary="Give a grant", request=GrantCreateSerializer, responses={201: GrantSerializer})
    def post(self, request: Request) -> Response:
        user = request.user
        if not (is_admin(user) or authz.led_team_ids(user)):
            raise exceptions.PermissionDenied("Only administrators and team leads give grants.")
        data = _valid(GrantCreateSerializer, request.data)
        within_token(request, data["pattern"])
        team = _named_team(data, user)
        subject = _grant_subject(data, team)
        handed_out = team is not None and subject is not team
        common = {
            "registry": _registry(data.get("registry")),
            "expires_at": data.get("expires_at"),
            "context": _context(request),
        }
        if handed_out:  # the team page's rule, for its leads and for admins alike
            grant = services.lead_grant(team, subject, data["pattern"], data["role"], acting_user=user, **common)
        else:
            grant = services.create_grant(subject, data["pattern"], data["role"], **common)
        return Response(_grant_answer(grant), status=status.HTTP_201_CREATED)


class GrantDetailView(GenericAPIView):
    """One grant: read it if the list shows it; admins change and revoke any, leads what their team manages."""

    serializer_class = GrantSerializer
    permission_classes = [SignedIn]

    def _grant(self, request: Request, pk: int) -> Grant:
        return get_object_or_404(visible_grants(request.user), pk=pk)

    @extend_schema(summary="Show a grant", responses=GrantSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(_grant_answer(self._grant(request, pk)))

    @extend_schema(
        summary="Change a grant's role or expiry (team leads: the expiry of what their team manages)",
        request=GrantUpdateSerializer,
        responses=GrantSerializer,
    )
    def patch(self, request: Request, pk: int) -> Response:
        grant, user = self._grant(request, pk), request.user
        if not authz.can_revoke(user, grant):
            raise exceptions.PermissionDenied(f"{user.username} may not change {grant}.")
        data = _valid(GrantUpdateSerializer, request.data)
        within_token(request, grant.pattern)
        if is_admin(user):
            expires_at = data.get("expires_at", ...)  # absent: keep the expiry (None clears it)
            services.update_grant(grant, role=data.get("role"), expires_at=expires_at, context=_context(request))
        elif "role" in data:
            raise exceptions.PermissionDenied(
                "Only administrators change a grant's role; a team lead changes its expiry."
            )
        else:
            services.lead_set_expiry(grant, data["expires_at"], acting_user=user, context=_context(request))
        return Response(_grant_answer(grant))

    @extend_schema(summary="Revoke a grant", request=None, responses=DELETED)
    def delete(self, request: Request, pk: int) -> Response:
        grant = self._grant(request, pk)
        within_token(request, grant.pattern)
        services.lead_revoke(grant, acting_user=request.user, context=_context(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- robots -------------------------------------------------------------------------------------


def _robots(now: datetime) -> QuerySet[Robot]:
    grants = Grant.objects.select_related("registry").order_by("pattern", "pk")
    return (
        Robot.objects.select_related("team", "created_by")
        .prefetch_related(Prefetch("grants", queryset=grants))
        .with_state(now)
    )


def _robot_reader(user: User) -> set[int] | None:
    """The team ids whose robots ``user`` sees (None: every robot); 403 for who leads no team."""
    if is_overseer(user):
        return None
    led = authz.led_team_ids(user)
    if not led:
        raise exceptions.PermissionDenied("Only administrators, auditors and team leads see robots.")
    return led


def visible_robots(user: User, now: datetime) -> QuerySet[Robot]:
    led = _robot_reader(user)
    robots = _robots(now)
    return robots if led is None else robots.filter(team__in=led)


def _filter_robots(robots: QuerySet[Robot], query: dict[str, Any]) -> QuerySet[Robot]:
    team = query.get("team")
    if team == GLOBAL_TEAM:
        robots = robots.filter(team__isnull=True)
    elif team:
        robots = robots.filter(team__name=team)
    if text := query.get("q", "").strip().removeprefix(ROBOT_LOGIN_PREFIX):
        if "+" in text:  # a whole login name, robot$<team>+<name>
            team_part, _plus, name = text.partition("+")
            robots = robots.filter(team__name__icontains=team_part, name__icontains=name)
        else:
            robots = robots.filter(
                Q(name__icontains=text) | Q(team__name__icontains=text) | Q(description__icontains=text)
            )
    return robots.filter(state=query["state"]) if "state" in query else robots


def _robot_team(name: str | None, user: User) -> Team | None:
    """The team of a robot to make: admins any (or none: global), a team lead one they lead (else 403)."""
    team = Team.objects.filter(name=name).first() if name else None
    if is_admin(user):
        if name and team is None:
            raise exceptions.ValidationError({"team": [f"No team is called {name!r}."]})
        return team
    if team is None or not authz.is_team_lead(user, team):
        raise exceptions.PermissionDenied(
            "A team lead makes robots of a team they lead; only administrators make global robots."
        )
    return team


class RobotListView(GenericAPIView):
    """Robots: admins and auditors every one, a team lead their teams'; admins and leads make them."""

    pagination_class = pagination.Pages
    serializer_class = RobotSerializer
    permission_classes = [SignedIn]

    @extend_schema(summary="List robots", parameters=[RobotFilterSerializer], responses=RobotSerializer(many=True))
    def get(self, request: Request) -> Response:
        robots = visible_robots(request.user, timezone.now())
        query = _query(request, RobotFilterSerializer)
        default = (F("team__name").asc(nulls_first=True), "name", "pk")  # global robots first on every database
        page = self.paginate_queryset(_ordered(_filter_robots(robots, query), query.get("ordering"), default))
        return self.get_paginated_response(RobotSerializer(page, many=True).data)

    @extend_schema(
        summary="Make a robot (its secret is in this answer only)",
        request=RobotCreateSerializer,
        responses={201: RobotSecretSerializer},
    )
    def post(self, request: Request) -> Response:
        user = request.user
        if not (is_admin(user) or authz.led_team_ids(user)):
            raise exceptions.PermissionDenied("Only administrators and team leads make robots.")
        unlimited_token(request)
        data = _valid(RobotCreateSerializer, request.data)
        team = _robot_team(data.get("team"), user)
        grants = [(grant["pattern"], grant["role"]) for grant in data.get("grants", [])]
        made = {
            "expires_at": data.get("expires_at"),
            "grants": grants,
            "description": data["description"],
            "context": _context(request),
        }
        if is_admin(user):
            robot, secret = services.create_robot(team, data["name"], **made)
        else:
            robot, secret = services.lead_create_robot(team, data["name"], acting_user=user, **made)
        robot = _robots(timezone.now()).get(pk=robot.pk)
        robot.secret = secret
        return Response(RobotSecretSerializer(robot).data, status=status.HTTP_201_CREATED, headers=NO_STORE)


class RobotDetailView(GenericAPIView):
    """One robot: read it (as the list); revoke it (admins any, a team's leads its robots)."""

    serializer_class = RobotSerializer
    permission_classes = [SignedIn]

    @extend_schema(summary="Show a robot", responses=RobotSerializer)
    def get(self, request: Request, pk: int) -> Response:
        robot = get_object_or_404(visible_robots(request.user, timezone.now()), pk=pk)
        return Response(RobotSerializer(robot).data)

    @extend_schema(summary="Revoke a robot (it no longer signs in)", request=None, responses=DELETED)
    def delete(self, request: Request, pk: int) -> Response:
        robot = get_object_or_404(visible_robots(request.user, timezone.now()), pk=pk)
        unlimited_token(request)
        services.lead_revoke_robot(robot, acting_user=request.user, context=_context(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class RobotRotateView(GenericAPIView):
    """A new secret for a robot, shown once; the old one keeps working for the grace period chosen."""

    serializer_class = RobotRotationSerializer
    permission_classes = [SignedIn]

    @extend_schema(
        summary="Rotate a robot's secret (the new one is in this answer only)",
        request=RobotRotateSerializer,
        responses=RobotRotationSerializer,
    )
    def post(self, request: Request, pk: int) -> Response:
        now = timezone.now()
        robot = get_object_or_404(visible_robots(request.user, now), pk=pk)
        if not authz.can_revoke_robot(request.user, robot):  # before the input: nobody else learns anything
            raise exceptions.PermissionDenied(f"{request.user.username} may not rotate {robot.login_name}.")
        unlimited_token(request)
        data = _valid(RobotRotateSerializer, request.data)
        rotation = services.lead_rotate_robot(
            robot, grace=GRACE[data["grace"]], acting_user=request.user, context=_context(request)
        )
        answer = {
            "robot": _robots(timezone.now()).get(pk=robot.pk),
            "secret": rotation.secret,
            "previous_valid_until": rotation.previous_valid_until,
            "notes": list(rotation.notes),
        }
        return Response(RobotRotationSerializer(answer).data, headers=NO_STORE)


# --- personal access tokens ---------------------------------------------------------------------


def _tokens(now: datetime) -> QuerySet[PersonalAccessToken]:
    return PersonalAccessToken.objects.select_related("user").with_state(now)


def _token_owner(request: Request, username: str | None) -> User:
    """Whose tokens a list shows: the caller's, or (admins and auditors) the one named."""
    if not username or username == request.user.username:
        return request.user
    if not is_overseer(request.user):
        raise exceptions.PermissionDenied("Only administrators and auditors see another person's tokens.")
    owner = User.objects.filter(username=username).first()
    if owner is None:
        raise exceptions.ValidationError({"user": [f"No user is called {username!r}."]})
    return owner


def _no_broader_than(request: Request, data: dict[str, Any]) -> None:
    """A token-authenticated request makes tokens at most as limited as its own token (patterns, read-only, life)."""
    token = token_of(request)
    if token is None:
        return
    if token.read_only and not data["read_only"]:
        raise exceptions.PermissionDenied("A read-only token can only make read-only tokens.")
    if token.patterns:
        if not data["patterns"]:
            limits = ", ".join(token.patterns)
            raise exceptions.PermissionDenied(
                f"This token is limited to {limits}: a token it makes must be limited within them."
            )
        for pattern in data["patterns"]:
            within_token(request, pattern)
    if token.expires_at is not None and (data.get("expires_at") is None or data["expires_at"] > token.expires_at):
        raise exceptions.PermissionDenied(
            f"This token expires at {token.expires_at:%Y-%m-%d %H:%M} UTC: a token it makes must not outlive it."
        )


class TokenListView(GenericAPIView):
    """The caller's personal access tokens (admins and auditors: anyone's, with ``?user=``); make one."""

    pagination_class = pagination.Pages
    serializer_class = TokenSerializer
    permission_classes = [SignedIn]

    @extend_schema(
        summary="List personal access tokens", parameters=[TokenFilterSerializer], responses=TokenSerializer(many=True)
    )
    def get(self, request: Request) -> Response:
        query = _query(request, TokenFilterSerializer)
        tokens = _tokens(timezone.now()).filter(user=_token_owner(request, query.get("user")))
        if text := query.get("q", "").strip():
            tokens = tokens.filter(name__icontains=text)
        if "state" in query:
            tokens = tokens.filter(state=query["state"])
        page = self.paginate_queryset(_ordered(tokens, query.get("ordering"), ("-created_at", "-pk")))
        return self.get_paginated_response(TokenSerializer(page, many=True).data)

    @extend_schema(
        summary="Make a personal access token (its secret is in this answer only)",
        request=TokenCreateSerializer,
        responses={201: TokenSecretSerializer},
    )
    def post(self, request: Request) -> Response:
        data = _valid(TokenCreateSerializer, request.data)
        data["patterns"] = list(dict.fromkeys(data["patterns"]))
        _no_broader_than(request, data)
        token, secret = services.create_access_token(
            request.user,
            data["name"],
            read_only=data["read_only"],
            patterns=data["patterns"],
            expires_at=data.get("expires_at"),
            context=_context(request),
        )
        token = _tokens(timezone.now()).get(pk=token.pk)
        token.secret = secret
        return Response(TokenSecretSerializer(token).data, status=status.HTTP_201_CREATED, headers=NO_STORE)


class TokenDetailView(GenericAPIView):
    """One token: its owner and admins and auditors read it; its owner or an admin revokes it."""

    serializer_class = TokenSerializer
    permission_classes = [SignedIn]

    def _token(self, request: Request, pk: int) -> PersonalAccessToken:
        tokens = _tokens(timezone.now())
        if not is_overseer(request.user):
            tokens = tokens.filter(user=request.user)  # another person's token does not exist for them
        return get_object_or_404(tokens, pk=pk)

    @extend_schema(summary="Show a personal access token", responses=TokenSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(TokenSerializer(self._token(request, pk)).data)

    @extend_schema(summary="Revoke a personal access token", request=None, responses=DELETED)
    def delete(self, request: Request, pk: int) -> Response:
        token = self._token(request, pk)
        if token.user_id != request.user.pk and not is_admin(request.user):
            raise exceptions.PermissionDenied("Only administrators revoke another person's token.")
        current = token_of(request)
        if current is not None and current.pk == token.pk:
            raise Conflict("This is the token this request came with: revoke it with another token or the dashboard.")
        unlimited_token(request)
        services.revoke_access_token(token, context=_context(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


urlpatterns = [
    path("repositories/", RepositoryListView.as_view(), name="repository-list"),
    path("repositories/<int:pk>/", RepositoryDetailView.as_view(), name="repository-detail"),
    path("grants/", GrantListView.as_view(), name="grant-list"),
    path("grants/<int:pk>/", GrantDetailView.as_view(), name="grant-detail"),
    path("robots/", RobotListView.as_view(), name="robot-list"),
    path("robots/<int:pk>/", RobotDetailView.as_view(), name="robot-detail"),
    path("robots/<int:pk>/rotate", RobotRotateView.as_view(), name="robot-rotate"),
    path("tokens/", TokenListView.as_view(), name="token-list"),
    path("tokens/<int:pk>/", TokenDetailView.as_view(), name="token-detail"),
]
