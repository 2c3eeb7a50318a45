"""The WSGI handler: a lean middleware chain for the token endpoint, and a request that refuses
a charset which is not a text encoding.

Every ``docker pull`` asks ``/auth/token`` first; sessions, CSRF, authentication, messages, htmx
and static files mean nothing there (registry clients send credentials with every request and the
view is CSRF-exempt), yet they ran on each one. ``SafeWSGIHandler`` keeps a second chain built
from ``TOKEN_MIDDLEWARE`` (the full list without those) and sends that one path through it: the
same URL resolution, the same view and the same functions behind it, every other path unchanged.

Django believes any codec named in ``Content-Type: ...; charset=``; ``base64``, ``hex``,
``zlib`` or ``rot13`` are codecs but not text encodings, and decoding the query string
with one raises inside ``WSGIRequest.__init__``: a 500 before any middleware, with no
record. Here such a charset is ignored for parsing and kept on ``request.unusable_charset``
so that ``RequestShapeMiddleware`` (or the token view, which records it) answers 400.
"""

from __future__ import annotations

import codecs
import functools
import warnings

from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler, WSGIRequest
from django.utils.http import parse_header_parameters

_ASCII = bytes(range(128))


@functools.lru_cache(maxsize=64)
def usable_charset(name: str) -> bool:
    """A text encoding that reads ASCII as ASCII (what URL-encoded forms and query strings are)."""
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError, TypeError):
        return False
    if not getattr(info, "_is_text_encoding", True) or info.name.endswith("escape"):
        return False  # the *_escape codecs read backslashes: no form or query string means that
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # unicode_escape warns about the escapes in the probe
            # Django's query parser decodes with errors="replace": a codec must take that too (idna does not).
            probe = _ASCII.decode(info.name, "replace")
            return probe == _ASCII.decode("ascii") and b"%\xff".decode(info.name, "replace") is not None
    except (UnicodeError, LookupError, ValueError, TypeError):
        return False


class SafeWSGIRequest(WSGIRequest):
    """A WSGIRequest that never decodes with a charset that ``usable_charset`` refuses."""

    unusable_charset = ""

    def _set_content_type_params(self, meta: dict) -> None:
        self.content_type, self.content_params = parse_header_parameters(meta.get("CONTENT_TYPE", ""))
        charset = self.content_params.get("charset")
        if charset is None:
            return
        if usable_charset(charset):
            self.encoding = charset
        else:
            self.unusable_charset = charset[:40]


class SafeWSGIHandler(WSGIHandler):
    """Django's handler; ``TOKEN_PATH`` goes through the lean chain of ``TOKEN_MIDDLEWARE``."""

    request_class = SafeWSGIRequest

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.token_handler = _LeanHandler()

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") == settings.TOKEN_PATH:
            return self.token_handler(environ, start_response)
        return super().__call__(environ, start_response)


class _LeanHandler(WSGIHandler):
    request_class = SafeWSGIRequest

    def load_middleware(self, is_async: bool = False) -> None:
        # Django builds the chain from settings.MIDDLEWARE; once, at start-up, it reads the lean list.
        full = settings.MIDDLEWARE
        settings.MIDDLEWARE = settings.TOKEN_MIDDLEWARE
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = full
