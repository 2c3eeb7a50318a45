"""The repositories pages: the list, one repository's page, its public flag, adding or forgetting one.

Admins and auditors see the list and each repository's page (its tags from push events, pulls per day,
the grants that select it, who can access it, the commands for its registry); only admins change them
(``admin_required``), always through the services. A row here is our record of a repository (its
public flag, where it lives): forgetting it never touches the images in the registry.

Was ``accounts/repository_views.py`` before the layout split.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import services
from accounts.access.patterns import InvalidName, pattern_regex
from accounts.models import Registry, Repository
from accounts.validators import repository_name_validator
from accounts.web import repository_page
from accounts.web.forms.common import add_service_error
from accounts.web.forms.grants import registry_condition, registry_filter_choices
from audit import repository_activity
from audit.context import AuditContext
from registryadmin.guards import admin_required, is_admin, overseer_required
from registryadmin.pages import next_url, render_list
from registryadmin.paging import page_of

REPOSITORIES = Repository.objects.select_related("registry").order_by("name", "registry__service", "id")
NOT_TOUCHED = "The registry's content is not touched: its images stay until deleted in the registry itself."
FORGOTTEN = "Forgot {label}: only registryadmin's row is gone. " + NOT_TOUCHED


class RepositoryFilterForm(forms.Form):
    """Name (substring, or a grant-style glob when it holds ``*``), registry and public flag."""

    q = forms.CharField(
        required=False,
        max_length=255,
        label="Name",
        widget=forms.TextInput(attrs={"type": "search", "placeholder": "web, web/* or web/**"}),
    )
    registry = forms.ChoiceField(required=False, choices=registry_filter_choices)
    public = forms.ChoiceField(required=False, choices=[("", "Public or not"), ("yes", "Public"), ("no", "Private")])

    def clean_q(self) -> Q:
        text = self.cleaned_data["q"].lower()
        if "*" not in text:
            return Q(name__icontains=text) if text else Q()
        try:
            # The same regular expression the engine matches names with, run by the database.
            return Q(name__regex=pattern_regex(text))
        except InvalidName as exc:
            raise ValidationError(f"{text!r} is not a valid pattern: {exc.problem}.", code="pattern") from None

    def apply(self, repositories: QuerySet[Repository]) -> QuerySet[Repository]:
        data = self.cleaned_data
        repositories = repositories.filter(data["q"], registry_condition(data["registry"]))
        return repositories.filter(public=data["public"] == "yes") if data["public"] else repositories


class RepositoryForm(forms.Form):
    """A repository to know of before its first push: to make it public, or to limit it to one registry."""

    name = forms.CharField(
        max_length=255,
        validators=[repository_name_validator],
        widget=forms.TextInput(attrs={"autocomplete": "off", "placeholder": "web/app"}),
        help_text="Lowercase path components joined by /, e.g. web/app (the OCI name grammar).",
    )
    registry = forms.ModelChoiceField(
        queryset=Registry.objects.all(), to_field_name="service", required=False, empty_label="Every registry"
    )
    public = forms.BooleanField(required=False, help_text="Anyone, even anonymous, may pull.")


class PublicForm(forms.Form):
    public = forms.TypedChoiceField(choices=[("1", "public"), ("0", "private")], coerce=lambda value: value == "1")


def _list_url() -> str:
    return reverse("repositories:list")


def _list_page(request: HttpRequest, form: RepositoryFilterForm, action_error: str = "") -> HttpResponse:
    """The list (or, for HTMX, its results) for a bound filter form; bad filters show no rows and a 400."""
    valid = form.is_valid()
    repositories = form.apply(REPOSITORIES.all()) if valid else Repository.objects.none()
    context = {
        "form": form,
        "page": page_of(request, repositories),
        "can_change": is_admin(request.user),
        "next": request.get_full_path(),
        "action_error": action_error,
    }
    if action_error:
        return render(request, "repositories/list.html", context, status=400)
    return render_list(request, "repositories/list.html", "repositories/_results.html", context, valid=valid)


@require_GET
@overseer_required
def repository_list(request: HttpRequest) -> HttpResponse:
    """Every repository we know of, searchable by name or glob, filtered by registry and public flag."""
    return _list_page(request, RepositoryFilterForm(request.GET))


def _page_registry(request: HttpRequest, repository: Repository) -> tuple[Registry | None, list[Registry], str]:
    """The registry the page speaks of: the row's own, else the one asked for (default: the first) among all."""
    if repository.registry is not None:
        return repository.registry, [], ""
    registries = list(Registry.objects.order_by("service"))
    asked = request.GET.get("registry", "")
    chosen = next((r for r in registries if r.service == asked), None if asked else next(iter(registries), None))
    if asked and chosen is None:
        return next(iter(registries), None), registries, f"There is no registry called {asked[:100]!r}."
    return chosen, registries, ""


