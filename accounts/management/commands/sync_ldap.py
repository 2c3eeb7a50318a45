"""``manage.py sync_ldap [--dry-run]``: directory groups to team memberships for everyone, now."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts import services
from audit.jobs import run_job


class Command(BaseCommand):
    help = (
        "Read every person and mapped group from the directory and apply them: add members, remove "
        "members who left a group, deactivate people who vanished (LDAP_DEACTIVATE_MISSING). Local "
        "memberships are never touched. --dry-run prints the changes (+ add, - remove, ~ change) and makes none."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="print what would change; change nothing")

    def handle(self, *args: Any, dry_run: bool, **_: Any) -> None:
        if not services.directory.enabled():
            raise CommandError("LDAP is off: set LDAP_SERVER_URI (and LDAP_USER_SEARCH_BASE) to sync a directory")

        def progress(message: str) -> None:
            print(f"sync_ldap: {message}", file=sys.stderr, flush=True)

        reports: list[services.directory_sync.SyncReport] = []

        def work() -> dict[str, Any]:
            reports.append(services.directory_sync.sync_all(progress=progress))
            return reports[-1].summary()

        try:
            if dry_run:
                reports.append(services.directory_sync.sync_all(dry_run=True, progress=progress))
            else:
                run_job("sync_ldap", work)
        except services.directory_sync.SyncFailed as exc:
            raise CommandError(f"sync failed: {exc}") from None
        self._print(reports[-1])

    def _print(self, report: services.directory_sync.SyncReport) -> None:
        for line in report.lines:
            self.stdout.write(line)
        for error in report.errors:
            self.stderr.write(f"warning: {error}")
        summary = report.summary()
        verb = "would change" if report.dry_run else "changed"
        self.stdout.write(
            f"{summary['people']} people, {summary['groups']} mapped groups: {verb} {summary['changes']} "
            f"({summary['seconds']} s)" + (" - dry run, nothing was changed" if report.dry_run else "")
        )
