"""Configuration backups: taken, verified, kept by retention, copied off the host; restored on a new one.

``take`` writes one encrypted file and proves it restores; ``read_file`` opens one (wrong key,
truncated, damaged or newer: ``BackupError`` with the remedy); ``restore.plan``/``restore.restore``
show and make the change. Modules: ``contents`` (which rows, out and back), ``archive`` (the file
format), ``files`` (disk, retention, the copy hook), ``verify`` (the scratch restore), ``restore``.
The audit log is not in a backup: ``manage.py export_audit`` and retention are for it.
"""

from __future__ import annotations

import base64
import hashlib
import socket
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import django
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import Backup, BackupState
from accounts.registry.secrets import fingerprint, kept_peppers, own_peppers
from accounts.services.backups import archive, contents, files, restore, verify
from accounts.services.backups.archive import BackupError, Contents
from audit.context import AuditContext
from audit.services import record_change
from registryadmin.faults import one_line

__all__ = ["BackupError", "Contents", "archive", "contents", "files", "read_file", "restore", "take", "verify"]

Say = Callable[[str], None]


def registry_files() -> dict[str, bytes]:
    """The files under DATA_DIR/registry (htpasswd files, certificate bundles), as ``files/registry/...``."""
    root = Path(settings.DATA_DIR) / "registry"
    found = {}
    if root.is_dir():
        for path in sorted(root.rglob("*")):
            if path.is_file() and not path.name.startswith(".") and not path.name.endswith(".lock"):
                found[f"files/registry/{path.relative_to(root).as_posix()}"] = path.read_bytes()
    return found


class _Steps:
    """Moves the run's stage and progress in their own short transactions, so the page sees them at once."""

    def __init__(self, run: Backup, say: Say | None) -> None:
        self.run, self.say = run, say

    def __call__(self, stage: str, progress: int) -> None:
        self.run.stage, self.run.progress = stage[:100], max(0, min(progress, 100))
        Backup.objects.filter(pk=self.run.pk).update(stage=self.run.stage, progress=self.run.progress)
        if self.say:
            self.say(stage)


ACTIVE = (BackupState.QUEUED, BackupState.RUNNING)
# A run not ended within this time is taken for lost (its worker died, or no worker took it): it no
# longer blocks "back up now", and the page stops polling it. The task message expires with it.
STALE_AFTER = timedelta(hours=1)


def refusal() -> str:
    """Why "back up now" may not start a run now ("" when it may)."""
    if not settings.BACKUP_KEY and not settings.BACKUP_RECIPIENTS:
        return "BACKUP_KEY is not set, so the backup would fail: set it (or BACKUP_KEY_FILE) first."
    since = timezone.now() - STALE_AFTER
    if active := Backup.objects.filter(state__in=ACTIVE, started_at__gte=since).first():
        return f"backup run {active.pk} is {active.state}; another can start once it has finished."
    return ""


def request_run(context: AuditContext) -> Backup:
    """ "Back up now": a queued run for a worker, recorded; ``BackupError`` says why not while one is under way."""
    with transaction.atomic():
        reason = refusal()
        if reason:
            raise BackupError(reason)
        run = start_run(requested_by=context.actor, scheduled=False)
        record_change(context, "backup.request", f"backup run {run.pk}", after={"run": run.pk})
    return run


def fail_run(run: Backup, error: str) -> None:
    """A queued run no worker will take (the broker refused it): failed at once, with why."""
    Backup.objects.filter(pk=run.pk, state=BackupState.QUEUED).update(
        state=BackupState.FAILED, stage="failed", error=error[:2000], finished_at=timezone.now()
    )


def start_run(*, requested_by: str, scheduled: bool) -> Backup:
    return Backup.objects.create(
        state=BackupState.QUEUED, stage="waiting for the worker", requested_by_name=requested_by, scheduled=scheduled
    )


