"""Small request helpers every dashboard page shares: HTMX partials and the way back after a change."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.cache import patch_vary_headers
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


def render_list(
    request: HttpRequest, page: str, results: str, context: dict[str, Any], *, valid: bool = True, status: int = 200
) -> HttpResponse:
    """A list page, or only its results for HTMX's live search.

    A bad filter is a 400 on the whole page; in a partial it is a 200 whose results show the error,
    because htmx does not swap error answers (the old rows would stay, with no word why). Both
    shapes live at one URL, so caches must tell them apart: ``Vary: HX-Request``.
    """
    partial = wants_partial(request)
    context = {**context, "partial": partial}
    status = status if valid or partial else 400
    response = render(request, results if partial else page, context, status=status)
    patch_vary_headers(response, ("HX-Request",))
    return response
