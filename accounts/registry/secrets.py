"""High-entropy secrets (robots, personal access tokens, refresh tokens): made, shown once, stored hashed.

They are random, so a fast keyed SHA-256 is enough (no slow password hash).
The key (pepper) is derived from SECRET_KEY; lookups also try the keys of
SECRET_KEY_FALLBACKS, so rotating SECRET_KEY does not invalidate them.

Was ``accounts/secret_hash.py`` before the layout split.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from django.conf import settings

_LABEL = b"registryadmin credential pepper v1\0"


def new_secret(prefix: str) -> str:
    """A prefixed random secret, e.g. ``rga_...`` (the prefix lets secret scanners find leaks)."""
    return prefix + secrets.token_urlsafe(32)


def _pepper(key: str) -> bytes:
    return hashlib.sha256(_LABEL + key.encode()).digest()


def secret_hash(secret: str) -> str:
    """The hash stored for a new secret, under the current SECRET_KEY."""
    return hmac.new(_pepper(settings.SECRET_KEY), secret.encode(), hashlib.sha256).hexdigest()


def hash_candidates(secret: str) -> list[str]:
    """Hashes to look a presented secret up by: current key first, then fallbacks."""
    keys = [settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS]
    return [hmac.new(_pepper(key), secret.encode(), hashlib.sha256).hexdigest() for key in keys]
