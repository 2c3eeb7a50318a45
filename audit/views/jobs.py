"""The scheduled-jobs page: the Celery beat schedule, each job's last run, and the latest job records.

A job's runs are the ``job`` audit records ``audit.jobs.run_job`` writes, named after the task's own
function name. Overseers read; admins may queue a job now, which is recorded as their change.

Was ``audit/job_views.py`` before the layout split.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from celery.schedules import crontab, schedule
from django import forms
from django.conf import settings
from django.contrib import messages
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from kombu.exceptions import KombuError

from audit.context import AuditContext
from audit.jobs import queue_job
from audit.models import AuditRecord, Kind
from registryadmin.guards import admin_required, is_admin, overseer_required
from registryadmin.pages import render_list
from registryadmin.paging import page_of

# How far back the per-job summary looks: every default schedule runs at least daily.
LOOKBACK = timedelta(days=8)
CRON_FIELDS = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")


@dataclass(frozen=True)
class Job:
    """One beat entry, with the name its audit records carry."""

    name: str
    task: str
    schedule: str

    @property
    def record_name(self) -> str:
        return job_record_name(self.task)


def job_record_name(task: str) -> str:
    """``run_job`` records a task under its function name: ``audit.tasks.seal_audit`` -> ``seal_audit``."""
    return task.rsplit(".", 1)[-1]


def cron_words(spec: str) -> str:
    """Plain words for the common crontabs ("" when there are none): ``*/5 * * * *`` -> every 5 minutes."""
    minute, hour, *rest = spec.split()
    if rest != ["*", "*", "*"]:
        return ""
    if (minute, hour) == ("*", "*"):
        return "every minute"
    if step := re.fullmatch(r"\*/(\d+)", minute):
        return f"every {step[1]} minutes" if hour == "*" else ""
    if minute.isdigit() and hour == "*":
        return f"hourly at minute {int(minute)}"
    if minute.isdigit() and hour.isdigit():
        return f"daily at {int(hour):02d}:{int(minute):02d}"
    return ""


def describe_schedule(entry: object) -> str:
    """A beat schedule as people read it, with the crontab itself: "daily at 03:30 UTC (30 3 * * *)"."""
    if isinstance(entry, crontab):
        spec = " ".join(str(getattr(entry, f"_orig_{part}")) for part in CRON_FIELDS)
        words = cron_words(spec)
        return f"{words} {settings.CELERY_TIMEZONE} ({spec})" if words else f"{spec} ({settings.CELERY_TIMEZONE})"
    if isinstance(entry, schedule):
        entry = entry.run_every
    if isinstance(entry, timedelta):
        entry = entry.total_seconds()
    if isinstance(entry, int | float):
        return f"every {entry:g} seconds"
    return str(entry)


def beat_jobs() -> list[Job]:
    """The schedule as configured (settings.CELERY_BEAT_SCHEDULE), in its own order."""
    return [
        Job(name, entry["task"], describe_schedule(entry["schedule"]))
        for name, entry in settings.CELERY_BEAT_SCHEDULE.items()
    ]


class JobFilterForm(forms.Form):
    job = forms.ChoiceField(required=False, choices=())
    outcome = forms.ChoiceField(required=False, choices=[("", "any"), ("success", "success"), ("error", "error")])

    def __init__(self, *args: Any, jobs: list[Job], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.jobs = {job.name: job for job in jobs}
        self.fields["job"].choices = [("", "every job"), *((name, name) for name in self.jobs)]  # type: ignore[attr-defined]


def _records(form: JobFilterForm) -> QuerySet[AuditRecord]:
    found = AuditRecord.objects.filter(kind=Kind.JOB).order_by("-time", "-id")
    if not form.is_valid():
        return found.none()
    if name := form.cleaned_data["job"]:
        found = found.filter(detail__job=form.jobs[name].record_name)
    if outcome := form.cleaned_data["outcome"]:
        found = found.filter(outcome=outcome)
    return found


def _summaries(jobs: list[Job]) -> list[dict[str, Any]]:
    """Per job its last run and last failure in LOOKBACK: two queries per beat entry, however many records."""
    recent = AuditRecord.objects.filter(kind=Kind.JOB, time__gte=timezone.now() - LOOKBACK).order_by("-time", "-id")
    return [
        {
            "job": job,
            "last": recent.filter(detail__job=job.record_name).first(),
            "last_error": recent.filter(detail__job=job.record_name, outcome="error").first(),
        }
        for job in jobs
    ]


@require_GET
@overseer_required
def job_list(request: HttpRequest) -> HttpResponse:
    jobs = beat_jobs()
    form = JobFilterForm(request.GET, jobs=jobs)
    context = {
        "summaries": _summaries(jobs),
        "form": form,
        "page": page_of(request, _records(form)),
        "lookback_days": LOOKBACK.days,
        "is_admin": is_admin(request.user),
    }
    return render_list(request, "jobs/list.html", "jobs/_records.html", context, valid=form.is_valid())


@require_POST
@admin_required
def job_run(request: HttpRequest, name: str) -> HttpResponse:
    """Queue a scheduled job now (for a worker to run); unknown names are 404."""
    job = next((job for job in beat_jobs() if job.name == name), None)
    if job is None:
        raise Http404(f"No scheduled job is called {name!r}.")
    try:
        queue_job(job.name, AuditContext.from_request(request))
    except (KombuError, OSError) as exc:
        messages.error(request, f"Could not queue {job.name}: the broker refused ({exc}).")
        return redirect("jobs:list")
    messages.success(request, f"Queued {job.name} ({job.task}); its run appears here once a worker has done it.")
    return redirect("jobs:list")
