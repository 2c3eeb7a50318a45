"""``/api/me``: who the request is, and what its token is limited to (a script's first call)."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api.permissions import token_of
from accounts.api.serializers.me import MeSerializer
from accounts.models import Membership


class MeView(APIView):
    @extend_schema(responses=MeSerializer, summary="Who is asking")
    def get(self, request: Request) -> Response:
        user, token = request.user, token_of(request)
        teams = Membership.objects.filter(user=user).select_related("team").order_by("team__name")
        data = {
            "username": user.username,
            "is_admin": user.is_superuser,
            "is_auditor": user.is_auditor,
            "teams": [{"team": m.team.name, "role": m.role} for m in teams],
            "token": None
            if token is None
            else {"name": token.name, "read_only": token.read_only, "patterns": token.patterns},
        }
        return Response(MeSerializer(data).data)


urlpatterns = [path("me", MeView.as_view(), name="me")]
