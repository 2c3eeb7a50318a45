"""The team pages: a team's members, grants and robots; its leads change members, grants and robots here.

Admins, auditors and the team's members may see a team; only ``authz.is_team_lead`` (the team's
maintainers and admins) get the forms, and every change goes through ``services.lead_*``, which
refuse anyone else with ``PermissionDenied`` (403). Making, describing and deleting teams is for
admins only (``admin_required``).

Memberships have sources: a local role (set here) and directory groups mapped to the team. The
member controls act on the local source only; a membership that only the directory gives is changed
in the directory. Admins map directory groups to the team here (``services.directory``), while the
directory is on; everyone who sees the team sees its mappings.

The list and a team's members and managed grants come 50 a page (a thousand teams, a team of
hundreds): the queries per page stay the same however many there are.

Was ``accounts/team_views.py`` before the layout split.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Page, Paginator
from django.db.models import Count, IntegerField, Model, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import authz, services
from accounts.constants import ROLE_ORDER
from accounts.models import DirectoryGroup, Grant, Membership, Registry, Robot, Team, TeamRole, User
from accounts.web.forms.common import add_service_error
from accounts.web.forms.credentials import TeamRobotForm, add_credential_error
from accounts.web.forms.teams import (
    AddMemberForm,
    DeleteTeamForm,
    DirectoryGroupForm,
    ExpiryChangeForm,
    GrantForm,
    TeamEditForm,
    TeamForm,
)
from audit.context import AuditContext
from registryadmin.guards import admin_required, is_admin
from registryadmin.pages import render_list
from registryadmin.paging import PAGE_SIZE, page_of


def _sees_every_team(user: User) -> bool:
    return user.is_active and (user.is_superuser or user.is_auditor)


class TeamSearchForm(forms.Form):
    """The GET searches of the team pages: teams by name, a team's members by name (NUL bytes refused)."""

    q = forms.CharField(max_length=100, required=False, strip=True, label="Team name")
    member = forms.CharField(max_length=150, required=False, strip=True, label="Find a member")

    def text(self, name: str) -> str:
        return self.cleaned_data.get(name, "") if self.is_valid() else ""


def _count(model: type[Model], field: str = "team") -> Coalesce:
    """A per-team count as a subquery, so several counts never multiply each other's rows."""
    rows = model.objects.filter(**{field: OuterRef("pk")}).order_by().values(field).annotate(n=Count("pk"))
    return Coalesce(Subquery(rows.values("n"), output_field=IntegerField()), 0)


def _strongest_role(team_grants: list[Grant], now: datetime) -> str | None:
    """The most a lead can hand out: the team's strongest unexpired grant for every registry."""
    roles = {g.role for g in team_grants if g.registry_id is None and (g.expires_at is None or g.expires_at > now)}
    return max(roles, key=ROLE_ORDER.index, default=None)


# The team page's sections, each at its own URL (?tab=); the first is the page itself.
TABS = ("members", "grants", "robots", "settings")


def _led_team(request: HttpRequest, name: str) -> Team:
    team = get_object_or_404(Team, name=name)
    if not authz.is_team_lead(request.user, team):
        raise PermissionDenied(f"{request.user.get_username()} does not lead team {team.name}.")
    return team


def _named_page(
    request: HttpRequest, queryset: QuerySet, param: str, anchor: str, rows: QuerySet | None = None
) -> Page:
    """A page of one of the team page's lists, numbered by its own ``param`` so both page apart.

    With ``rows``, the page is found by id and its rows are then fetched from ``rows`` (sorting a few
    hundred bare ids is cheap; sorting them joined to five tables is not). ``previous_url`` and
    ``next_url`` keep every other parameter (the other list's page, a search).
    """
    ids = queryset if rows is None else queryset.values_list("pk", flat=True)
    page = Paginator(ids, PAGE_SIZE).get_page(request.GET.get(param))
    if rows is not None:
        found = rows.in_bulk(list(page.object_list))
        page.object_list = [found[pk] for pk in page.object_list if pk in found]

    def link(number: int) -> str:
        query = request.GET.copy()
        query[param] = str(number)
        return f"?{query.urlencode()}#{anchor}"

    page.previous_url = link(page.previous_page_number()) if page.has_previous() else ""
    page.next_url = link(page.next_page_number()) if page.has_next() else ""
    return page


