"""``manage.py apply_policy FILE [--dry-run]``: make the database match a policy file."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from accounts import policy
from audit.context import AuditContext


class Command(BaseCommand):
    help = "Apply a policy file (users, teams, grants, repositories) in one transaction, audited."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="YAML policy file, or - for standard input")
        parser.add_argument("--dry-run", action="store_true", help="print the changes, change nothing")

    def handle(self, *args: Any, file: str, dry_run: bool, **options: Any) -> None:
        text = self._read(file)
        context = AuditContext.system(f"apply_policy {Path(file).name}")
        try:
            with transaction.atomic():
                changes = policy.plan(policy.load(text))
                mark = policy.last_record_id()
                for change in changes:
                    self.stdout.write(str(change))
                    change.apply(context)
                # What the changes took with them: grants a team managed that its grants no longer cover.
                for line in policy.consequences(after=mark):
                    self.stdout.write(line)
                if dry_run:
                    transaction.set_rollback(True)  # a dry run is the same run, rolled back
        except policy.PolicyError as exc:
            raise CommandError("policy not applied, nothing changed:\n  " + "\n  ".join(exc.errors)) from None
        except ValidationError as exc:
            raise CommandError(f"policy not applied, nothing changed: {'; '.join(exc.messages)}") from None
        verb = "would change" if dry_run else "changed"
        self.stderr.write(f"{len(changes)} change(s) {verb}." if changes else "Nothing to change.")

    def _read(self, file: str) -> str:
        if file == "-":
            return sys.stdin.read()
        try:
            return Path(file).read_text()
        except OSError as exc:
            raise CommandError(f"cannot read {file}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise CommandError(f"{file} is not UTF-8 text") from None
