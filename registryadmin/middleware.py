"""Request-wide facts and guards: client address and scheme, request id, security headers, request shape."""

from __future__ import annotations

import ipaddress
import re
import uuid
from collections.abc import Callable, Sequence

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse, QueryDict

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _parse_ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    # A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d; compare and record them as IPv4.
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


def client_ip(remote_addr: str, forwarded_for: str, trusted: Sequence[Network]) -> str:
    """The client address, believing X-Forwarded-For only through trusted proxies.

    Walk the chain from the nearest hop outwards and stop at the first address
    that is not one of our proxies: everything left of it could be forged.
    """
    current = _parse_ip(remote_addr)
    if current is None:
        return ""
    hops = [hop for hop in forwarded_for.split(",") if hop.strip()] if forwarded_for else []
    while hops and any(current in net for net in trusted):
        previous = _parse_ip(hops.pop())
        if previous is None:
            break
        current = previous
    return str(current)


def _from_trusted_proxy(request: HttpRequest) -> bool:
    peer = _parse_ip(request.META.get("REMOTE_ADDR", ""))
    return peer is not None and any(peer in net for net in settings.TRUSTED_PROXIES)


def _request_id(request: HttpRequest, trusted: bool) -> str:
    """A proxy's X-Request-ID is kept (to correlate logs); anyone else's would let clients forge audit ids."""
    incoming = request.headers.get("X-Request-ID", "")
    return incoming if trusted and _REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex


def _forwarded_https(request: HttpRequest) -> bool:
    """The nearest proxy's X-Forwarded-Proto (the last value: earlier ones came from further away)."""
    values = [v.strip().lower() for v in request.META.get("HTTP_X_FORWARDED_PROTO", "").split(",") if v.strip()]
    return bool(values) and values[-1] == "https"


class RequestContextMiddleware:
    """Attach ``request.request_id`` and ``request.client_ip``; echo the id back.

    Behind a TLS-terminating proxy listed in TRUSTED_PROXIES, ``X-Forwarded-Proto: https`` makes
    the request secure (HSTS, secure cookies, CSRF's https checks); from anyone else it is ignored,
    which Django's SECURE_PROXY_SSL_HEADER cannot do (it believes every client).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        trusted = _from_trusted_proxy(request)
        if trusted and _forwarded_https(request):
            request.META["wsgi.url_scheme"] = "https"
        request.client_ip = client_ip(
            request.META.get("REMOTE_ADDR", ""),
            request.META.get("HTTP_X_FORWARDED_FOR", ""),
            settings.TRUSTED_PROXIES,
        )
        request.request_id = _request_id(request, trusted)
        response = self.get_response(request)
        response["X-Request-ID"] = request.request_id
        return response


class SecurityHeadersMiddleware:
    """The Content-Security-Policy on every response (Django's SecurityMiddleware sets the others).

    X-Frame-Options too, when XFrameOptionsMiddleware (last in the chain) never saw the response:
    the request guards further in answer 400/413/503 before reaching it.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", settings.CONTENT_SECURITY_POLICY)
        if not getattr(response, "xframe_options_exempt", False):
            response.headers.setdefault("X-Frame-Options", settings.X_FRAME_OPTIONS)
        return response


API_PREFIX = "/api/"
_API_ERRORS = {400: "bad_request", 413: "too_large"}


def _plain(request: HttpRequest, status: int, message: str) -> HttpResponse:
    """Plain text, or under /api/ the API's JSON error shape (its clients parse every answer as JSON)."""
    if request.path.startswith(API_PREFIX):
        shape = {"status": status, "error": _API_ERRORS[status], "detail": message, "fields": {}}
        return JsonResponse(shape, status=status)
    return HttpResponse(message + "\n", status=status, content_type="text/plain; charset=utf-8")


def _nul_parameter(query: QueryDict) -> str | None:
    """The first query parameter whose name or value holds a NUL byte."""
    return next((key for key, values in query.lists() if "\x00" in key or any("\x00" in v for v in values)), None)


class RequestShapeMiddleware:
    """Answer 4xx to requests no view should see: a NUL in the path, an unusable charset, a body too large.

    - PostgreSQL refuses NUL in text, so a NUL in a URL part (a username, a service) reaching a lookup
      would be a 500. Query values go through the pages' forms, which refuse NUL with an inline error.
    - A charset that is not a text encoding (see ``registryadmin.handler``): 400, except for views
      marked ``records_unusable_charset`` (the token endpoint), which record the attempt themselves.
    - A declared body above DATA_UPLOAD_MAX_MEMORY_SIZE: 413 before anything reads it.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if "\x00" in request.path_info:
            return _plain(request, 400, "A NUL byte is not allowed in the address.")
        # The API reads some query values straight into lookups (the pages' forms refuse NUL themselves).
        if request.path.startswith(API_PREFIX) and (name := _nul_parameter(request.GET)) is not None:
            message = "A NUL byte is not allowed here."
            shape = {"status": 400, "error": "invalid", "detail": message, "fields": {name: [message]}}
            return JsonResponse(shape, status=400)
        length = request.META.get("CONTENT_LENGTH") or "0"
        if not length.isdigit():
            return _plain(request, 400, "Content-Length is not a number.")
        if int(length) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            return _plain(
                request, 413, f"The request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes."
            )
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view_func: Callable, args: Sequence, kwargs: dict
    ) -> HttpResponse | None:
        charset = getattr(request, "unusable_charset", "")
        if charset and not getattr(view_func, "records_unusable_charset", False):
            return _plain(request, 400, f"charset={charset!r} in Content-Type is not a text encoding; use utf-8.")
        return None
