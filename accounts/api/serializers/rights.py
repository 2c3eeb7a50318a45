"""What the rights endpoints read and answer: repositories, grants, robots and personal access tokens.

Output serializers read model rows (fetched with their joins by the views); input serializers only
parse and check shapes (names, choices, an expiry in the future). Whether something is allowed (a
grant inside the team's grants, a robot of a team the caller leads) is the services' to decide.
Secrets appear only in the answers to a create or a rotate (``*SecretSerializer``), never in a list.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.access.patterns import InvalidName, validate_pattern
from accounts.constants import ROBOT_LOGIN_PREFIX
from accounts.models import Grant, PersonalAccessToken, Repository, Robot, Role
from accounts.querysets import CredentialState

EVERY_REGISTRY = "*"
REGISTRY_FILTER_HELP = f"A registry's service name, or {EVERY_REGISTRY!r} for rows that name no registry."
GRACE_CHOICES = ["24h", "1h", "7d", "0"]
MAX_GRANT_LINES = 50


def _future(value: datetime | None) -> datetime | None:
    """Refuse an expiry already past: it would make something that never works (the pages refuse it too)."""
    if value is not None and value <= timezone.now():
        raise serializers.ValidationError("This moment is already past; give a later one.")
    return value


def _valid_pattern(value: str) -> str:
    """Check a pattern's grammar here: the token limits are compared with it before any service sees it."""
    try:
        return validate_pattern(value)
    except InvalidName as exc:
        raise serializers.ValidationError(str(exc)) from None


def _ordering(*fields: str) -> serializers.ChoiceField:
    choices = [name for field in fields for name in (field, f"-{field}")]
    return serializers.ChoiceField(
        choices=choices, required=False, help_text=f"Sort by one of: {', '.join(choices)} (- for descending)."
    )


# Inside allOf, so that drf-spectacular leaves it inline: pulled out as an enum component, it would share
# the name "state" with the signing keys' states (a naming collision the schema check refuses).
CREDENTIAL_STATE_SCHEMA = {
    "allOf": [{"type": "string", "enum": CredentialState.values}],
    "description": "active, expired or revoked.",
}


@extend_schema_field(CREDENTIAL_STATE_SCHEMA)
class CredentialStateField(serializers.ChoiceField):
    """A robot's or token's state (``CredentialState``), documented inline."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=CredentialState.choices, **kwargs)


def _state_filter() -> serializers.ChoiceField:
    return CredentialStateField(required=False, help_text="active, expired or revoked.")


# --- repositories -------------------------------------------------------------------------------


class RepositorySerializer(serializers.ModelSerializer):
    """A repository we know of; ``registry`` null means the row applies to every registry."""

    registry = serializers.CharField(source="registry.service", allow_null=True, default=None)

    class Meta:
        model = Repository
        fields = ["id", "name", "registry", "public", "created_at"]
        read_only_fields = fields


class RepositoryFilterSerializer(serializers.Serializer):
    """The list's filters, as on the repositories page."""

    q = serializers.CharField(
        required=False, max_length=255, help_text="Part of the name, or a grant-style glob when it holds *."
    )
    registry = serializers.CharField(required=False, max_length=255, help_text=REGISTRY_FILTER_HELP)
    public = serializers.BooleanField(required=False, help_text="Only public (true) or private (false) ones.")
    ordering = _ordering("name", "created_at")


class RepositoryCreateSerializer(serializers.Serializer):
    """A repository to know of before its first push (to make it public, or to tie it to one registry)."""

    name = serializers.CharField(max_length=255, help_text="Lowercase path components joined by /, e.g. web/app.")
    registry = serializers.CharField(
        required=False, allow_null=True, max_length=255, help_text="A registry's service name; null: every registry."
    )
    public = serializers.BooleanField(required=False, default=False, help_text="Anyone, even anonymous, may pull.")


class RepositoryUpdateSerializer(serializers.Serializer):
    """The one thing a repository row changes: whether anyone may pull."""

    public = serializers.BooleanField()


# --- grants -------------------------------------------------------------------------------------


class GrantSerializer(serializers.ModelSerializer):
    """A role on a repository pattern, given to exactly one of a user, a team or a robot."""

    user = serializers.CharField(source="user.username", allow_null=True, default=None)
    team = serializers.CharField(source="team.name", allow_null=True, default=None)
    robot = serializers.SerializerMethodField(help_text="The robot's login name, e.g. robot$web+ci.")
    registry = serializers.CharField(
        source="registry.service", allow_null=True, default=None, help_text="null: every registry."
    )
    managed_by = serializers.CharField(
        source="managed_by.name", allow_null=True, default=None, help_text="The team whose leads may revoke it."
    )
    created_by = serializers.CharField(source="created_by.username", allow_null=True, default=None)
    lies_in = serializers.SerializerMethodField(
        help_text="For a grant a team manages: the id of the team's grant it lies in (null: none any more)."
    )

    class Meta:
        model = Grant
        fields = [
            "id",
            "pattern",
            "role",
            "user",
            "team",
            "robot",
            "registry",
            "expires_at",
            "managed_by",
            "lies_in",
            "created_by",
            "created_at",
        ]
        read_only_fields = fields

    def get_robot(self, grant: Grant) -> str | None:
        return grant.robot.login_name if grant.robot_id else None

    def get_lies_in(self, grant: Grant) -> int | None:
        parent = getattr(grant, "parent", None)
        return parent.pk if parent is not None else None


