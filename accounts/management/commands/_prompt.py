"""Shared password prompting for the account commands."""

from __future__ import annotations

import getpass

from django.core.management.base import CommandError


def prompt_password(label: str = "Password") -> str:
    """Ask twice on the terminal; refuse an empty or mismatched answer."""
    try:
        first = getpass.getpass(f"{label}: ")
        second = getpass.getpass(f"{label} (again): ")
    except (EOFError, KeyboardInterrupt):
        raise CommandError("No password given.") from None
    if not first:
        raise CommandError("The password may not be empty.")
    if first != second:
        raise CommandError("The passwords do not match.")
    return first
