"""My personal access tokens: list them, make one (its secret shown once), revoke one.

Everyone signed in manages their own tokens here. Another person's token is "not found"
(404) rather than "forbidden", so token ids reveal nothing; only admins may revoke someone
else's token, and they come back to where they started (a safe ``next``).

Was ``accounts/pat_views.py`` before the layout split.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from accounts import services
from accounts.models import AuthMode, PersonalAccessToken, Registry
from accounts.web.forms.credentials import (
    AccessTokenForm,
    CredentialFilterForm,
    add_credential_error,
)
from audit.context import AuditContext
from registryadmin.guards import is_admin
from registryadmin.pages import next_url, render_list
from registryadmin.paging import page_of


def _page(request: HttpRequest, *, status: int = 200, **extra: Any) -> HttpResponse:
    """The token list with its create form; ``extra`` carries a bound form or a new secret."""
    filters = CredentialFilterForm(request.GET)
    tokens = PersonalAccessToken.objects.filter(user=request.user).with_state(timezone.now())
    valid = filters.is_valid()
    tokens = filters.filter(tokens) if valid else tokens.none()
    context = {
        "filters": filters,
        "page": page_of(request, tokens.order_by("-created_at", "-pk")),
        "form": AccessTokenForm(),
        "htpasswd_registries": Registry.objects.filter(auth_mode=AuthMode.HTPASSWD).values_list("service", flat=True),
        "listing": request.method == "GET",
        **extra,
    }
    if request.method != "GET":  # a create form answered: the whole page, with the secret or the form's errors
        return render(request, "tokens/list.html", context, status=status if valid else 400)
    return render_list(request, "tokens/list.html", "tokens/_results.html", context, valid=valid, status=status)


@require_GET
@login_required
def token_list(request: HttpRequest) -> HttpResponse:
    """My tokens, newest first, with search and a state filter."""
    return _page(request)


@never_cache
@require_POST
@login_required
def token_new(request: HttpRequest) -> HttpResponse:
    """Make a token for the signed-in user; the response is the only place its secret ever appears."""
    form = AccessTokenForm(request.POST)
    if form.is_valid():
        try:
            token, secret = services.create_access_token(
                request.user,
                form.cleaned_data["name"],
                read_only=form.cleaned_data["read_only"],
                patterns=form.cleaned_data["patterns"],
                expires_at=form.expires_at,
                context=AuditContext.from_request(request),
            )
        except ValidationError as exc:
            add_credential_error(form, exc)
        else:
            hosts = Registry.objects.login_hosts(token_mode_only=True) or ["HOST"]
            return _page(request, status=201, created=token, secret=secret, hosts=hosts)
    return _page(request, status=400, form=form)


@require_POST
@login_required
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    """The owner or an admin revokes a token; to anyone else it does not exist."""
    tokens = PersonalAccessToken.objects.select_related("user")
    if not is_admin(request.user):
        tokens = tokens.filter(user=request.user)
    token = get_object_or_404(tokens, pk=pk)
    services.revoke_access_token(token, context=AuditContext.from_request(request))
    owner = "" if token.user_id == request.user.pk else f" of {token.user.username}"
    messages.success(request, f"Revoked the token {token.name}{owner}: it no longer signs in.")
    return redirect(next_url(request, reverse("tokens:list")))
