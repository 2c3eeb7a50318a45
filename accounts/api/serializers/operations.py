"""What the operations endpoints read and answer: registries, signing keys, scheduled jobs, policy as code.

Request serializers validate like the pages' forms (the service name and URL rules are copied from
``accounts.web.forms.registries``, which the API may not import); the services validate the rest.
Secrets appear in two places only, both for administrators: a registry's notification secret, and
the new one a rotation makes. A signing key's private half is never in any answer.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.core.validators import RegexValidator, URLValidator
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.api.errors import ErrorSerializer
from accounts.models import AuthMode, KeyState

# As the pages: the service is a URL path component and a directory name (see the web form's comment).
SERVICE_PATTERN = r"\A[A-Za-z0-9][A-Za-z0-9._:-]*\Z"
SERVICE_MESSAGE = "Use letters, digits, dots, colons, dashes and underscores, starting with a letter or digit."
URL_MAX_LENGTH = 200  # the model's URLField
GRACE_CHOICES = [("24h", "24 hours"), ("1h", "1 hour"), ("7d", "7 days"), ("0", "none: the old secret stops now")]


def clean_registry_url(url: str) -> str:
    """The registry's base URL (scheme, host, port) without a path or credentials, as the registry form wants."""
    parts = urlsplit(url)
    if parts.path.strip("/") or parts.query or parts.fragment:
        raise serializers.ValidationError(
            "Give the registry's base URL (scheme, host and port) without a path: clients name images HOST/NAME."
        )
    if parts.username or parts.password:
        raise serializers.ValidationError("Leave credentials out of the URL.")
    return url.rstrip("/")


class NotificationsSerializer(serializers.Serializer):
    """The registry's notification endpoint: whether a secret exists and what the registry last sent."""

    configured = serializers.BooleanField(help_text="A notification secret exists (the configuration was prepared).")
    last_used = serializers.CharField(
        help_text='Which secret the registry sent last: "current", "previous", or "" when none arrived yet.'
    )
    last_used_at = serializers.DateTimeField(allow_null=True)
    previous_valid_until = serializers.DateTimeField(
        allow_null=True, help_text="After a rotation: until when the previous secret is still accepted."
    )


class RegistrySerializer(serializers.Serializer):
    """A registry as the list shows it."""

    service = serializers.CharField(help_text="The token audience (auth.token.service); names the registry here.")
    url = serializers.CharField(help_text='The base URL clients use ("" when not set).')
    auth_mode = serializers.ChoiceField(choices=AuthMode.choices)
    created_at = serializers.DateTimeField()
    repository_count = serializers.IntegerField(help_text="Repositories limited to this registry.")
    grant_count = serializers.IntegerField(help_text="Grants limited to this registry.")
    notifications = NotificationsSerializer()


class RegistryDetailSerializer(RegistrySerializer):
    """One registry, with its notification secret for administrators."""

    notification_secret = serializers.CharField(
        allow_null=True,
        help_text="The notification secret (rgn_...): administrators only; null for auditors or when none exists.",
    )
    warnings = serializers.ListField(
        child=serializers.CharField(), help_text="What the registry page warns about (htpasswd mode, ...)."
    )


class RegistryCreateSerializer(serializers.Serializer):
    """A new registry: the service name cannot change afterwards (as on the page)."""

    service = serializers.CharField(max_length=255, validators=[RegexValidator(SERVICE_PATTERN, SERVICE_MESSAGE)])
    url = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=URL_MAX_LENGTH,
        validators=[URLValidator(schemes=["http", "https"])],
        help_text="The base URL, e.g. https://registry.example.org (no path). Optional, but without it the "
        "key-rotation preflight cannot check the registry.",
    )
    auth_mode = serializers.ChoiceField(choices=AuthMode.choices, default=AuthMode.TOKEN)

    def validate_url(self, value: str) -> str:
        return clean_registry_url(value) if value else value


class RegistryUpdateSerializer(serializers.Serializer):
    """What an administrator may change on a registry: where it is and how it checks logins."""

    url = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=URL_MAX_LENGTH,
        validators=[URLValidator(schemes=["http", "https"])],
        help_text='The base URL without a path; "" clears it.',
    )
    auth_mode = serializers.ChoiceField(choices=AuthMode.choices, required=False)

    def validate_url(self, value: str) -> str:
        return clean_registry_url(value) if value else value


class RegistryQuerySerializer(serializers.Serializer):
    """The list's filters, as the page's search box and mode filter."""

    q = serializers.CharField(required=False, allow_blank=True, max_length=255)
    mode = serializers.ChoiceField(choices=AuthMode.choices, required=False)
    ordering = serializers.ChoiceField(choices=["service", "-service", "created_at", "-created_at"], required=False)


class RotateSecretSerializer(serializers.Serializer):
    """How long the old notification secret keeps working after the rotation."""

    grace = serializers.ChoiceField(choices=GRACE_CHOICES, default="24h")


