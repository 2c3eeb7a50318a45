"""Encrypting private keys at rest with a key that does not live in the database.

The wrapping key comes from ``KEY_ENCRYPTION_KEY`` or, when unset, is derived
from ``SECRET_KEY``; decryption also tries keys derived from
``SECRET_KEY_FALLBACKS``, so rotating SECRET_KEY keeps stored keys readable.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

_INFO = b"registryadmin key-encryption v1"


class KeyUnwrapError(Exception):
    """No configured key decrypts the stored private key."""


def _fernet(secret: str) -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(secret.encode())
    return Fernet(base64.urlsafe_b64encode(derived))


def _secrets() -> list[str]:
    primary = settings.KEY_ENCRYPTION_KEY or settings.SECRET_KEY
    return [primary, settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS]


def _multi() -> MultiFernet:
    unique = list(dict.fromkeys(_secrets()))
    return MultiFernet([_fernet(secret) for secret in unique])


def wrap(plaintext: bytes) -> bytes:
    """Encrypt with the current wrapping key."""
    return _multi().encrypt(plaintext)


def unwrap(ciphertext: bytes) -> bytes:
    """Decrypt with the current key or any fallback."""
    try:
        return _multi().decrypt(bytes(ciphertext))
    except InvalidToken:
        raise KeyUnwrapError(
            "cannot decrypt a stored private key: KEY_ENCRYPTION_KEY (or SECRET_KEY) changed. "
            "Put the old value in SECRET_KEY_FALLBACKS, or rotate the signing key with --force."
        ) from None
