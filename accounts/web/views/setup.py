"""Client setup: how to log in to each registry with docker, skopeo, containerd and Kubernetes.

Every signed-in user sees it, with their own name in the commands. What works depends on the
registry's mode (../shared/PROTOCOL.md): in token mode users log in with a personal access token
(or their password) and robots with their secret; htpasswd mode knows one password per name, so
tokens and directory logins do not work there, and it enforces no roles.

Was ``accounts/setup_views.py`` before the layout split.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from urllib.parse import urlsplit

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from accounts.models import AuthMode, Registry
from registryadmin.guards import is_admin
from registryadmin.paging import page_of

PLACEHOLDER_HOST = "REGISTRY_HOST"
EXAMPLE_ROBOT = "robot$web+ci"
PER_PAGE = 10


@dataclass(frozen=True)
class ClientSetup:
    """The facts the instructions need for one registry."""

    registry: Registry
    host: str  # host[:port] as clients write it in image names
    known: bool  # False: the registry has no URL, ``host`` is a placeholder
    plain_http: bool
    htpasswd: bool


def client_setup(registry: Registry) -> ClientSetup:
    """Host and transport from the registry's URL; a placeholder host when no URL is set."""
    parts = urlsplit(registry.url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return ClientSetup(
        registry=registry,
        host=host or PLACEHOLDER_HOST,
        known=bool(host),
        plain_http=parts.scheme == "http",
        htpasswd=registry.auth_mode == AuthMode.HTPASSWD,
    )


class SetupFilterForm(forms.Form):
    registry = forms.CharField(required=False, max_length=255)


@require_GET
@login_required
def setup(request: HttpRequest) -> HttpResponse:
    form = SetupFilterForm(request.GET)
    registries = Registry.objects.order_by("service")
    service = form.cleaned_data["registry"] if form.is_valid() else ""
    if service:
        registries = registries.filter(service=service)
    page = page_of(request, registries, per_page=PER_PAGE)
    context = {
        "form": form,
        "page": page,
        "clients": [client_setup(registry) for registry in page],
        "login": shlex.quote(request.user.get_username()),
        "robot": shlex.quote(EXAMPLE_ROBOT),
        "all_services": Registry.objects.order_by("service").values_list("service", flat=True),
        "is_admin": is_admin(request.user),
    }
    return render(request, "setup/index.html", context, status=200 if form.is_valid() else 400)
