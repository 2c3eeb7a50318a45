"""``/api/access/``: the engine's answers, as the access pages give them.

``why``: may this user or robot pull/push/delete this repository, and why (everyone may ask about
themselves; admins and auditors about anyone). ``who``: every user and robot with access to a
repository (admins and auditors). ``users/{username}`` and ``robots/{login}``: what one subject may
do, pattern by pattern. Every answer comes from the engine the token endpoint uses; these views only
read the question, check who may ask it, and shape the answer. Nothing here writes or records.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import QueryDict
from django.shortcuts import get_object_or_404
from django.urls import path
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.access.engine import describe_access
from accounts.access.explain import Answer, answer, teams_granting
from accounts.access.matrix import AccessRow, directory_sources, who_can_access
from accounts.access.patterns import InvalidName, validate_repository_name
from accounts.access.subjects import find_robot, subject_for_robot, subject_for_user
from accounts.api.pagination import Pages
from accounts.api.permissions import Overseers
from accounts.api.serializers.access import (
    RobotAccessSerializer,
    UserAccessSerializer,
    WhoSerializer,
    WhySerializer,
)
from accounts.constants import ACTIONS
from accounts.models import Registry, User
from registryadmin.guards import is_overseer

MAX_NAME = 255
ONLY_YOURSELF = "You may only look at your own access (admins and auditors may look at anyone's)."


def _query(name: str, description: str, **extra: Any) -> OpenApiParameter:
    return OpenApiParameter(name, OpenApiTypes.STR, OpenApiParameter.QUERY, description=description, **extra)


REGISTRY = _query("registry", "The registry's service name (default: the first registry).")
ACTION = _query("action", "One action to ask about (why: default every action).", enum=list(ACTIONS))


def require_self_or_overseer(user: Any, name: str) -> None:
    """Others' access is for admins and auditors: checked before any lookup, so names do not leak."""
    if not is_overseer(user) and name != user.get_username():
        raise PermissionDenied(ONLY_YOURSELF)


def chosen_registry(params: QueryDict, errors: dict[str, str]) -> str:
    """The registry asked about (default: the first), noting an unknown one in ``errors``, as the pages do."""
    services = list(Registry.objects.values_list("service", flat=True)) or [settings.REGISTRY_SERVICE]
    chosen = params.get("registry", "").strip() or services[0]
    if chosen not in services:
        errors["registry"] = f"there is no registry called {chosen!r}; known: {', '.join(services)}."
    return chosen


def refuse(errors: dict[str, str]) -> None:
    if errors:
        raise exceptions.ValidationError({field: [message] for field, message in errors.items()})


# --- why ---------------------------------------------------------------------------------


def question(params: QueryDict, errors: dict[str, str]) -> tuple[str, str, str]:
    """The parameter used (repository or scope), the scope text for the engine, and the one action.

    A bare name with ``action`` asks about that action; a bare name alone about every action; a full
    scope (``repository:web/app:pull,push``) names its own actions.
    """
    field = "scope" if params.get("scope", "").strip() and not params.get("repository", "").strip() else "repository"
    text, action = params.get(field, "").strip(), params.get("action", "").strip()
    if not text:
        errors["repository"] = "required: a repository (web/app) or a scope (repository:web/app:pull,push)."
    elif action and action not in ACTIONS:
        errors["action"] = f"{action!r} is not an action; use one of {', '.join(ACTIONS)}."
    elif action and ":" in text:
        errors["action"] = "a full scope names its own actions: leave out action, or give a bare repository name."
    elif not action and ":" not in text:
        text = f"repository:{text}:{','.join(ACTIONS)}"
    return field, text, action


def why_data(result: Answer) -> dict[str, Any]:
    return {
        "subject": result.subject,
        "repository": result.repository,
        "registry": result.registry,
        "wanted": result.wanted,
        "allowed": result.granted,
        "denied": result.denied,
        "decisions": [{"action": action, "allowed": action in result.granted} for action in result.wanted],
        "reasons": result.reasons,
        "explanation": result.explanation,
        "refusal": result.refusal,
        "teams": result.teams,
    }


class Why(APIView):
    """May this user or robot do these actions on this repository, and why: the engine's decision."""

    @extend_schema(
        summary="Why a subject may or may not do something",
        parameters=[
            _query("user", "A username or robot login (robot$web+ci); default: yourself. Others: admins, auditors."),
            _query("repository", "A repository name (web/app), or a full scope (repository:web/app:pull,push)."),
            _query("scope", "The access page's name for repository (used when repository is absent)."),
            ACTION,
            REGISTRY,
        ],
        responses=WhySerializer,
    )
    def get(self, request: Request) -> Response:
        params = request.query_params
        name = params.get("user", "").strip() or request.user.get_username()
        require_self_or_overseer(request.user, name)
        errors: dict[str, str] = {}
        registry = chosen_registry(params, errors)
        field, text, action = question(params, errors)
        asked = not {"repository", "action"} & errors.keys()
        result = answer(name, text, action, registry, errors) if asked else None
        if "scope" in errors:
            errors[field] = errors.pop("scope")
        refuse(errors)
        return Response(WhySerializer(why_data(result)).data)


