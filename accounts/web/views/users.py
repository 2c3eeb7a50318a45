"""The user pages under /manage/users/: auditors read them, admins also create and change people.

Everything about a person an overseer needs in one place: flags, teams, grants, credentials and
recent activity. Every change goes through ``accounts.services``; a generated password is shown
once in the response to the POST that set it (never in a message, the session or the URL).
A directory user's email, names and password are the directory's: the page shows them read-only,
and the services refuse a POST that changes them anyway (a 400 with the reason on the field).

Was ``accounts/user_views.py`` before the layout split.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Exists, IntegerField, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.forms import Form
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import services
from accounts.models import Grant, Membership, TeamRole, User
from accounts.web.forms.common import add_service_error
from accounts.web.forms.users import (
    ActiveForm,
    AddToTeamForm,
    EditUserForm,
    NewUserForm,
    SetPasswordForm,
    UserFilterForm,
)
from audit.context import AuditContext
from audit.models import AuditRecord, Kind
from registryadmin.guards import admin_required, is_admin, overseer_required
from registryadmin.pages import render_list
from registryadmin.paging import page_of

RECENT_RECORDS = 10


# --- the list ------------------------------------------------------------------------


def _lead() -> Exists:
    return Exists(Membership.objects.filter(user=OuterRef("pk"), role=TeamRole.MAINTAINER))


def _with_activity(people: QuerySet[User]) -> QuerySet[User]:
    """What the list shows beyond the user row. Run for one page's ids only: an OFFSET would
    otherwise evaluate these subqueries for every row it skips (measured: 1 s for the last of 200 pages)."""
    teams = Membership.objects.filter(user=OuterRef("pk")).order_by().values("user").annotate(n=Count("pk"))
    # The token endpoint records every authenticated request (password, token or refresh token) with
    # actor_id set; failed guesses at the name have none. "actor_id IS NOT NULL" rather than "= pk"
    # keeps the planner on a backward scan of audit_actor_time that stops at the newest match.
    requests = AuditRecord.objects.filter(actor=OuterRef("username"), actor_id__isnull=False, kind=Kind.ACCESS)
    return people.annotate(
        team_count=Coalesce(Subquery(teams.values("n"), output_field=IntegerField()), 0),
        is_lead=_lead(),
        last_request=Subquery(requests.order_by("-time").values("time")[:1]),
    ).order_by("username")


ROLE_FILTERS = {
    "admin": Q(is_superuser=True),
    "auditor": Q(is_auditor=True),
    "lead": Q(is_lead=True),
    "other": Q(is_superuser=False, is_auditor=False, is_lead=False),
}


def _filtered(people: QuerySet[User], form: UserFilterForm) -> QuerySet[User]:
    """Every word of the search must match a username, name or email; then role and state."""
    for word in form.value("q").split():
        people = people.filter(
            Q(username__icontains=word)
            | Q(email__icontains=word)
            | Q(first_name__icontains=word)
            | Q(last_name__icontains=word)
        )
    if role := form.value("role"):
        people = people.filter(ROLE_FILTERS[role])
    if state := form.value("active"):
        people = people.filter(is_active=state == "active")
    return people


@require_GET
@overseer_required
def user_list(request: HttpRequest) -> HttpResponse:
    """Everyone, searchable; HTMX live search swaps only the results."""
    form = UserFilterForm(request.GET)
    valid = form.is_valid()
    matching = _filtered(User.objects.annotate(is_lead=_lead()), form).order_by("username")
    page = page_of(request, matching.values_list("pk", flat=True))
    page.object_list = list(_with_activity(User.objects.filter(pk__in=list(page.object_list))))
    context = {"form": form, "page": page, "q": form.value("q")}
    return render_list(request, "users/list.html", "users/_results.html", context, valid=valid)


# --- creating --------------------------------------------------------------------------


def _add_error(form: Form, error: ValidationError) -> None:
    """Password validators raise plain lists: they belong to the password field, shown inline."""
    if not hasattr(error, "error_dict"):
        error = ValidationError({"password": error.messages})
    add_service_error(form, error)


def _secret_page(request: HttpRequest, template: str, context: dict[str, Any]) -> HttpResponse:
    """The one response that shows a generated password: never cached, never repeated."""
    response = render(request, template, context)
    add_never_cache_headers(response)
    return response


@sensitive_variables("password")
def _create_user(form: NewUserForm, password: str, generated: bool, context: AuditContext) -> User:
    return services.create_user(
        form.cleaned_data["username"], password=password, validate=not generated, context=context, **form.profile()
    )


@sensitive_post_parameters("password")
@sensitive_variables("password")
@require_http_methods(["GET", "POST"])
@admin_required
def user_new(request: HttpRequest) -> HttpResponse:
    """Admins create a person with a typed password, or a generated one shown once."""
    form = NewUserForm(request.POST) if request.method == "POST" else NewUserForm()
    if form.is_bound and form.is_valid():
        password, generated = form.password_to_set()
        try:
            person = _create_user(form, password, generated, AuditContext.from_request(request))
        except ValidationError as exc:
            _add_error(form, exc)
        else:
            if generated:
                return _secret_page(request, "users/password_shown.html", {"person": person, "password": password})
            messages.success(request, f"Created user {person.username}.")
            return redirect("users:detail", username=person.username)
    return render(request, "users/new.html", {"form": form}, status=400 if form.is_bound else 200)


# --- one person ---------------------------------------------------------------------------


SHOWN = 100  # rows of each list on a person's page; the rest are counted and linked


def _grants_of(person: User) -> QuerySet[Grant]:
    """Their own grants and their teams' grants (the same sources the engine reads)."""
    teams = Membership.objects.filter(user=person).values("team")
    return (
        Grant.objects.filter(Q(user=person) | Q(team__in=teams))
        .select_related("team", "registry", "managed_by")
        .order_by("pattern", "id")
    )


