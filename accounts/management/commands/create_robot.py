"""``manage.py create_robot TEAM NAME [--expires DATE] [--grant PATTERN:ROLE ...]`` (or ``--global NAME``)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts import services
from accounts.management.commands._parse import parse_expiry, parse_grant
from accounts.models import Team
from audit.context import AuditContext


class Command(BaseCommand):
    help = "Create a robot account for a team (or a global one) and print its secret once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "names", nargs="+", metavar="TEAM NAME", help="team and robot name (NAME alone with --global)"
        )
        parser.add_argument("--global", dest="is_global", action="store_true", help="a robot of no team (admins only)")
        parser.add_argument("--expires", help="ISO 8601 date or time")
        parser.add_argument("--grant", action="append", default=[], metavar="PATTERN:ROLE")
        parser.add_argument("--description", default="")

    def handle(
        self,
        *args: Any,
        names: list[str],
        is_global: bool,
        expires: str | None,
        grant: list[str],
        description: str,
        **_: Any,
    ) -> None:
        team, name = self._team_and_name(names, is_global)
        grants = [parse_grant(value) for value in grant]
        try:
            robot, secret = services.create_robot(
                team,
                name,
                expires_at=parse_expiry(expires),
                grants=grants,
                description=description,
                context=AuditContext.system("manage.py create_robot"),
            )
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        self.stderr.write(f"Robot {robot.login_name} created. Its secret is shown only now:")
        self.stdout.write(f"username: {robot.login_name}\nsecret: {secret}")

    def _team_and_name(self, names: list[str], is_global: bool) -> tuple[Team | None, str]:
        if is_global:
            if len(names) != 1:
                raise CommandError("with --global give only the robot's NAME")
            return None, names[0]
        if len(names) != 2:
            raise CommandError("give TEAM and NAME (or --global NAME)")
        team = Team.objects.filter(name=names[0]).first()
        if team is None:
            raise CommandError(f"no team {names[0]!r}")
        return team, names[1]
