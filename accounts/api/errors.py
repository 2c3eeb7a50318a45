"""One JSON shape for every error under /api/: ``{"status", "error", "detail", "fields"}``.

``fields`` maps a field (or ``"non_field_errors"``) to its messages, for 400s; it is empty otherwise.
The services raise Django's ``ValidationError`` (a message or a field dict) and ``PolicyError``: both
become 400s here, so a view never needs its own try/except for them. Unknown URLs and crashes under
/api/ answer in the same shape (``page_not_found``, ``server_error``) instead of an HTML page.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from accounts.policy import PolicyError

API_PREFIX = "/api/"
NON_FIELD = "non_field_errors"


class Conflict(exceptions.APIException):
    """The request is well formed but the present state refuses it (yourself, a running job, ...)."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the present state."
    default_code = "conflict"


class ErrorSerializer(serializers.Serializer):
    """The body of every error response (documented on every operation)."""

    status = serializers.IntegerField(help_text="The HTTP status, repeated.")
    error = serializers.CharField(help_text="A stable code: invalid, not_authenticated, permission_denied, ...")
    detail = serializers.CharField(help_text="What went wrong, for a person.")
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="For 400s: each field's messages (non_field_errors for the whole request).",
    )


def body(code: int, error: str, detail: str, fields: dict[str, list[str]] | None = None) -> dict[str, Any]:
    return {"status": code, "error": error, "detail": detail, "fields": fields or {}}


def _messages(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [f"{key}: {message}" for key, inner in value.items() for message in _messages(inner)]
    if isinstance(value, list | tuple):
        return [message for item in value for message in _messages(item)]
    return [str(value)]


def _fields(detail: Any) -> dict[str, list[str]]:
    if isinstance(detail, dict):
        return {str(key): _messages(value) for key, value in detail.items()}
    return {NON_FIELD: _messages(detail)}


def _from_django(error: DjangoValidationError) -> exceptions.ValidationError:
    if hasattr(error, "error_dict"):
        detail = {("non_field_errors" if k == "__all__" else k): v for k, v in error.message_dict.items()}
        return exceptions.ValidationError(detail)
    return exceptions.ValidationError({NON_FIELD: error.messages})


def handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DjangoValidationError):
        exc = _from_django(exc)
    elif isinstance(exc, PolicyError):
        exc = exceptions.ValidationError({"policy": list(getattr(exc, "errors", None) or [str(exc)])})
    elif isinstance(exc, ObjectDoesNotExist | Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        fields = _fields(exc.detail)
        first = next(iter(fields.values()), ["Invalid input."])
        detail = first[0] if len(fields) == 1 and len(first) == 1 else "The request has invalid fields."
        response.data = body(response.status_code, "invalid", detail, fields)
    else:
        detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
        code = exc.get_codes() if isinstance(exc, exceptions.APIException) else "error"
        response.data = body(response.status_code, str(code), str(detail))
    return response


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIX)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return JsonResponse(body(404, "not_found", "No such API path."), status=404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if _is_api(request):
        return JsonResponse(body(500, "server_error", "The server failed; the error was logged."), status=500)
    return defaults.server_error(request)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return JsonResponse(body(400, "bad_request", "The request could not be read."), status=400)
    return defaults.bad_request(request, exception)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return JsonResponse(body(403, "permission_denied", str(exception) or "Not allowed."), status=403)
    return defaults.permission_denied(request, exception)
