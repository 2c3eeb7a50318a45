"""The registry pages: which registries we serve, and the ``config.yml`` fragment each one needs.

Overseers (admins and auditors) read; only admins create, edit and prepare. The fragment is
built by the same functions as ``manage.py registry_config`` (``accounts.registry_config``), but a
GET changes nothing: what the command would create on the way (signing keys, the notification
secret, the bundle or htpasswd file) is listed as missing, and "Prepare configuration" (a POST)
creates it through the command's own code. Only admins see the notification secret.

Was ``accounts/registry_pages.py`` before the layout split.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Exists, IntegerField, Model, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import services
from accounts.models import AuthMode, DoctorRun, Grant, NotificationEndpoint, Registry, Repository
from accounts.registry import config as registry_config
from accounts.registry import htpasswd, keys
from accounts.web.forms.common import add_service_error
from accounts.web.forms.credentials import RotateSecretForm
from accounts.web.forms.registries import NewRegistryForm, RegistryFilterForm, RegistrySettingsForm
from audit.context import AuditContext
from audit.models import AuditRecord, Kind
from registryadmin.guards import admin_required, is_admin, overseer_required
from registryadmin.keywrap import KeyUnwrapError, unwrap
from registryadmin.pages import render_list
from registryadmin.paging import page_of

SECRET_MASK = "rgn_**********"
SECRET_MISSING = "<made by Prepare configuration>"
ROLES_WARNING = (
    "htpasswd mode checks passwords only: roles are NOT enforced, so any valid user or robot can pull, push and "
    "delete in every repository of this registry."
)
MISSING_HASH_SAMPLE = 20
ISSUED_OUTCOMES = ("granted", "partial", "probe")  # a probe issued a token too (its push granted)
TOKEN_LOOKBACK = timedelta(days=35)
DIRECTORY_WARNING = (
    "Directory users cannot sign in to this registry: the htpasswd file needs a password hash, and the directory "
    "keeps their passwords. Personal access tokens do not work in htpasswd mode either (the file holds only "
    "dashboard passwords and robots). Use token mode, or give them robots."
)


@dataclass
class RegistryConfig:
    """What the detail page shows about a registry's configuration, computed without changing anything."""

    fragment: str = ""
    advice: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    problem: str = ""
    secret_hidden: bool = False
    without_hash: list[str] = field(default_factory=list)  # the first few of them
    without_hash_count: int = 0


def _count(model: type[Model]) -> Coalesce:
    """A per-registry count as a subquery, so two counts never multiply each other's rows."""
    rows = model.objects.filter(registry=OuterRef("pk")).order_by().values("registry").annotate(n=Count("pk"))
    return Coalesce(Subquery(rows.values("n"), output_field=IntegerField()), 0)


def _filtered(form: RegistryFilterForm) -> QuerySet[Registry]:
    registries = Registry.objects.annotate(
        repository_count=_count(Repository),
        grant_count=_count(Grant),
        notifies=Exists(NotificationEndpoint.objects.filter(registry=OuterRef("pk"))),
    ).order_by("service")
    if not form.is_valid():
        return registries.none()
    if q := form.cleaned_data["q"].strip():
        registries = registries.filter(Q(service__icontains=q) | Q(url__icontains=q))
    if mode := form.cleaned_data["mode"]:
        registries = registries.filter(auth_mode=mode)
    return registries


@require_GET
@overseer_required
def registry_list(request: HttpRequest) -> HttpResponse:
    """Every registry with its mode, what is limited to it, and whether it reports events."""
    form = RegistryFilterForm(request.GET)
    context = {"form": form, "page": page_of(request, _filtered(form)), "is_admin": is_admin(request.user)}
    return render_list(request, "registries/list.html", "registries/_results.html", context, valid=form.is_valid())


@require_http_methods(["GET", "POST"])
@admin_required
def registry_new(request: HttpRequest) -> HttpResponse:
    form = NewRegistryForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        registry = _create(request, form)
        if registry is not None:
            messages.success(request, f"Added registry {registry.service}. Prepare its configuration below.")
            if registry.auth_mode == AuthMode.HTPASSWD:
                messages.warning(request, ROLES_WARNING)
            return redirect("registries:detail", service=registry.service)
    status = 400 if request.method == "POST" else 200
    return render(request, "registries/new.html", {"form": form, "roles_warning": ROLES_WARNING}, status=status)


