"""Proving a backup restores: load it into a scratch SQLite database, migrated from nothing, and count.

Run after every backup is written (from the file read back off the disk) and by ``manage.py
verify_backup``. The scratch database lives in a temporary directory and is gone afterwards. The
first verification in a process migrates an empty template once; later ones start from a copy of it
(the migrations on disk cannot change under a running process).
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.core.management import call_command
from django.db import DatabaseError, connections, transaction

from accounts.services.backups import contents
from accounts.services.backups.archive import BackupError, Contents
from accounts.services.backups.restore import replace

_template: dict[str, Path] = {}
_template_lock = threading.Lock()


@contextmanager
def _scratch_alias(path: Path) -> Iterator[str]:
    """A database alias for the SQLite file ``path``, removed afterwards."""
    alias = f"backup_verify_{uuid.uuid4().hex[:8]}"
    scratch_db = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(path)}
    configured = connections.configure_settings({"default": dict(connections.databases["default"]), alias: scratch_db})
    connections.databases[alias] = configured[alias]
    try:
        yield alias
    finally:
        connections[alias].close()
        del connections[alias]
        del connections.databases[alias]


def _migrated_copy(target: Path) -> None:
    """``target``: an empty database at this code's schema (a copy of the process's migrated template)."""
    with _template_lock:
        template = _template.get("path")
        if template is None or not template.exists():
            template = Path(tempfile.mkdtemp(prefix="registryadmin-verify-template-")) / "template.sqlite3"
            with _scratch_alias(template) as alias:
                call_command("migrate", database=alias, verbosity=0, interactive=False)
            _template["path"] = template
        shutil.copyfile(template, target)


def restore_into_scratch(backup: Contents, *, name: str) -> dict[str, int]:
    """Restore ``backup`` into a new SQLite database and compare every model's count with its manifest."""
    with tempfile.TemporaryDirectory(prefix="registryadmin-verify-") as scratch:
        path = Path(scratch) / "verify.sqlite3"
        try:
            _migrated_copy(path)
        except DatabaseError as exc:
            raise BackupError(f"cannot make a scratch database to verify {name} in: {exc}") from None
        with _scratch_alias(path) as alias:
            try:
                with transaction.atomic(using=alias):
                    replace(backup, using=alias)
                found = contents.count_rows(alias)
            except DatabaseError as exc:
                raise BackupError(f"{name} did not restore into a scratch database: {exc}") from None
    expected = backup.manifest.get("counts", {})
    wrong = [
        f"{label}: {found.get(label)} restored, {n} in the manifest"
        for label, n in expected.items()
        if found.get(label) != n
    ]
    if wrong:
        raise BackupError(f"{name} did not restore whole: {'; '.join(wrong)}")
    return found