def claim_run(run_id: int | None) -> Backup:
    """The run "back up now" queued (``run_id``), or a new scheduled one; a run already started is not taken twice."""
    if run_id is None:
        return start_run(requested_by="schedule", scheduled=True)
    claimed = Backup.objects.filter(pk=run_id, state=BackupState.QUEUED).update(state=BackupState.RUNNING)
    if not claimed:
        raise BackupError(f"backup run {run_id} is not waiting to run (already taken, or gone)")
    return Backup.objects.get(pk=run_id)


def take(
    context: AuditContext,
    *,
    fragments: dict[str, str],
    output_dir: Path | None = None,
    encrypted: bool = True,
    run: Backup | None = None,
    say: Say | None = None,
) -> Backup:
    """Write a backup file, read it back, restore it into a scratch database, then retention and the copy hook.

    Every failure leaves the run ``failed`` with the reason and raises ``BackupError``; a file
    that was written but did not verify stays on disk (named on the run) and never counts for retention.
    """
    if encrypted and not settings.BACKUP_KEY and not settings.BACKUP_RECIPIENTS:
        refused = BackupError(
            "BACKUP_KEY (or BACKUP_KEY_FILE) is not set: a backup holds private keys and is encrypted "
            "with it (or to BACKUP_RECIPIENTS). Set it, or pass --unencrypted to write a plain file on purpose."
        )
        if run is not None:  # a scheduled or queued run: the page shows it failed, and why
            Backup.objects.filter(pk=run.pk).update(
                state=BackupState.FAILED, stage="failed", error=str(refused), finished_at=timezone.now()
            )
        raise refused
    run = run or start_run(requested_by=context.actor, scheduled=False)
    Backup.objects.filter(pk=run.pk).update(state=BackupState.RUNNING, started_at=timezone.now())
    step = _Steps(run, say)
    try:
        path, data = _write(run, step, fragments, output_dir, encrypted)
        step("verifying: reading the file back and restoring it into a scratch database", 60)
        _verify(run, path, data)
        with transaction.atomic():
            record_change(context, "backup.create", path.name, after=_described(run))
        if settings.BACKUP_COPY_COMMAND:
            step("copying off the host (BACKUP_COPY_COMMAND)", 85)
            files.copy_off_host(path)
            Backup.objects.filter(pk=run.pk).update(copied_at=timezone.now())
        if output_dir is None:
            step("applying retention", 95)
            prune()
    except Exception as exc:
        Backup.objects.filter(pk=run.pk).update(
            state=BackupState.FAILED, error=one_line(exc), finished_at=timezone.now(), stage="failed"
        )
        raise
    Backup.objects.filter(pk=run.pk).update(
        state=BackupState.VERIFIED, stage="done", progress=100, finished_at=timezone.now()
    )
    run.refresh_from_db()
    return run


def encryption(encrypted: bool) -> str:
    """How a new backup is encrypted: "passphrase" (BACKUP_KEY), "recipients" (BACKUP_RECIPIENTS) or "none"."""
    if not encrypted:
        return "none"
    return "recipients" if settings.BACKUP_RECIPIENTS else "passphrase"


def _write(
    run: Backup, step: _Steps, fragments: dict[str, str], output_dir: Path | None, encrypted: bool
) -> tuple[Path, bytes]:
    step("reading the configuration", 5)
    rows = contents.dump(
        progress=lambda label, n: step(
            f"read {n:,} {contents.model(label)._meta.verbose_name_plural}",
            5 + 30 * (contents.INCLUDED.index(label) + 1) // len(contents.INCLUDED),
        )
    )
    now = timezone.now()
    peppers = list(dict.fromkeys([*own_peppers(), *kept_peppers()]))
    manifest = {
        "created_at": now.isoformat(),
        "host": socket.gethostname(),
        "django": django.get_version(),
        "migrations": restore.applied_migrations(),
        "counts": contents.counts(rows),
        "peppers": [fingerprint(p) for p in peppers],  # which, never the peppers themselves
        "audit_log": "not included: use manage.py export_audit",
        "encrypted": encrypted,
        "encryption": encryption(encrypted),
    }
    secrets = {"peppers": [base64.b64encode(p).decode() for p in peppers]}
    step("packing and encrypting", 40)
    data = archive.pack(manifest, rows, secrets, {**registry_files(), **{k: v.encode() for k, v in fragments.items()}})
    mode = encryption(encrypted)
    if mode == "recipients":
        blob = archive.encrypt_to(data, settings.BACKUP_RECIPIENTS)
    else:
        blob = archive.encrypt(data, settings.BACKUP_KEY) if mode == "passphrase" else data
    step("writing the file", 50)
    path = files.write(files.backup_dir(output_dir), files.file_name(now, encrypted=encrypted), blob)
    Backup.objects.filter(pk=run.pk).update(
        path=str(path),
        size=len(blob),
        sha256=hashlib.sha256(blob).hexdigest(),
        encrypted=encrypted,
        counts=manifest["counts"],
    )
    run.refresh_from_db()
    return path, data


