"""``manage.py registry_config``: write the files a registry needs and print its config fragment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts import keys, services
from accounts.endpoints import notification_secret
from accounts.models import AuthMode, Registry
from accounts.registry_config import default_output_dir, render, token_fragment, write_atomic
from audit.context import AuditContext


class Command(BaseCommand):
    help = (
        "Write the certificate bundle (token mode) and print a YAML fragment with `auth` and "
        "`notifications` to merge into the registry's config.yml. Advice goes to stderr."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--mode", choices=AuthMode.values, help="switch the registry to this mode first")
        parser.add_argument("--registry", help="registry service name (needed when there are several)")
        parser.add_argument("--output-dir", type=Path, help="where to write files (default DATA_DIR/registry/SERVICE)")

    def handle(self, *args: Any, mode: str | None, registry: str | None, output_dir: Path | None, **_: Any) -> None:
        target = self._registry(registry)
        context = AuditContext.system("manage.py registry_config")
        if mode and mode != target.auth_mode:
            target = services.update_registry(target, auth_mode=mode, context=context)
            self.stderr.write(f"# registry {target.service} switched to {mode} mode")
        if target.auth_mode == AuthMode.HTPASSWD:
            raise CommandError("htpasswd mode is not available yet in this version; use --mode token.")
        directory = (output_dir or default_output_dir(target.service)).resolve()
        keys.ensure_keys(context)
        bundle = directory / "token-bundle.pem"
        write_atomic(bundle, keys.bundle_pem(), 0o644)
        secret = notification_secret(target, context)
        self.stderr.write(f"# wrote {bundle} (current + next signing certificates)")
        self.stderr.write(
            "# merge the fragment below into the registry's config.yml; enable storage.delete for deletes;"
            " restart the registry after each key rotation"
        )
        self.stdout.write(render(token_fragment(target.service, bundle, secret)), ending="")

    def _registry(self, service: str | None) -> Registry:
        if service:
            found = Registry.objects.filter(service=service).first()
            if found is None:
                raise CommandError(f"no registry {service!r}; known: {self._known()}")
            return found
        registries = list(Registry.objects.all()[:2])
        if not registries:
            raise CommandError("no registry is configured; run `manage.py migrate` or add one in the admin")
        if len(registries) > 1:
            raise CommandError(f"several registries exist; pick one with --registry ({self._known()})")
        return registries[0]

    def _known(self) -> str:
        return ", ".join(Registry.objects.values_list("service", flat=True)) or "none"
