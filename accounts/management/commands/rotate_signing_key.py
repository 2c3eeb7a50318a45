"""``manage.py rotate_signing_key [--force]``: promote next to current, after a preflight."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts import keys
from accounts.models import Registry
from accounts.registry_config import default_output_dir, write_atomic
from audit.context import AuditContext


class Command(BaseCommand):
    help = "Rotate the token signing key. Refuses when a registry does not trust the next key yet."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--force", action="store_true", help="rotate even if the preflight fails")

    def handle(self, *args: Any, force: bool, **_: Any) -> None:
        context = AuditContext.system("manage.py rotate_signing_key")
        failures = []
        for result in keys.preflight():
            if result.ok is False:
                failures.append(result.message)
                self.stderr.write(f"FAIL {result.message}")
            elif result.ok is None:
                self.stderr.write(f"WARN {result.message}")
            else:
                self.stderr.write(f"ok   {result.message}")
        if failures and not force:
            raise CommandError("not rotated: a registry would refuse the new tokens (use --force to rotate anyway)")
        promoted = keys.rotate(context)
        self.stdout.write(f"rotated: current key is now {promoted.kid}")
        for registry in Registry.objects.filter(auth_mode="token"):
            bundle = default_output_dir(registry.service) / "token-bundle.pem"
            if bundle.exists():
                write_atomic(bundle, keys.bundle_pem(), 0o644)
                self.stderr.write(f"# rewrote {bundle}; restart {registry.service} before the next rotation")
