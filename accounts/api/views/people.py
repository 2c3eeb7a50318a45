"""People under /api/: users, teams, team members, and the members search for team leads.

The same rules as the user and team pages: admins and auditors list and read every user (a person
also reads themselves), admins change them; everyone signed in lists the teams they may see (admins
and auditors every team, others their own), a team's members and leads read it, its leads (and
admins) change its members through ``services.lead_*``, admins make, describe and delete teams.
Leads pick new members through ``users/search``, which answers usernames only. Every change goes
through ``accounts.services`` (which writes its audit record); a token limited to repository
patterns changes none of this (``unlimited_token``). Nobody removes their own admin flag,
deactivates or deletes themselves (409).
"""

from __future__ import annotations

import secrets
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Count, Exists, IntegerField, Model, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.urls import path
from django.utils.cache import add_never_cache_headers
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_variables
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, permissions, serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from accounts import authz, services
from accounts.api import pagination
from accounts.api.errors import Conflict
from accounts.api.permissions import Admins, Overseers, SignedIn, unlimited_token
from accounts.api.serializers import people as s
from accounts.models import Grant, Membership, Robot, Team, TeamRole, User
from audit.context import AuditContext
from registryadmin.guards import is_admin, is_overseer

GENERATED_PASSWORD_BYTES = 18  # as the user pages: 24 URL-safe characters, 144 random bits
SEARCH_LIMIT = 20
NOT_YOURSELF_ADMIN = "You cannot remove your own administrator flag: ask another admin."
NOT_YOURSELF_ACTIVE = "You cannot deactivate yourself: ask another admin."
NOT_YOURSELF_DELETE = "You cannot delete yourself: ask another admin."


# --- shared helpers -------------------------------------------------------------------------


def _query(serializer_class: type[serializers.Serializer], request: Request) -> dict[str, Any]:
    """The validated query parameters (a bad one is a 400 that names it)."""
    parsed = serializer_class(data=request.query_params)
    parsed.is_valid(raise_exception=True)
    return dict(parsed.validated_data)


def _body(serializer_class: type[serializers.Serializer], request: Request) -> dict[str, Any]:
    parsed = serializer_class(data=request.data)
    parsed.is_valid(raise_exception=True)
    return dict(parsed.validated_data)


def _named(queryset: QuerySet, **lookup: str) -> Any:
    """One row by a name from the path (the request handler already refuses NUL bytes in the address)."""
    found = queryset.filter(**lookup).first()
    if found is None:
        raise exceptions.NotFound()
    return found


def _ordered(queryset: QuerySet, ordering: str, fields: dict[str, str]) -> QuerySet:
    """Order by the public name of a field (``-`` for descending), the primary key breaking ties."""
    descending = ordering.startswith("-")
    field = fields[ordering.lstrip("-")]
    return queryset.order_by(f"-{field}" if descending else field, "-pk" if descending else "pk")


def _context(request: Request) -> AuditContext:
    return AuditContext.from_request(request)


def _generate_password() -> str:
    """A strong random password for an admin to hand over (only its hash is stored)."""
    return secrets.token_urlsafe(GENERATED_PASSWORD_BYTES)


def _secret(data: dict[str, Any], code: int = status.HTTP_200_OK) -> Response:
    """The one response that shows a generated password: never cached."""
    response = Response(data, status=code)
    add_never_cache_headers(response)
    return response


# --- users ---------------------------------------------------------------------------------


def _lead() -> Exists:
    return Exists(Membership.objects.filter(user=OuterRef("pk"), role=TeamRole.MAINTAINER))


def _users() -> QuerySet[User]:
    return User.objects.annotate(is_lead=_lead())


ROLE_FILTERS = {
    "admin": Q(is_superuser=True),
    "auditor": Q(is_auditor=True),
    "lead": Q(is_lead=True),
    "other": Q(is_superuser=False, is_auditor=False, is_lead=False),
}