def _capped(queryset: QuerySet, limit: int = SHOWN) -> tuple[list[Any], int]:
    """The first ``limit`` rows and how many more there are (the count runs only when there are more)."""
    rows = list(queryset[: limit + 1])
    return (rows[:limit], queryset.count() - limit) if len(rows) > limit else (rows, 0)


def _detail_context(request: HttpRequest, person: User) -> dict[str, Any]:
    now = timezone.now()
    live_refresh = person.refresh_tokens.filter(revoked_at__isnull=True, expires_at__gt=now)
    memberships, memberships_more = _capped(person.memberships.select_related("team").order_by("team__name"))
    grants, grants_more = _capped(_grants_of(person))
    tokens, tokens_more = _capped(person.access_tokens.order_by("revoked_at", "name"))
    return {
        "person": person,
        **{"memberships": memberships, "memberships_more": memberships_more, "grants": grants},
        **{"grants_more": grants_more, "tokens": tokens, "tokens_more": tokens_more},
        "refresh_count": live_refresh.count(),
        "recent": AuditRecord.objects.filter(actor=person.username).order_by("-time", "-id")[:RECENT_RECORDS],
        "lead_role": TeamRole.MAINTAINER,
        "now": now,
        "soon": now + timedelta(days=7),
        "can_change": is_admin(request.user),
    }


def _detail_page(request: HttpRequest, person: User, *, status: int = 200, **forms: Form) -> HttpResponse:
    context = _detail_context(request, person)
    if context["can_change"]:
        context["edit_form"] = forms.get("edit_form") or EditUserForm(person=person, acting_user=request.user)
        context["password_form"] = forms.get("password_form") or SetPasswordForm()
        context["team_form"] = forms.get("team_form") or AddToTeamForm(prefix="team")
    return render(request, "users/detail.html", context, status=status)


@require_GET
@overseer_required
def user_detail(request: HttpRequest, username: str) -> HttpResponse:
    """Flags, teams, grants, credentials and last activity of one person."""
    return _detail_page(request, get_object_or_404(User, username=username))


@require_POST
@admin_required
def user_edit(request: HttpRequest, username: str) -> HttpResponse:
    """Change profile and flags; the form refuses an admin locking themselves out."""
    person = get_object_or_404(User, username=username)
    form = EditUserForm(request.POST, person=person, acting_user=request.user)
    if form.is_valid():
        try:
            services.update_user(person, context=AuditContext.from_request(request), **form.cleaned_data)
        except ValidationError as exc:
            add_service_error(form, exc)
        else:
            messages.success(request, f"Saved {person.username}.")
            return redirect("users:detail", username=person.username)
    return _detail_page(request, person, status=400, edit_form=form)


@require_POST
@admin_required
def user_active(request: HttpRequest, username: str) -> HttpResponse:
    """Deactivate (every docker login ends with it) or reactivate someone in one click."""
    person = get_object_or_404(User, username=username)
    form = ActiveForm(request.POST, person=person, acting_user=request.user)
    if not form.is_valid():
        messages.error(request, " ".join(form.non_field_errors() or ["Choose active (1) or inactive (0)."]))
        return _detail_page(request, person, status=400)
    active = form.cleaned_data["active"]
    services.update_user(person, is_active=active, context=AuditContext.from_request(request))
    messages.success(
        request, f"{person.username} is {'active again' if active else 'deactivated: every docker login ended'}."
    )
    return redirect("users:detail", username=person.username)


@sensitive_post_parameters("password")
@sensitive_variables("password")
@require_POST
@admin_required
def user_password(request: HttpRequest, username: str) -> HttpResponse:
    """Reset a password (typed, or generated and shown once); their docker logins end with it."""
    person = get_object_or_404(User, username=username)
    form = SetPasswordForm(request.POST)
    if form.is_valid():
        password, generated = form.password_to_set()
        try:
            services.set_password(person, password, validate=not generated, context=AuditContext.from_request(request))
        except ValidationError as exc:
            _add_error(form, exc)
        else:
            if generated:
                context = {"person": person, "password": password, "reset": True}
                return _secret_page(request, "users/password_shown.html", context)
            messages.success(request, f"Set a new password for {person.username}; their docker logins were ended.")
            return redirect("users:detail", username=person.username)
    return _detail_page(request, person, status=400, password_form=form)


@require_POST
@admin_required
def revoke_refresh(request: HttpRequest, username: str) -> HttpResponse:
    """Sign a person out of every ``docker login`` that kept a refresh token."""
    person = get_object_or_404(User, username=username)
    count = services.revoke_user_refresh_tokens(person, context=AuditContext.from_request(request))
    messages.success(request, f"Revoked {count} refresh token{'s' if count != 1 else ''} of {person.username}.")
    return redirect("users:detail", username=person.username)


@require_POST
@admin_required
def add_to_team(request: HttpRequest, username: str) -> HttpResponse:
    """Put this person in a team from their own page; back to their page (no re-post on reload)."""
    person = get_object_or_404(User, username=username)
    form = AddToTeamForm(request.POST, prefix="team")
    if form.is_valid():
        team, role = form.cleaned_data["team"], form.cleaned_data["role"]
        try:
            services.lead_set_membership(
                team, person, role, acting_user=request.user, context=AuditContext.from_request(request)
            )
        except ValidationError as exc:
            add_service_error(form, exc)
        else:
            messages.success(request, f"{person.username} is now a {role} of team {team.name}.")
            return redirect("users:detail", username=person.username)
    return _detail_page(request, person, status=400, team_form=form)
