"""Every robot account, for admins and auditors; admins make and revoke them here.

Team leads manage their own team's robots on the team page; the revoke action here is
shared with them (``services.lead_revoke_robot`` decides), so a lead may post to it for a
robot of a team they lead and is refused (403) for any other.

Was ``accounts/robot_views.py`` before the layout split.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import F, Prefetch
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import authz, services
from accounts.models import Grant, Registry, Robot
from accounts.web.forms.credentials import (
    GLOBAL_TEAM,
    RobotFilterForm,
    RobotForm,
    RotateSecretForm,
    add_credential_error,
)
from audit.context import AuditContext
from registryadmin.guards import admin_required, is_admin, overseer_required
from registryadmin.pages import next_url, render_list
from registryadmin.paging import page_of


def _robots() -> Any:
    grants = Grant.objects.select_related("registry").order_by("pattern", "pk")
    return Robot.objects.select_related("team").prefetch_related(Prefetch("grants", queryset=grants))


@require_GET
@overseer_required
def robot_list(request: HttpRequest) -> HttpResponse:
    """Every robot with its grants, state and last use; filtered by search, team and state.

    Global robots come first on every database (PostgreSQL would otherwise sort them last).
    The team is typed (the template draws no <select> of every team: at a thousand teams its
    options were most of the page's time and size).
    """
    filters = RobotFilterForm(request.GET)
    now = timezone.now()
    robots = _robots().with_state(now)
    valid = filters.is_valid()
    robots = filters.filter(robots) if valid else robots.none()
    context = {
        "filters": filters,
        "page": page_of(request, robots.order_by(F("team__name").asc(nulls_first=True), "name", "pk")),
        "can_change": is_admin(request.user),
        "global_team": GLOBAL_TEAM,
        "now": now,
        "stale_before": now - timedelta(days=settings.ROBOT_SECRET_MAX_AGE_DAYS),
    }
    return render_list(request, "robots/list.html", "robots/_results.html", context, valid=valid)


@never_cache
@require_http_methods(["GET", "POST"])
@admin_required
def robot_new(request: HttpRequest) -> HttpResponse:
    """An admin makes a robot of any team, or a global one; the response shows its secret once."""
    if request.method == "GET":
        form = RobotForm(initial={"team": request.GET.get("team", "")[:100]})
        return render(request, "robots/new.html", {"form": form})
    form = RobotForm(request.POST)
    if form.is_valid():
        try:
            robot, secret = services.create_robot(
                form.cleaned_data["team"],
                form.cleaned_data["name"],
                description=form.cleaned_data["description"],
                expires_at=form.expires_at,
                grants=form.cleaned_data["grants"],
                context=AuditContext.from_request(request),
            )
        except ValidationError as exc:
            add_credential_error(form, exc)
        else:
            context = {"robot": robot, "secret": secret, "hosts": Registry.objects.login_hosts() or ["HOST"]}
            return render(request, "robots/created.html", context, status=201)
    return render(request, "robots/new.html", {"form": form}, status=400)


@require_POST
@login_required
def robot_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    """Admins revoke any robot, team leads their team's (the service refuses anyone else with 403)."""
    robot = get_object_or_404(Robot.objects.select_related("team"), pk=pk)
    services.lead_revoke_robot(robot, acting_user=request.user, context=AuditContext.from_request(request))
    messages.success(request, f"Revoked {robot.login_name}: it no longer signs in.")
    if is_admin(request.user) or robot.team is None:
        return redirect(next_url(request, reverse("robots:list")))
    return redirect(next_url(request, reverse("teams:detail", kwargs={"name": robot.team.name})))


@never_cache  # the answer holds the new secret
@require_POST
@login_required
def robot_rotate(request: HttpRequest, pk: int) -> HttpResponse:
    """A new secret, shown once (admins any robot, team leads their team's; the service refuses others: 403).

    The old secret keeps working for the grace chosen, so CI and deploy hosts can be switched over.
    """
    robot = get_object_or_404(Robot.objects.select_related("team"), pk=pk)
    if not authz.can_revoke_robot(request.user, robot):  # before the input: nobody else learns anything
        raise PermissionDenied(f"{request.user.get_username()} may not rotate {robot.login_name}.")
    form = RotateSecretForm(request.POST)
    if not form.is_valid():
        return render(request, "robots/rotated.html", {"robot": robot, "form": form}, status=400)
    try:
        rotation = services.lead_rotate_robot(
            robot, grace=form.grace_period, acting_user=request.user, context=AuditContext.from_request(request)
        )
    except ValidationError as exc:
        return render(request, "robots/rotated.html", {"robot": robot, "error": " ".join(exc.messages)}, status=400)
    hosts = Registry.objects.login_hosts() or ["HOST"]
    context = {"robot": rotation.robot, "secret": rotation.secret, "notes": rotation.notes, "hosts": hosts}
    return render(request, "robots/rotated.html", context)
