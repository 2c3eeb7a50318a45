"""What a page or endpoint says when the database is down: a 503, JSON for machines, a plain page for people.

Django wraps every middleware in ``convert_exception_to_response``, so an error raised further in
(``SessionMiddleware`` saving a session after the view, say) would reach this middleware already turned
into a 500. ``DatabaseUnavailableMiddleware`` therefore calls the next middleware through the wrapper's
``__wrapped__`` (functools.wraps keeps it) and catches what comes out, and ``process_exception`` catches
what a view or a template raises. The answer never touches the database: the 503 page is rendered with
no request, so no context processor looks up a user, a session or messages.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import TypeVar

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template import loader

logger = logging.getLogger(__name__)
Response = TypeVar("Response", bound=HttpResponse)

UNAVAILABLE = "database unavailable, try again shortly"
RETRY_AFTER = "30"
# Registry clients, registries and orchestrators read JSON; everything else is a page for a person.
MACHINE_PATHS = ("/auth/token", "/registry/")
HEALTH_PATH = "/healthz"
# PostgreSQL's "read-only SQL transaction" (a standby, default_transaction_read_only): no write can succeed.
READ_ONLY_SQLSTATE = "25006"
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]+@", re.IGNORECASE)
_KEYWORD_PASSWORD = re.compile(r"(?P<head>password\s*=\s*)\S+", re.IGNORECASE)


def is_unavailable(exc: BaseException) -> bool:
    """A lost or refused connection, or a database that refuses writes; not a bad query."""
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    return isinstance(exc, DatabaseError) and getattr(exc.__cause__, "sqlstate", None) == READ_ONLY_SQLSTATE


def redact(text: str) -> str:
    """``text`` without the passwords of DATABASE_URL or CELERY_BROKER_URL, nor any ``user:pass@`` or
    ``password=...``: driver messages sometimes quote the DSN."""
    for secret in (settings.DATABASES["default"].get("PASSWORD"), _url_password(settings.CELERY_BROKER_URL)):
        if secret:
            text = text.replace(str(secret), "***")
    text = _URL_PASSWORD.sub(r"\g<head>***@", text)
    return _KEYWORD_PASSWORD.sub(r"\g<head>***", text)


def _url_password(url: str) -> str:
    match = re.match(r"[a-z][a-z0-9+.-]*://[^:/@\s]*:([^@\s]+)@", url, re.IGNORECASE)
    return match[1] if match else ""


def one_line(exc: BaseException) -> str:
    """The error as one redacted log line: its type and its message with newlines folded."""
    message = " ".join(str(exc).split())
    return redact(f"{type(exc).__name__}: {message}")[:500]


def unavailable_response(request: HttpRequest) -> HttpResponse:
    """503 in the shape the caller reads: the registry's error format, the health format, or a page."""
    path = request.path_info
    if path.startswith(MACHINE_PATHS):
        response: HttpResponse = JsonResponse({"errors": [{"code": "UNAVAILABLE", "message": UNAVAILABLE}]}, status=503)
    elif path == HEALTH_PATH:
        response = JsonResponse({"status": "error", "database": "unreachable"}, status=503)
    else:
        response = HttpResponse(_page(request), status=503, content_type="text/html; charset=utf-8")
    response["Retry-After"] = RETRY_AFTER
    response["Cache-Control"] = "no-store"
    return logged(response)


def logged(response: Response) -> Response:
    """Mark a 503 whose cause is already logged (in one line), so django.request does not add a second."""
    response._has_been_logged = True  # type: ignore[attr-defined]  # what django.utils.log.log_response reads
    return response


def _page(request: HttpRequest) -> str:
    context = {"message": UNAVAILABLE, "request_id": getattr(request, "request_id", "")}
    try:
        return loader.get_template("503.html").render(context)  # no request: no context processors
    except Exception:  # the page must come out even if the template cannot (e.g. no static manifest)
        logger.exception("templates/503.html could not be rendered")
        return f"<!doctype html><title>Service unavailable</title><h1>Service unavailable</h1><p>{UNAVAILABLE}.</p>"


def _connect() -> None:
    """Connect (after the per-request health check) before the view, as its first query would.

    The sign-in page needs no query until the form is posted; without this, someone opening it while the
    database is down would get a form that cannot work instead of the 503 page.
    """
    connection.close_if_health_check_failed()
    connection.ensure_connection()


class DatabaseUnavailableMiddleware:
    """Answer 503 instead of a 500 (and its traceback) when the database is unreachable or read-only."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        # The inner middleware itself, not Django's wrapper that would turn its exceptions into a 500 first.
        self.get_response = getattr(get_response, "__wrapped__", get_response)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            _connect()
            return self.get_response(request)
        except DatabaseError as exc:
            if not is_unavailable(exc):
                raise
            return self._unavailable(request, exc)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, DatabaseError) and is_unavailable(exception):
            return self._unavailable(request, exception)
        return None

    def _unavailable(self, request: HttpRequest, exc: BaseException) -> HttpResponse:
        logger.error("database unavailable on %s %s: %s", request.method, request.path_info, one_line(exc))
        return unavailable_response(request)