def _create(request: HttpRequest, form: NewRegistryForm) -> Registry | None:
    """The new registry, or None with the service's objection (a duplicate service) on the form."""
    data = form.cleaned_data
    try:
        return services.create_registry(
            data["service"], url=data["url"], auth_mode=data["auth_mode"], context=AuditContext.from_request(request)
        )
    except ValidationError as exc:
        add_service_error(form, exc)
        return None


def _stored_secret(registry: Registry, *, reveal: bool) -> tuple[str | None, str]:
    """(the secret as shown, a problem): never made here, and decrypted only for admins."""
    stored = NotificationEndpoint.objects.filter(registry=registry).values_list("secret", flat=True).first()
    if stored is None:
        return None, ""
    if not reveal:
        return SECRET_MASK, ""
    try:
        return unwrap(stored).decode(), ""
    except KeyUnwrapError as exc:
        return SECRET_MASK, str(exc)


def _token_config(registry: Registry, config: RegistryConfig, secret: str) -> None:
    bundle = registry_config.bundle_path(registry.service)
    if not services.has_keys():
        config.missing.append("the signing keys (current and next)")
    if not bundle.is_file():
        config.missing.append(f"the certificate bundle {bundle}")
    elif _read(bundle) != keys.published_bundle_pem():
        config.missing.append(f"an up-to-date certificate bundle at {bundle} (the keys changed since it was written)")
    fragment = registry_config.token_fragment(registry.service, bundle, secret)
    config.fragment = registry_config.render(registry_config.whole_config(fragment))
    config.advice = [registry_config.TOKEN_ADVICE]


def _htpasswd_config(registry: Registry, config: RegistryConfig, secret: str) -> None:
    try:
        path = htpasswd.path_for(registry).resolve()
    except htpasswd.HtpasswdError as exc:
        config.problem = str(exc)
        return
    if not path.is_file():
        config.missing.append(f"the htpasswd file {path}")
    fragment = registry_config.htpasswd_fragment(registry.service, path, secret)
    config.fragment = registry_config.render(registry_config.whole_config(fragment))
    config.advice = [f"{path}: {registry_config.HTPASSWD_REWRITE_ADVICE}", *registry_config.htpasswd_advice([])]
    config.without_hash = htpasswd.users_without_hash(MISSING_HASH_SAMPLE)
    config.without_hash_count = htpasswd.count_users_without_hash()


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def config_for(registry: Registry, *, reveal: bool) -> RegistryConfig:
    """The fragment ``registry_config`` prints for this registry (default paths), and what is still missing."""
    secret, problem = _stored_secret(registry, reveal=reveal)
    config = RegistryConfig(problem=problem, secret_hidden=secret == SECRET_MASK)
    if secret is None:
        config.missing.append("the notification secret")
    if registry.auth_mode == AuthMode.HTPASSWD:
        _htpasswd_config(registry, config, secret or SECRET_MISSING)
    else:
        _token_config(registry, config, secret or SECRET_MISSING)
    return config


def last_token_issued(registry: Registry, now: datetime) -> AuditRecord | None:
    """The newest token this registry got from us within ``TOKEN_LOOKBACK`` (granted or partly granted).

    Bounded in time so that the (kind, time) index is walked backwards over a window only: a registry that
    never asked would otherwise scan every access record ever kept (a million in the page bench).
    """
    records = AuditRecord.objects.filter(
        kind=Kind.ACCESS, registry=registry.service, outcome__in=ISSUED_OUTCOMES, time__gte=now - TOKEN_LOOKBACK
    )
    return records.only("time", "actor", "outcome").order_by("-time", "-id").first()


def _detail_page(
    request: HttpRequest, registry: Registry, *, status: int = 200, form: RegistrySettingsForm | None = None
) -> HttpResponse:
    admin = is_admin(request.user)
    context: dict[str, Any] = {
        "registry": registry,
        "config": config_for(registry, reveal=admin),
        "is_admin": admin,
        "roles_warning": ROLES_WARNING,
        "directory_warning": DIRECTORY_WARNING
        if registry.auth_mode == AuthMode.HTPASSWD and services.directory.enabled()
        else "",
    }
    context["endpoint"] = (
        NotificationEndpoint.objects.filter(registry=registry).defer("secret", "previous_secret").first()
    )
    context["now"] = timezone.now()
    context["last_token"] = last_token_issued(registry, context["now"])
    context["last_run"] = DoctorRun.objects.filter(registry=registry).order_by("-started_at", "-id").first()
    if admin:
        initial = {"url": registry.url, "auth_mode": registry.auth_mode}
        context["form"] = form or RegistrySettingsForm(initial=initial)
        context["rotate_form"] = RotateSecretForm()
    return render(request, "registries/detail.html", context, status=status)


