"""The doctor page's form: what ``manage.py doctor`` takes as options, all optional."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator

from accounts.constants import ACTIONS

URL_MAX_LENGTH = 2048


class DoctorForm(forms.Form):
    """``--url``, ``--origin`` and the roles question (``--user``, ``--repository``, ``--action``)."""

    url = forms.URLField(
        label="Probe at",
        required=False,
        max_length=URL_MAX_LENGTH,
        assume_scheme="https",
        validators=[URLValidator(schemes=["http", "https"])],
        help_text="The address clients use when it is not the registry's own URL (a proxy, a load balancer).",
    )
    origin = forms.URLField(
        label="Browser origin",
        required=False,
        max_length=URL_MAX_LENGTH,
        assume_scheme="https",
        validators=[URLValidator(schemes=["http", "https"])],
        help_text="The web origin of a browser-based registry UI, e.g. https://ui.example.org: checks CORS.",
    )
    user = forms.CharField(label="User or robot", required=False, max_length=255, strip=True)
    repository = forms.CharField(label="Repository", required=False, max_length=255, strip=True)
    action = forms.ChoiceField(label="Action", choices=[(a, a) for a in ACTIONS], initial="pull", required=False)

    def clean_origin(self) -> str:
        origin: str = self.cleaned_data["origin"]
        parts = urlsplit(origin)
        if origin and (parts.path.strip("/") or parts.query or parts.fragment):
            raise ValidationError("An origin is a scheme, host and port, without a path.", code="path")
        return origin.rstrip("/")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if bool(data.get("user")) != bool(data.get("repository")):
            raise ValidationError("Give a user and a repository together (or neither).", code="question")
        return data
