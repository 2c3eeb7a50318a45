"""Where registries post their event notifications: ``/registry/<service>/events``."""

from __future__ import annotations

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from accounts import services
from accounts.endpoints import check_bearer
from accounts.models import Registry
from audit.context import AuditContext
from audit.intake import EnvelopeError, parse_envelope, store_events


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"errors": [{"message": message}]}, status=status)


@csrf_exempt  # the registry authenticates with a bearer secret, not a session
@require_POST
def registry_events(request: HttpRequest, service: str) -> JsonResponse:
    registry = Registry.objects.filter(service=service).first()
    if registry is None or not check_bearer(registry, request.headers.get("Authorization", "")):
        return _error(401, "unknown registry or wrong notification secret")
    length = request.headers.get("Content-Length") or "0"
    if not length.isdigit() or int(length) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
        return _error(413, "envelope too large or without a valid length")
    try:
        events = parse_envelope(request.body)
    except EnvelopeError as exc:
        return _error(400, str(exc))
    context = AuditContext.system(f"registry {registry.service}")
    try:
        result = store_events(
            events, registry.service, lambda name: services.ensure_repository(name, registry, context=context)
        )
    except DatabaseError:
        return _error(503, "could not store events; the registry will retry")
    return JsonResponse(
        {"stored": result.stored, "duplicates": result.duplicates, "blobs": result.blobs, "ignored": result.ignored}
    )