def _members(team: Team, search: str) -> QuerySet[Membership]:
    members = team.memberships.select_related("user").prefetch_related("directory_groups").order_by("user__username")
    if search:
        members = members.filter(
            Q(user__username__icontains=search)
            | Q(user__first_name__icontains=search)
            | Q(user__last_name__icontains=search)
        )
    return members


def _team_context(request: HttpRequest, team: Team) -> dict[str, Any]:
    if not (_sees_every_team(request.user) or team.memberships.filter(user=request.user).exists()):
        raise PermissionDenied(f"Only members of team {team.name}, auditors and administrators may see it.")
    search = TeamSearchForm(request.GET)
    managed = Grant.objects.filter(managed_by=team).order_by("pattern", "id")
    managed_rows = Grant.objects.select_related("user", "team", "robot__team", "registry", "managed_by")
    now = timezone.now()
    managed_page = _named_page(request, managed, "managed", "managed", rows=managed_rows)
    services.attach_parents(managed_page.object_list, now)
    return {
        "team": team,
        "search": search,
        "member_search": search.text("member"),
        "members": _named_page(request, _members(team, search.text("member")), "members", "members"),
        "team_grants": list(team.grants.select_related("registry")),
        "managed_grants": managed_page,
        "robots": list(team.robots.with_state(now)),
        "directory_groups": list(team.directory_groups.annotate(member_count=Count("memberships")).order_by("dn")),
        "directory_on": services.directory.enabled(),
        "can_manage": authz.is_team_lead(request.user, team),
        "is_admin": is_admin(request.user),
        "now": now,
        "stale_before": now - timedelta(days=settings.ROBOT_SECRET_MAX_AGE_DAYS),
    }


def _tab_url(team: Team, tab: str) -> str:
    """Back to a section of the team page after a change (members is the page itself)."""
    url = reverse("teams:detail", kwargs={"name": team.name})
    return url if tab == TABS[0] else f"{url}?{urlencode({'tab': tab})}"


def _team_page(
    request: HttpRequest, team: Team, tab: str = TABS[0], *, status: int = 200, **extra: Any
) -> HttpResponse:
    """One section of the team page; ``extra`` replaces a blank form with a bound one, or carries a new robot's secret.

    A form that failed is shown in its own section, so the section follows the view, not the query.
    """
    context = _team_context(request, team)
    if tab == "settings" and not context["is_admin"]:
        raise Http404("Only administrators change a team's settings.")
    context["tab"] = tab
    context["tabs"] = [t for t in TABS if t != "settings" or context["is_admin"]]
    if context["can_manage"]:
        cap = _strongest_role(context["team_grants"], context["now"])
        context["cap"] = cap
        context["member_form"] = AddMemberForm(prefix="member")
        context["grant_form"] = GrantForm(prefix="grant", team=team, cap=cap)
        context["robot_form"] = TeamRobotForm(prefix="robot")
        context["action_error"] = ""
    if context["is_admin"]:
        context["edit_form"] = TeamEditForm(prefix="team", initial={"description": team.description})
        context["delete_form"] = DeleteTeamForm(prefix="delete", team=team)
        context["group_form"] = DirectoryGroupForm(prefix="group")
    context.update(extra)
    return render(request, "teams/detail.html", context, status=status)


def _subject_name(subject: User | Robot) -> str:
    return subject.login_name if isinstance(subject, Robot) else subject.username


def _with_counts(teams: QuerySet[Team], user: User) -> QuerySet[Team]:
    """What a row shows beyond the team. Run for one page's ids only: an OFFSET would otherwise
    evaluate the four counts for every team it skips."""
    mine = Membership.objects.filter(team=OuterRef("pk"), user=user).values("role")[:1]
    return teams.annotate(
        member_count=_count(Membership),
        grant_count=_count(Grant),
        managed_count=_count(Grant, "managed_by"),
        robot_count=_count(Robot),
        my_role=Subquery(mine),
    ).order_by("name")


