"""Read-only access pages: who can access a repository, what a user or robot can do, and why a request was denied.

Every answer comes from the engine the token endpoint uses (``decide``, ``describe_access``,
``who_can_access``); these views only parse the question, check who may ask it and render.
Admins and auditors may ask about anyone; everyone else only about themselves.

"Who can access X" may answer with hundreds of rows (every member of a big team, every admin):
the engine decides for all of them, the page shows 50 at a time, narrowed by name, kind or action.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.views.decorators.http import require_GET

from accounts.access.engine import ACTIONS, Subject, decide, describe_access, explain_missing
from accounts.access.matrix import AccessRow, matching_patterns, who_can_access
from accounts.access.patterns import InvalidName, validate_repository_name
from accounts.access.scopes import ScopeError, parse_scope
from accounts.access.subjects import find_robot, is_public, subject_for_robot, subject_for_user
from accounts.models import ROBOT_LOGIN_PREFIX, Grant, Membership, Registry, TeamRole, User
from registryadmin.guards import is_overseer, overseer_required
from registryadmin.paging import page_of

# --- who may ask -------------------------------------------------------------------


def require_self_or_overseer(user: Any, name: str) -> None:
    """Ordinary users may ask about themselves only; checked before any lookup so names do not leak."""
    if not is_overseer(user) and name != user.get_username():
        raise PermissionDenied("you may only look at your own access")


# --- plain data for the pages ------------------------------------------------------


@dataclass(frozen=True)
class TeamAccess:
    """A team whose grant matches a repository, and the leads who can change it."""

    team: str
    role: str
    pattern: str
    registry: str | None
    leads: tuple[str, ...]

    @property
    def leads_text(self) -> str:
        if not self.leads:
            return f"team {self.team} has no team lead"
        return f"team leads of {self.team} are {', '.join(self.leads)}"


@dataclass(frozen=True)
class Answer:
    """The engine's decision on one question, ready to show."""

    subject: str
    repository: str
    registry: str
    wanted: tuple[str, ...]
    granted: tuple[str, ...]
    denied: tuple[str, ...]
    reasons: tuple[str, ...]
    explanation: str
    refusal: str
    teams: list[TeamAccess]


def teams_granting(repository: str, registry: str) -> list[TeamAccess]:
    """Teams with a current grant matching ``repository`` in ``registry``, with their leads (three queries)."""
    now = timezone.now()
    matching = list(
        Grant.objects.filter(team__isnull=False, pattern__in=matching_patterns(repository))
        .filter(Q(registry__isnull=True) | Q(registry__service=registry))
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .order_by("team__name", "pattern")
        .values_list("team_id", "team__name", "role", "pattern", "registry__service")
    )
    leads: dict[int, list[str]] = {}
    maintainers = Membership.objects.filter(
        team_id__in={row[0] for row in matching}, role=TeamRole.MAINTAINER, user__is_active=True
    ).order_by("user__username")
    for team_id, username in maintainers.values_list("team_id", "user__username"):
        leads.setdefault(team_id, []).append(username)
    return [
        TeamAccess(name, role, pattern, service, tuple(leads.get(team_id, ())))
        for team_id, name, role, pattern, service in matching
    ]


def registry_choice(request: HttpRequest) -> tuple[list[str], str, dict[str, str]]:
    """The known registries, the chosen one (default: the first) and an error if it is unknown."""
    services = list(Registry.objects.values_list("service", flat=True)) or [settings.REGISTRY_SERVICE]
    chosen = request.GET.get("registry", "").strip() or services[0]
    if chosen in services:
        return services, chosen, {}
    return services, chosen, {"registry": f"there is no registry called {chosen!r}"}


MAX_NAME = 255


def load_subject(name: str) -> tuple[Subject, str]:
    """The engine's subject for a username or robot login, and why it cannot sign in ("" if it can)."""
    if "\x00" in name or len(name) > MAX_NAME:
        raise LookupError("that is not a user or robot name (at most 255 characters, no NUL)")
    if name.startswith(ROBOT_LOGIN_PREFIX):
        robot = find_robot(name)
        if robot is None:
            raise LookupError(f"there is no robot called {name!r}")
        refusal = robot.refusal(timezone.now())
        return subject_for_robot(robot), f"{robot.login_name} cannot sign in: {refusal}" if refusal else ""
    user = User.objects.filter(username=name).first()
    if user is None:
        raise LookupError(f"there is no user called {name!r}")
    return subject_for_user(user), ""


def read_question(scope_text: str, action: str) -> tuple[str, tuple[str, ...]]:
    """The repository and actions asked about: a full scope, or a bare name plus one action."""
    if ":" not in scope_text:
        try:
            validate_repository_name(scope_text)
        except InvalidName as exc:
            raise ScopeError(str(exc)) from None
        if action not in ACTIONS:
            raise ScopeError(f"choose an action: {', '.join(ACTIONS)}")
        return scope_text, (action,)
    scope = parse_scope(scope_text)
    if scope.type != "repository":
        raise ScopeError("only repository scopes can be explained, e.g. repository:web/app:push")
    return scope.name, scope.actions


