"""``manage.py rotate_signing_key [--force]``: promote next to current, after a preflight."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.registry.config import rotate_after_preflight
from audit.context import AuditContext


class Command(BaseCommand):
    help = "Rotate the token signing key. Refuses when a registry does not trust the next key yet."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--force", action="store_true", help="rotate even if the preflight fails")

    def handle(self, *args: Any, force: bool, **_: Any) -> None:
        rotation = rotate_after_preflight(AuditContext.system("manage.py rotate_signing_key"), force=force)
        for result in rotation.preflight:
            label = {False: "FAIL", None: "WARN"}.get(result.ok, "ok  ")
            self.stderr.write(f"{label} {result.message}")
        if rotation.promoted is None:
            raise CommandError("not rotated: a registry would refuse the new tokens (use --force to rotate anyway)")
        self.stdout.write(f"rotated: current key is now {rotation.promoted.kid}")
        for service, bundle in rotation.rewritten:
            self.stderr.write(f"# rewrote {bundle}; restart {service} before the next rotation")
