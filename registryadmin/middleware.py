"""Request-wide facts every audit record needs: a request id and the client address."""

from __future__ import annotations

import ipaddress
import re
import uuid
from collections.abc import Callable, Sequence

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest

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


def _request_id(request: HttpRequest) -> str:
    """A proxy's X-Request-ID is kept (to correlate logs); anyone else's would let clients forge audit ids."""
    incoming = request.headers.get("X-Request-ID", "")
    peer = _parse_ip(request.META.get("REMOTE_ADDR", ""))
    trusted = peer is not None and any(peer in net for net in settings.TRUSTED_PROXIES)
    return incoming if trusted and _REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex


class RequestContextMiddleware:
    """Attach ``request.request_id`` and ``request.client_ip``; echo the id back."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.client_ip = client_ip(
            request.META.get("REMOTE_ADDR", ""),
            request.META.get("HTTP_X_FORWARDED_FOR", ""),
            settings.TRUSTED_PROXIES,
        )
        request.request_id = _request_id(request)
        response = self.get_response(request)
        response["X-Request-ID"] = request.request_id
        return response


class RejectNulMiddleware:
    """Answer 400 to a NUL byte in the path, before any view runs.

    PostgreSQL refuses NUL in text, so a NUL in a URL part (a username, a service) reaching a lookup
    would be a 500. Query values go through the pages' forms, which refuse NUL with an inline error.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if "\x00" in request.path_info:
            return HttpResponseBadRequest("A NUL byte is not allowed in the address.", content_type="text/plain")
        return self.get_response(request)
