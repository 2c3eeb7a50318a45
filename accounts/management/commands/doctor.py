"""``manage.py doctor``: the classic registry authentication failures, checked on the live registry, each with its fix.

Exit status: 0 when no check fails (warnings allowed), 1 when one fails, 2 when the doctor cannot run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import Registry
from accounts.registry import doctor
from accounts.registry.doctor.targets import NoTarget, target_for

ACTIONS = ("pull", "push", "delete")


class Command(BaseCommand):
    help = (
        "Check a registry for the classic auth failures (auth settings, token trust, TLS, roles, clock, proxy, "
        "CORS, rate limiting) and print each with its evidence and fix. Exit 0: no failure; 1: a check failed; "
        "2: the doctor could not run."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--registry", help="registry service name (needed when there are several)")
        parser.add_argument("--url", help="probe the registry at the address its clients use (a proxy, a balancer)")
        parser.add_argument("--origin", default="", help="the web origin of a browser-based registry UI (CORS)")
        parser.add_argument("--registry-config", type=Path, help="the registry's config.yml, when readable here")
        parser.add_argument("--user", default="", help="with --repository: explain what this user may do")
        parser.add_argument("--repository", default="")
        parser.add_argument("--action", choices=ACTIONS, default="pull")
        parser.add_argument("--format", choices=("text", "json"), default="text")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            target = self._target(options)
        except CommandError as exc:
            self.stderr.write(f"doctor: {exc}")
            raise SystemExit(2) from None
        report = doctor.run(target)
        self.stdout.write(report.as_json() if options["format"] == "json" else report.as_text())
        if report.failed:
            raise SystemExit(1)

    def _target(self, options: dict[str, Any]) -> doctor.Target:
        registry = self._registry(options["registry"])
        if bool(options["user"]) != bool(options["repository"]):
            raise CommandError("--user and --repository go together")
        config = options["registry_config"]
        if config is not None and not config.is_file():
            raise CommandError(f"--registry-config {config} is not a readable file")
        try:
            return target_for(
                registry,
                options["url"],
                origin=options["origin"],
                registry_config=config,
                user=options["user"],
                repository=options["repository"],
                action=options["action"],
            )
        except NoTarget as exc:
            raise CommandError(str(exc)) from None

    def _registry(self, service: str | None) -> Registry:
        if service:
            found = Registry.objects.filter(service=service).first()
            if found is None:
                known = ", ".join(Registry.objects.values_list("service", flat=True)) or "none"
                raise CommandError(f"no registry {service!r}; known: {known}")
            return found
        registries = list(Registry.objects.all()[:2])
        if not registries:
            raise CommandError("no registry is configured")
        if len(registries) > 1:
            raise CommandError("several registries exist; pick one with --registry")
        return registries[0]
