"""``manage.py export_audit``: stream audit records to stdout as JSONL or CSV."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.export import FORMATS, render, rows
from audit.filters import AuditFilter
from audit.models import Kind


def parse_time(value: str) -> datetime:
    """ISO 8601; a date alone means midnight UTC; no zone means UTC."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise CommandError(f"{value!r} is not an ISO 8601 time (e.g. 2026-11-01 or 2026-11-01T12:00:00Z).") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class Command(BaseCommand):
    help = "Stream audit records (oldest first) to stdout, one per line."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--format", choices=FORMATS, default="jsonl")
        parser.add_argument("--since", type=str, help="inclusive, ISO 8601")
        parser.add_argument("--until", type=str, help="exclusive, ISO 8601")
        parser.add_argument("--kind", choices=Kind.values)
        parser.add_argument("--outcome")
        parser.add_argument("--user", help="actor username")
        parser.add_argument("--repository")

    def handle(self, *args: Any, **options: Any) -> None:
        audit_filter = AuditFilter(
            since=parse_time(options["since"]) if options["since"] else None,
            until=parse_time(options["until"]) if options["until"] else None,
            kind=options["kind"],
            outcome=options["outcome"],
            user=options["user"],
            repository=options["repository"],
        )
        out = self.stdout._out if hasattr(self.stdout, "_out") else sys.stdout
        try:
            for line in render(rows(audit_filter.apply()), options["format"]):
                out.write(line)
            out.flush()
        except BrokenPipeError:
            # `export_audit | head` is normal use, not an error.
            sys.stderr.close()
