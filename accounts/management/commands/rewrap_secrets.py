"""``manage.py rewrap_secrets [--dry-run]``: re-encrypt every stored private key and secret under KEY_ENCRYPTION_KEY."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts import services
from audit.context import AuditContext


class Command(BaseCommand):
    help = (
        "After a KEY_ENCRYPTION_KEY rotation (the old key in KEY_ENCRYPTION_KEY_FALLBACKS), re-encrypt every "
        "signing key and notification secret under the current key, so the fallback can be dropped. "
        "Idempotent; exits 1 naming each row no configured key reads."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="count what would be rewrapped; write nothing")

    def handle(self, *args: Any, dry_run: bool, **_: Any) -> None:
        batch = services.rewrap.BATCH_SIZE
        result = services.rewrap.rewrap_all(
            AuditContext.system("manage.py rewrap_secrets"),
            dry_run=dry_run,
            batch_size=batch,
            progress=lambda tally: self._progress(tally, batch),
        )
        for line in services.rewrap.describe(result):
            self.stdout.write(line)
        self.stdout.write(
            "robot, personal access token and refresh-token secrets are keyed hashes, not encrypted: nothing to rewrap"
        )
        for name in result.unreadable:
            self.stderr.write(f"unreadable: {name}")
        if result.unreadable:
            done = "counted the rest (dry run)" if dry_run else "rewrapped the rest"
            raise CommandError(
                f"{len(result.unreadable)} stored secret(s) no configured key reads; {done}. "
                f"To recover: {services.rewrap.REMEDY}."
            )

    def _progress(self, tally: services.rewrap.Tally, batch: int) -> None:
        if tally.total > batch:  # a run of one batch needs no progress
            self.stderr.write(f"{tally.label}: {tally.done}/{tally.total}")
