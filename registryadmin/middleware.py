"""Request-wide facts every audit record needs: a request id and the client address."""

from __future__ import annotations

import ipaddress
import re
import uuid
from collections.abc import Callable, Sequence

from django.conf import settings
from django.http import HttpRequest, HttpResponse

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _parse_ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        return None


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


class RequestContextMiddleware:
    """Attach ``request.request_id`` and ``request.client_ip``; echo the id back."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request.request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request.client_ip = client_ip(
            request.META.get("REMOTE_ADDR", ""),
            request.META.get("HTTP_X_FORWARDED_FOR", ""),
            settings.TRUSTED_PROXIES,
        )
        response = self.get_response(request)
        response["X-Request-ID"] = request.request_id
        return response
