"""What registries and their clients call over HTTP.

- ``/auth/token``: the token endpoint, GET per the spec and POST as OAuth2 (containerd);
- ``/registry/<service>/events``: where a registry posts its event notifications.

Moved from ``accounts/token_views.py`` and ``accounts/registry_views.py``.
"""

from __future__ import annotations

import base64
import binascii
import time

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from accounts import services
from accounts.models import Registry
from accounts.registry.endpoints import check_bearer
from accounts.registry.tokens import TokenOutcome, TokenRequest, issue
from audit.context import AuditContext
from audit.intake import EnvelopeError, parse_envelope, store_events
from registryadmin import metrics

MAX_PARAM = 4096


def _basic(request: HttpRequest) -> tuple[str | None, str | None, str]:
    """(username, password, problem) from an Authorization: Basic header."""
    header = request.headers.get("Authorization", "")
    if not header:
        return None, None, ""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None, None, "only Basic credentials are accepted here"
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None, None, "malformed Basic credentials"
    username, sep, password = decoded.partition(":")
    if not sep:
        return None, None, "malformed Basic credentials"
    return username, password, ""


def _too_long(values: list[str]) -> bool:
    return any(len(value) > MAX_PARAM for value in values)


def _has_nul(*values: str | None) -> bool:
    # PostgreSQL cannot store NUL: refuse it up front (400) instead of failing the audit write.
    return any(value is not None and "\x00" in value for value in values)


def _from_get(request: HttpRequest) -> TokenRequest:
    username, password, problem = _basic(request)
    query = request.GET
    values = [v for key in query for v in query.getlist(key)]
    if not problem and _too_long(values):
        problem = "a query parameter is too long"
    if not problem and _has_nul(username, password, *values):
        problem = "NUL characters are not allowed"
    return TokenRequest(
        method="GET",
        service=query.get("service", "")[:MAX_PARAM],
        scopes=query.getlist("scope"),
        username=username,
        password=password,
        offline=query.get("offline_token", "").lower() == "true",
        client_id=query.get("client_id", "")[:100],
        account=query.get("account", "")[:150],
        malformed=problem,
    )


def _from_post(request: HttpRequest) -> TokenRequest:
    form = request.POST
    grant_type = form.get("grant_type", "")
    problem = ""
    if grant_type not in {"password", "refresh_token"}:
        problem = f"unsupported grant_type {grant_type[:40]!r}; use password or refresh_token"
    elif _too_long([v for key in form for v in form.getlist(key)]):
        problem = "a form field is too long"
    elif _has_nul(*[v for key in form for v in form.getlist(key)]):
        problem = "NUL characters are not allowed"
    elif grant_type == "password" and not form.get("username"):
        problem = "grant_type=password needs a username"  # never answer a credential form anonymously
    return TokenRequest(
        method="POST",
        service=form.get("service", "")[:MAX_PARAM],
        scopes=form.getlist("scope"),
        username=form.get("username") if grant_type == "password" else None,
        password=form.get("password", ""),
        refresh_token=form.get("refresh_token"),
        grant_type=grant_type,
        offline=form.get("access_type", "") == "offline",
        client_id=form.get("client_id", "")[:100],
        malformed=problem,
    )


def _respond(outcome: TokenOutcome) -> JsonResponse:
    response = JsonResponse(outcome.body, status=outcome.status)
    response["Cache-Control"] = "no-store"
    response["Pragma"] = "no-cache"
    if outcome.challenge:
        response["WWW-Authenticate"] = 'Basic realm="registryadmin"'
    if outcome.retry_after is not None:
        response["Retry-After"] = str(outcome.retry_after)
    return response


@csrf_exempt  # registry clients, not browsers; credentials come in every request
@require_http_methods(["GET", "POST"])
def token(request: HttpRequest) -> JsonResponse:
    started = time.perf_counter()
    response = _token(request)
    metrics.TOKEN_LATENCY.observe(time.perf_counter() - started)
    return response


token.records_unusable_charset = True  # type: ignore[attr-defined]  # an `invalid` access record, not a bare 400


def _token(request: HttpRequest) -> JsonResponse:
    token_request = _from_get(request) if request.method == "GET" else _from_post(request)
    charset = getattr(request, "unusable_charset", "")
    if charset:
        token_request.malformed = f"Content-Type names charset {charset!r}, which is not a text encoding"
    try:
        outcome = issue(token_request, AuditContext.from_request(request))
    except DatabaseError:
        # The access record could not be written: fail closed.
        metrics.TOKEN_REQUESTS.labels(metrics.ERROR_OUTCOME, metrics.UNKNOWN_SUBJECT).inc()
        return JsonResponse({"errors": [{"code": "UNAVAILABLE", "message": "audit log unavailable"}]}, status=503)
    return _respond(outcome)


# Notifications -----------------------------------------------------------------


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
        {
            "stored": result.stored,
            "duplicates": result.duplicates,
            "blobs": result.blobs,
            "ignored": result.ignored,
            "rejected": result.rejected,  # malformed events, logged; the good ones in the envelope are stored
        }
    )
