"""``manage.py create_token USER NAME [--expires DATE] [--read-only] [--pattern P ...]``."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts import services
from accounts.management.commands._parse import parse_expiry
from accounts.models import User
from audit.context import AuditContext


class Command(BaseCommand):
    help = "Create a personal access token (usable as the password in docker login) and print it once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("user")
        parser.add_argument("name")
        parser.add_argument("--expires", help="ISO 8601 date or time")
        parser.add_argument("--read-only", action="store_true", help="pull only")
        parser.add_argument("--pattern", action="append", default=[], help="limit to these repositories")

    def handle(
        self, *args: Any, user: str, name: str, expires: str | None, read_only: bool, pattern: list[str], **_: Any
    ) -> None:
        owner = User.objects.filter(username=user).first()
        if owner is None:
            raise CommandError(f"no user {user!r}")
        try:
            token, secret = services.create_access_token(
                owner,
                name,
                read_only=read_only,
                patterns=pattern,
                expires_at=parse_expiry(expires),
                context=AuditContext.system("manage.py create_token"),
            )
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        self.stderr.write(f"Token {token} created. Use it as the password for {owner.username}; it is shown only now:")
        self.stdout.write(secret)