def _filtered_users(filters: dict[str, Any]) -> QuerySet[User]:
    """Every word of ``q`` must match a username, name or email; then role and state (as the page)."""
    people = _users()
    for word in filters.get("q", "").split():
        people = people.filter(
            Q(username__icontains=word)
            | Q(email__icontains=word)
            | Q(first_name__icontains=word)
            | Q(last_name__icontains=word)
        )
    if role := filters.get("role"):
        people = people.filter(ROLE_FILTERS[role])
    if filters.get("active") is not None:
        people = people.filter(is_active=filters["active"])
    return _ordered(people, filters["ordering"], {"username": "username", "date_joined": "date_joined"})


def _user_data(user: User) -> dict[str, Any]:
    return s.UserSerializer(user).data


def _person(username: str) -> User:
    return _named(_users(), username=username)


class SelfOrOverseers(SignedIn):
    """Admins and auditors read anyone, a person reads themselves; only admins change anyone."""

    message = "Only administrators and auditors may read another person; only administrators may change people."

    def has_permission(self, request: Request, view: Any) -> bool:
        if not super().has_permission(request, view):
            return False
        if request.method in permissions.SAFE_METHODS:
            return is_overseer(request.user) or view.kwargs.get("username") == request.user.username
        return is_admin(request.user)


