"""Small request helpers every dashboard page shares: HTMX partials and the way back after a change."""

from __future__ import annotations

from django.http import HttpRequest
from django.utils.http import url_has_allowed_host_and_scheme


def wants_partial(request: HttpRequest) -> bool:
    """HTMX asks for the results only; a history restore or a boosted link needs the whole page."""
    htmx = getattr(request, "htmx", None)
    return bool(htmx) and not (htmx.history_restore_request or htmx.boosted)


def next_url(request: HttpRequest, default: str) -> str:
    """Where to go back to after a change: the ``next`` the page sent, if it is a path on this site.

    Only a path (``/...``) is taken: ``redirect()`` would read a bare word as a view name and fail.
    """
    target = request.POST.get("next", "")
    hosts = {request.get_host()}
    safe = url_has_allowed_host_and_scheme(target, allowed_hosts=hosts, require_https=request.is_secure())
    return target if safe and target.startswith("/") and not target.startswith("//") else default