@require_GET
@login_required
def team_list(request: HttpRequest) -> HttpResponse:
    """Admins and auditors see every team; everyone else the teams they belong to. Searchable by name."""
    form = TeamSearchForm(request.GET)
    teams = Team.objects.order_by("name")
    if not _sees_every_team(request.user):
        teams = teams.filter(memberships__user=request.user)
    if q := form.text("q"):
        teams = teams.filter(name__icontains=q)
    page = page_of(request, teams.values_list("pk", flat=True))
    page.object_list = list(_with_counts(Team.objects.filter(pk__in=list(page.object_list)), request.user))
    context = {
        "form": form,
        "q": q,
        "page": page,
        "lead_role": TeamRole.MAINTAINER,
        "sees_all": _sees_every_team(request.user),
        "can_create": is_admin(request.user),
    }
    return render_list(request, "teams/list.html", "teams/_results.html", context, valid=form.is_valid())


@require_GET
@login_required
def team_detail(request: HttpRequest, name: str) -> HttpResponse:
    """Members (searchable) and managed grants, 50 a page each; the team's grants and robots in full."""
    team = get_object_or_404(Team, name=name)
    tab = request.GET.get("tab") or TABS[0]
    if tab not in TABS:
        raise Http404("The team page has no such section.")
    return _team_page(request, team, tab, status=200 if TeamSearchForm(request.GET).is_valid() else 400)


@require_POST
@login_required
def add_member(request: HttpRequest, name: str) -> HttpResponse:
    team = _led_team(request, name)
    form = AddMemberForm(request.POST, prefix="member")
    if form.is_valid():
        user, role = form.cleaned_data["username"], form.cleaned_data["role"]
        try:
            services.lead_set_membership(
                team, user, role, acting_user=request.user, context=AuditContext.from_request(request)
            )
        except ValidationError as exc:
            add_service_error(form, exc)
        else:
            messages.success(request, f"{user.username} is now a {role} of team {team.name}.")
            return redirect(_tab_url(team, "members"))
    return _team_page(request, team, "members", status=400, member_form=form)


@require_POST
@login_required
def remove_member(request: HttpRequest, name: str, username: str) -> HttpResponse:
    team = _led_team(request, name)
    membership = get_object_or_404(
        Membership.objects.select_related("team", "user"), team=team, user__username=username
    )
    try:
        services.lead_remove_membership(
            membership, acting_user=request.user, context=AuditContext.from_request(request)
        )
    except ValidationError as exc:
        return _team_page(request, team, "members", status=400, action_error=" ".join(exc.messages))
    kept = Membership.objects.filter(pk=membership.pk).prefetch_related("directory_groups").first()
    if kept is None:
        messages.success(request, f"Removed {username} from team {team.name}.")
    else:
        groups = ", ".join(group.dn for group in kept.directory_groups.all())
        messages.success(
            request, f"Removed {username}'s local role; they stay a {kept.role} of team {team.name} through {groups}."
        )
    return redirect(_tab_url(team, "members"))


@require_POST
@login_required
def add_grant(request: HttpRequest, name: str) -> HttpResponse:
    team = _led_team(request, name)
    cap = _strongest_role(list(team.grants.all()), timezone.now())
    form = GrantForm(request.POST, prefix="grant", team=team, cap=cap)
    if form.is_valid():
        subject, pattern, role = (form.cleaned_data[key] for key in ("subject", "pattern", "role"))
        try:
            grant = services.lead_grant(
                team,
                subject,
                pattern,
                role,
                expires_at=form.expires_at,
                acting_user=request.user,
                context=AuditContext.from_request(request),
            )
        except ValidationError as exc:
            add_service_error(form, exc)
        else:
            messages.success(request, f"Granted {grant.role} on {grant.pattern} to {_subject_name(subject)}.")
            return redirect(_tab_url(team, "grants"))
    return _team_page(request, team, "grants", status=400, grant_form=form)


