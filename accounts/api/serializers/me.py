"""What ``/api/me`` answers."""

from __future__ import annotations

from rest_framework import serializers


class MembershipBriefSerializer(serializers.Serializer):
    team = serializers.CharField()
    role = serializers.CharField()


class TokenLimitsSerializer(serializers.Serializer):
    name = serializers.CharField()
    read_only = serializers.BooleanField()
    patterns = serializers.ListField(child=serializers.CharField())


class MeSerializer(serializers.Serializer):
    username = serializers.CharField()
    is_admin = serializers.BooleanField()
    is_auditor = serializers.BooleanField()
    teams = MembershipBriefSerializer(many=True)
    token = TokenLimitsSerializer(allow_null=True, help_text="The token the request came with (null: a session).")
