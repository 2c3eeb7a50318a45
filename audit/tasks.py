"""Scheduled and background audit work; each task delegates to a module of ``audit``.

``start_export`` queues an export job: it lives here, beside the task it queues, so that
``audit.exporting`` (which the task runs) never imports this module back.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial

from celery import shared_task
from django.db import transaction
from django.utils import timezone

from audit import chain, exporting, retention
from audit.context import AuditContext
from audit.filters import AuditFilter
from audit.jobs import run_job
from audit.models import AuditExport


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
        transaction.on_commit(partial(run_export.delay, export.pk))
    return export
