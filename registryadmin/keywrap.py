"""Encrypting private keys and secrets at rest with a key that does not live in the database.

The wrapping key comes from ``KEY_ENCRYPTION_KEY`` or, when unset, is derived from ``SECRET_KEY``;
``wrap`` always uses it. ``unwrap`` also tries, in order, the old keys of
``KEY_ENCRYPTION_KEY_FALLBACKS`` and keys derived from ``SECRET_KEY`` and ``SECRET_KEY_FALLBACKS``
(what wrapped before a KEY_ENCRYPTION_KEY was set), so a rotation keeps stored values readable until
``manage.py rewrap_secrets`` has moved them under the current key (``rewrap``).
"""

from __future__ import annotations

import base64
import functools

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

_INFO = b"registryadmin key-encryption v1"


class KeyUnwrapError(Exception):
    """No configured key decrypts the stored value."""


@functools.lru_cache(maxsize=32)
def _fernet(secret: str) -> Fernet:
    # Cached: the token endpoint and a rewrap of many rows would otherwise run HKDF for every key each time.
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(secret.encode())
    return Fernet(base64.urlsafe_b64encode(derived))


def _current() -> str:
    return settings.KEY_ENCRYPTION_KEY or settings.SECRET_KEY


def _secrets() -> list[str]:
    """Every key that may read: the current one first, then the fallbacks, without repeats."""
    return list(
        dict.fromkeys(
            [
                _current(),
                *settings.KEY_ENCRYPTION_KEY_FALLBACKS,
                settings.SECRET_KEY,
                *settings.SECRET_KEY_FALLBACKS,
            ]
        )
    )


def _unreadable() -> KeyUnwrapError:
    return KeyUnwrapError(
        "cannot decrypt a stored private key or secret: no configured key reads it (KEY_ENCRYPTION_KEY or "
        "SECRET_KEY changed). Put the key it was wrapped with in KEY_ENCRYPTION_KEY_FALLBACKS (or, if "
        "KEY_ENCRYPTION_KEY was unset then, the old SECRET_KEY in SECRET_KEY_FALLBACKS) and run "
        "`manage.py rewrap_secrets`, or rotate the signing key with --force."
    )


def wrap(plaintext: bytes) -> bytes:
    """Encrypt with the current wrapping key."""
    return _fernet(_current()).encrypt(plaintext)


def unwrap(ciphertext: bytes) -> bytes:
    """Decrypt with the current key or any fallback."""
    try:
        return MultiFernet([_fernet(secret) for secret in _secrets()]).decrypt(bytes(ciphertext))
    except InvalidToken:
        raise _unreadable() from None


def rewrap(ciphertext: bytes) -> bytes | None:
    """``ciphertext`` encrypted under the current key, or None when it already is.

    The current key alone is tried first: that is how a second run tells what it already moved.
    Raises ``KeyUnwrapError`` when no configured key reads it.
    """
    token = bytes(ciphertext)
    try:
        _fernet(_current()).decrypt(token)
    except InvalidToken:
        return wrap(unwrap(token))
    return None
