"""``createsuperuser``, replaced so the new admin is made (and audited) by the services."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts import services
from accounts.management.commands._prompt import prompt_password
from accounts.models import User
from audit.context import AuditContext
from registryadmin.env import envsecret


class Command(BaseCommand):
    help = "Create an administrator (superuser). Non-interactive: --noinput with DJANGO_SUPERUSER_PASSWORD (or _FILE)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", required=True)
        parser.add_argument("--email", default="")
        parser.add_argument("--noinput", "--no-input", action="store_false", dest="interactive")

    def handle(self, *args: Any, username: str, email: str, interactive: bool, **options: Any) -> None:
        if User.objects.filter(username=username).exists():
            raise CommandError(f"User {username!r} already exists.")
        try:
            password = envsecret("DJANGO_SUPERUSER_PASSWORD") or ""  # or DJANGO_SUPERUSER_PASSWORD_FILE
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from None
        if interactive and not password:
            password = prompt_password()
        if not password:
            raise CommandError("Set DJANGO_SUPERUSER_PASSWORD when using --noinput.")
        try:
            services.create_user(
                username,
                email=email,
                password=password,
                is_superuser=True,
                context=AuditContext.system("manage.py createsuperuser"),
            )
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        self.stdout.write(f"Superuser {username!r} created.")
