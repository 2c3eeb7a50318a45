"""``changepassword``, replaced so the change goes through the services (audited)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts import services
from accounts.management.commands._prompt import prompt_password
from accounts.models import User
from audit.context import AuditContext


class Command(BaseCommand):
    help = "Change a user's password (prompts twice)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")

    def handle(self, *args: Any, username: str, **options: Any) -> None:
        user = User.objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"User {username!r} does not exist.")
        password = prompt_password(f"New password for {username}")
        try:
            services.set_password(user, password, context=AuditContext.system("manage.py changepassword"))
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        self.stdout.write(f"Password changed for {username!r}.")
