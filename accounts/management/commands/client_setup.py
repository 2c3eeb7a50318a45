"""``manage.py client_setup``: the steps each client needs for a registry, as the client setup page shows them.

The steps come from ``accounts.registry.client_setup``, made from the registry's URL and mode and from
what its latest doctor run found; a step the doctor's findings called for says so, with the date.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts import services
from accounts.models import Registry
from accounts.registry.client_setup import CLIENTS, PLACEHOLDER_LOGIN, as_text, client_setup, finding


class Command(BaseCommand):
    help = (
        "Print the steps docker, podman, skopeo, containerd and Kubernetes need to use a registry, from its URL "
        "and what the doctor last found (plain HTTP, a private CA); the same steps as the client setup page."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--registry", help="registry service name (needed when there are several)")
        parser.add_argument("--client", choices=CLIENTS, help="one client (default: every one)")
        parser.add_argument("--user", default=PLACEHOLDER_LOGIN, help="the login to put in the commands")

    def handle(self, *args: Any, **options: Any) -> None:
        registry = self._registry(options["registry"])
        facts = client_setup(registry)
        found = finding(facts, services.doctor.latest_run(registry))
        clients = [options["client"]] if options["client"] else list(CLIENTS)
        if found.source:
            self.stdout.write(f"{found.source[0].upper()}{found.source[1:]}.\n")
        texts = [as_text(facts, client, found, login=options["user"]) for client in clients]
        self.stdout.write("\n\n".join(texts))

    def _registry(self, service: str | None) -> Registry:
        known = list(Registry.objects.order_by("service").values_list("service", flat=True))
        if service:
            found = Registry.objects.filter(service=service).first()
            if found is None:
                raise CommandError(f"no registry {service!r}; known: {', '.join(known) or 'none'}")
            return found
        if not known:
            raise CommandError("no registry is configured")
        if len(known) > 1:
            raise CommandError(f"several registries exist ({', '.join(known)}); pick one with --registry")
        return Registry.objects.get(service=known[0])
