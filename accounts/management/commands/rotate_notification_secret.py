"""``manage.py rotate_notification_secret --registry S [--grace DURATION]``: a new notification secret."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts import services
from accounts.management.commands._parse import parse_duration
from accounts.models import Registry
from audit.context import AuditContext


class Command(BaseCommand):
    help = (
        "Make a new secret for a registry's notifications. The old one is still accepted for the grace period "
        "(default 24h): run registry_config for the new fragment and restart the registry before it ends."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--registry", required=True, help="the registry's service name")
        parser.add_argument("--grace", default="24h", help="how long the old secret is still accepted: 1h, 24h or 0")

    def handle(self, *args: Any, registry: str, grace: str, **_: Any) -> None:
        row = Registry.objects.filter(service=registry).first()
        if row is None:
            raise CommandError(f"there is no registry {registry!r}")
        context = AuditContext.system("manage.py rotate_notification_secret")
        services.rotate_notification_secret(row, context, grace=parse_duration(grace))
        self.stdout.write(
            f"rotated the notification secret of {row.service}. Print the new fragment with "
            f"`manage.py registry_config --registry {row.service}`, merge it and restart the registry"
            + (f" within {grace}." if parse_duration(grace) else "; the old secret is refused from now on.")
        )
