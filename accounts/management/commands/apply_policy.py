"""``manage.py apply_policy FILE [--dry-run]``: make the database match a policy file."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

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
            outcome = policy.run(text, context, dry_run=dry_run, on_change=self.stdout.write)
        except policy.PolicyError as exc:
            raise CommandError("policy not applied, nothing changed:\n  " + "\n  ".join(exc.errors)) from None
        except ValidationError as exc:
            raise CommandError(f"policy not applied, nothing changed: {'; '.join(exc.messages)}") from None
        for line in outcome.consequences:
            self.stdout.write(line)
        verb = "would change" if dry_run else "changed"
        count = len(outcome.changes)
        self.stderr.write(f"{count} change(s) {verb}." if count else "Nothing to change.")

    def _read(self, file: str) -> str:
        if file == "-":
            return sys.stdin.read()
        try:
            return Path(file).read_text()
        except OSError as exc:
            raise CommandError(f"cannot read {file}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise CommandError(f"{file} is not UTF-8 text") from None
