"""``manage.py rotate_robot LOGIN [--grace DURATION]``: a new secret, the old one working for the grace."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts import services
from accounts.access.subjects import find_robot
from accounts.management.commands._parse import parse_duration
from audit.context import AuditContext


class Command(BaseCommand):
    help = (
        "Give a robot a new secret, printed once. The old secret keeps working for the grace period "
        "(default 24h; 0 stops it at once), each use recorded with which secret it was."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("login", help="the robot's login, e.g. 'robot$web+ci' (quote the $ in shells)")
        parser.add_argument("--grace", default="24h", help="how long the old secret still works: 30m, 24h, 7d or 0")

    def handle(self, *args: Any, login: str, grace: str, **_: Any) -> None:
        robot = find_robot(login)
        if robot is None:
            raise CommandError(f"there is no robot {login!r} (give its login, e.g. 'robot$web+ci')")
        try:
            rotation = services.rotate_robot(
                robot, grace=parse_duration(grace), context=AuditContext.system("manage.py rotate_robot")
            )
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        self.stderr.write(f"Robot {rotation.robot.login_name} has a new secret, shown only now:")
        for note in rotation.notes:
            self.stderr.write(note)
        self.stdout.write(f"username: {rotation.robot.login_name}\nsecret: {rotation.secret}")
