"""``manage.py unused_access [--days N] [--format text|json] [--team NAME]``: rights nobody uses."""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts import services
from accounts.models import Team


class Command(BaseCommand):
    help = (
        "List the rights the audit history shows unused for N days (default 90): grants to lower to "
        "read or revoke, robots and personal access tokens to revoke, people to deactivate. Read-only; "
        "apply or dismiss a proposal on the Unused access page."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days", help="the period, 1 to the access records' retention (default 90, or the retention if shorter)"
        )
        parser.add_argument("--format", choices=("text", "json"), default="text")
        parser.add_argument("--team", help="only what this team manages (its grants and robots)")

    def handle(self, *args: Any, days: str | None, format: str, team: str | None, **_: Any) -> None:
        team_ids = None
        if team is not None:
            found = Team.objects.filter(name=team).first()
            if found is None:
                raise CommandError(f"--team: there is no team called {team!r}")
            team_ids = {found.pk}
        try:
            period = services.unused.default_days() if days is None else services.unused.check_days(days)
            result = services.unused.report(period, team_ids=team_ids)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        if format == "json":
            self.stdout.write(json.dumps(result.as_json(), indent=2))
            return
        for line in text_lines(result):
            self.stdout.write(line)


def text_lines(result: services.unused.Report) -> list[str]:
    if not result.proposals:
        return [f"Nothing unused for {result.days} days." + _dismissed(result)]
    lines = [f"{len(result.proposals)} proposal(s) from {result.days} days of access history:" + _dismissed(result)]
    for p in result.proposals:
        what = f"{p.role} on {p.pattern}" + (f" ({p.registry})" if p.registry else "") if p.pattern else "all of it"
        lines.append(f"  {p.proposal:<10} {p.subject_type} {p.subject}: {what}")
        lines.append(f"             last used {services.unused.rfc3339(p.last_used) or 'never'}; {p.evidence}")
    return lines


def _dismissed(result: services.unused.Report) -> str:
    return f" ({result.dismissed} dismissed, not shown)" if result.dismissed else ""
