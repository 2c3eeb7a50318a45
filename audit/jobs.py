"""Scheduled jobs record their start-to-finish outcome as one ``job`` audit record."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import transaction

from accounts.models import User
from audit.context import AuditContext
from audit.models import Kind, SubjectType
from audit.services import record, record_change
from registryadmin import mail
from registryadmin.celery import app


def run_job(name: str, work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run ``work`` and record its result or its error (then re-raise)."""
    started = time.monotonic()
    context = AuditContext.system(f"job:{name}")
    try:
        result = work()
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"[:500]
        with transaction.atomic():
            record(
                Kind.JOB,
                "error",
                context,
                subject_type=SubjectType.SYSTEM,
                detail={"job": name, "error": error, "seconds": round(time.monotonic() - started, 3)},
            )
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