def _verify(run: Backup, path: Path, data: bytes) -> None:
    """Read the file back and restore it. In public-key mode without BACKUP_IDENTITY_FILE this host cannot
    decrypt it (that is the point): the plaintext it encrypted is checked instead, and the file on disk must be
    byte for byte what was encrypted."""
    if (
        archive.is_encrypted(path.read_bytes()[:64])
        and encryption(True) == "recipients"
        and not settings.BACKUP_IDENTITY_FILE
    ):
        backup = archive.unpack(data, name=path.name)
    else:
        backup = read_file(path)
    if hashlib.sha256(path.read_bytes()).hexdigest() != run.sha256:
        raise BackupError(f"{path.name} changed on disk while it was being verified.")
    verify.restore_into_scratch(backup, name=path.name)
    Backup.objects.filter(pk=run.pk).update(verified_at=timezone.now())
    run.refresh_from_db()


def _described(run: Backup) -> dict[str, Any]:
    return {"size": run.size, "sha256": run.sha256, "encrypted": run.encrypted, "counts": run.counts, "verified": True}


def read_file(path: Path, passphrase: str | None = None) -> Contents:
    """Open a backup file and check it whole (decryption, checksums, format); BackupError says what is wrong."""
    try:
        blob = Path(path).read_bytes()
    except OSError as exc:
        raise BackupError(f"cannot read {path}: {exc.strerror}") from None
    key = passphrase if passphrase is not None else settings.BACKUP_KEY
    return archive.read(blob, key, name=Path(path).name, identity_file=settings.BACKUP_IDENTITY_FILE or None)


def prune(now: datetime | None = None) -> list[str]:
    """Retention over the verified backups in BACKUP_DIR; removes the others' files, returns their names.

    Backups of the last 24 hours are all kept. Only files this host wrote and verified count (a verified
    file whose copy off the host failed too: it is a good backup); a file that did not verify is left for
    the operator to look at.
    """
    directory = Path(settings.BACKUP_DIR)
    runs = [
        run
        for run in Backup.objects.filter(verified_at__isnull=False, deleted_at__isnull=True).exclude(path="")
        if Path(run.path).parent == directory
    ]
    keep = files.kept(
        [run.started_at for run in runs],
        daily=settings.BACKUP_KEEP_DAILY,
        weekly=settings.BACKUP_KEEP_WEEKLY,
        monthly=settings.BACKUP_KEEP_MONTHLY,
        recent_after=(now or timezone.now()) - timedelta(days=1),
    )
    removed = []
    for run in runs:
        if run.started_at not in keep:
            Path(run.path).unlink(missing_ok=True)
            Backup.objects.filter(pk=run.pk).update(deleted_at=now or timezone.now())
            removed.append(run.file_name)
    return removed


def record_download(run: Backup, context: AuditContext) -> None:
    """A downloaded backup holds every password hash and the private signing keys: who took it is recorded."""
    with transaction.atomic():
        record_change(context, "backup.download", run.file_name, after={"sha256": run.sha256, "size": run.size})