class GrantFilterSerializer(serializers.Serializer):
    """The grant list's filters; they combine (AND)."""

    user = serializers.CharField(required=False, max_length=150, help_text="Grants to this user (username).")
    team = serializers.CharField(required=False, max_length=100, help_text="Grants to this team (name).")
    robot = serializers.CharField(
        required=False, max_length=255, help_text=f"Grants to this robot ({ROBOT_LOGIN_PREFIX}<team>+<name>)."
    )
    pattern = serializers.CharField(required=False, max_length=255, help_text="Patterns holding this text.")
    registry = serializers.CharField(required=False, max_length=255, help_text=REGISTRY_FILTER_HELP)
    role = serializers.ChoiceField(choices=Role.choices, required=False)
    managed_by = serializers.CharField(required=False, max_length=100, help_text="Grants this team manages (name).")
    state = serializers.ChoiceField(
        choices=[("current", "current"), ("expiring", "expiring within 7 days"), ("expired", "expired")],
        required=False,
    )
    ordering = _ordering("pattern", "role", "expires_at", "created_at")


class GrantCreateSerializer(serializers.Serializer):
    """A new grant, given to a user or a robot, or to a team.

    ``user`` or ``robot`` with ``team``: handed out by that team's lead, as on the team page (inside
    the team's grants, the team manages it, it ends no later than the team's grant it lies in); team
    leads grant only this way, for a team they lead. ``team`` alone: a grant to the team (admins).
    ``user`` or ``robot`` alone: an admin's grant that no team manages.
    """

    user = serializers.CharField(required=False, max_length=150, help_text="Give to this user (username).")
    robot = serializers.CharField(
        required=False, max_length=255, help_text=f"Give to this robot ({ROBOT_LOGIN_PREFIX}<team>+<name>)."
    )
    team = serializers.CharField(
        required=False,
        max_length=100,
        help_text="With user or robot: the team handing the grant out (it then manages it). Alone: give to the team.",
    )
    pattern = serializers.CharField(
        max_length=255, validators=[_valid_pattern], help_text="A name, or a glob: * within a component, ** across."
    )
    role = serializers.ChoiceField(choices=Role.choices)
    registry = serializers.CharField(
        required=False, allow_null=True, max_length=255, help_text="A registry's service name; null: every registry."
    )
    expires_at = serializers.DateTimeField(required=False, allow_null=True, validators=[_future])

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("user") and attrs.get("robot"):
            raise serializers.ValidationError("Give to a user or to a robot, not both.", code="subject")
        if not (attrs.get("user") or attrs.get("robot") or attrs.get("team")):
            raise serializers.ValidationError("Name who gets the grant: a user, a robot or a team.", code="subject")
        return attrs


class GrantUpdateSerializer(serializers.Serializer):
    """A new role and/or expiry (null removes it). Team leads change only the expiry."""

    role = serializers.ChoiceField(choices=Role.choices, required=False)
    expires_at = serializers.DateTimeField(required=False, allow_null=True, validators=[_future])

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs:
            raise serializers.ValidationError("Give a new role, a new expires_at, or expires_at null.", code="nothing")
        return attrs


# --- robots -------------------------------------------------------------------------------------


class RobotGrantSerializer(serializers.ModelSerializer):
    """One of a robot's grants, as its row shows it."""

    registry = serializers.CharField(source="registry.service", allow_null=True, default=None)

    class Meta:
        model = Grant
        fields = ["id", "pattern", "role", "registry", "expires_at"]
        read_only_fields = fields


class RobotSerializer(serializers.ModelSerializer):
    """A robot account (never its secret)."""

    login = serializers.CharField(source="login_name", help_text="What it signs in as: robot$<team>+<name>.")
    team = serializers.CharField(source="team.name", allow_null=True, default=None, help_text="null: a global robot.")
    state = CredentialStateField()
    created_by = serializers.CharField(source="created_by.username", allow_null=True, default=None)
    grants = RobotGrantSerializer(many=True, read_only=True)

    class Meta:
        model = Robot
        fields = [
            "id",
            "login",
            "name",
            "team",
            "description",
            "state",
            "expires_at",
            "revoked_at",
            "secret_set_at",
            "previous_valid_until",
            "last_used_at",
            "last_used_ip",
            "created_by",
            "created_at",
            "grants",
        ]
        read_only_fields = fields


