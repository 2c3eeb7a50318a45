"""The first face of the app: each persona's home page and "my access".

Was ``accounts/views.py`` before the layout split.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from accounts import services
from accounts.access.engine import describe_access
from accounts.access.subjects import subject_for_user
from accounts.models import AuthMode, Registry, Repository, User
from accounts.web import overview as parts
from accounts.web.my_access import access_rows
from audit.alerts import failed_login_bursts
from registryadmin.guards import is_admin, is_overseer

PUBLIC_SHOWN = 50  # public repositories named on the page; the rest are counted
STALE_SHOWN = 20  # robots with an old secret named on the page


def _my_access(user: User) -> dict[str, Any]:
    now = timezone.now()
    public = Repository.objects.filter(public=True).order_by("name")
    htpasswd_registries = Registry.objects.filter(auth_mode=AuthMode.HTPASSWD).values_list("service", flat=True)
    return {
        "entries": access_rows(user, describe_access(subject_for_user(user), now=now)),
        "public_repositories": public[:PUBLIC_SHOWN],
        "public_more": max(public.count() - PUBLIC_SHOWN, 0),
        "soon": now + timedelta(days=7),
        "htpasswd_registries": list(htpasswd_registries),
    }


def _overview(user: User) -> dict[str, Any]:
    """Admins and auditors: the week's attempts, recent denials, failures and bursts; admins also counts."""
    now = timezone.now()
    return {
        "counts": parts.counts() if is_admin(user) else [],
        "chart": parts.week_chart(now),
        "denials": parts.recent_denials(now),
        "failed_jobs": parts.failed_jobs(now),
        "doctor_failures": parts.doctor_failures(),
        "bursts": failed_login_bursts(now),
        "expiring": parts.expiring(now),
        "holds": services.limits.active_holds(now),
        "stale_robots": services.reminders.stale_robots(now, limit=STALE_SHOWN),
    }


def _lead(user: User) -> dict[str, Any]:
    teams = parts.led_teams(user)
    now, team_ids = timezone.now(), [t.pk for t in teams]
    return {
        "led_teams": teams,
        "team_expiring": parts.expiring(now, team_ids),
        "team_stale_robots": services.reminders.stale_robots(now, team_ids, limit=STALE_SHOWN) if team_ids else [],
    }


@require_GET
@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Admins and auditors get the overview; team leads their teams and what expires; everyone their access.

    Admins and team leads also see the access reviews waiting for them (``services.reviews.waiting_for``).
    """
    user = request.user
    context: dict[str, Any] = {"overseer": is_overseer(user)}
    context.update(_overview(user) if context["overseer"] else _my_access(user))
    if not user.is_superuser:
        context.update(_lead(user))
    context["reviews_waiting"] = services.reviews.waiting_for(user)
    context["first_day"] = _first_day(user)
    return render(request, "accounts/home.html", context)


def _first_day(user: User) -> list[parts.Step]:
    """Admins see the guide until every step is done; then it goes away for good (nothing to dismiss)."""
    if not is_admin(user):
        return []
    steps = parts.first_day_steps()
    return [] if all(step.done for step in steps) else steps


@require_GET
@login_required
def my_access(request: HttpRequest) -> HttpResponse:
    """What the signed-in user may pull, push and delete, and why (from the engine)."""
    return render(request, "accounts/my_access.html", _my_access(request.user))
