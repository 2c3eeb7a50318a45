"""Signing keys as registries see them: the published bundle, the preflight, the signer of the hot path.

Making and rotating keys are writes: ``accounts.services.keys``.

Was ``accounts/keys.py`` before the layout split.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass

from django.conf import settings

from accounts import services
from accounts.models import BUNDLE_STATES, KeyState, Registry, SigningKey
from accounts.registry.signing import Signer
from registryadmin.keywrap import unwrap

# How long a gunicorn worker trusts its loaded key before asking the database
# whether another process rotated it.
RELOAD_SECONDS = 2.0


def bundle_pem() -> str:
    """The certificate bundle for the registry's ``rootcertbundle``: current, next, previous."""
    services.ensure_keys()
    return published_bundle_pem()


def published_bundle_pem() -> str:
    """The bundle as the keys stand, making none: for pages, whose GET must not change state."""
    keys = SigningKey.objects.filter(state__in=BUNDLE_STATES).order_by("state")
    return "".join(key.certificate for key in keys)


def load_signer(key: SigningKey) -> Signer:
    return Signer.from_pem(unwrap(key.private_key), key.certificate)


# Preflight -------------------------------------------------------------------


@dataclass(frozen=True)
class PreflightResult:
    registry: str
    ok: bool | None  # None: could not be checked (no URL)
    message: str


def preflight(timeout: float = 5.0) -> list[PreflightResult]:
    """Ask each registry with a URL whether it accepts a token signed with the *next* key."""
    services.ensure_keys()
    signer = load_signer(SigningKey.objects.get(state=KeyState.NEXT))
    return [_probe(registry, signer, timeout) for registry in Registry.objects.filter(auth_mode="token")]


def _probe(registry: Registry, signer: Signer, timeout: float) -> PreflightResult:
    if not registry.url:
        return PreflightResult(
            registry.service,
            None,
            f"{registry.service}: no URL known, cannot check; make sure it was restarted since the last rotation",
        )
    now = int(time.time())
    token = signer.sign(
        {
            "iss": settings.TOKEN_ISSUER,
            "sub": "",
            "aud": registry.service,
            "exp": now + 60,
            "nbf": now - 10,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": [],
        }
    )
    request = urllib.request.Request(f"{registry.url}/v2/", headers={"Authorization": f"Bearer {token}"})  # noqa: S310 (admin-set http(s) URL)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (admin-set URL)
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, OSError) as exc:
        return PreflightResult(
            registry.service,
            False,
            f"{registry.service}: {registry.url} unreachable ({exc}); cannot confirm it trusts the next key",
        )
    if status == 200:
        return PreflightResult(registry.service, True, f"{registry.service}: accepts the next key")
    return PreflightResult(
        registry.service,
        False,
        (
            f"{registry.service}: refused a token signed with the next key (HTTP {status}). It has not loaded the "
            "current certificate bundle: run `manage.py registry_config` on this host, copy the bundle to the "
            "registry's rootcertbundle path, restart the registry, then rotate again."
        ),
    )


# The hot path ----------------------------------------------------------------


class _SignerCache:
    """Per-process cache of the current signer, re-validated every few seconds."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._signer: Signer | None = None
        self._checked = 0.0

    def get(self) -> Signer:
        now = time.monotonic()
        signer = self._signer
        if signer is not None and now - self._checked < RELOAD_SECONDS:
            return signer
        with self._lock:
            kid = SigningKey.objects.filter(state=KeyState.CURRENT).values_list("kid", flat=True).first()
            if kid is None:
                services.ensure_keys()
                kid = SigningKey.objects.get(state=KeyState.CURRENT).kid
            if self._signer is None or self._signer.kid != kid:
                self._signer = load_signer(SigningKey.objects.get(kid=kid))
            self._checked = now
            return self._signer

    def clear(self) -> None:
        with self._lock:
            self._signer = None
            self._checked = 0.0


current_signer = _SignerCache()
