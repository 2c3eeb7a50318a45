"""The registry doctor's history: each run kept as a ``DoctorRun``, with its audit record.

The doctor itself (``accounts.registry.doctor``) probes and reports; this module only keeps what it
found. ``record_run`` writes the run and an ``admin_change`` record ``registry.doctor`` (the worst
status and the ids that failed, never the evidence: it may quote the registry's answers) in one
transaction. ``turned_to_fail`` compares a fresh report with the run before it, so the daily job
tells the admins once when a check starts failing, not every day while it keeps failing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any, Protocol

from django.db import transaction
from django.utils import timezone

from accounts.models import DoctorRun, DoctorStatus, Registry
from audit.context import AuditContext
from audit.services import record_change


class CheckResult(Protocol):
    """One check of a report, as far as the history needs it."""

    id: str
    status: str


class Report(Protocol):
    """What is kept of ``accounts.registry.doctor.Report``: the doctor calls in here, never the other way round."""

    url: str
    seconds: float

    @property
    def checks(self) -> Sequence[CheckResult]: ...

    def as_dict(self) -> dict[str, Any]: ...


def worst(report: Report) -> str:
    """fail when a check failed, else warn when one warned, else ok (skipped checks change nothing)."""
    statuses = {check.status for check in report.checks}
    for status in (DoctorStatus.FAIL, DoctorStatus.WARN):
        if status in statuses:
            return status
    return DoctorStatus.OK


def failed_ids(report: Report) -> list[str]:
    return [check.id for check in report.checks if check.status == DoctorStatus.FAIL]


def record_run(
    registry: Registry, report: Report, *, context: AuditContext, scheduled: bool, origin: str = ""
) -> DoctorRun:
    """Keep ``report`` as the registry's latest run, and record who ran it and what failed."""
    status = worst(report)
    with transaction.atomic():
        run = DoctorRun.objects.create(
            registry=registry,
            started_at=timezone.now() - timedelta(seconds=report.seconds),
            seconds=report.seconds,
            url=report.url,
            origin=origin,
            worst=status,
            results=report.as_dict(),
            requested_by_name=context.actor,
            scheduled=scheduled,
        )
        after = {"run": run.pk, "worst": status, "failed": failed_ids(report), "scheduled": scheduled}
        record_change(context, "registry.doctor", registry.service, after=after, registry=registry.service)
    return run


def latest_run(registry: Registry) -> DoctorRun | None:
    return DoctorRun.objects.filter(registry=registry).first()


def turned_to_fail(registry: Registry, report: Report) -> list[str]:
    """The ids that fail in ``report`` but did not in the registry's latest recorded run (all, without one).

    Call it before ``record_run`` keeps ``report``: the latest recorded run is then the one before.
    """
    previous = latest_run(registry)
    before = set(previous.failed_ids) if previous is not None else set()
    return [check_id for check_id in failed_ids(report) if check_id not in before]
