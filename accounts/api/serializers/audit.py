"""What the audit endpoints answer: records (a page of them, or one in full with its seal).

Plain fields rather than choice enums for ``kind`` and ``subject_type``: the values are listed in the
help texts, and the schema keeps one enum name per meaning across the API's modules.
"""

from __future__ import annotations

from rest_framework import serializers

from audit.models import AuditRecord, Kind, SubjectType


class AuditScopeSerializer(serializers.Serializer):
    """One requested scope of an access attempt, as the token endpoint decided it then."""

    type = serializers.CharField(read_only=True, help_text="repository or registry.")
    name = serializers.CharField(read_only=True, help_text="The repository (or catalog) asked for.")
    requested = serializers.ListField(child=serializers.CharField(), read_only=True)
    granted = serializers.ListField(child=serializers.CharField(), read_only=True)
    denied = serializers.ListField(child=serializers.CharField(), read_only=True)


class AuditRecordSerializer(serializers.ModelSerializer):
    """One record as the search page lists it: what happened, who did it, from where."""

    kind = serializers.CharField(read_only=True, help_text=f"One of {', '.join(Kind.values)}.")
    subject_type = serializers.CharField(
        read_only=True, help_text=f"One of {', '.join(SubjectType.values)}, or empty when unknown."
    )
    ip = serializers.CharField(read_only=True, allow_null=True, help_text="The client's address (null: none known).")
    actor_id = serializers.IntegerField(
        read_only=True, allow_null=True, help_text="The user's id then (kept even after the user is deleted)."
    )
    outcome = serializers.CharField(
        read_only=True,
        help_text=(
            "Access attempts: granted, probe (a push granted; only a pull asked on another repository to mount a "
            "blob from it was refused, and the client uploaded the blob instead), partial, denied, auth_failed, "
            "limited, invalid. Other kinds: success, failure, error; registry events: push, pull, delete."
        ),
    )
    actions = AuditScopeSerializer(
        many=True, read_only=True, help_text="Access attempts: each scope requested, granted and denied."
    )
    detail = serializers.DictField(read_only=True, help_text="Kind-specific data (before/after for admin changes).")

    class Meta:
        model = AuditRecord
        fields = (
            "id",
            "time",
            "kind",
            "outcome",
            "actor",
            "actor_id",
            "subject_type",
            "ip",
            "user_agent",
            "request_id",
            "registry",
            "repository",
            "actions",
            "detail",
            "segment",
        )
        read_only_fields = fields


class AuditPageSerializer(serializers.Serializer):
    """One keyset page, newest first: follow ``next`` until it is null."""

    next = serializers.URLField(allow_null=True, help_text="The next (older) page, with the same filters; null: none.")
    results = AuditRecordSerializer(many=True)


class AuditSealSerializer(serializers.Serializer):
    """A record's place in its segment's hash chain, written by the sealer shortly after the record."""

    seq = serializers.IntegerField(help_text="Position in the segment's chain.")
    chain = serializers.CharField(help_text="HMAC over the previous link and this record's MAC.")
    sealed_at = serializers.DateTimeField()
    key_id = serializers.CharField(allow_null=True, help_text="The key of this link (null: the one before's).")


class RefusedScopeSerializer(serializers.Serializer):
    """One refused repository scope, explained by the engine as the rules stand now."""

    name = serializers.CharField()
    denied = serializers.ListField(child=serializers.CharField(), help_text="Denied at the time of the record.")
    allowed_now = serializers.ListField(child=serializers.CharField(), help_text="What the rules allow today.")
    missing = serializers.CharField(help_text="What is missing, in plain English.")
    reasons = serializers.ListField(child=serializers.CharField())


class WhyRefusedSerializer(serializers.Serializer):
    """For a denied, partial or probe access attempt: why the rules refuse it today (they may have changed)."""

    note = serializers.CharField(help_text='E.g. "user carol no longer exists." (empty when none).')
    scopes = RefusedScopeSerializer(many=True)


class AuditRecordDetailSerializer(AuditRecordSerializer):
    """One record in full, as the record page shows it, with its tamper-evidence fields."""

    mac = serializers.CharField(read_only=True, help_text="HMAC of the frozen fields, made when written.")
    key_id = serializers.CharField(read_only=True, allow_null=True, help_text="The key of the MAC (null: older).")
    seal = AuditSealSerializer(read_only=True, allow_null=True, help_text="Null until the sealer has chained it.")
    why_refused = WhyRefusedSerializer(
        read_only=True,
        allow_null=True,
        help_text="Only for denied, partial and probe access attempts (a probe's refused mount check); null otherwise.",
    )

    class Meta(AuditRecordSerializer.Meta):
        fields = (*AuditRecordSerializer.Meta.fields, "mac", "key_id", "seal", "why_refused")
        read_only_fields = fields
