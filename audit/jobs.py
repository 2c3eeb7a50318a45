"""Scheduled jobs record their start-to-finish outcome as one ``job`` audit record."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from audit.context import AuditContext
from audit.models import AuditRecord, Kind, SubjectType
from audit.services import record, record_change
from registryadmin import mail
from registryadmin.celery import app
from registryadmin.faults import one_line


def run_job(name: str, work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run ``work`` and record its result or its error (then re-raise)."""
    started = time.monotonic()
    context = AuditContext.system(f"job:{name}")
    try:
        result = work()
    except Exception as exc:
        error = one_line(exc)  # redacted: a driver's message can quote a connection string
        tell = _should_tell(name)
        detail = {"job": name, "error": error, "seconds": round(time.monotonic() - started, 3)}
        with transaction.atomic():
            record(Kind.JOB, "error", context, subject_type=SubjectType.SYSTEM, detail=detail | {"mailed": tell})
        if tell:
            _tell_admins(name, error)
        raise
    with transaction.atomic():
        record(
            Kind.JOB,
            "success",
            context,
            subject_type=SubjectType.SYSTEM,
            detail={"job": name, "result": result, "seconds": round(time.monotonic() - started, 3)},
        )
    return result


MAIL_EVERY = timedelta(hours=1)


def _should_tell(job: str) -> bool:
    """Mail when a job starts failing (its last run succeeded), then at most once an hour while it keeps failing."""
    last = AuditRecord.objects.filter(kind=Kind.JOB, detail__job=job).order_by("-time", "-id").first()
    if last is None or last.outcome == "success":
        return True
    since = timezone.now() - MAIL_EVERY
    mailed = AuditRecord.objects.filter(kind=Kind.JOB, detail__job=job, time__gte=since, detail__mailed=True)
    return not mailed.exists()


def _tell_admins(job: str, error: str) -> None:
    """A failed job is on the home page; it also goes by mail to every active admin with an address."""
    admins = User.objects.filter(is_active=True, is_superuser=True).exclude(email="").values_list("email", flat=True)
    body = (
        f"The scheduled job {job} failed:\n\n{error}\n\n"
        f"Its record and earlier runs: {settings.PUBLIC_URL}/manage/jobs/\n"
        "It runs again at its next scheduled time; a job that needs you names the remedy above.\n"
    )
    mail.send(admins, f"job {job} failed", body)


def queue_job(name: str, context: AuditContext) -> None:
    """Send beat entry ``name``'s task to the broker now and record who asked; a failed send leaves no record."""
    entry = settings.CELERY_BEAT_SCHEDULE[name]
    with transaction.atomic():
        record_change(context, "job.run", name, after={"task": entry["task"]})
        app.send_task(entry["task"], args=entry.get("args", ()), kwargs=entry.get("kwargs", {}))
