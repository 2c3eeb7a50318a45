"""``manage.py rebuild_usage``: count the sealed access records into the usage rollups again."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from audit import chain


class Command(BaseCommand):
    help = (
        "Recount every sealed access record into the usage rollups behind the unused-rights report, a day "
        "at a time beside a running sealer: after upgrading from a version without them, or a restore."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        def progress(segment: str, counted: int) -> None:
            self.stderr.write(f"{segment}: {counted:,} records counted so far")

        counted = chain.rebuild_usage(progress)
        self.stdout.write(f"usage rollups rebuilt from {counted:,} sealed access records")