# --- who ---------------------------------------------------------------------------------


def who_question(params: QueryDict, errors: dict[str, str]) -> tuple[str, str, str, str]:
    """The repository, and the narrowing of rows by name (substring), kind and action."""
    repository = params.get("repository", "").strip()
    name, kind, action = (params.get(key, "").strip() for key in ("name", "kind", "action"))
    if not repository:
        errors["repository"] = "required: the repository to ask about, e.g. web/app."
    else:
        try:
            validate_repository_name(repository)
        except InvalidName as exc:
            errors["repository"] = str(exc)
    if len(name) > MAX_NAME:
        errors["name"] = f"at most {MAX_NAME} characters."
    if kind not in ("", "user", "robot"):
        errors["kind"] = "user or robot."
    if action and action not in ACTIONS:
        errors["action"] = f"{action!r} is not an action; use one of {', '.join(ACTIONS)}."
    return repository, name.lower(), kind, action


def narrowed(rows: tuple[AccessRow, ...], name: str, kind: str, action: str) -> list[AccessRow]:
    return [
        row
        for row in rows
        if (not name or name in row.name.lower())
        and (not kind or row.kind == kind)
        and (not action or action in row.actions)
    ]


class Who(APIView):
    """Every active user and robot who may do something on a repository, with the grants behind it."""

    permission_classes = [Overseers]

    @extend_schema(
        summary="Who can access a repository",
        parameters=[
            _query("repository", "The repository asked about (a name, e.g. web/app).", required=True),
            REGISTRY,
            _query("name", "Rows whose name holds this (case-insensitive)."),
            _query("kind", "Rows of users or of robots only.", enum=["user", "robot"]),
            _query("action", "Rows that may do this action.", enum=list(ACTIONS)),
            OpenApiParameter("page", OpenApiTypes.INT, OpenApiParameter.QUERY, description="From 1."),
            OpenApiParameter("page_size", OpenApiTypes.INT, OpenApiParameter.QUERY, description="At most 500."),
        ],
        responses=WhoSerializer,
    )
    def get(self, request: Request) -> Response:
        params = request.query_params
        errors: dict[str, str] = {}
        registry = chosen_registry(params, errors)
        repository, name, kind, action = who_question(params, errors)
        refuse(errors)
        matrix = who_can_access(repository, registry)
        pages = Pages()
        try:
            rows = pages.paginate_queryset(narrowed(matrix.rows, name, kind, action), request, view=self)
        except exceptions.NotFound as exc:
            raise exceptions.ValidationError({"page": [str(exc.detail)]}) from None
        data = {
            "repository": repository,
            "registry": registry,
            "public": matrix.public,
            "counts": {a: sum(a in row.actions for row in matrix.rows) for a in ACTIONS},
            "teams": teams_granting(repository, registry),
            "count": pages.page.paginator.count,
            "next": pages.get_next_link(),
            "previous": pages.get_previous_link(),
            "results": rows,
        }
        return Response(WhoSerializer(data).data)


# --- what one subject may do ---------------------------------------------------------------


def _readable_name(name: str) -> None:
    """A name no account can have is simply not found (and never reaches the database: NUL)."""
    if "\x00" in name or len(name) > MAX_NAME:
        raise exceptions.NotFound()


class UserAccess(APIView):
    """What one user may do, pattern by pattern: yourself, or anyone for admins and auditors."""

    @extend_schema(summary="What a user may access", responses=UserAccessSerializer)
    def get(self, request: Request, username: str) -> Response:
        require_self_or_overseer(request.user, username)
        _readable_name(username)
        person = get_object_or_404(User, username=username)
        memberships = person.memberships.select_related("team").order_by("team__name")
        sources = directory_sources(memberships).get(person.username, {})
        data = {
            "username": person.username,
            "refusal": "" if person.is_active else f"{person.username}'s account is inactive: no access at all",
            "teams": [{"team": m.team.name, "membership": sources.get(m.team.name) or m.role} for m in memberships],
            "entries": describe_access(subject_for_user(person), now=timezone.now()),
        }
        return Response(UserAccessSerializer(data).data)


class RobotAccess(APIView):
    """What one robot may do: admins and auditors, as the robot access page."""

    permission_classes = [Overseers]

    @extend_schema(summary="What a robot may access", responses=RobotAccessSerializer)
    def get(self, request: Request, login: str) -> Response:
        _readable_name(login)
        robot = find_robot(login)
        if robot is None:
            raise exceptions.NotFound(f"There is no robot called {login!r}.")
        refusal = robot.refusal(timezone.now())
        data = {
            "login": robot.login_name,
            "team": robot.team.name if robot.team_id else None,
            "refusal": f"{robot.login_name} cannot sign in: {refusal}" if refusal else "",
            "entries": describe_access(subject_for_robot(robot), now=timezone.now()),
        }
        return Response(RobotAccessSerializer(data).data)


urlpatterns = [
    path("access/why", Why.as_view(), name="access-why"),
    path("access/who", Who.as_view(), name="access-who"),
    path("access/users/<str:username>", UserAccess.as_view(), name="access-user"),
    path("access/robots/<str:login>", RobotAccess.as_view(), name="access-robot"),
]
