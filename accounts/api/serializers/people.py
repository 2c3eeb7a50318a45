"""What the people endpoints read and answer: users, teams, memberships, the members search.

Request serializers parse and bound the input (lengths, choices, no NUL bytes: DRF's ``CharField``
refuses them); ``accounts.services`` then decides what is allowed and writes the audit record.
Unknown body fields are refused (``Strict``): a script that misspells ``is_active`` must hear so
rather than see nothing change.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.models import TeamRole

USER_ORDERINGS = ("username", "-username", "date_joined", "-date_joined")
TEAM_ORDERINGS = ("name", "-name", "created_at", "-created_at")
MEMBER_ORDERINGS = ("username", "-username", "role", "-role")
ROLES = ("admin", "auditor", "lead", "other")
SEARCH_MIN = 2


class Strict(serializers.Serializer):
    """A request body whose every key must be a known field."""

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(getattr(self, "initial_data", {}) or {}) - set(self.fields))
        if unknown:
            raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return attrs


# Wrapped in oneOf so that drf-spectacular keeps it inline: its enum components are named after the
# field (role, local_role, my_role), which would give this one choice set three names, and "role"
# is also the grants' read/write/admin.
@extend_schema_field({"type": "string", "oneOf": [{"enum": list(TeamRole.values)}]})
class TeamRoleField(serializers.ChoiceField):
    """A team role: maintainer (a team lead) or member."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=TeamRole.values, **kwargs)


def ordering_field(choices: tuple[str, ...], default: str) -> serializers.ChoiceField:
    return serializers.ChoiceField(
        choices=choices, required=False, default=default, help_text=f"One of {', '.join(choices)}."
    )


# --- users ---------------------------------------------------------------------------------


class UserSerializer(serializers.Serializer):
    """A person as admins and auditors (and the person themselves) see them."""

    username = serializers.CharField()
    email = serializers.CharField()
    first_name = serializers.CharField()
    last_name = serializers.CharField()
    is_active = serializers.BooleanField()
    is_superuser = serializers.BooleanField(help_text="An administrator.")
    is_auditor = serializers.BooleanField()
    catalog_access = serializers.BooleanField()
    is_lead = serializers.BooleanField(help_text="Maintainer (lead) of at least one team.")
    from_directory = serializers.BooleanField(help_text="A directory (LDAP) user: email, names, password are its.")
    date_joined = serializers.DateTimeField()
    last_login = serializers.DateTimeField(allow_null=True)


class UserCreatedSerializer(UserSerializer):
    """A new user, with the generated password: the only time it is ever shown."""

    password = serializers.CharField(
        allow_null=True, help_text="The generated password, shown once; null when the request gave one."
    )


class UserFilterSerializer(serializers.Serializer):
    """The user list's query parameters."""

    q = serializers.CharField(required=False, allow_blank=True, max_length=150)
    role = serializers.ChoiceField(choices=ROLES, required=False)
    active = serializers.BooleanField(required=False, allow_null=True, default=None)
    ordering = ordering_field(USER_ORDERINGS, "username")


class UserCreateSerializer(Strict):
    """A new person: profile, flags, and a password (empty or missing: one is generated, shown once)."""

    username = serializers.CharField(max_length=150, help_text="Letters, digits and @ . + - _ only.")
    email = serializers.EmailField(required=False, allow_blank=True, max_length=254, default="")
    first_name = serializers.CharField(required=False, allow_blank=True, max_length=150, default="")
    last_name = serializers.CharField(required=False, allow_blank=True, max_length=150, default="")
    is_superuser = serializers.BooleanField(required=False, default=False)
    is_auditor = serializers.BooleanField(required=False, default=False)
    catalog_access = serializers.BooleanField(required=False, default=False)
    is_active = serializers.BooleanField(required=False, default=True)
    password = serializers.CharField(
        required=False, allow_blank=True, trim_whitespace=False, max_length=200, write_only=True, default=""
    )


