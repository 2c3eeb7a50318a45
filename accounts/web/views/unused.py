"""The unused-rights page: what the audit history shows nobody uses, with one click to take it back.

Admins and auditors see the whole report, a team's leads the part their teams manage (its grants
and robots); everyone else gets 403. Admins and leads apply or dismiss a proposal (each its own
small form posting the proposal's key); the service finds it again in the report as it stands
now, so a right used since is never taken back on a stale page. Auditors only read.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from accounts import services
from accounts.models import ProposalKind, User
from audit.context import AuditContext
from registryadmin.paging import page_of


class ReportForm(forms.Form):
    """The period and, to find one's way in thousands of proposals, what kind, whose and which team's."""

    days = forms.CharField(required=False)
    kind = forms.ChoiceField(required=False, choices=[("", "every proposal"), *ProposalKind.choices], label="Proposal")
    q = forms.CharField(required=False, max_length=255, strip=True, label="Who (name contains)")
    team = forms.CharField(required=False, max_length=100, strip=True, label="Team")

    def clean_days(self) -> int:
        return services.unused.check_days(self.cleaned_data["days"] or services.unused.default_days())

    def narrow(self, proposals: list[services.unused.Proposal]) -> list[services.unused.Proposal]:
        kind, q, team = (self.cleaned_data[name] for name in ("kind", "q", "team"))
        return [
            p
            for p in proposals
            if (not kind or p.proposal == kind)
            and (not q or q.casefold() in p.subject.casefold())
            and (not team or p.team == team)
        ]


class ProposalForm(forms.Form):
    """A proposal named by its key, in the report of ``days`` days (and, to dismiss it, why)."""

    key = forms.RegexField(regex=r"^[0-9a-f]{32}$", error_messages={"invalid": "That is not a proposal's key."})
    days = forms.IntegerField()
    reason = forms.CharField(required=False, max_length=500, strip=True)

    def clean_days(self) -> int:
        return services.unused.check_days(self.cleaned_data["days"])


def _scope(user: User) -> set[int] | None:
    """The report's part ``user`` may see; 403 for someone who leads no team and oversees nothing."""
    team_ids = services.unused.visible_team_ids(user)
    if team_ids is not None and not team_ids:
        raise PermissionDenied("Only administrators, auditors and team leads see unused rights.")
    return team_ids


def _page(request: HttpRequest, days: int | None, *, status: int = 200, error: str = "", **extra: Any) -> HttpResponse:
    team_ids = _scope(request.user)
    form = ReportForm(request.GET if days is None else {"days": str(days)})
    report = services.unused.recent.get(form.cleaned_data["days"], team_ids) if form.is_valid() else None
    page = page_of(request, form.narrow(report.proposals) if report else [])
    context = {
        "form": form,
        "report": report,
        "page": page,
        "scope": "every team" if team_ids is None else "the teams you lead",
        # Leads see only their teams' part, all of which they may act on; auditors only read.
        "can_act": request.user.is_superuser or team_ids is not None,
        "action_error": error,
        **extra,
    }
    return render(request, "access/unused.html", context, status=status if form.is_valid() else 400)


@require_GET
@login_required
def unused_list(request: HttpRequest) -> HttpResponse:
    """The report for ``?days=N`` (default 90); ``?format=json`` gives the report's JSON."""
    if request.GET.get("format") == "json":
        form = ReportForm(request.GET)
        team_ids = _scope(request.user)
        if not form.is_valid():
            return JsonResponse({"errors": form.errors.get_json_data()}, status=400)
        return JsonResponse(services.unused.recent.get(form.cleaned_data["days"], team_ids).as_json())
    return _page(request, None)


def _back(days: int) -> str:
    return f"{reverse('access:unused')}?{urlencode({'days': days})}"


def _act(request: HttpRequest, verb: str) -> HttpResponse:
    if _scope(request.user) is None and not request.user.is_superuser:
        raise PermissionDenied("Auditors read the report; only administrators and team leads act on it.")
    form = ProposalForm(request.POST)
    if not form.is_valid():
        problems = "; ".join(str(e) for errors in form.errors.values() for e in errors)
        return _page(request, services.unused.default_days(), status=400, error=problems)
    key, days = form.cleaned_data["key"], form.cleaned_data["days"]
    context = AuditContext.from_request(request)
    try:
        if verb == "apply":
            proposal = services.unused.apply(key, days, acting_user=request.user, context=context)
            messages.success(request, f"Done: {services.unused.describe(proposal)}.")
        else:
            reason = form.cleaned_data["reason"]
            dismissal = services.unused.dismiss(key, days, reason, acting_user=request.user, context=context)
            messages.success(request, f"Dismissed until {dismissal.until:%Y-%m-%d}: {dismissal.reason}")
    except ValidationError as exc:
        return _page(request, days, status=400, error=" ".join(exc.messages))
    return redirect(_back(days))


@require_POST
@login_required
def unused_apply(request: HttpRequest) -> HttpResponse:
    """Carry out one proposal (admins; leads for their teams), through the services, audited."""
    return _act(request, "apply")


@require_POST
@login_required
def unused_dismiss(request: HttpRequest) -> HttpResponse:
    """Dismiss one proposal with a reason: not proposed again for the report's N days."""
    return _act(request, "dismiss")