@require_POST
@login_required
def revoke_grant(request: HttpRequest, name: str, grant_id: int) -> HttpResponse:
    team = _led_team(request, name)
    grant = get_object_or_404(Grant.objects.select_related("user", "team", "robot__team"), pk=grant_id)
    if grant.managed_by_id != team.pk:
        raise PermissionDenied(f"Team {team.name} does not manage that grant.")
    subject = grant.subject_label
    try:
        services.lead_revoke(grant, acting_user=request.user, context=AuditContext.from_request(request))
    except ValidationError as exc:
        return _team_page(request, team, "grants", status=400, action_error=" ".join(exc.messages))
    messages.success(request, f"Revoked {grant.role} on {grant.pattern} from {subject}.")
    return redirect(_tab_url(team, "grants"))


@require_POST
@login_required
def grant_expiry(request: HttpRequest, name: str, grant_id: int) -> HttpResponse:
    """A lead extends or shortens a grant the team manages (never past the team grant it lies in)."""
    team = _led_team(request, name)
    rows = Grant.objects.select_related("user", "team", "robot__team", "registry", "managed_by")
    grant = get_object_or_404(rows, pk=grant_id)
    if grant.managed_by_id != team.pk:
        raise PermissionDenied(f"Team {team.name} does not manage that grant.")
    form = ExpiryChangeForm(request.POST)
    if not form.is_valid():
        problems = " ".join(str(e) for errors in form.errors.values() for e in errors)
        return _team_page(request, team, "grants", status=400, action_error=problems)
    try:
        grant, capped = services.lead_set_expiry(
            grant, form.new_expiry, acting_user=request.user, context=AuditContext.from_request(request)
        )
    except ValidationError as exc:
        return _team_page(request, team, "grants", status=400, action_error=" ".join(exc.messages))
    until = f"until {grant.expires_at:%Y-%m-%d %H:%M} UTC" if grant.expires_at else "with no expiry"
    note = " (capped: the team's own grant ends then)" if capped else ""
    messages.success(request, f"{grant.role} on {grant.pattern} for {grant.subject_label} now lasts {until}{note}.")
    return redirect(_tab_url(team, "grants"))


# Team robots (team leads) -----------------------------------------------------------


@never_cache
@require_POST
@login_required
def add_robot(request: HttpRequest, name: str) -> HttpResponse:
    """A lead makes a robot of the team; the page it answers with is the only place its secret appears."""
    team = _led_team(request, name)
    form = TeamRobotForm(request.POST, prefix="robot")
    if form.is_valid():
        try:
            robot, secret = services.lead_create_robot(
                team,
                form.cleaned_data["name"],
                description=form.cleaned_data["description"],
                expires_at=form.expires_at,
                grants=form.cleaned_data["grants"],
                acting_user=request.user,
                context=AuditContext.from_request(request),
            )
        except ValidationError as exc:
            add_credential_error(form, exc)
        else:
            hosts = Registry.objects.login_hosts() or ["HOST"]
            return _team_page(request, team, "robots", status=201, new_robot=robot, secret=secret, hosts=hosts)
    return _team_page(request, team, "robots", status=400, robot_form=form)


@require_POST
@login_required
def revoke_robot(request: HttpRequest, name: str, pk: int) -> HttpResponse:
    """A lead revokes one of the team's robots; another team's robot is not found on this page."""
    team = _led_team(request, name)
    robot = get_object_or_404(Robot.objects.select_related("team"), pk=pk, team=team)
    services.lead_revoke_robot(robot, acting_user=request.user, context=AuditContext.from_request(request))
    messages.success(request, f"Revoked {robot.login_name}: it no longer signs in.")
    return redirect(_tab_url(team, "robots"))


# Directory groups of a team (admins) ---------------------------------------------------