class UsersView(GenericAPIView):
    """Every user (admins and auditors), and new users (admins)."""

    permission_classes = [Overseers]
    serializer_class = s.UserSerializer
    pagination_class = pagination.Pages

    @extend_schema(
        summary="List users (admins and auditors)",
        parameters=[s.UserFilterSerializer],
        responses=s.UserSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        matching = _filtered_users(_query(s.UserFilterSerializer, request))
        # Page by id, then read that page's rows: OFFSET never evaluates the annotations of skipped rows.
        page = self.paginate_queryset(matching.values_list("pk", flat=True))
        rows = _users().in_bulk(list(page))
        return self.get_paginated_response([_user_data(rows[pk]) for pk in page if pk in rows])

    @extend_schema(
        summary="Create a user (admins); a generated password is shown once",
        request=s.UserCreateSerializer,
        responses={201: s.UserCreatedSerializer},
    )
    @method_decorator(sensitive_variables("data", "typed", "password", "body"))
    def post(self, request: Request) -> Response:
        unlimited_token(request)
        data = _body(s.UserCreateSerializer, request)
        typed = data.pop("password")
        password = typed or _generate_password()
        try:
            user = services.create_user(
                data.pop("username"), password=password, validate=bool(typed), context=_context(request), **data
            )
        except DjangoValidationError as exc:
            raise _password_error(exc) from exc
        body = {**_user_data(_person(user.username)), "password": None if typed else password}
        return _secret(body, status.HTTP_201_CREATED)


def _password_error(exc: DjangoValidationError) -> DjangoValidationError:
    """Password validators raise a plain list: it belongs to the ``password`` field."""
    if hasattr(exc, "error_dict"):
        return exc
    return DjangoValidationError({"password": exc.messages})


class UserDetailView(GenericAPIView):
    """One person: read (admins, auditors, themselves), change and delete (admins)."""

    permission_classes = [SelfOrOverseers]
    serializer_class = s.UserSerializer

    @extend_schema(summary="Read a user", responses=s.UserSerializer)
    def get(self, request: Request, username: str) -> Response:
        return Response(_user_data(_person(username)))

    @extend_schema(
        summary="Change a user's profile and flags (admins)",
        request=s.UserUpdateSerializer,
        responses=s.UserSerializer,
    )
    def patch(self, request: Request, username: str) -> Response:
        unlimited_token(request)
        person = _person(username)
        changes = _body(s.UserUpdateSerializer, request)
        if person.pk == request.user.pk and changes.get("is_superuser") is False:
            raise Conflict(NOT_YOURSELF_ADMIN)
        if person.pk == request.user.pk and changes.get("is_active") is False:
            raise Conflict(NOT_YOURSELF_ACTIVE)
        services.update_user(person, context=_context(request), **changes)
        return Response(_user_data(_person(username)))

    @extend_schema(summary="Delete a user (admins)", responses={204: None})
    def delete(self, request: Request, username: str) -> Response:
        unlimited_token(request)
        person = _person(username)
        if person.pk == request.user.pk:
            raise Conflict(NOT_YOURSELF_DELETE)
        services.delete_user(person, context=_context(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class UserPasswordView(GenericAPIView):
    """An admin sets a person's password (typed, or generated and shown once); their docker logins end."""

    permission_classes = [Admins]
    serializer_class = s.PasswordSetSerializer

    @extend_schema(
        summary="Set a user's password (admins); a generated one is shown once",
        request=s.PasswordSerializer,
        responses=s.PasswordSetSerializer,
    )
    @method_decorator(sensitive_variables("typed", "password"))
    def post(self, request: Request, username: str) -> Response:
        unlimited_token(request)
        person = _person(username)
        typed = _body(s.PasswordSerializer, request)["password"]
        password = typed or _generate_password()
        try:
            services.set_password(person, password, validate=bool(typed), context=_context(request))
        except DjangoValidationError as exc:
            raise _password_error(exc) from exc
        return _secret(
            {"username": person.username, "password": None if typed else password, "refresh_tokens_revoked": True}
        )


class UserRefreshTokensView(GenericAPIView):
    """An admin signs a person out of every ``docker login`` that kept a refresh token."""

    permission_classes = [Admins]
    serializer_class = s.RefreshRevokedSerializer

    @extend_schema(
        summary="Revoke a user's refresh tokens (admins)", request=None, responses=s.RefreshRevokedSerializer
    )
    def post(self, request: Request, username: str) -> Response:
        unlimited_token(request)
        person = _person(username)
        revoked = services.revoke_user_refresh_tokens(person, context=_context(request))
        return Response({"username": person.username, "revoked": revoked})


class LeadsAndOverseers(SignedIn):
    """Whoever picks members: admins, auditors and the leads of at least one team."""

    message = "Only team leads, auditors and administrators may search users."

    def has_permission(self, request: Request, view: Any) -> bool:
        if not super().has_permission(request, view):
            return False
        return is_overseer(request.user) or bool(authz.led_team_ids(request.user))


class UserSearchView(GenericAPIView):
    """Usernames for a lead to pick a new member from: active people whose username or name matches."""

    permission_classes = [LeadsAndOverseers]
    serializer_class = s.UserSearchSerializer
    pagination_class = None

    @extend_schema(
        summary="Find usernames to add as members (team leads, auditors, admins)",
        parameters=[s.UserSearchQuerySerializer],
        responses=s.UserSearchSerializer,
    )
    def get(self, request: Request) -> Response:
        q = _query(s.UserSearchQuerySerializer, request)["q"].strip()
        # Usernames and names only, never emails: a lead must not probe who owns an address.
        found = (
            User.objects.filter(is_active=True)
            .filter(Q(username__icontains=q) | Q(first_name__icontains=q) | Q(last_name__icontains=q))
            .order_by("username")
            .values_list("username", flat=True)[:SEARCH_LIMIT]
        )
        return Response({"usernames": list(found)})


# --- teams ---------------------------------------------------------------------------------


def _sees_every_team(user: User) -> bool:
    return user.is_active and (user.is_superuser or user.is_auditor)


def _count(model: type[Model], field: str = "team") -> Coalesce:
    """A per-team count as a subquery, so several counts never multiply each other's rows."""
    rows = model.objects.filter(**{field: OuterRef("pk")}).order_by().values(field).annotate(n=Count("pk"))
    return Coalesce(Subquery(rows.values("n"), output_field=IntegerField()), 0)


def _with_counts(teams: QuerySet[Team], user: User) -> QuerySet[Team]:
    mine = Membership.objects.filter(team=OuterRef("pk"), user=user).values("role")[:1]
    return teams.annotate(
        member_count=_count(Membership),
        grant_count=_count(Grant),
        managed_count=_count(Grant, "managed_by"),
        robot_count=_count(Robot),
        my_role=Subquery(mine),
    )


def _visible_team(request: Request, name: str) -> Team:
    """The team, if the caller may see it (admins, auditors, its members), as the team page."""
    team = _named(Team.objects.all(), name=name)
    if not (_sees_every_team(request.user) or team.memberships.filter(user=request.user).exists()):
        raise exceptions.PermissionDenied(f"Only members of team {team.name}, auditors and administrators may see it.")
    return team


def _led_team(request: Request, name: str) -> Team:
    """The team, if the caller leads it (its maintainers and admins); then the token must be unlimited."""
    team = _named(Team.objects.all(), name=name)
    if not authz.is_team_lead(request.user, team):
        raise exceptions.PermissionDenied(f"{request.user.get_username()} does not lead team {team.name}.")
    unlimited_token(request)
    return team


def _team_data(team: Team, user: User) -> dict[str, Any]:
    return s.TeamSerializer(_with_counts(Team.objects.filter(pk=team.pk), user).get()).data


class ReadOrAdmins(SignedIn):
    """Anyone signed in reads (the view filters what); only admins change."""

    message = "Only administrators may do this."

    def has_permission(self, request: Request, view: Any) -> bool:
        if not super().has_permission(request, view):
            return False
        return request.method in permissions.SAFE_METHODS or is_admin(request.user)


class TeamsView(GenericAPIView):
    """The teams the caller may see (admins and auditors: all; others: their own); admins make teams."""

    permission_classes = [ReadOrAdmins]
    serializer_class = s.TeamSerializer
    pagination_class = pagination.Pages

    @extend_schema(
        summary="List the teams you may see", parameters=[s.TeamFilterSerializer], responses=s.TeamSerializer(many=True)
    )
    def get(self, request: Request) -> Response:
        filters = _query(s.TeamFilterSerializer, request)
        teams = Team.objects.all()
        if not _sees_every_team(request.user):
            teams = teams.filter(memberships__user=request.user)
        if q := filters.get("q", "").strip():
            teams = teams.filter(name__icontains=q)
        teams = _ordered(teams, filters["ordering"], {"name": "name", "created_at": "created_at"})
        page = self.paginate_queryset(teams.values_list("pk", flat=True))
        rows = _with_counts(Team.objects.all(), request.user).in_bulk(list(page))
        return self.get_paginated_response([s.TeamSerializer(rows[pk]).data for pk in page if pk in rows])

    @extend_schema(summary="Make a team (admins)", request=s.TeamCreateSerializer, responses={201: s.TeamSerializer})
    def post(self, request: Request) -> Response:
        unlimited_token(request)
        data = _body(s.TeamCreateSerializer, request)
        team = services.create_team(data["name"], description=data["description"], context=_context(request))
        return Response(_team_data(team, request.user), status=status.HTTP_201_CREATED)


class TeamDetailView(GenericAPIView):
    """One team: read (admins, auditors, its members), describe and delete (admins)."""

    permission_classes = [ReadOrAdmins]
    serializer_class = s.TeamSerializer

    @extend_schema(summary="Read a team", responses=s.TeamSerializer)
    def get(self, request: Request, name: str) -> Response:
        return Response(_team_data(_visible_team(request, name), request.user))

    @extend_schema(
        summary="Change a team's description (admins)", request=s.TeamUpdateSerializer, responses=s.TeamSerializer
    )
    def patch(self, request: Request, name: str) -> Response:
        unlimited_token(request)
        team = _named(Team.objects.all(), name=name)
        data = _body(s.TeamUpdateSerializer, request)
        team = services.update_team(team, description=data["description"], context=_context(request))
        return Response(_team_data(team, request.user))

    @extend_schema(summary="Delete a team with its memberships, grants and robots (admins)", responses={204: None})
    def delete(self, request: Request, name: str) -> Response:
        unlimited_token(request)
        team = _named(Team.objects.all(), name=name)
        services.delete_team(team, context=_context(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- members -------------------------------------------------------------------------------


def _memberships(team: Team) -> QuerySet[Membership]:
    return team.memberships.select_related("user").prefetch_related("directory_groups")


def _membership(team: Team, username: str) -> Membership:
    return _named(_memberships(team), user__username=username)


def _member_user(username: str) -> User:
    """The person to add, by username: an unknown one is a field error, as on the team page."""
    user = User.objects.filter(username=username).first()
    if user is None:
        raise serializers.ValidationError({"username": ["No user is called that."]})
    return user


class MembersView(GenericAPIView):
    """A team's members (whoever may see the team); its leads and admins add members or change roles."""

    serializer_class = s.MemberSerializer
    pagination_class = pagination.Pages

    @extend_schema(
        summary="List a team's members", parameters=[s.MemberFilterSerializer], responses=s.MemberSerializer(many=True)
    )
    def get(self, request: Request, name: str) -> Response:
        team = _visible_team(request, name)
        filters = _query(s.MemberFilterSerializer, request)
        members = _memberships(team)
        if q := filters.get("q", "").strip():
            members = members.filter(
                Q(user__username__icontains=q) | Q(user__first_name__icontains=q) | Q(user__last_name__icontains=q)
            )
        members = _ordered(members, filters["ordering"], {"username": "user__username", "role": "role"})
        page = self.paginate_queryset(members)
        return self.get_paginated_response([s.member_data(m) for m in page])

    @extend_schema(
        summary="Add a member or set their role (the team's leads, admins)",
        request=s.MemberCreateSerializer,
        responses={201: s.MemberSerializer, 200: s.MemberSerializer},
        description="201 when they join the team; 200 when they were a member already (their local role is set).",
    )
    def post(self, request: Request, name: str) -> Response:
        team = _led_team(request, name)
        data = _body(s.MemberCreateSerializer, request)
        user = _member_user(data["username"])
        joined = not team.memberships.filter(user=user).exists()
        services.lead_set_membership(team, user, data["role"], acting_user=request.user, context=_context(request))
        code = status.HTTP_201_CREATED if joined else status.HTTP_200_OK
        return Response(s.member_data(_membership(team, user.username)), status=code)


class MemberDetailView(GenericAPIView):
    """One membership: read (who may see the team), change its role or remove it (the team's leads, admins).

    Removing takes the local role: a membership a directory group still gives stays (200, with the
    role the directory gives); one that only the directory gives is changed in the directory (400).
    """

    serializer_class = s.MemberSerializer

    @extend_schema(summary="Read a membership", responses=s.MemberSerializer)
    def get(self, request: Request, name: str, username: str) -> Response:
        return Response(s.member_data(_membership(_visible_team(request, name), username)))

    @extend_schema(
        summary="Change a member's role (the team's leads, admins)",
        request=s.MemberUpdateSerializer,
        responses=s.MemberSerializer,
    )
    def patch(self, request: Request, name: str, username: str) -> Response:
        team = _led_team(request, name)
        membership = _membership(team, username)
        role = _body(s.MemberUpdateSerializer, request)["role"]
        services.lead_set_membership(team, membership.user, role, acting_user=request.user, context=_context(request))
        return Response(s.member_data(_membership(team, username)))

    @extend_schema(
        summary="Remove a member (the team's leads, admins)",
        responses={204: None, 200: s.MemberSerializer},
        description="204 when the membership is gone; 200 with it when a directory group still gives one.",
    )
    def delete(self, request: Request, name: str, username: str) -> Response:
        team = _led_team(request, name)
        membership = _membership(team, username)
        services.lead_remove_membership(membership, acting_user=request.user, context=_context(request))
        kept = _memberships(team).filter(pk=membership.pk).first()
        if kept is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(s.member_data(kept))


urlpatterns = [
    path("users/", UsersView.as_view(), name="users"),
    path("users/search", UserSearchView.as_view(), name="user-search"),
    path("users/<str:username>/", UserDetailView.as_view(), name="user"),
    path("users/<str:username>/password", UserPasswordView.as_view(), name="user-password"),
    path("users/<str:username>/revoke-refresh-tokens", UserRefreshTokensView.as_view(), name="user-refresh"),
    path("teams/", TeamsView.as_view(), name="teams"),
    path("teams/<str:name>/", TeamDetailView.as_view(), name="team"),
    path("teams/<str:name>/members/", MembersView.as_view(), name="members"),
    path("teams/<str:name>/members/<str:username>", MemberDetailView.as_view(), name="member"),
]
