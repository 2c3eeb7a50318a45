"""Read-only access pages: who can access a repository, what a user or robot can do, and why a request was denied.

Every answer comes from the engine the token endpoint uses (``decide``, ``describe_access``,
``who_can_access``); these views only parse the question, check who may ask it and render.
Admins and auditors may ask about anyone; everyone else only about themselves.

"Who can access X" may answer with hundreds of rows (every member of a big team, every admin):
the engine decides for all of them, the page shows 50 at a time, narrowed by name, kind or action.

Was ``accounts/access_views.py`` before the layout split.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.views.decorators.http import require_GET

from accounts.access.engine import describe_access
from accounts.access.explain import answer, teams_granting
from accounts.access.matrix import AccessRow, directory_sources, who_can_access
from accounts.access.patterns import InvalidName, validate_repository_name
from accounts.access.subjects import find_robot, subject_for_robot, subject_for_user
from accounts.constants import ACTIONS
from accounts.models import Registry, User
from registryadmin.guards import is_overseer, overseer_required
from registryadmin.paging import page_of

# --- who may ask -------------------------------------------------------------------


def require_self_or_overseer(user: Any, name: str) -> None:
    """Ordinary users may ask about themselves only; checked before any lookup so names do not leak."""
    if not is_overseer(user) and name != user.get_username():
        raise PermissionDenied("you may only look at your own access")


# --- the question's registry -------------------------------------------------------


def registry_choice(request: HttpRequest) -> tuple[list[str], str, dict[str, str]]:
    """The known registries, the chosen one (default: the first) and an error if it is unknown."""
    services = list(Registry.objects.values_list("service", flat=True)) or [settings.REGISTRY_SERVICE]
    chosen = request.GET.get("registry", "").strip() or services[0]
    if chosen in services:
        return services, chosen, {}
    return services, chosen, {"registry": f"there is no registry called {chosen!r}"}


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
    memberships = person.memberships.select_related("team").order_by("team__name")
    sources = directory_sources(memberships).get(person.username, {})
    context = {
        "kind": "user",
        "name": person.username,
        "entries": describe_access(subject_for_user(person), now=timezone.now()),
        "refusal": "" if person.is_active else f"{person.username}'s account is inactive: no access at all",
        "teams": [(m.team.name, sources.get(m.team.name) or m.role) for m in memberships],
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
