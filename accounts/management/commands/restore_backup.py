"""``manage.py restore_backup FILE [--dry-run] [--noinput] [--force]``: replace the configuration with a backup's."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.serializers.base import DeserializationError
from django.db import DatabaseError

from accounts.registry import config, htpasswd
from accounts.services import backups
from accounts.services.backups import restore
from audit.context import AuditContext
from registryadmin.faults import one_line


class Command(BaseCommand):
    help = (
        "Show what restoring FILE would change (+ added, - removed, ~ changed), ask to confirm, then replace the "
        "configuration with the backup's in one transaction. Audit records are kept; web sessions end. Opens "
        "encrypted files with BACKUP_KEY (or BACKUP_KEY_FILE). Refuses a host that holds more than its bootstrap "
        "admin unless --force."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--dry-run", action="store_true", help="show the changes, change nothing")
        parser.add_argument("--noinput", "--no-input", action="store_true", help="do not ask to confirm")
        parser.add_argument("--force", action="store_true", help="replace a host that already holds people and grants")

    def handle(self, *args: Any, file: Path, dry_run: bool, noinput: bool, force: bool, **options: Any) -> None:
        try:
            backup = backups.read_file(file)
            restore.check_schema(backup.manifest, name=file.name)
            held = restore.occupied()
            if held and not force:
                raise backups.BackupError(
                    f"this host already holds {', '.join(held)}: restoring would give their ids (which the audit "
                    "log names) to other people. Restore onto a fresh install, or pass --force to replace them."
                )
            plan = restore.plan(backup.rows, every_line=options["verbosity"] >= 2)
        except backups.BackupError as exc:
            raise CommandError(f"not restored, nothing changed: {exc}") from None
        made = backup.manifest.get("created_at", "?")
        self.stderr.write(f"{file.name}: made {made} on {backup.manifest.get('host', '?')}")
        for line in plan.lines:
            self.stdout.write(line)
        self.stderr.write(f"{'Would change' if dry_run else 'Changes'}: {plan.summary()}")
        if dry_run:
            return
        if not noinput:
            self._confirm()
        context = AuditContext.system(f"manage.py restore_backup {file.name}")
        try:
            done = restore.restore(
                backup, name=file.name, context=context, force=force, progress=self._progress(options)
            )
        except backups.BackupError as exc:
            raise CommandError(f"not restored, nothing changed: {exc}") from None
        except (DatabaseError, DeserializationError) as exc:  # rows that do not fit this schema, rolled back
            raise CommandError(
                f"not restored, nothing changed: the backup's rows do not fit here: {one_line(exc)}"
            ) from None
        total = sum(done["counts"].values())
        try:
            written = config.write_after_restore()
        except (OSError, htpasswd.HtpasswdError) as exc:
            raise CommandError(
                f"restored {total:,} rows from {file.name}, but writing the registry files failed: {exc}. "
                "Fix that, then run `manage.py registry_config` for each registry."
            ) from None
        self.stderr.write(
            f"Restored {total:,} rows from {file.name}; {done['sessions_ended']} web session(s) ended; "
            f"{done['peppers_kept']} credential pepper(s) kept from the old host."
        )
        for path in written:
            self.stderr.write(f"wrote {path}")

    def _progress(self, options: dict[str, Any]) -> restore.contents.Progress | None:
        """A line on stderr as each model's rows are written (a restore of 50k grants takes seconds)."""
        if options["verbosity"] < 1:
            return None

        def written(label: str, rows: int) -> None:
            if rows:
                self.stderr.write(f"... wrote {rows:,} {restore.contents.model(label)._meta.verbose_name_plural}")

        return written

    def _confirm(self) -> None:
        if not sys.stdin.isatty():
            raise CommandError("not restored: confirm on a terminal, or pass --noinput.")
        answer = input("Replace this host's configuration with the backup's? Type 'yes' to go on: ")
        if answer.strip().lower() != "yes":
            raise CommandError("not restored: not confirmed.")
