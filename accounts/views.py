"""The first face of the app: sign-in and "my access"."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from accounts.access import subject_for_user
from accounts.models import AuthMode, Registry, Repository
from accounts.permissions import describe_access


@require_GET
@login_required
def home(request: HttpRequest) -> HttpResponse:
    """What the signed-in user may pull, push and delete, and why (from the engine)."""
    now = timezone.now()
    entries = describe_access(subject_for_user(request.user), now=now)
    public = Repository.objects.filter(public=True).select_related("registry")
    htpasswd_registries = Registry.objects.filter(auth_mode=AuthMode.HTPASSWD).values_list("service", flat=True)
    context = {
        "entries": entries,
        "public_repositories": public,
        "soon": now + timedelta(days=7),
        "htpasswd_registries": list(htpasswd_registries),
    }
    return render(request, "accounts/home.html", context)
