"""The first face of the app: sign-in and "my access"."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from accounts.access import subject_for_user
from accounts.models import Repository
from accounts.permissions import describe_access


@require_GET
@login_required
def home(request: HttpRequest) -> HttpResponse:
    """What the signed-in user may pull, push and delete, and why (from the engine)."""
    subject = subject_for_user(request.user)
    entries = describe_access(subject, now=timezone.now())
    public = Repository.objects.filter(public=True).select_related("registry")
    return render(request, "accounts/home.html", {"entries": entries, "public_repositories": public})
