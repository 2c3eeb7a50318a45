"""The backups page, for admins only: every run and its file, "back up now" with its progress, downloads.

A backup holds every password hash and the private signing keys, so auditors do not see this page.
Runs are ``Backup`` rows (``accounts.services.backups``); the Celery task ``accounts.tasks.backup``
takes a queued run and moves its stage and progress, which each running row polls for (htmx) until
it ends. Only a file directly in BACKUP_DIR is served: ``manage.py backup --output-dir`` runs are
listed but their files stay where they were written. Each download is recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST
from kombu.exceptions import KombuError

from accounts import services, tasks
from accounts.models import Backup, BackupState
from audit.context import AuditContext
from audit.tasks import BROKER_DOWN
from audit.views.jobs import describe_schedule
from registryadmin.faults import one_line
from registryadmin.guards import admin_required
from registryadmin.paging import page_of

ACTIVE, STALE_AFTER = services.backups.ACTIVE, services.backups.STALE_AFTER
# The counts a row sums up (the whole manifest is one click away).
SUMMARY = (("accounts.user", "user"), ("accounts.team", "team"), ("accounts.grant", "grant"))


@dataclass(frozen=True)
class Row:
    """One run as the page shows it; ``place`` says where its file is and whether it may be downloaded."""

    run: Backup
    place: str  # "here" (downloadable), "elsewhere", "missing", "removed" or "" (no file)
    stalled: bool

    @property
    def polling(self) -> bool:
        return self.run.state in ACTIVE and not self.stalled

    @property
    def summary(self) -> str:
        counts = ((self.run.counts.get(label, 0), noun) for label, noun in SUMMARY)
        return ", ".join(f"{n:,} {noun}{'' if n == 1 else 's'}" for n, noun in counts)

    @property
    def total(self) -> int:
        return sum(self.run.counts.values())


def in_backup_dir(run: Backup) -> Path | None:
    """The run's file when it lies directly in BACKUP_DIR (symlinks resolved), else None."""
    if not run.path:
        return None
    path = Path(run.path).resolve()
    return path if path.parent == Path(settings.BACKUP_DIR).resolve() else None


def row(run: Backup, now: datetime) -> Row:
    path = in_backup_dir(run)
    if not run.path or run.state in ACTIVE:
        place = ""
    elif run.deleted_at:
        place = "removed"
    elif path is None:
        place = "elsewhere"
    else:
        place = "here" if path.is_file() else "missing"
    return Row(run, place, stalled=run.state in ACTIVE and run.started_at < now - STALE_AFTER)


def download_path(run: Backup) -> Path:
    """The file a download serves: finished, not removed by retention, in BACKUP_DIR and still there."""
    found = row(run, timezone.now())
    if found.place != "here":
        raise Http404("This backup's file is not here to download.")
    return Path(run.path).resolve()


def last_failure() -> Backup | None:
    """The latest failed run, when no run has verified since it started."""
    failed = Backup.objects.filter(state=BackupState.FAILED).first()
    verified = Backup.objects.filter(state=BackupState.VERIFIED).first()
    if failed is None or (verified is not None and verified.started_at > failed.started_at):
        return None
    return failed


def send(run: Backup) -> str:
    """Hand the run to a worker; a broker that cannot take it fails the run at once ("" when sent)."""
    try:
        tasks.backup.apply_async(args=[run.pk], expires=STALE_AFTER.total_seconds())
    except (KombuError, OSError) as exc:
        error = f"{BROKER_DOWN} ({one_line(exc)})"
        services.backups.fail_run(run, error)
        return error
    return ""


def settings_context() -> dict[str, Any]:
    entry = settings.CELERY_BEAT_SCHEDULE.get("backup")
    return {
        "schedule": describe_schedule(entry["schedule"]) if entry else "",
        "keep": {
            "daily": settings.BACKUP_KEEP_DAILY,
            "weekly": settings.BACKUP_KEEP_WEEKLY,
            "monthly": settings.BACKUP_KEEP_MONTHLY,
        },
        "backup_dir": settings.BACKUP_DIR,
        "key_set": services.backups.encryption(True) == "recipients" or bool(settings.BACKUP_KEY),
        "encryption": services.backups.encryption(True),
        "recipients": len(settings.BACKUP_RECIPIENTS),
        "copy_set": bool(settings.BACKUP_COPY_COMMAND),
    }


@require_GET
@admin_required
def backup_list(request: HttpRequest) -> HttpResponse:
    page = page_of(request, Backup.objects.all())
    now = timezone.now()
    page.object_list = [row(run, now) for run in page.object_list]
    refusal = services.backups.refusal()
    context = {"page": page, "last_failure": last_failure(), "refusal": refusal, **settings_context()}
    return render(request, "backups/list.html", context)


@require_POST
@admin_required
def backup_run(request: HttpRequest) -> HttpResponse:
    """Queue a run for a worker ("back up now"); refused while another one is under way."""
    try:
        run = services.backups.request_run(AuditContext.from_request(request))
    except services.backups.BackupError as exc:
        messages.error(request, f"Not started: {exc}")
        return redirect("backups:list")
    if error := send(run):
        messages.error(request, f"Backup run {run.pk} failed: {error}. Is the broker (Redis) running?")
    else:
        messages.success(request, f"Backup run {run.pk} is queued; its progress shows below.")
    return redirect("backups:list")


@never_cache  # polled every second while the run moves
@require_GET
@admin_required
def backup_progress(request: HttpRequest, pk: int) -> HttpResponse:
    """One run's row, which polls itself while the run is under way (and stops once it ended)."""
    run = get_object_or_404(Backup, pk=pk)
    return render(request, "backups/_row.html", {"row": row(run, timezone.now())})


@never_cache  # the file holds every credential hash and the private signing keys
@require_GET
@admin_required
def backup_download(request: HttpRequest, pk: int) -> FileResponse:
    run = get_object_or_404(Backup, pk=pk)
    try:
        handle = download_path(run).open("rb")
    except OSError:
        raise Http404("This backup's file is gone.") from None
    try:
        services.backups.record_download(run, AuditContext.from_request(request))
    except BaseException:
        handle.close()
        raise
    return FileResponse(handle, as_attachment=True, filename=run.file_name, content_type="application/octet-stream")
