"""``manage.py backup [--output-dir DIR] [--unencrypted]``: write one verified backup file, print its path last."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from accounts.registry import config
from accounts.services import backups
from audit.context import AuditContext
from registryadmin.faults import one_line


class Command(BaseCommand):
    help = (
        "Back up the configuration (users, teams, grants, registries, robots, tokens, signing keys, notification "
        "secrets, htpasswd files and config fragments; not the audit log) into one file encrypted with BACKUP_KEY, "
        "verify it by restoring it into a scratch database, and print its path as the last line."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--output-dir", type=Path, help="where to write it (default BACKUP_DIR); retention skips it"
        )
        parser.add_argument(
            "--unencrypted", action="store_true", help="write a plain .tar.gz (it holds private keys: keep it safe)"
        )

    def handle(self, *args: Any, output_dir: Path | None, unencrypted: bool, **options: Any) -> None:
        context = AuditContext.system("manage.py backup")
        verbosity = options["verbosity"]

        def say(stage: str) -> None:  # the stages on stderr; each model read only with -v 2
            if verbosity >= 2 or (verbosity == 1 and not stage.startswith("read ")):
                self.stderr.write(f"... {stage}")

        try:
            run = backups.take(
                context, fragments=config.backup_fragments(), output_dir=output_dir, encrypted=not unencrypted, say=say
            )
        except backups.BackupError as exc:
            raise CommandError(f"backup failed: {exc}") from None
        except (OSError, DatabaseError) as exc:
            raise CommandError(f"backup failed: {one_line(exc)}") from None
        if unencrypted:
            self.stderr.write(self.style.WARNING("WARNING: this file is not encrypted and holds private keys."))
        total = sum(run.counts.values())
        self.stderr.write(f"verified: {total:,} rows, {run.size:,} bytes, sha256 {run.sha256}")
        self.stdout.write(run.path)