class RobotFilterSerializer(serializers.Serializer):
    """The robot list's filters."""

    q = serializers.CharField(
        required=False, max_length=200, help_text="Part of the name, team or description, or a whole login."
    )
    team = serializers.CharField(
        required=False, max_length=100, help_text="A team's robots (name); $global for robots of no team."
    )
    state = _state_filter()
    ordering = _ordering("name", "created_at", "expires_at", "last_used_at")


class RobotGrantInputSerializer(serializers.Serializer):
    """One grant of a robot being made."""

    pattern = serializers.CharField(max_length=255, validators=[_valid_pattern])
    role = serializers.ChoiceField(choices=Role.choices)


class RobotCreateSerializer(serializers.Serializer):
    """A new robot: global (admins, no team) or of a team (admins any, a team lead their own)."""

    team = serializers.CharField(
        required=False, allow_null=True, max_length=100, help_text="The robot's team; null or absent: a global robot."
    )
    name = serializers.CharField(max_length=100, help_text="Lowercase letters, digits, - or _.")
    description = serializers.CharField(required=False, allow_blank=True, max_length=255, default="")
    expires_at = serializers.DateTimeField(required=False, allow_null=True, validators=[_future])
    grants = RobotGrantInputSerializer(
        many=True, required=False, help_text="A team robot's grants must lie inside its team's grants."
    )

    def validate_grants(self, grants: list[dict[str, str]]) -> list[dict[str, str]]:
        if len(grants) > MAX_GRANT_LINES:
            raise serializers.ValidationError(f"At most {MAX_GRANT_LINES} grants, please.")
        patterns = [grant["pattern"] for grant in grants]
        if len(set(patterns)) != len(patterns):
            raise serializers.ValidationError("A pattern is given twice.")
        return grants


class RobotSecretSerializer(RobotSerializer):
    """A robot just made: its secret is here once and never shown again."""

    secret = serializers.CharField(help_text="The robot's password for docker login: shown this once only.")

    class Meta(RobotSerializer.Meta):
        fields = [*RobotSerializer.Meta.fields, "secret"]
        read_only_fields = fields


class RobotRotateSerializer(serializers.Serializer):
    """How long the old secret keeps working after the rotation (as on the robot pages)."""

    grace = serializers.ChoiceField(
        choices=GRACE_CHOICES, required=False, default="24h", help_text="24h, 1h, 7d, or 0: the old secret stops now."
    )


class RobotRotationSerializer(serializers.Serializer):
    """A rotated robot: the new secret (shown once), until when the old one works, and what to tell people."""

    robot = RobotSerializer()
    secret = serializers.CharField(help_text="The new secret: shown this once only.")
    previous_valid_until = serializers.DateTimeField(allow_null=True, help_text="null: the old secret stopped now.")
    notes = serializers.ListField(child=serializers.CharField())


# --- personal access tokens ---------------------------------------------------------------------


class TokenSerializer(serializers.ModelSerializer):
    """A personal access token (never its secret)."""

    user = serializers.CharField(source="user.username")
    state = CredentialStateField()
    patterns = serializers.ListField(child=serializers.CharField(), help_text="Empty: every repository of the user.")

    class Meta:
        model = PersonalAccessToken
        fields = [
            "id",
            "user",
            "name",
            "read_only",
            "patterns",
            "state",
            "expires_at",
            "revoked_at",
            "last_used_at",
            "last_used_ip",
            "created_at",
        ]
        read_only_fields = fields


class TokenFilterSerializer(serializers.Serializer):
    """The token list's filters."""

    user = serializers.CharField(
        required=False, max_length=150, help_text="Admins and auditors: another person's tokens (username)."
    )
    q = serializers.CharField(required=False, max_length=200, help_text="Part of the name.")
    state = _state_filter()
    ordering = _ordering("name", "created_at", "expires_at", "last_used_at")


class TokenCreateSerializer(serializers.Serializer):
    """A new token of the caller; a token-authenticated request makes one at most as limited as itself."""

    name = serializers.CharField(max_length=100, help_text="Where it is used, e.g. laptop or ci.")
    read_only = serializers.BooleanField(required=False, default=False, help_text="Pull only.")
    patterns = serializers.ListField(
        child=serializers.CharField(max_length=255, validators=[_valid_pattern]),
        required=False,
        default=list,
        max_length=MAX_GRANT_LINES,
        help_text="Repository patterns the token is limited to; empty: all the user may reach.",
    )
    expires_at = serializers.DateTimeField(required=False, allow_null=True, validators=[_future])


class TokenSecretSerializer(TokenSerializer):
    """A token just made: its secret is here once and never shown again."""

    secret = serializers.CharField(help_text="Authorization: Bearer <secret>, or the docker login password.")

    class Meta(TokenSerializer.Meta):
        fields = [*TokenSerializer.Meta.fields, "secret"]
        read_only_fields = fields
