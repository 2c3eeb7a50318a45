"""``manage.py lift_limit --ip ADDR | --user NAME``: lift failed-sign-in holds (audited)."""

from __future__ import annotations

import ipaddress
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts import services
from audit.context import AuditContext


class Command(BaseCommand):
    help = (
        "Lift the holds placed after failed sign-ins: every hold on an address (--ip), or on a "
        "username from any address (--user), or both together for one pair. Counts are forgotten too."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--ip", help="source address, IPv4 or IPv6")
        parser.add_argument("--user", help="username (case does not matter)")
        parser.add_argument("--list", dest="list_only", action="store_true", help="only list who is held right now")

    def handle(self, *args: Any, ip: str | None, user: str | None, list_only: bool, **_: Any) -> None:
        if list_only:
            self._list()
            return
        if not ip and user is None:
            raise CommandError("name what to lift: --ip ADDR, --user NAME, or both (--list shows who is held)")
        if ip:
            try:
                ip = str(ipaddress.ip_address(ip.strip()))
            except ValueError:
                raise CommandError(f"--ip {ip!r} is not an IPv4 or IPv6 address") from None
        lifted = services.limits.lift(AuditContext.system("manage.py lift_limit"), ip=ip, username=user)
        if not lifted:
            self.stdout.write(
                "nothing to lift: no hold matches (counts for it were reset anyway)"
                if ip
                else "nothing to lift: no hold matches"
            )
            return
        for name in lifted:
            self.stdout.write(f"lifted: {name}")

    def _list(self) -> None:
        holds = services.limits.active_holds()
        if not holds:
            self.stdout.write("nobody is held")
        for hold in holds:
            until = hold.held_until.strftime("%Y-%m-%d %H:%M:%S")
            self.stdout.write(f"{services.limits.describe(hold)}: {hold.failures} failures, until {until} UTC")
