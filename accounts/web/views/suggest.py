"""Suggestions as you type for the people and team fields (issue 20, item 7).

A text field with ``hx-get`` asks here on each pause in typing and swaps the answer, a list of
``<option>`` elements, into its ``<datalist>``. Without JavaScript the field stays a plain text
field and the form checks the name on submit. What each person may see follows the API's
``/api/users/search``: a lead gets usernames only (never emails: no probing who owns an address),
admins and auditors also see names; anyone else is refused.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from accounts import authz
from accounts.models import Team, User
from registryadmin.guards import is_overseer

LIMIT = 20  # a datalist longer than this helps no one: type more
LONGEST = 150  # longer than any username or team name: refuse rather than search


def _typed(request: HttpRequest) -> str:
    """``?q=``, or the value of the field itself (htmx sends the field under its own name)."""
    typed = request.GET.get("q") or next((v for k, v in request.GET.items() if k != "q" and v), "")
    return typed.strip()[:LONGEST]


def _may_pick(user: User) -> bool:
    return is_overseer(user) or bool(authz.led_team_ids(user))


def _people(typed: str) -> QuerySet[User]:
    matching = Q(username__icontains=typed) | Q(first_name__icontains=typed) | Q(last_name__icontains=typed)
    return User.objects.filter(matching, is_active=True).order_by("username")


def _teams(user: User, typed: str) -> QuerySet[Team]:
    teams = Team.objects.filter(name__icontains=typed).order_by("name")
    return teams if is_overseer(user) else teams.filter(pk__in=authz.led_team_ids(user))


@require_GET
@login_required
def users(request: HttpRequest) -> HttpResponse:
    """Active people matching what was typed: usernames for leads, with names for overseers."""
    if not _may_pick(request.user):
        raise PermissionDenied("Only team leads, auditors and administrators pick people.")
    typed = _typed(request)
    found = _people(typed)[:LIMIT] if typed else []
    options = [(p.username, p.get_full_name() if is_overseer(request.user) else "") for p in found]
    return render(request, "users/_suggestions.html", {"options": options})


@require_GET
@login_required
def teams(request: HttpRequest) -> HttpResponse:
    """Teams matching what was typed: every team for overseers, the teams they lead for leads."""
    if not _may_pick(request.user):
        raise PermissionDenied("Only team leads, auditors and administrators pick teams.")
    typed = _typed(request)
    found = _teams(request.user, typed).values_list("name", flat=True)[:LIMIT] if typed else []
    return render(request, "users/_suggestions.html", {"options": [(name, "") for name in found]})
