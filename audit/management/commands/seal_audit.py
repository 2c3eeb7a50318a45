"""``manage.py seal_audit``: seal committed records now, as the scheduled task does every minute."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from audit import chain


class Command(BaseCommand):
    help = "Append records older than AUDIT_SEAL_LAG to their segments' hash chains."

    def handle(self, *args: Any, **options: Any) -> None:
        sealed = chain.seal()
        lag = chain.seal_lag()
        pending = "nothing unsealed" if lag is None else f"oldest unsealed record is {lag.total_seconds():.0f}s old"
        self.stdout.write(f"sealed {sealed} records; {pending}")
