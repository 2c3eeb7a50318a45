"""``manage.py verify_backup FILE``: decrypt, check the checksums and restore into a scratch database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.services import backups
from accounts.services.backups import restore, verify


class Command(BaseCommand):
    help = (
        "Check a backup file whole: decryption (BACKUP_KEY), checksums, schema, and a restore into a scratch database."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)

    def handle(self, *args: Any, file: Path, **options: Any) -> None:
        try:
            backup = backups.read_file(file)
            restore.check_schema(backup.manifest, name=file.name)
            counts = verify.restore_into_scratch(backup, name=file.name)
        except backups.BackupError as exc:
            raise CommandError(f"{file.name} does not verify: {exc}") from None
        self.stdout.write(
            f"{file.name}: verified, {sum(counts.values()):,} rows restore (made {backup.manifest.get('created_at')})."
        )
