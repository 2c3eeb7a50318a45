"""A registry's doctor page: its runs, newest first, each check with its evidence and fix; admins run it now.

A GET only shows the history (``DoctorRun``); "Run the doctor" is a POST that runs the very checks
``manage.py doctor`` runs (``target_for`` then ``doctor.run``), keeps the report through
``services.doctor.record_run`` (with its audit record) and redirects back to the page. Overseers read;
only admins run it. The daily job (``accounts.tasks.doctor_registries``) adds its runs to the same list.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from accounts import services
from accounts.models import DoctorRun, Registry
from accounts.registry import doctor
from accounts.registry.doctor.targets import NoTarget, target_for
from accounts.web.forms.doctor import DoctorForm
from audit.context import AuditContext
from audit.views.jobs import describe_schedule
from registryadmin.guards import is_admin, overseer_required
from registryadmin.paging import page_of

RUNS_PER_PAGE = 10


@require_http_methods(["GET", "POST"])
@overseer_required
@never_cache  # a run just made must show on the redirect
def registry_doctor(request: HttpRequest, service: str) -> HttpResponse:
    """GET: the history. POST (admins): run every check now, keep the report, back to the history."""
    registry = get_object_or_404(Registry, service=service)
    form = DoctorForm(request.POST if request.method == "POST" else None)
    if request.method == "POST":
        if not is_admin(request.user):
            raise PermissionDenied("Only administrators may run the doctor.")
        if form.is_valid():
            try:
                run = _run(request, registry, form)
            except NoTarget as exc:
                form.add_error(None, str(exc))
                return _page(request, registry, form, status=409)
            _tell(request, run)
            return redirect("registries:doctor", service=registry.service)
        return _page(request, registry, form, status=400)
    return _page(request, registry, form)


def _run(request: HttpRequest, registry: Registry, form: DoctorForm) -> DoctorRun:
    data = form.cleaned_data
    question = {name: data[name] for name in ("origin", "user", "repository")}
    target = target_for(registry, data["url"] or None, action=data["action"] or "pull", **question)
    report = doctor.run(target)
    context = AuditContext.from_request(request)
    return services.doctor.record_run(registry, report, context=context, scheduled=False, origin=target.origin)


def _tell(request: HttpRequest, run: DoctorRun) -> None:
    said = f"The doctor ran in {run.seconds:.1f} s on {run.url}"
    if run.failed_ids:
        messages.error(request, f"{said}: {', '.join(run.failed_ids)} failed. Each check's fix is below.")
    elif run.worst == "warn":
        messages.warning(request, f"{said}: no check failed, some warned.")
    else:
        messages.success(request, f"{said}: no check failed.")


def _page(request: HttpRequest, registry: Registry, form: DoctorForm, status: int = 200) -> HttpResponse:
    entry = settings.CELERY_BEAT_SCHEDULE.get("doctor-registries")
    context = {
        "registry": registry,
        "form": form,
        "page": page_of(request, DoctorRun.objects.filter(registry=registry), RUNS_PER_PAGE),
        "is_admin": is_admin(request.user),
        "schedule": describe_schedule(entry["schedule"]) if entry else "",
    }
    return render(request, "registries/doctor.html", context, status=status)
