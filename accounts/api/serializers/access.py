"""What the access answers return: "why" (one question to the engine), "who can access", "what X can do".

Plain fields rather than choice enums for ``kind``: the values are in the help texts, and the schema
keeps one enum name per meaning across the API's modules.
"""

from __future__ import annotations

from rest_framework import serializers


class ActionDecisionSerializer(serializers.Serializer):
    """The engine's decision on one of the actions asked about."""

    action = serializers.CharField()
    allowed = serializers.BooleanField()


class TeamAccessSerializer(serializers.Serializer):
    """A team whose grant matches the repository: who leads it, and which directory groups join it."""

    team = serializers.CharField()
    role = serializers.CharField(help_text="read, write or admin.")
    pattern = serializers.CharField()
    registry = serializers.CharField(allow_null=True, help_text="null: every registry.")
    leads = serializers.ListField(child=serializers.CharField(), help_text="The team's active leads (maintainers).")
    groups = serializers.ListField(child=serializers.CharField(), help_text="Directory groups whose members join.")


class WhySerializer(serializers.Serializer):
    """Why a user or robot may or may not do something on a repository, as the token endpoint decides."""

    subject = serializers.CharField(help_text="The username or robot login asked about.")
    repository = serializers.CharField()
    registry = serializers.CharField()
    wanted = serializers.ListField(child=serializers.CharField(), help_text="The actions asked about.")
    allowed = serializers.ListField(child=serializers.CharField(), help_text="Those of them the engine allows.")
    denied = serializers.ListField(child=serializers.CharField(), help_text="Those it refuses.")
    decisions = ActionDecisionSerializer(many=True, help_text="One decision per action asked about.")
    reasons = serializers.ListField(
        child=serializers.CharField(), help_text="Every fact behind the decision (grants, teams, sources)."
    )
    explanation = serializers.CharField(help_text="What is missing for the refused actions (empty: nothing).")
    refusal = serializers.CharField(help_text="Why the subject cannot sign in at all (empty: it can).")
    teams = TeamAccessSerializer(many=True, help_text="Teams holding a grant on it: whom to ask.")


class AccessRowSerializer(serializers.Serializer):
    """One user or robot that may do something on the repository."""

    kind = serializers.CharField(help_text="user or robot.")
    name = serializers.CharField()
    actions = serializers.ListField(child=serializers.CharField())
    reasons = serializers.ListField(child=serializers.CharField())


class WhoSerializer(serializers.Serializer):
    """Every active user and robot with access to a repository (public pull aside), a page of rows at a time."""

    repository = serializers.CharField()
    registry = serializers.CharField()
    public = serializers.BooleanField(help_text="Everyone may pull it (rows list more than that only).")
    counts = serializers.DictField(
        child=serializers.IntegerField(), help_text="How many of all the rows (not only this page) may do each action."
    )
    teams = TeamAccessSerializer(many=True, help_text="Teams holding a grant on it.")
    count = serializers.IntegerField(help_text="Rows after the name, kind and action narrowing.")
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = AccessRowSerializer(many=True)


class AccessEntrySerializer(serializers.Serializer):
    """What one pattern gives the subject, and through what."""

    pattern = serializers.CharField()
    registry = serializers.CharField(allow_null=True, help_text="null: every registry.")
    actions = serializers.ListField(child=serializers.CharField())
    via = serializers.CharField(help_text='E.g. "own grant, team web" or "administrator".')
    expires_at = serializers.DateTimeField(allow_null=True, help_text="When the first grant behind it expires.")
    grant_ids = serializers.ListField(child=serializers.IntegerField())


class TeamSourceSerializer(serializers.Serializer):
    team = serializers.CharField()
    membership = serializers.CharField(help_text='The role, or how it is held ("member via directory group ...").')


class UserAccessSerializer(serializers.Serializer):
    """What one user may do, pattern by pattern (the same entries as their home page)."""

    username = serializers.CharField()
    refusal = serializers.CharField(help_text="Why the account has no access at all (empty: it is active).")
    teams = TeamSourceSerializer(many=True)
    entries = AccessEntrySerializer(many=True)


class RobotAccessSerializer(serializers.Serializer):
    """What one robot may do: its own grants, capped by what its team holds now."""

    login = serializers.CharField()
    team = serializers.CharField(allow_null=True, help_text="null: a global robot.")
    refusal = serializers.CharField(help_text="Why it cannot sign in (empty: it can).")
    entries = AccessEntrySerializer(many=True)
