"""Scheduled and background audit work; each task delegates to a module of ``audit``.

``start_export`` queues an export job: it lives here, beside the task it queues, so that
``audit.exporting`` (which the task runs) never imports this module back.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from functools import partial

from celery import shared_task
from django.db import transaction
from django.utils import timezone
from kombu.exceptions import KombuError

from audit import chain, exporting, retention
from audit.context import AuditContext
from audit.filters import AuditFilter
from audit.jobs import run_job
from audit.models import AuditExport
from registryadmin.faults import one_line

logger = logging.getLogger(__name__)

# Why an export that never reached a worker failed (stored on the export, shown on its page).
BROKER_DOWN = "the job queue (broker) is unavailable; the job was not queued"


@shared_task(name="audit.tasks.seal_audit")
def seal_audit() -> int:
    """Chain records committed a few seconds ago into their segments (and roll them up)."""
    return run_job("seal_audit", lambda: {"sealed": chain.seal()})["sealed"]


@shared_task(name="audit.tasks.verify_audit")
def verify_audit() -> str:
    """Walk every chain; the result is stored for auditors and admins."""
    return run_job("verify_audit", lambda: {"outcome": chain.verify_and_record().outcome})["outcome"]


@shared_task(name="audit.tasks.apply_retention")
def apply_retention() -> int:
    """Drop whole segments past their class's retention, leaving keyed checkpoints."""
    return run_job("apply_retention", lambda: {"dropped": retention.apply()})["dropped"]


@shared_task(name="audit.tasks.run_export", acks_late=True)
def run_export(export_id: int) -> None:
    """A large export, written to a file with progress."""
    exporting.run(export_id)


def start_export(audit_filter: AuditFilter, fmt: str, context: AuditContext) -> AuditExport:
    """Create and record an export job; the worker gets it once the transaction commits.

    A broker that cannot take the job leaves the export ``failed`` (with ``BROKER_DOWN``), never
    ``queued`` for a worker that will not come.

    An open-ended filter is closed at "now", so the file holds what the requester saw.
    """
    if fmt not in exporting.FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; use jsonl or csv")
    if audit_filter.until is None:
        audit_filter = replace(audit_filter, until=timezone.now())
    with transaction.atomic():
        export = AuditExport.objects.create(
            requested_by=context.actor,
            requested_by_id=context.actor_id,
            filters=audit_filter.describe(),
            format=fmt,
        )
        exporting.record_export(context, audit_filter.describe(), fmt, "job", export_id=export.pk)
        transaction.on_commit(partial(_publish, export))
    return export


def _publish(export: AuditExport) -> None:
    """Hand the job to the broker; if it cannot take it, the job will never run: mark it failed now.

    The row has committed by then (a worker must find it), so the failure is a second, plain update,
    and ``export`` (the caller's object) says ``failed`` too.
    """
    try:
        run_export.delay(export.pk)
    except (KombuError, OSError) as exc:
        logger.error("audit export %s could not be queued: %s", export.pk, one_line(exc))
        export.status = "failed"
        export.error = f"{BROKER_DOWN} ({one_line(exc)})"
        export.finished_at = timezone.now()
        AuditExport.objects.filter(pk=export.pk, status="queued").update(
            status=export.status, error=export.error, finished_at=export.finished_at
        )
