"""High-entropy secrets (robots, personal access tokens, refresh tokens): made, shown once, stored hashed.

They are random, so a fast keyed SHA-256 is enough (no slow password hash).
The key (pepper) is derived from SECRET_KEY; lookups also try the keys of
SECRET_KEY_FALLBACKS, so rotating SECRET_KEY does not invalidate them, and then the peppers a
restored backup brought from another host (``CredentialPepper``), so its secrets keep working here.

Was ``accounts/secret_hash.py`` before the layout split.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from collections.abc import Sequence

from django.conf import settings

from accounts.models import CredentialPepper
from registryadmin import keywrap

_LABEL = b"registryadmin credential pepper v1\0"


def new_secret(prefix: str) -> str:
    """A prefixed random secret, e.g. ``rga_...`` (the prefix lets secret scanners find leaks)."""
    return prefix + secrets.token_urlsafe(32)


@functools.lru_cache(maxsize=16)
def _pepper(key: str) -> bytes:
    return hashlib.sha256(_LABEL + key.encode()).digest()


def own_peppers() -> list[bytes]:
    """This host's peppers: from SECRET_KEY first, then from each of SECRET_KEY_FALLBACKS."""
    keys = dict.fromkeys([settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS])
    return [_pepper(key) for key in keys]


def fingerprint(pepper: bytes) -> str:
    """Tells peppers apart without showing them (backup manifests, the kept-pepper rows)."""
    return hashlib.sha256(b"registryadmin pepper fingerprint\0" + pepper).hexdigest()[:16]


def kept_peppers() -> list[bytes]:
    """The peppers restored backups brought (one query; the token cache keeps the answer per generation)."""
    return [keywrap.unwrap(row) for row in CredentialPepper.objects.values_list("pepper", flat=True)]


def secret_hash(secret: str) -> str:
    """The hash stored for a new secret, under the current SECRET_KEY."""
    return hmac.new(_pepper(settings.SECRET_KEY), secret.encode(), hashlib.sha256).hexdigest()


def hash_candidates(secret: str, kept: Sequence[bytes] = ()) -> list[str]:
    """Hashes to look a presented secret up by: this host's peppers first, then ``kept`` (``kept_peppers()``)."""
    peppers = list(dict.fromkeys([*own_peppers(), *kept]))
    return [hmac.new(pepper, secret.encode(), hashlib.sha256).hexdigest() for pepper in peppers]
