"""The grants pages: every grant with filters for admins and auditors; admins give, change and revoke.

Auditors read every grant and change none (``admin_required`` on every POST); team leads change
their team's grants on the team pages. Each change is one service call that writes its audit record.

Was ``accounts/grant_views.py`` before the layout split.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Page
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import services
from accounts.models import Grant, Robot, Role, Team, User
from accounts.web.forms.common import add_service_error
from accounts.web.forms.grants import SOON, EditGrantForm, GrantFilterForm, NewGrantForm
from audit.context import AuditContext
from registryadmin.guards import admin_required, is_admin, overseer_required
from registryadmin.pages import next_url, render_list
from registryadmin.paging import page_of

# Everything a row shows, fetched with the row: the query count never grows with the page.
GRANTS = Grant.objects.select_related("user", "team", "robot__team", "registry", "managed_by", "created_by")


def _page_of_grants(request: HttpRequest, grants: QuerySet[Grant]) -> Page:
    """The page's grant ids first (the index on pattern, id answers that), then those 50 with their joins.

    Sorting and limiting the seven-table join itself made PostgreSQL plan for 17 ms at 50k grants,
    and sort all of them when no index served the order.
    """
    page = page_of(request, grants.values_list("pk", flat=True))
    rows = GRANTS.in_bulk(list(page.object_list))
    page.object_list = [rows[pk] for pk in page.object_list if pk in rows]
    services.attach_parents(page.object_list, timezone.now())  # the team grant each managed one lies in
    return page


def _list_url() -> str:
    return reverse("grants:list")


def _subject_name(subject: User | Team | Robot) -> str:
    if isinstance(subject, Robot):
        return subject.login_name
    return subject.username if isinstance(subject, User) else subject.name


@require_GET
@overseer_required
def grant_list(request: HttpRequest) -> HttpResponse:
    """Every grant, filtered by subject, pattern, role, registry, managing team and state."""
    form = GrantFilterForm(request.GET)
    now = timezone.now()
    valid = form.is_valid()
    grants = form.apply(Grant.objects.order_by("pattern", "id"), now) if valid else Grant.objects.none()
    context: dict[str, Any] = {
        "form": form,
        "page": _page_of_grants(request, grants),
        "now": now,
        "soon": now + SOON,
        "roles": Role.choices,
        "can_change": is_admin(request.user),
        "next": request.get_full_path(),
    }
    return render_list(request, "grants/list.html", "grants/_results.html", context, valid=valid)


@require_http_methods(["GET", "POST"])
@admin_required
def grant_new(request: HttpRequest) -> HttpResponse:
    """Give a user, team or robot a role; ``?user=``, ``?team=`` or ``?robot=`` fill in the subject."""
    if request.method == "GET":
        form = NewGrantForm(initial=NewGrantForm.prefill(request.GET))
        # A page that links here (the team page) passes ?next= to be returned to after the grant.
        return render(request, "grants/new.html", {"form": form, "next": request.GET.get("next", "")[:500]})
    form = NewGrantForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            grant = services.create_grant(
                data["subject"],
                data["pattern"],
                data["role"],
                registry=data["registry"],
                expires_at=form.expires_at,
                managed_by=data["managed_by"],
                context=AuditContext.from_request(request),
            )
        except ValidationError as exc:
            add_service_error(form, exc)
        else:
            name = _subject_name(data["subject"])
            messages.success(request, f"Granted {grant.role} on {grant.pattern} to {name}.")
            return redirect(next_url(request, f"{_list_url()}?{urlencode({'subject': name})}"))
    return render(request, "grants/new.html", {"form": form, "next": request.POST.get("next", "")[:500]}, status=400)


@require_POST
@admin_required
def grant_edit(request: HttpRequest, pk: int) -> HttpResponse:
    """A new role and/or expiry (or none); a mistake re-shows the form for that grant with the error."""
    grant = get_object_or_404(GRANTS, pk=pk)
    form = EditGrantForm(request.POST)
    back = next_url(request, _list_url())
    if form.is_valid():
        try:
            grant = services.update_grant(grant, context=AuditContext.from_request(request), **form.changes)
        except ValidationError as exc:
            add_service_error(form, exc)
        else:
            messages.success(request, f"Saved: {grant}.")
            return redirect(back)
    context = {"grant": grant, "form": form, "next": back, "now": timezone.now()}
    return render(request, "grants/edit.html", context, status=400)


@require_POST
@admin_required
def grant_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    """Revoke a grant; HTMX removes the row in place, a plain form goes back to the list."""
    grant = get_object_or_404(GRANTS, pk=pk)
    label = f"{grant.role} on {grant.pattern} from {grant.subject_label}"
    services.lead_revoke(grant, acting_user=request.user, context=AuditContext.from_request(request))
    if request.htmx:
        return render(request, "_done_row.html", {"text": f"Revoked {label}."})
    messages.success(request, f"Revoked {label}.")
    return redirect(next_url(request, _list_url()))
