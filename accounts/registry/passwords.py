"""Checking a username and password for the token endpoint, with a short verified cache.

Every pull starts with a token request, and Django's password hash costs
~170 ms: so a verified (username, password) is remembered for a short while,
keyed by an HMAC under a per-process key. The key includes the user's stored
password hash, so a password change misses the cache at once; ``is_active``
is read from the row on every request, so deactivation is immediate too. A
hit skips only the hash check, never the permission engine.

Directory users (LDAP) are checked by their directory bind instead, remembered in the shared cache
(``services.directory``); local users keep this per-process cache.

Was ``accounts/credentials.py`` before the layout split.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from django.contrib.auth.hashers import make_password

from accounts import services
from accounts.models import User

CACHE_SECONDS = 60.0
CACHE_SIZE = 10_000
MAX_USERNAME = 150
MAX_PASSWORD = 1024


@dataclass(frozen=True, slots=True)
class AuthResult:
    user: User | None
    reason: str = ""  # why it failed: "unknown_or_bad_password", "inactive", "malformed", "directory_unavailable"
    detail: str = ""  # for the access record: what the directory said when it could not answer

    @property
    def ok(self) -> bool:
        return self.user is not None


class _VerifiedCache:
    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)
        self._entries: OrderedDict[bytes, float] = OrderedDict()
        self._lock = threading.Lock()

    def _digest(self, user: User, password: str) -> bytes:
        material = "\0".join((user.username, password, user.password)).encode()
        return hmac.new(self._key, material, hashlib.sha256).digest()

    def hit(self, user: User, password: str) -> bool:
        digest = self._digest(user, password)
        with self._lock:
            expires = self._entries.get(digest)
            if expires is None:
                return False
            if expires < time.monotonic():
                del self._entries[digest]
                return False
            return True

    def remember(self, user: User, password: str) -> None:
        digest = self._digest(user, password)
        with self._lock:
            self._entries[digest] = time.monotonic() + CACHE_SECONDS
            self._entries.move_to_end(digest)
            while len(self._entries) > CACHE_SIZE:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


verified_cache = _VerifiedCache()


def check_password(username: str, password: str) -> AuthResult:
    """Unknown users and wrong passwords take the same time and give the same answer."""
    if not username or len(username) > MAX_USERNAME or len(password) > MAX_PASSWORD or "\0" in username:
        make_password(password[:MAX_PASSWORD])
        return AuthResult(None, "malformed")
    user, directory = services.directory.resolve(username)
    if directory:
        return _directory_password(username, password, user)
    if user is None:
        make_password(password)  # same cost as a real check
        return AuthResult(None, "unknown_or_bad_password")
    # Only an active account's verified password skips the hash: a dead account's right password
    # must cost what a wrong one does, or its timing would tell the guesser it was right.
    if not (user.is_active and verified_cache.hit(user, password)):
        if not user.has_usable_password():
            make_password(password)  # same cost as a real check: the answer must not reveal the account
            return AuthResult(None, "unknown_or_bad_password")
        if not user.check_password(password):
            return AuthResult(None, "unknown_or_bad_password")
        if user.is_active:
            verified_cache.remember(user, password)
    if not user.is_active:
        return AuthResult(None, "inactive")
    return AuthResult(user)


def _directory_password(username: str, password: str, user: User | None) -> AuthResult:
    """A directory person (README "Directory users"): their bind, remembered in the shared cache."""
    try:
        outcome = services.directory.check_password(username, password, user=user)
    except services.directory.DirectoryUnavailable as exc:
        return AuthResult(None, "directory_unavailable", str(exc))
    if outcome.user is None:
        return AuthResult(None, "inactive" if outcome.reason == "inactive" else "unknown_or_bad_password")
    return AuthResult(outcome.user)
