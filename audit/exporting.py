"""Exports of the audit log: streamed downloads for modest sizes, background jobs for the rest.

Every export is itself recorded (kind ``admin_change``, action ``audit.export``)
with its filter and format, whatever the delivery: a download from the pages,
a background job, or ``manage.py export_audit``. The record is written before
any data leaves, and the export leaves out its own record.

A job stores the filter as ``AuditFilter.describe()`` and re-parses it with
``parse_filter``, so it selects exactly what the page showed. The file is
written to ``DATA_DIR/exports/export-<id>.<format>`` through a temporary file
and a rename, so a half-written file is never offered for download.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from audit.context import AuditContext
from audit.filters import AuditFilter, parse_filter
from audit.formats import FORMATS, render, rows
from audit.models import AuditExport, AuditRecord, Kind, SubjectType
from audit.services import record

logger = logging.getLogger(__name__)

# Above this many records a download would tie up a web worker for too long: use a job.
STREAM_LIMIT = 100_000
PROGRESS_EVERY = 10_000
CHUNK_SIZE = 2_000
CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson; charset=utf-8"}


def export_dir() -> Path:
    return Path(settings.DATA_DIR) / "exports"


def file_path(export: AuditExport) -> Path:
    """Where a job's file lives; derived from id and format, never from user input."""
    if export.format not in FORMATS:
        raise ValueError(f"unknown export format {export.format!r}")
    return export_dir() / f"export-{export.pk}.{export.format}"


def streamable_count(queryset: QuerySet[AuditRecord], limit: int | None = None) -> int | None:
    """How many records match, or None when more than ``limit`` (counts at most limit + 1 rows)."""
    limit = STREAM_LIMIT if limit is None else limit
    count = queryset.order_by()[: limit + 1].count()
    return count if count <= limit else None


def record_export(context: AuditContext, filters: dict[str, str], fmt: str, delivery: str, **extra: Any) -> AuditRecord:
    """The audit record of an export: who exported which filter (``describe()``) in which format."""
    subject_type = SubjectType.USER if context.actor_id is not None else SubjectType.SYSTEM
    detail = {"action": "audit.export", "filters": filters, "format": fmt, "delivery": delivery}
    with transaction.atomic():
        return record(Kind.ADMIN_CHANGE, "success", context, subject_type=subject_type, detail={**detail, **extra})


def stream(
    audit_filter: AuditFilter, fmt: str, context: AuditContext, delivery: str = "download", **extra: Any
) -> Iterator[str]:
    """Record the export, then its lines (oldest first), read in chunks so memory stays flat."""
    own = record_export(context, audit_filter.describe(), fmt, delivery, **extra)
    return render(rows(audit_filter.apply().exclude(pk=own.pk), chunk_size=CHUNK_SIZE), fmt)


def run(export_id: int) -> None:
    """Write one job's file, keeping ``rows`` current; ends ``done`` or ``failed`` with the error."""
    export = AuditExport.objects.get(pk=export_id)
    if export.status == "done":
        return  # a redelivered task (acks_late) must not redo finished work
    target = file_path(export)
    temporary = target.with_name(target.name + ".part")
    try:
        queryset = parse_filter(export.filters).apply()
        _update(export_id, status="running", rows=0, total=queryset.count(), error="")
        target.parent.mkdir(parents=True, exist_ok=True)
        progress = _Progress(export_id)
        _write(temporary, render(progress.count(rows(queryset, chunk_size=CHUNK_SIZE)), export.format))
        os.replace(temporary, target)
        _update(export_id, status="done", rows=progress.rows, path=str(target), finished_at=timezone.now())
    except Exception as exc:
        logger.exception("audit export %s failed", export_id)
        temporary.unlink(missing_ok=True)
        _update(export_id, status="failed", error=f"{type(exc).__name__}: {exc}"[:2000], finished_at=timezone.now())


def _write(path: Path, lines: Iterable[str]) -> None:
    # Owner-only: the file holds the audit log, whatever the umask says.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as out:
        for line in lines:
            out.write(line)


def _update(export_id: int, **values: Any) -> None:
    AuditExport.objects.filter(pk=export_id).update(**values)


class _Progress:
    """Counts rows as they pass and saves the count every ``PROGRESS_EVERY`` rows."""

    def __init__(self, export_id: int) -> None:
        self.export_id = export_id
        self.rows = 0

    def count(self, records: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for row in records:
            self.rows += 1
            if self.rows % PROGRESS_EVERY == 0:
                _update(self.export_id, rows=self.rows)
            yield row


def parse_format(value: str) -> str:
    if value not in FORMATS:
        raise ValueError(f"{value!r} is not an export format; use {' or '.join(FORMATS)}.")
    return value


def progress_percent(export: AuditExport) -> int | None:
    """0-100 for the progress bar, or None while the total is unknown."""
    if not export.total:
        return 100 if export.status == "done" else None
    return min(100, round(100 * export.rows / export.total))
