"""Forms for the registry pages: they parse and validate; ``services`` creates and updates the rows.

Was ``accounts/registry_forms.py`` before the layout split.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator, URLValidator

from accounts.models import AuthMode

# The service name is a URL path component here (/manage/registries/SERVICE/, /registry/SERVICE/events) and a
# directory name (DATA_DIR/registry/SERVICE): no slashes, no dot-only names, nothing a shell must quote.
SERVICE_PATTERN = r"\A[A-Za-z0-9][A-Za-z0-9._:-]*\Z"
URL_MAX_LENGTH = 200  # the model's URLField


class RegistrySettingsForm(forms.Form):
    """What an admin may change on an existing registry: where it is and how it checks logins."""

    url = forms.URLField(
        label="URL",
        required=False,
        max_length=URL_MAX_LENGTH,
        assume_scheme="https",
        validators=[URLValidator(schemes=["http", "https"])],
        help_text="The base URL clients use, e.g. https://registry.example.org (no path). Optional, but without it "
        "the key-rotation preflight cannot check the registry and the setup page cannot name the host.",
    )
    auth_mode = forms.ChoiceField(
        label="Authentication",
        choices=AuthMode.choices,
        initial=AuthMode.TOKEN,
        widget=forms.RadioSelect,
        help_text="Token mode enforces every grant. htpasswd mode checks passwords only: any valid user may pull, "
        "push and delete everywhere.",
    )

    def clean_url(self) -> str:
        url: str = self.cleaned_data["url"]
        parts = urlsplit(url)
        if parts.path.strip("/") or parts.query or parts.fragment:
            raise ValidationError(
                "Give the registry's base URL (scheme, host and port) without a path: clients name images HOST/NAME.",
                code="path",
            )
        if parts.username or parts.password:
            raise ValidationError("Leave credentials out of the URL.", code="credentials")
        return url.rstrip("/")


class NewRegistryForm(RegistrySettingsForm):
    """A new registry: its ``service`` name (the token audience), then the settings."""

    service = forms.CharField(
        max_length=255,
        validators=[
            RegexValidator(
                SERVICE_PATTERN,
                "Use letters, digits, dots, colons, dashes and underscores, starting with a letter or digit.",
                code="service",
            )
        ],
        help_text="The registry's auth.token.service, e.g. registry.example.org. It cannot be changed later here.",
    )
    field_order = ("service", "url", "auth_mode")


class RegistryFilterForm(forms.Form):
    """The list's search box and mode filter."""

    q = forms.CharField(label="Search", required=False, max_length=255)
    mode = forms.ChoiceField(label="Authentication", required=False, choices=[("", "any"), *AuthMode.choices])
