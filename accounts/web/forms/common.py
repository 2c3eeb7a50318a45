"""What every dashboard form shares: "until" days as instants, service errors shown on fields, and
text fields that suggest people or teams as you type."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.urls import reverse_lazy
from django.utils import timezone


def expiry_from_date(day: date) -> datetime:
    """A grant "until 2026-12-31" lasts through that whole UTC day: it expires at 00:00 UTC the next day."""
    return datetime.combine(day + timedelta(days=1), time.min, tzinfo=UTC)


def add_service_error(form: forms.Form, error: ValidationError) -> None:
    """Attach a service's ValidationError to the matching field, or to the form when no field matches."""
    if not hasattr(error, "error_dict"):
        form.add_error(None, error)
        return
    for field, messages in error.message_dict.items():
        form.add_error(field if field in form.fields else None, messages)


def check_expiry_day(day: date) -> None:
    """Refuse an "until" day already over (UTC), or so far away that the day after it is off the calendar."""
    try:
        expires_at = expiry_from_date(day)
    except OverflowError:
        raise ValidationError("That day is too far away; pick an earlier one.", code="too_far") from None
    if expires_at <= timezone.now():
        raise ValidationError("That day is already over (UTC); pick today or a later date.", code="past")


class ExpiryMixin:
    """An optional ``expires_on`` day, refused when already over; ``expires_at`` is its instant."""

    cleaned_data: dict[str, Any]

    def clean_expires_on(self) -> date | None:
        day: date | None = self.cleaned_data["expires_on"]
        if day is not None:
            check_expiry_day(day)
        return day

    @property
    def expires_at(self) -> datetime | None:
        day = self.cleaned_data.get("expires_on")
        return expiry_from_date(day) if day else None


def suggesting(kind: str, list_id: str, **attrs: str) -> forms.TextInput:
    """A text field whose ``<datalist>`` (``_field.html`` adds it) htmx fills from ``suggest:<kind>``.

    Without JavaScript it is a plain text field; the form still checks the name on submit.
    ``list_id`` must be unique on the page: the team page has several such fields.
    """
    return forms.TextInput(
        attrs={
            "autocomplete": "off",
            "list": list_id,
            "hx-get": reverse_lazy(f"suggest:{kind}"),
            "hx-trigger": "input changed delay:250ms",
            "hx-target": f"#{list_id}",
            "hx-swap": "innerHTML",
            "hx-sync": "this:replace",
            **attrs,
        }
    )