def _directory_off(request: HttpRequest, team: Team) -> HttpResponse | None:
    """The refusal (409) while the directory is off: no sync or sign-in would act on a mapping."""
    if services.directory.enabled():
        return None
    refusal = "The directory is off (LDAP_SERVER_URI is not set): its group mappings cannot change now."
    return _team_page(request, team, status=409, action_error=refusal)


@require_POST
@admin_required
def add_directory_group(request: HttpRequest, name: str) -> HttpResponse:
    """Map a directory group to the team, or change the role a mapped group gives (same DN)."""
    team = get_object_or_404(Team, name=name)
    if refusal := _directory_off(request, team):
        return refusal
    form = DirectoryGroupForm(request.POST, prefix="group")
    if form.is_valid():
        dn, role = form.cleaned_data["group"], form.cleaned_data["role"]
        same = services.directory.normalize_dn(dn)
        kept = [(group.dn, group.role) for group in team.directory_groups.exclude(dn=same)]
        try:
            services.directory.set_directory_groups(
                team, [*kept, (dn, role)], context=AuditContext.from_request(request)
            )
        except ValidationError as exc:
            add_service_error(form, exc)
        else:
            messages.success(
                request, f"Members of {same} join team {team.name} as {role} at their next sign-in or sync."
            )
            return redirect(_tab_url(team, "members"))
    return _team_page(request, team, "members", status=400, group_form=form)


@require_POST
@admin_required
def remove_directory_group(request: HttpRequest, name: str, pk: int) -> HttpResponse:
    """Unmap a group: every membership loses that source at once (and goes if it had no other)."""
    team = get_object_or_404(Team, name=name)
    if refusal := _directory_off(request, team):
        return refusal
    mapping = get_object_or_404(DirectoryGroup, pk=pk, team=team)
    kept = [(group.dn, group.role) for group in team.directory_groups.exclude(pk=mapping.pk)]
    try:
        services.directory.set_directory_groups(team, kept, context=AuditContext.from_request(request))
    except ValidationError as exc:
        return _team_page(request, team, "members", status=400, action_error=" ".join(exc.messages))
    messages.success(request, f"Team {team.name} no longer takes members from {mapping.dn}.")
    return redirect(_tab_url(team, "members"))


# Teams themselves (admins) ------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@admin_required
def team_new(request: HttpRequest) -> HttpResponse:
    """An admin makes a team; its leads are then set on the team page."""
    if request.method == "GET":
        return render(request, "teams/new.html", {"form": TeamForm()})
    form = TeamForm(request.POST)
    if form.is_valid():
        try:
            team = services.create_team(
                form.cleaned_data["name"],
                description=form.cleaned_data["description"],
                context=AuditContext.from_request(request),
            )
        except ValidationError as exc:
            add_service_error(form, exc)
        else:
            messages.success(request, f"Made team {team.name}. Add its members and leads below.")
            return redirect("teams:detail", name=team.name)
    return render(request, "teams/new.html", {"form": form}, status=400)


@require_POST
@admin_required
def team_edit(request: HttpRequest, name: str) -> HttpResponse:
    team = get_object_or_404(Team, name=name)
    form = TeamEditForm(request.POST, prefix="team")
    if form.is_valid():
        try:
            services.update_team(
                team, description=form.cleaned_data["description"], context=AuditContext.from_request(request)
            )
        except ValidationError as exc:
            add_service_error(form, exc)
        else:
            messages.success(request, f"Saved the description of team {team.name}.")
            return redirect(_tab_url(team, "settings"))
    return _team_page(request, team, "settings", status=400, edit_form=form)


@require_POST
@admin_required
def team_delete(request: HttpRequest, name: str) -> HttpResponse:
    """Deleting takes the team's memberships, its grants and its robots: the admin types the name first."""
    team = get_object_or_404(Team, name=name)
    form = DeleteTeamForm(request.POST, prefix="delete", team=team)
    if not form.is_valid():
        return _team_page(request, team, "settings", status=400, delete_form=form)
    services.delete_team(team, context=AuditContext.from_request(request))
    messages.success(request, f"Deleted team {name} with its memberships, grants and robots.")
    return redirect("teams:list")
