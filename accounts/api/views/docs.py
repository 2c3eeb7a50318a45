"""The OpenAPI schema (``/api/schema/``, YAML; ``?format=json`` for JSON) and its docs (``/api/docs/``).

Both need a signed-in person or a token. Their refusals are the API's JSON errors, whatever format was
asked for (the schema's renderer would write an error as YAML); a browser that is not signed in is sent
to the sign-in page and back, instead of a bare 401.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response


class _JsonErrors:
    def handle_exception(self, exc: Exception) -> Response:
        self.request.accepted_renderer = JSONRenderer()
        self.request.accepted_media_type = JSONRenderer.media_type
        return super().handle_exception(exc)  # type: ignore[misc]


class SchemaView(_JsonErrors, SpectacularAPIView):
    pass


class DocsView(_JsonErrors, SpectacularSwaggerSplitView):
    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if "HTTP_AUTHORIZATION" not in request.META and not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        return super().dispatch(request, *args, **kwargs)
