"""Scheduled and background audit work; each task delegates to a module of ``audit``."""

from __future__ import annotations

from celery import shared_task

from audit import chain, exporting, retention
from audit.jobs import run_job


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
