"""``manage.py verify_audit``: walk the audit hash chains; the exit code says what was found."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand

from audit import chain

EXIT_INTACT, EXIT_TAMPERED, EXIT_ERROR = 0, 1, 2


class Command(BaseCommand):
    help = (
        "Verify the audit log's hash chains and store the result. Exit 0 when intact, "
        "1 naming the first record or segment that was changed, inserted or removed, 2 when verification could not run "
        "(among the reasons: records made under a key that is not in AUDIT_HMAC_KEY_FALLBACKS, named by its key id)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            verification, result = chain.verify_and_report()
        except Exception as exc:
            # Anything that stops the walk (no database, no key) must not read as "tampered" (1).
            self.stderr.write(f"verify_audit could not run: {type(exc).__name__}: {exc}")
            sys.exit(EXIT_ERROR)
        if verification.outcome != "intact":
            self.stdout.write(f"TAMPERED: {verification.problem} ({verification.checked} records checked before it)")
            sys.exit(EXIT_TAMPERED)
        ring = chain.keyring()
        if len(ring.keys) > 1:  # during a rotation: which fallbacks may go (the verdict stays the last line)
            self.stdout.write(chain.needed_keys(result.keys, ring))
        self.stdout.write(f"intact: {verification.checked} records checked")
