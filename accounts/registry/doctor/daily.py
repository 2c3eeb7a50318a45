"""The daily doctor (``accounts.tasks.doctor_registries``, SCHEDULE_DOCTOR): every registry with a URL, checked.

Each run goes into the registry's history like a run from its page (``services.doctor.record_run``,
marked scheduled). When a check fails that did not fail in the registry's run before
(``services.doctor.turned_to_fail``), every active administrator with an address gets one mail
naming those checks with their summary and fix; a check that keeps failing is not mailed again, and
the home page shows it for as long as the latest run fails.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.urls import reverse

from accounts import services
from accounts.models import Registry, User
from accounts.registry import doctor
from accounts.registry.doctor.model import Report
from accounts.registry.doctor.targets import target_for
from audit.context import AuditContext
from registryadmin import mail


def run_all(context: AuditContext) -> dict[str, Any]:
    """The doctor on every registry with a URL; returns what the job's record keeps (no evidence)."""
    failed: dict[str, list[str]] = {}
    turned: dict[str, list[str]] = {}
    reports: dict[str, Report] = {}
    registries = list(Registry.objects.exclude(url="").order_by("service"))
    for registry in registries:
        report = doctor.run(target_for(registry))
        if newly := services.doctor.turned_to_fail(registry, report):
            turned[registry.service], reports[registry.service] = newly, report
        run = services.doctor.record_run(registry, report, context=context, scheduled=True)
        if run.failed_ids:
            failed[registry.service] = run.failed_ids
    mailed = tell_admins(turned, reports) if turned else 0
    return {"registries": len(registries), "failed": failed, "turned_to_fail": turned, "mailed": mailed}


def tell_admins(turned: dict[str, list[str]], reports: dict[str, Report]) -> int:
    """One mail to each active admin with an address: the checks that turned to fail, with their fixes."""
    admins = User.objects.filter(is_active=True, is_superuser=True).exclude(email="").values_list("email", flat=True)
    services_named = ", ".join(turned)
    return mail.send(admins, f"registry doctor: a check turned to fail on {services_named}", _body(turned, reports))


def _body(turned: dict[str, list[str]], reports: dict[str, Report]) -> str:
    parts = ["The daily registry doctor found checks that did not fail in the run before:\n"]
    for service, ids in turned.items():
        page = f"{settings.PUBLIC_URL}{reverse('registries:doctor', kwargs={'service': service})}"
        parts.append(f"Registry {service} ({reports[service].url}):")
        for check in reports[service].checks:
            if check.id in ids:
                parts.append(f"  [FAIL] {check.id}: {check.summary}")
                parts += [f"         fix: {line}" for line in check.fix]
        parts.append(f"  Every check, its evidence and earlier runs: {page}\n")
    parts.append("You are told once when a check turns to fail; the home page shows it while it keeps failing.")
    return "\n".join(parts) + "\n"