def answer(name: str, scope_text: str, action: str, registry: str, errors: dict[str, str]) -> Answer | None:
    """Run the engine on the question, or fill ``errors`` and return None."""
    try:
        repository, wanted = read_question(scope_text, action)
    except ScopeError as exc:
        errors["scope"] = str(exc)
    try:
        subject, refusal = load_subject(name)
    except LookupError as exc:
        errors["user"] = str(exc)
    if errors:
        return None
    public = is_public(repository, registry)
    decision = decide(subject, repository, registry=registry, public=public, now=timezone.now())
    return Answer(
        subject=name,
        repository=repository,
        registry=registry,
        wanted=wanted,
        granted=tuple(a for a in wanted if a in decision.actions),
        denied=tuple(a for a in wanted if a not in decision.actions),
        reasons=tuple(reason.text for reason in decision.reasons),
        explanation=explain_missing(decision, wanted),
        refusal=refusal,
        teams=teams_granting(repository, registry),
    )


# --- pages ---------------------------------------------------------------------------


class WhoFilterForm(forms.Form):
    """Narrows the rows of "who can access X" (the engine has decided for everyone already)."""

    name = forms.CharField(max_length=255, required=False, strip=True)
    kind = forms.ChoiceField(required=False, choices=[("", "users and robots"), ("user", "users"), ("robot", "robots")])
    action = forms.ChoiceField(required=False, choices=[("", "any action"), *((a, f"may {a}") for a in ACTIONS)])

    def rows(self, rows: tuple[AccessRow, ...]) -> list[AccessRow]:
        data = self.cleaned_data
        text = data["name"].lower()
        return [
            row
            for row in rows
            if (not text or text in row.name.lower())
            and (not data["kind"] or row.kind == data["kind"])
            and (not data["action"] or data["action"] in row.actions)
        ]


def _action_counts(rows: tuple[AccessRow, ...]) -> list[tuple[str, int]]:
    """How many of all the rows may do each action: the page's summary, whatever page is shown."""
    return [(action, sum(action in row.actions for row in rows)) for action in ACTIONS]


@require_GET
@overseer_required
def who(request: HttpRequest) -> HttpResponse:
    """Every user and robot with access to a repository, the grants behind it, and the teams that hold them."""
    registries, registry, errors = registry_choice(request)
    repository = request.GET.get("repository", "").strip()
    narrow = WhoFilterForm(request.GET)
    if not narrow.is_valid():
        errors.update({field: " ".join(messages) for field, messages in narrow.errors.items()})
    context: dict[str, Any] = {"repository": repository, "registries": registries, "registry": registry}
    if repository and not errors:
        try:
            validate_repository_name(repository)
        except InvalidName as exc:
            errors["repository"] = str(exc)
        else:
            matrix = who_can_access(repository, registry)
            context["matrix"] = matrix
            context["counts"] = _action_counts(matrix.rows)
            context["page"] = page_of(request, narrow.rows(matrix.rows))
            context["teams"] = teams_granting(repository, registry)
    context.update(errors=errors, narrow=narrow)
    return render(request, "access/who.html", context, status=400 if errors else 200)


@require_GET
@login_required
def user_access(request: HttpRequest, username: str) -> HttpResponse:
    """What one user may do, pattern by pattern (the same entries as their own home page)."""
    require_self_or_overseer(request.user, username)
    person = get_object_or_404(User, username=username)
    context = {
        "kind": "user",
        "name": person.username,
        "entries": describe_access(subject_for_user(person), now=timezone.now()),
        "refusal": "" if person.is_active else f"{person.username}'s account is inactive: no access at all",
        "teams": person.memberships.select_related("team"),
    }
    return render(request, "access/subject.html", context)


@require_GET
@overseer_required
def robot_access(request: HttpRequest, login: str) -> HttpResponse:
    """What one robot may do: its own grants, capped by what its team holds now."""
    robot = find_robot(login)
    if robot is None:
        raise Http404(f"no robot called {login!r}")
    refusal = robot.refusal(timezone.now())
    context = {
        "kind": "robot",
        "name": robot.login_name,
        "entries": describe_access(subject_for_robot(robot), now=timezone.now()),
        "refusal": f"{robot.login_name} cannot sign in: {refusal}" if refusal else "",
        "team": robot.team,
    }
    return render(request, "access/subject.html", context)


@require_GET
@login_required
def why(request: HttpRequest) -> HttpResponse:
    """Why a user or robot may or may not do something: the engine's decision and its reasons."""
    name = request.GET.get("user", "").strip() or request.user.get_username()
    require_self_or_overseer(request.user, name)
    registries, registry, errors = registry_choice(request)
    form = {"user": name, "scope": request.GET.get("scope", "").strip(), "action": request.GET.get("action", "pull")}
    result = answer(name, form["scope"], form["action"], registry, errors) if form["scope"] else None
    context = {
        "form": form,
        "registries": registries,
        "registry": registry,
        "actions": ACTIONS,
        "answer": result,
        "errors": errors,
        "may_ask_others": is_overseer(request.user),
    }
    return render(request, "access/why.html", context, status=400 if errors else 200)
