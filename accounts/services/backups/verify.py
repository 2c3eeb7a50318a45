"""Proving a backup restores: load it into a scratch SQLite database, migrated from nothing, and count.

Run after every backup is written (from the file read back off the disk) and by ``manage.py
verify_backup``. The scratch database lives in a temporary directory and is gone afterwards.
"""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path

from django.core.management import call_command
from django.db import DatabaseError, connections, transaction

from accounts.services.backups import contents
from accounts.services.backups.archive import BackupError, Contents
from accounts.services.backups.restore import replace


def restore_into_scratch(backup: Contents, *, name: str) -> dict[str, int]:
    """Restore ``backup`` into a new SQLite database and compare every model's count with its manifest."""
    alias = f"backup_verify_{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="registryadmin-verify-") as scratch:
        scratch_db = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(Path(scratch) / "verify.sqlite3")}
        configured = connections.configure_settings(
            {"default": dict(connections.databases["default"]), alias: scratch_db}
        )
        connections.databases[alias] = configured[alias]
        try:
            call_command("migrate", database=alias, verbosity=0, interactive=False)
            with transaction.atomic(using=alias):
                replace(backup, using=alias)
            found = contents.count_rows(alias)
        except DatabaseError as exc:
            raise BackupError(f"{name} did not restore into a scratch database: {exc}") from None
        finally:
            connections[alias].close()
            del connections[alias]
            del connections.databases[alias]
    expected = backup.manifest.get("counts", {})
    wrong = [
        f"{label}: {found.get(label)} restored, {n} in the manifest"
        for label, n in expected.items()
        if found.get(label) != n
    ]
    if wrong:
        raise BackupError(f"{name} did not restore whole: {'; '.join(wrong)}")
    return found
