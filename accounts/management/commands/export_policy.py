"""``manage.py export_policy``: the current state in the apply_policy format (no passwords)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from accounts import policy


class Command(BaseCommand):
    help = "Write users, teams, grants and repositories as a policy file to stdout."

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(policy.dump(policy.export()), ending="")
