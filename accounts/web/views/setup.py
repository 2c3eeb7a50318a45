"""Client setup: how to log in to each registry with docker, podman, skopeo, containerd and Kubernetes.

Every signed-in user sees it, with their own name in the commands. The steps come from
``accounts.registry.client_setup`` (the same ones ``manage.py client_setup`` prints), made from the
registry's URL and mode and from what its latest doctor run found (plain HTTP, a private CA). What
works depends on the registry's mode (../shared/PROTOCOL.md): in token mode users log in with a
personal access token (or their password) and robots with their secret; htpasswd mode knows one
password per name, so tokens and directory logins do not work there, and it enforces no roles.

Was ``accounts/setup_views.py`` before the layout split.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from dataclasses import dataclass

from django import forms
from django.contrib.auth.decorators import login_required
from django.db.models import OuterRef, Subquery
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from accounts.models import DoctorRun, Registry
from accounts.registry.client_setup import (
    CLIENT_NAMES,
    CLIENTS,
    EXAMPLE_ROBOT,
    ClientSetup,
    Finding,
    Step,
    client_setup,
    finding,
    steps,
)
from registryadmin.guards import is_admin
from registryadmin.paging import page_of

PER_PAGE = 10


@dataclass(frozen=True)
class RegistrySetup:
    """One registry's section of the page: its facts, what the doctor found, each client's steps."""

    setup: ClientSetup
    found: Finding
    clients: list[tuple[str, str, list[Step]]]  # (client, its name, its steps)


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
        "sections": sections(page, request.user.get_username()),
        "robot": shlex.quote(EXAMPLE_ROBOT),
        "all_services": Registry.objects.order_by("service").values_list("service", flat=True),
        "is_admin": is_admin(request.user),
    }
    return render(request, "setup/index.html", context, status=200 if form.is_valid() else 400)


def sections(registries: Iterable[Registry], login: str) -> list[RegistrySetup]:
    registries = list(registries)
    runs = latest_runs(registries)
    out = []
    for registry in registries:
        facts = client_setup(registry)
        found = finding(facts, runs.get(registry.pk))
        clients = [(c, CLIENT_NAMES[c], steps(facts, c, found, login=login)) for c in CLIENTS]
        out.append(RegistrySetup(facts, found, clients))
    return out


def latest_runs(registries: list[Registry]) -> dict[int, DoctorRun]:
    """Each registry's latest doctor run, in one query (none when there is no registry to show)."""
    if not registries:
        return {}
    latest = DoctorRun.objects.filter(registry=OuterRef("registry")).order_by("-started_at", "-id").values("pk")[:1]
    runs = DoctorRun.objects.filter(registry__in=registries, pk=Subquery(latest))
    return {run.registry_id: run for run in runs}
