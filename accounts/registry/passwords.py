"""Checking a username and password for the token endpoint, with a sliding verified cache.

Every pull starts with a token request, and Django's password hash costs ~200 ms: so a verified
(username, password) is remembered. An entry lives ``CACHE_SECONDS`` after its last use, and every
hit extends it, up to ``CACHE_MAX_SECONDS`` after the real check: a busy client never pays the hash
inside a request again until that cap, and an idle one's entry lapses. The key is an HMAC that
includes the user's stored password hash, so a password change misses at once; ``is_active`` is
read from the account on every request (a deactivation changes ``authz_version``, see
``accounts.access.version``), so deactivation is immediate too. A hit skips only the hash check,
never the permission engine.

Entries are per process (an HMAC under a per-process key) and also shared through ``CACHE_URL``
(Redis in production) under a ``salted_hmac`` of the same material: a worker that never saw the
password reads one cache entry instead of hashing. The shared entry holds only the time of the real
check, and its key cannot be turned back into the password without ``SECRET_KEY``.

Directory users (LDAP) are checked by their directory bind instead, remembered in the shared cache
(``services.directory``).

Was ``accounts/credentials.py`` before the layout split.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from django.contrib.auth.hashers import make_password
from django.core.cache import cache
from django.utils.crypto import salted_hmac

from accounts import services
from accounts.models import User

logger = logging.getLogger(__name__)

CACHE_SECONDS = 300.0  # an entry lapses this long after its last use...
CACHE_MAX_SECONDS = 3600.0  # ...and always this long after the real check
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


def _material(user: User, password: str) -> str:
    return "\0".join((user.username, password, user.password))


class _VerifiedCache:
    """digest -> (time of the real check, lapses at), wall-clock seconds (shared with other hosts)."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)
        self._entries: OrderedDict[bytes, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def _digest(self, user: User, password: str) -> bytes:
        return hmac.new(self._key, _material(user, password).encode(), hashlib.sha256).digest()

    def hit(self, user: User, password: str) -> bool:
        """Verified before (here or by another worker) and still within both limits; a hit slides."""
        digest = self._digest(user, password)
        now = time.time()
        with self._lock:
            entry = self._entries.get(digest)
            if entry is not None:
                verified_at, lapses = entry
                if now < lapses:
                    self._entries[digest] = (verified_at, min(now + CACHE_SECONDS, verified_at + CACHE_MAX_SECONDS))
                    self._entries.move_to_end(digest)
                    return True
                del self._entries[digest]
        verified_at = _shared_get(user, password)
        if verified_at is None or not verified_at <= now < verified_at + CACHE_MAX_SECONDS:
            return False
        self._store(digest, verified_at, now)
        return True

    def remember(self, user: User, password: str) -> None:
        now = time.time()
        self._store(self._digest(user, password), now, now)
        _shared_set(user, password, now)

    def _store(self, digest: bytes, verified_at: float, now: float) -> None:
        with self._lock:
            self._entries[digest] = (verified_at, min(now + CACHE_SECONDS, verified_at + CACHE_MAX_SECONDS))
            self._entries.move_to_end(digest)
            while len(self._entries) > CACHE_SIZE:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def _shared_key(user: User, password: str) -> str:
    digest = salted_hmac("registryadmin.verified-password", _material(user, password), algorithm="sha256")
    return f"verified-password:{digest.hexdigest()}"


def _shared_get(user: User, password: str) -> float | None:
    try:
        value = cache.get(_shared_key(user, password))
    except Exception:  # a cache that is down costs a hash check, never a sign-in
        logger.warning("the shared verified-password cache cannot be read; checking the hash")
        return None
    return float(value) if isinstance(value, int | float) else None


def _shared_set(user: User, password: str, verified_at: float) -> None:
    try:
        cache.set(_shared_key(user, password), verified_at, timeout=int(CACHE_MAX_SECONDS))
    except Exception:
        logger.warning("the shared verified-password cache cannot be written; other workers check the hash")


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
