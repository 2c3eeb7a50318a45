"""``manage.py export_audit``: stream audit records to stdout as JSONL or CSV."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit import exporting
from audit.context import AuditContext
from audit.filters import ACTIONS, FilterError, parse_filter
from audit.filters import parse_time as _parse_time
from audit.formats import FORMATS
from audit.models import Kind

# The same names and meanings as the audit page's query string (see audit.filters).
FILTER_OPTIONS = (
    "since",
    "until",
    "kind",
    "outcome",
    "user",
    "repository",
    "robot",
    "team",
    "action",
    "ip",
    "registry",
    "text",
)


def parse_time(value: str) -> datetime:
    """ISO 8601; a date alone means midnight UTC; no zone means UTC."""
    try:
        return _parse_time(value)
    except ValueError as exc:
        raise CommandError(str(exc)) from None


class Command(BaseCommand):
    help = "Stream audit records (oldest first) to stdout, one per line. The export itself is recorded."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--format", choices=FORMATS, default="jsonl")
        parser.add_argument("--since", type=str, help="inclusive, ISO 8601")
        parser.add_argument("--until", type=str, help="exclusive, ISO 8601")
        parser.add_argument("--kind", choices=Kind.values)
        parser.add_argument("--outcome")
        parser.add_argument("--user", help="actor username")
        parser.add_argument("--repository", help="exact name, a prefix ending in / (web/), or a glob (web/*, web/**)")
        parser.add_argument("--robot", help="robot login name (web+ci or robot$web+ci), a prefix like web+*, or *")
        parser.add_argument("--team", help="records of the team's current members")
        parser.add_argument("--action", choices=ACTIONS, help="access attempts requesting it, and registry events")
        parser.add_argument("--ip", help="source address or CIDR range, e.g. 192.0.2.7 or 192.0.2.0/24")
        parser.add_argument("--registry", help="registry service name")
        parser.add_argument("--text", help="case-insensitive text anywhere in the record's detail")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            audit_filter = parse_filter({name: options[name] for name in FILTER_OPTIONS})
        except FilterError as exc:
            raise CommandError("; ".join(f"--{name}: {message}" for name, message in exc.errors.items())) from None
        context = AuditContext.system("manage.py export_audit")
        out = self.stdout._out if hasattr(self.stdout, "_out") else sys.stdout
        try:
            for line in exporting.stream(audit_filter, options["format"], context, delivery="command"):
                out.write(line)
            out.flush()
        except BrokenPipeError:
            # `export_audit | head` is normal use, not an error.
            sys.stderr.close()
