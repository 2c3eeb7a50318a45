"""The team pages: a team's members, grants and robots; its leads change members, grants and robots here.

Admins, auditors and the team's members may see a team; only ``authz.is_team_lead`` (the team's
maintainers and admins) get the forms, and every change goes through ``services.lead_*``, which
refuse anyone else with ``PermissionDenied`` (403). Making, describing and deleting teams is for
admins only (``admin_required``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, IntegerField, Model, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import authz, services
from accounts.credential_forms import TeamRobotForm, add_credential_error, registry_hosts, with_state
from accounts.forms import AddMemberForm, DeleteTeamForm, GrantForm, TeamEditForm, TeamForm, add_service_error
from accounts.models import Grant, Membership, Robot, Team, TeamRole, User
from accounts.permissions import ROLE_ORDER
from audit.context import AuditContext
from registryadmin.guards import admin_required, is_admin


def _sees_every_team(user: User) -> bool:
    return user.is_active and (user.is_superuser or user.is_auditor)


def _count(model: type[Model], field: str = "team") -> Coalesce:
    """A per-team count as a subquery, so several counts never multiply each other's rows."""
    rows = model.objects.filter(**{field: OuterRef("pk")}).order_by().values(field).annotate(n=Count("pk"))
    return Coalesce(Subquery(rows.values("n"), output_field=IntegerField()), 0)


def _strongest_role(team_grants: list[Grant], now: datetime) -> str | None:
    """The most a lead can hand out: the team's strongest unexpired grant for every registry."""
    roles = {g.role for g in team_grants if g.registry_id is None and (g.expires_at is None or g.expires_at > now)}
    return max(roles, key=ROLE_ORDER.index, default=None)


def _led_team(request: HttpRequest, name: str) -> Team:
    team = get_object_or_404(Team, name=name)
    if not authz.is_team_lead(request.user, team):
        raise PermissionDenied(f"{request.user.get_username()} does not lead team {team.name}.")
    return team


def _team_context(request: HttpRequest, team: Team) -> dict[str, Any]:
    members = list(team.memberships.select_related("user").order_by("user__username"))
    if not (_sees_every_team(request.user) or any(m.user_id == request.user.pk for m in members)):
        raise PermissionDenied(f"Only members of team {team.name}, auditors and administrators may see it.")
    managed = Grant.objects.filter(managed_by=team).select_related("user", "team", "robot__team", "registry")
    now = timezone.now()
    return {
        "team": team,
        "members": members,
        "team_grants": list(team.grants.select_related("registry")),
        "managed_grants": managed.order_by("pattern", "id"),
        "robots": list(with_state(team.robots.all(), now)),
        "can_manage": authz.is_team_lead(request.user, team),
        "is_admin": is_admin(request.user),
        "now": now,
    }


def _team_page(request: HttpRequest, team: Team, *, status: int = 200, **extra: Any) -> HttpResponse:
    """The team page; ``extra`` replaces a blank form with a bound one, or carries a new robot's secret."""
    context = _team_context(request, team)
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
    context.update(extra)
    return render(request, "teams/detail.html", context, status=status)


def _subject_name(subject: User | Robot) -> str:
    return subject.login_name if isinstance(subject, Robot) else subject.username


@require_GET
@login_required
def team_list(request: HttpRequest) -> HttpResponse:
    """Admins and auditors see every team; everyone else the teams they belong to."""
    mine = Membership.objects.filter(team=OuterRef("pk"), user=request.user).values("role")[:1]
    teams = Team.objects.annotate(
        member_count=_count(Membership),
        grant_count=_count(Grant),
        managed_count=_count(Grant, "managed_by"),
        robot_count=_count(Robot),
        my_role=Subquery(mine),
    )
    if not _sees_every_team(request.user):
        teams = teams.filter(my_role__isnull=False)
    context = {
        "teams": teams,
        "lead_role": TeamRole.MAINTAINER,
        "sees_all": _sees_every_team(request.user),
        "can_create": is_admin(request.user),
    }
    return render(request, "teams/list.html", context)


@require_GET
@login_required
def team_detail(request: HttpRequest, name: str) -> HttpResponse:
    return _team_page(request, get_object_or_404(Team, name=name))


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
            return redirect("teams:detail", name=team.name)
    return _team_page(request, team, status=400, member_form=form)


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
        return _team_page(request, team, status=400, action_error=" ".join(exc.messages))
    messages.success(request, f"Removed {username} from team {team.name}.")
    return redirect("teams:detail", name=team.name)


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
            return redirect("teams:detail", name=team.name)
    return _team_page(request, team, status=400, grant_form=form)


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
        return _team_page(request, team, status=400, action_error=" ".join(exc.messages))
    messages.success(request, f"Revoked {grant.role} on {grant.pattern} from {subject}.")
    return redirect("teams:detail", name=team.name)


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
            hosts = registry_hosts() or ["HOST"]
            return _team_page(request, team, status=201, new_robot=robot, secret=secret, hosts=hosts)
    return _team_page(request, team, status=400, robot_form=form)


@require_POST
@login_required
def revoke_robot(request: HttpRequest, name: str, pk: int) -> HttpResponse:
    """A lead revokes one of the team's robots; another team's robot is not found on this page."""
    team = _led_team(request, name)
    robot = get_object_or_404(Robot.objects.select_related("team"), pk=pk, team=team)
    services.lead_revoke_robot(robot, acting_user=request.user, context=AuditContext.from_request(request))
    messages.success(request, f"Revoked {robot.login_name}: it no longer signs in.")
    return redirect("teams:detail", name=team.name)


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
            return redirect("teams:detail", name=team.name)
    return _team_page(request, team, status=400, edit_form=form)


@require_POST
@admin_required
def team_delete(request: HttpRequest, name: str) -> HttpResponse:
    """Deleting takes the team's memberships, its grants and its robots: the admin types the name first."""
    team = get_object_or_404(Team, name=name)
    form = DeleteTeamForm(request.POST, prefix="delete", team=team)
    if not form.is_valid():
        return _team_page(request, team, status=400, delete_form=form)
    services.delete_team(team, context=AuditContext.from_request(request))
    messages.success(request, f"Deleted team {name} with its memberships, grants and robots.")
    return redirect("teams:list")
