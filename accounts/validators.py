"""Model-field validators, so forms (admin included) reject bad names before a service runs."""

from __future__ import annotations

from django.core.exceptions import ValidationError

from accounts.access.patterns import InvalidName, validate_pattern, validate_repository_name


def repository_name_validator(value: str) -> None:
    try:
        validate_repository_name(value)
    except InvalidName as exc:
        raise ValidationError(str(exc), code="invalid_repository") from None


def pattern_validator(value: str) -> None:
    try:
        validate_pattern(value)
    except InvalidName as exc:
        raise ValidationError(str(exc), code="invalid_pattern") from None
