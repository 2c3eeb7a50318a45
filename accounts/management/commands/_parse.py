"""Argument parsing shared by the credential commands."""

from __future__ import annotations

from datetime import UTC, datetime

from django.core.management.base import CommandError


def parse_expiry(value: str | None) -> datetime | None:
    """ISO 8601 date or time; a date means midnight UTC; no zone means UTC; must lie in the future."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise CommandError(f"--expires {value!r} is not an ISO 8601 date or time (e.g. 2026-12-31).") from None
    parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    if parsed <= datetime.now(UTC):
        raise CommandError(f"--expires {value!r} lies in the past.")
    return parsed


def parse_grant(value: str) -> tuple[str, str]:
    pattern, sep, role = value.rpartition(":")
    if not sep or not pattern or role not in {"read", "write", "admin"}:
        raise CommandError(f"--grant {value!r} must be PATTERN:ROLE with ROLE read, write or admin.")
    return pattern, role