class UserUpdateSerializer(Strict):
    """What an admin may change about a person (a directory user's email and names are the directory's)."""

    email = serializers.EmailField(required=False, allow_blank=True, max_length=254)
    first_name = serializers.CharField(required=False, allow_blank=True, max_length=150)
    last_name = serializers.CharField(required=False, allow_blank=True, max_length=150)
    is_active = serializers.BooleanField(required=False, help_text="False also ends every docker login.")
    is_superuser = serializers.BooleanField(required=False)
    is_auditor = serializers.BooleanField(required=False)
    catalog_access = serializers.BooleanField(required=False)


class PasswordSerializer(Strict):
    """A new password, or nothing to have one generated (shown once in the answer)."""

    password = serializers.CharField(
        required=False, allow_blank=True, trim_whitespace=False, max_length=200, write_only=True, default=""
    )


class PasswordSetSerializer(serializers.Serializer):
    username = serializers.CharField()
    password = serializers.CharField(
        allow_null=True, help_text="The generated password, shown once; null when the request gave one."
    )
    refresh_tokens_revoked = serializers.BooleanField(help_text="Always true: their docker logins ended.")


class RefreshRevokedSerializer(serializers.Serializer):
    username = serializers.CharField()
    revoked = serializers.IntegerField(help_text="How many live refresh tokens were revoked.")


class UserSearchQuerySerializer(serializers.Serializer):
    q = serializers.CharField(min_length=SEARCH_MIN, max_length=150, help_text="At least two characters.")


class UserSearchSerializer(serializers.Serializer):
    usernames = serializers.ListField(child=serializers.CharField(), help_text="At most 20, by username.")


# --- teams ---------------------------------------------------------------------------------


class TeamSerializer(serializers.Serializer):
    """A team with its counts, and the caller's own role in it."""

    name = serializers.CharField()
    description = serializers.CharField()
    created_at = serializers.DateTimeField()
    member_count = serializers.IntegerField()
    grant_count = serializers.IntegerField(help_text="The team's own grants.")
    managed_count = serializers.IntegerField(help_text="Grants the team's leads handed out.")
    robot_count = serializers.IntegerField()
    my_role = TeamRoleField(allow_null=True, help_text="Null: not a member.")


class TeamFilterSerializer(serializers.Serializer):
    q = serializers.CharField(required=False, allow_blank=True, max_length=100, help_text="Part of the name.")
    ordering = ordering_field(TEAM_ORDERINGS, "name")


class TeamCreateSerializer(Strict):
    name = serializers.SlugField(max_length=100, help_text="Letters, digits, - or _ (robots sign in with it).")
    description = serializers.CharField(required=False, allow_blank=True, max_length=255, default="")


class TeamUpdateSerializer(Strict):
    description = serializers.CharField(allow_blank=True, max_length=255)


# --- members -------------------------------------------------------------------------------


class MemberSerializer(serializers.Serializer):
    """A membership: its role is the highest of the local role and the directory groups'."""

    username = serializers.CharField()
    role = TeamRoleField()
    local_role = TeamRoleField(allow_null=True, help_text="Set here; null: only directory groups give it.")
    directory_groups = serializers.ListField(child=serializers.CharField(), help_text="DNs of the groups giving it.")


class MemberFilterSerializer(serializers.Serializer):
    q = serializers.CharField(required=False, allow_blank=True, max_length=150, help_text="Part of a username or name.")
    ordering = ordering_field(MEMBER_ORDERINGS, "username")


class MemberCreateSerializer(Strict):
    username = serializers.CharField(max_length=150)
    role = TeamRoleField(required=False, default=TeamRole.MEMBER)


class MemberUpdateSerializer(Strict):
    role = TeamRoleField()


def member_data(membership: Any) -> dict[str, Any]:
    """A membership (with ``user`` and ``directory_groups`` loaded) as ``MemberSerializer`` shows it."""
    return {
        "username": membership.user.username,
        "role": membership.role,
        "local_role": membership.local_role or None,
        "directory_groups": sorted(group.dn for group in membership.directory_groups.all()),
    }
