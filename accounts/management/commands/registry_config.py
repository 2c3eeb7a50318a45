"""``manage.py registry_config``: write the files a registry needs and print its config fragment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts import services
from accounts.models import AuthMode, Registry
from accounts.registry import htpasswd
from accounts.registry.config import (
    HTPASSWD_REWRITE_ADVICE,
    TOKEN_ADVICE,
    default_output_dir,
    htpasswd_advice,
    htpasswd_fragment,
    prepare_htpasswd,
    prepare_token,
    render,
    token_fragment,
)
from audit.context import AuditContext


class Command(BaseCommand):
    help = (
        "Write the files a registry needs and print a YAML fragment with `auth` and `notifications` to merge into "
        "its config.yml; advice goes to stderr. Token mode writes the certificate bundle (to --output-dir if "
        "given). htpasswd mode writes the htpasswd file at DATA_DIR/registry/SERVICE/htpasswd, the only copy kept "
        "current after every change, so --output-dir is refused in htpasswd mode unless it names that directory."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--mode", choices=AuthMode.values, help="switch the registry to this mode first")
        parser.add_argument("--registry", help="registry service name (needed when there are several)")
        parser.add_argument(
            "--output-dir",
            type=Path,
            help="token mode: where to write the certificate bundle (default DATA_DIR/registry/SERVICE)",
        )

    def handle(self, *args: Any, mode: str | None, registry: str | None, output_dir: Path | None, **_: Any) -> None:
        target = self._registry(registry)
        if (mode or target.auth_mode) == AuthMode.HTPASSWD:
            self._refuse_other_htpasswd_dir(target, output_dir)
        context = AuditContext.system("manage.py registry_config")
        if mode and mode != target.auth_mode:
            target = services.update_registry(target, auth_mode=mode, context=context)
            self.stderr.write(f"# registry {target.service} switched to {mode} mode")
        if target.auth_mode == AuthMode.HTPASSWD:
            self._htpasswd(target, context)
        else:
            self._token(target, context, output_dir)

    def _token(self, target: Registry, context: AuditContext, output_dir: Path | None) -> None:
        bundle, secret = prepare_token(target, context, output_dir)
        self.stderr.write(f"# wrote {bundle} (current + next signing certificates)")
        self.stderr.write(f"# {TOKEN_ADVICE}")
        self.stdout.write(render(token_fragment(target.service, bundle, secret)), ending="")

    def _htpasswd(self, target: Registry, context: AuditContext) -> None:
        try:
            path, secret = prepare_htpasswd(target, context)
        except (htpasswd.HtpasswdError, OSError) as exc:
            raise CommandError(f"cannot write the htpasswd file: {exc}") from exc
        self.stderr.write(f"# wrote {path}; {HTPASSWD_REWRITE_ADVICE}")
        for line in htpasswd_advice(htpasswd.users_without_hash()):
            self.stderr.write(f"# {line}")
        self.stdout.write(render(htpasswd_fragment(target.service, path, secret)), ending="")

    def _refuse_other_htpasswd_dir(self, target: Registry, output_dir: Path | None) -> None:
        """A copy elsewhere would never learn of later changes (a deactivation above all)."""
        kept = default_output_dir(target.service).resolve()
        if output_dir is not None and output_dir.resolve() != kept:
            raise CommandError(
                f"--output-dir applies to token mode only: in htpasswd mode the file is kept current at "
                f"{kept / 'htpasswd'}; point the registry at that path (or mount that directory) instead."
            )

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