@require_GET
@overseer_required
def repository_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One repository: tags seen in push events, pulls per day, last push and pull, the grants selecting it."""
    repository = get_object_or_404(REPOSITORIES, pk=pk)
    registry, registries, error = _page_registry(request, repository)
    service = registry.service if registry is not None else None
    now = timezone.now()
    manifests = repository_activity.manifests(repository.name, service)
    grants, more_grants = repository_page.matching_grants(repository, registry)
    live_tag = next((m.tag for m in manifests if m.tag and not m.deleted), "")
    context = {
        "repository": repository,
        "registry": registry,
        "registries": registries,
        "error": error,
        "manifests": manifests,
        "last_pull": repository_activity.last_event(repository.name, service, "pull"),
        "pulls": repository_activity.pulls_per_day(repository.name, service, now),
        "grants": grants,
        "more_grants": more_grants,
        "commands": repository_page.commands(repository, registry, live_tag),
        "who_url": _who_url(repository, registry),
        "now": now,
        "can_change": is_admin(request.user),
        "list_url": _list_url(),
    }
    return render(request, "repositories/detail.html", context, status=400 if error else 200)


@require_GET
@overseer_required
def repository_access(request: HttpRequest, pk: int) -> HttpResponse:
    """The engine's "who can access" for the page, loaded by HTMX; without it, the who-can-access page itself."""
    repository = get_object_or_404(REPOSITORIES, pk=pk)
    registry, _registries, error = _page_registry(request, repository)
    if error:
        return HttpResponseBadRequest(error)
    if not request.htmx:
        return redirect(_who_url(repository, registry))
    service = registry.service if registry is not None else settings.REGISTRY_SERVICE
    context = {
        "repository": repository,
        "access": repository_page.access(repository, service, timezone.now()),
        "who_url": _who_url(repository, registry),
    }
    return render(request, "repositories/_who.html", context)


def _who_url(repository: Repository, registry: Registry | None) -> str:
    query = {"repository": repository.name} | ({"registry": registry.service} if registry is not None else {})
    return f"{reverse('access:who')}?{urlencode(query)}"


@require_http_methods(["GET", "POST"])
@admin_required
def repository_new(request: HttpRequest) -> HttpResponse:
    form = RepositoryForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        data = form.cleaned_data
        try:
            repository = services.create_repository(
                data["name"],
                registry=data["registry"],
                public=data["public"],
                context=AuditContext.from_request(request),
            )
        except ValidationError as exc:
            add_service_error(form, exc)
        else:
            messages.success(request, f"Added repository {repository}{' (public)' if repository.public else ''}.")
            return redirect(f"{_list_url()}?{urlencode({'q': repository.name})}")
    return render(request, "repositories/new.html", {"form": form}, status=400 if form.is_bound else 200)


@require_POST
@admin_required
def repository_public(request: HttpRequest, pk: int) -> HttpResponse:
    """Turn the public flag on or off; HTMX gets the re-rendered row, a plain form goes back to the list."""
    repository = get_object_or_404(REPOSITORIES, pk=pk)
    form = PublicForm(request.POST)
    if not form.is_valid():
        return _list_page(request, RepositoryFilterForm({}), action_error="Choose public (1) or private (0).")
    repository = services.set_repository_public(
        repository, form.cleaned_data["public"], context=AuditContext.from_request(request)
    )
    back = next_url(request, _list_url())
    if request.htmx:
        row = {"repository": repository, "can_change": True, "next": back}
        return render(request, "repositories/_row.html", row)
    messages.success(request, f"{repository} is now {'public' if repository.public else 'private'}.")
    return redirect(back)


@require_POST
@admin_required
def repository_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """Forget a repository row (its public flag goes with it); the registry keeps its images."""
    repository = get_object_or_404(REPOSITORIES, pk=pk)
    label = str(repository)
    services.delete_repository(repository, context=AuditContext.from_request(request))
    if request.htmx:
        return render(request, "_done_row.html", {"text": FORGOTTEN.format(label=label)})
    messages.success(request, FORGOTTEN.format(label=label))
    return redirect(next_url(request, _list_url()))