@require_GET
@overseer_required
@never_cache  # an admin's copy holds the notification secret
def registry_detail(request: HttpRequest, service: str) -> HttpResponse:
    return _detail_page(request, get_object_or_404(Registry, service=service))


@require_POST
@admin_required
@never_cache
def registry_edit(request: HttpRequest, service: str) -> HttpResponse:
    registry = get_object_or_404(Registry, service=service)
    form = RegistrySettingsForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            updated = services.update_registry(
                registry, url=data["url"], auth_mode=data["auth_mode"], context=AuditContext.from_request(request)
            )
        except ValidationError as exc:
            add_service_error(form, exc)
        else:
            messages.success(request, f"Saved registry {updated.service}.")
            if updated.auth_mode != registry.auth_mode:
                _mode_switched(request, updated)
            return redirect("registries:detail", service=updated.service)
    return _detail_page(request, registry, status=400, form=form)


def _mode_switched(request: HttpRequest, registry: Registry) -> None:
    if registry.auth_mode == AuthMode.HTPASSWD:
        messages.warning(request, ROLES_WARNING)
    messages.warning(request, "The registry's config.yml must change: prepare the configuration, merge the fragment.")


@require_POST
@admin_required
@never_cache
def registry_prepare(request: HttpRequest, service: str) -> HttpResponse:
    """What ``manage.py registry_config`` writes, by the same code, recorded as this admin's change."""
    registry = get_object_or_404(Registry, service=service)
    context = AuditContext.from_request(request)
    try:
        if registry.auth_mode == AuthMode.HTPASSWD:
            written, _secret = registry_config.prepare_htpasswd(registry, context)
        else:
            written, _secret = registry_config.prepare_token(registry, context)
    except (htpasswd.HtpasswdError, KeyUnwrapError, OSError) as exc:
        messages.error(request, f"Could not prepare the configuration: {exc}")
        return _detail_page(request, registry, status=503)
    messages.success(request, f"Wrote {written}. Copy the fragment below into the registry's config.yml.")
    return redirect("registries:detail", service=registry.service)


@require_GET
@overseer_required
def registry_bundle(request: HttpRequest, service: str) -> HttpResponse:
    """The certificates (current, next, previous) for the registry's ``rootcertbundle``; no private key."""
    registry = get_object_or_404(Registry, service=service)
    if not services.has_keys():
        return HttpResponse(
            "No signing keys yet: an admin prepares the configuration first.\n", status=409, content_type="text/plain"
        )
    response = HttpResponse(keys.published_bundle_pem(), content_type="application/x-pem-file")
    response["Content-Disposition"] = content_disposition_header(True, f"{registry.service}-token-bundle.pem")
    return response


@require_POST
@admin_required
@never_cache
def registry_rotate_secret(request: HttpRequest, service: str) -> HttpResponse:
    """A new notification secret; the old one is accepted for the grace chosen (restart the registry meanwhile)."""
    registry = get_object_or_404(Registry, service=service)
    form = RotateSecretForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose how long the old secret is still accepted.")
        return _detail_page(request, registry, status=400)
    grace = form.grace_period
    had_one = NotificationEndpoint.objects.filter(registry=registry).exists()
    services.rotate_notification_secret(registry, AuditContext.from_request(request), grace=grace)
    until = f"until {timezone.now() + grace:%Y-%m-%d %H:%M} UTC" if grace else "no longer (it stopped now)"
    if not had_one:
        until = "nowhere: there was none before"
    messages.success(
        request,
        f"Rotated the notification secret of {registry.service}: the fragment below holds the new one. Merge it into "
        f"the registry's config.yml and restart the registry; the old secret is accepted {until}.",
    )
    return redirect("registries:detail", service=registry.service)
