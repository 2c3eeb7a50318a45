"""``manage.py apply_retention``: drop audit segments past their class's retention, as the nightly task does."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from audit import retention


class Command(BaseCommand):
    help = "Drop whole audit segments (kind and UTC day) older than AUDIT_RETENTION_DAYS, leaving keyed checkpoints."

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(f"dropped {retention.apply()} segments")