class RotatedSecretSerializer(serializers.Serializer):
    """The new notification secret, shown this once."""

    service = serializers.CharField()
    notification_secret = serializers.CharField(help_text="The new secret (rgn_...): shown once, in this answer.")
    previous_valid_until = serializers.DateTimeField(
        allow_null=True, help_text="Until when the old secret is still accepted (null: no longer, or there was none)."
    )
    detail = serializers.CharField(help_text="What to do next (merge the fragment, restart the registry).")


@extend_schema_field({"type": "string", "enum": KeyState.values, "description": "next, current, previous or retired."})
class KeyStateField(serializers.ChoiceField):
    """A key's state, documented inline: "state" names other choice sets in other families' components."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(choices=KeyState.choices, **kwargs)


class SigningKeySerializer(serializers.Serializer):
    """A token-signing key: its state and certificate expiry (never the private key)."""

    kid = serializers.CharField()
    state = KeyStateField()
    not_after = serializers.DateTimeField(help_text="When the key's certificate expires.")
    created_at = serializers.DateTimeField()
    activated_at = serializers.DateTimeField(allow_null=True)
    retired_at = serializers.DateTimeField(allow_null=True)
    age_days = serializers.IntegerField(help_text="Days since it started signing (since it was made, if never).")
    expires_soon = serializers.BooleanField(help_text="The certificate expires within 30 days (or has expired).")


class KeyQuerySerializer(serializers.Serializer):
    """The key list's filter and order (default: next, current, previous, retired; newest first)."""

    state = KeyStateField(required=False)
    ordering = serializers.ChoiceField(
        choices=["state", "created_at", "-created_at", "not_after", "-not_after"], required=False
    )


class RotateKeysSerializer(serializers.Serializer):
    """The keys page's "rotate anyway" box."""

    force = serializers.BooleanField(
        default=False,
        help_text="Rotate even if a registry fails the preflight (--force). Only when every registry has loaded "
        "the current bundle: otherwise it refuses every token until restarted with the new bundle.",
    )


class PreflightResultSerializer(serializers.Serializer):
    """One registry's answer to a token signed with the next key."""

    registry = serializers.CharField()
    ok = serializers.BooleanField(allow_null=True, help_text="null: could not be checked (the registry has no URL).")
    message = serializers.CharField()


class RewrittenBundleSerializer(serializers.Serializer):
    registry = serializers.CharField()
    bundle = serializers.CharField(help_text="The certificate bundle file rewritten for it.")


class RotationSerializer(serializers.Serializer):
    """A done rotation: the key now signing, each registry's preflight answer, the bundles rewritten."""

    current = serializers.CharField(help_text="The kid of the key that signs from now on.")
    preflight = PreflightResultSerializer(many=True)
    rewritten = RewrittenBundleSerializer(many=True)
    warnings = serializers.ListField(child=serializers.CharField())


class RotationRefusedSerializer(ErrorSerializer):
    """A rotation the preflight refused (409): the error shape, with each registry's answer."""

    preflight = PreflightResultSerializer(many=True)


class JobRunSerializer(serializers.Serializer):
    """One run of a job, from its ``job`` audit record."""

    record = serializers.IntegerField(help_text="The audit record's id (GET /api/audit/records/...).")
    time = serializers.DateTimeField()
    outcome = serializers.CharField(help_text="success or error.")
    seconds = serializers.FloatField(allow_null=True)
    error = serializers.CharField(help_text='The error of a failed run ("" otherwise).')


class JobSerializer(serializers.Serializer):
    """A scheduled job: its beat entry, its last run and last failure in the past 8 days."""

    name = serializers.CharField(help_text="The beat entry's name (POST /api/jobs/{name}/run).")
    task = serializers.CharField()
    schedule = serializers.CharField(
        help_text='As people read it, with the crontab: "daily at 03:30 UTC (30 3 * * *)".'
    )
    last_run = JobRunSerializer(allow_null=True)
    last_error = JobRunSerializer(allow_null=True)


class JobQueuedSerializer(serializers.Serializer):
    """A job sent to the broker now; a worker runs it and its record appears in the list."""

    name = serializers.CharField()
    task = serializers.CharField()
    detail = serializers.CharField()


class PolicyOutcomeSerializer(serializers.Serializer):
    """What ``apply_policy`` printed: one line a change, then what the changes took with them."""

    changes = serializers.ListField(
        child=serializers.CharField(), help_text='One line a change: "+ user x", "~ grant on ...", "- member ...".'
    )
    consequences = serializers.ListField(
        child=serializers.CharField(),
        help_text="Grants a team managed that its grants no longer cover (capped or revoked by the changes).",
    )
    applied = serializers.BooleanField(help_text="false for a dry run: nothing was changed.")
