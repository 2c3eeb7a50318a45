"""Argument parsing shared by the credential commands."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

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


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: str, option: str = "--grace") -> timedelta:
    """``90s``, ``30m``, ``24h``, ``7d`` (or ``0``: none); at most 90 days."""
    text = value.strip().lower()
    number, unit = (text[:-1], text[-1]) if text and text[-1] in _UNITS else (text, "")
    if not number.isdigit() or (not unit and number != "0"):
        raise CommandError(f"{option} {value!r} is not a duration: use a number and s, m, h or d (e.g. 24h), or 0.")
    duration = timedelta(seconds=int(number) * _UNITS.get(unit, 1))
    if duration > timedelta(days=90):
        raise CommandError(f"{option} {value!r} is longer than 90 days.")
    return duration
