"""Signing-key writes: make the current and next keys, rotate them. Each change is audited.

The token endpoint, the bundle and the preflight read keys through ``accounts.registry.keys``; the
crypto itself (keys, certificates, the libtrust kid) is ``accounts.registry.signing``, pure.
Moved from ``accounts/keys.py``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from accounts.models import BUNDLE_STATES, KeyState, SigningKey
from accounts.registry.signing import (
    certificate_pem,
    generate_private_key,
    libtrust_kid,
    make_certificate,
    private_key_pem,
)
from audit.context import AuditContext
from audit.models import Kind, SubjectType
from audit.services import record
from registryadmin.keywrap import wrap
from registryadmin.locks import SIGNING_KEYS, exclusive

# Clocks differ and a request signed just before the rotation is answered just after it.
RETIRE_MARGIN = timedelta(minutes=5)


def _new_key(state: str) -> SigningKey:
    key = generate_private_key()
    cert = make_certificate(key, settings.TOKEN_ISSUER, timezone.now())
    return SigningKey.objects.create(
        kid=libtrust_kid(key.public_key()),
        state=state,
        private_key=wrap(private_key_pem(key)),
        certificate=certificate_pem(cert),
        not_after=cert.not_valid_after_utc,
        activated_at=timezone.now() if state == KeyState.CURRENT else None,
    )


def has_keys() -> bool:
    """Whether the current and the next key exist (what ``ensure_keys`` would otherwise make)."""
    return SigningKey.objects.filter(state__in=(KeyState.CURRENT, KeyState.NEXT)).count() == 2


def ensure_keys(context: AuditContext | None = None) -> bool:
    """Make the current and next keys if they are missing; True when something was made."""
    if has_keys():
        return False  # the common case, without taking the lock
    with exclusive(SIGNING_KEYS):
        return _ensure_keys_locked(context)


def _ensure_keys_locked(context: AuditContext | None) -> bool:
    made = []
    for state in (KeyState.CURRENT, KeyState.NEXT):
        if not SigningKey.objects.filter(state=state).exists():
            made.append(_new_key(state))
    if made:
        _record(context or AuditContext.system("keys"), "signing_key.create", {"kids": [k.kid for k in made]})
    return bool(made)


def rotate_signing_key(context: AuditContext) -> SigningKey:
    """Promote next to current, current to previous, retire the old previous, make a new next."""
    with exclusive(SIGNING_KEYS):  # two rotations at once must not both promote the same key
        return _rotate_locked(context)


def _rotate_locked(context: AuditContext) -> SigningKey:
    _ensure_keys_locked(context)
    keys = {k.state: k for k in SigningKey.objects.filter(state__in=BUNDLE_STATES)}
    now = timezone.now()
    if KeyState.PREVIOUS in keys:
        _set_state(keys[KeyState.PREVIOUS], KeyState.RETIRED, retired_at=now)
    _set_state(keys[KeyState.CURRENT], KeyState.PREVIOUS)
    _set_state(keys[KeyState.NEXT], KeyState.CURRENT, activated_at=now)
    new_next = _new_key(KeyState.NEXT)
    _record(
        context,
        "signing_key.rotate",
        {"current": keys[KeyState.NEXT].kid, "next": new_next.kid, "previous": keys[KeyState.CURRENT].kid},
    )
    return keys[KeyState.NEXT]


def retire_previous_key(context: AuditContext, *, now: datetime | None = None) -> SigningKey | None:
    """Retire the previous key once every token it signed has expired (``TOKEN_TTL`` plus a margin).

    Tokens stop being signed with it when the current key is activated, so it is done with at
    ``activated_at + TOKEN_TTL + RETIRE_MARGIN``. Returns the retired key (None: nothing to retire yet).
    """
    now = now or timezone.now()
    with exclusive(SIGNING_KEYS):
        previous = SigningKey.objects.filter(state=KeyState.PREVIOUS).first()
        current = SigningKey.objects.filter(state=KeyState.CURRENT).first()
        if previous is None or current is None or current.activated_at is None:
            return None
        done_at = current.activated_at + timedelta(seconds=settings.TOKEN_TTL) + RETIRE_MARGIN
        if now < done_at:
            return None
        _set_state(previous, KeyState.RETIRED, retired_at=now)
        _record(context, "signing_key.retire", {"retired": previous.kid, "tokens_expired_by": done_at.isoformat()})
        return previous


def key_age(key: SigningKey, now: datetime) -> timedelta:
    """How long ``key`` has been signing (since it was made, for a key never activated)."""
    return now - (key.activated_at or key.created_at)


def _set_state(key: SigningKey, state: str, **fields: object) -> None:
    # Free the state slot first: the unique constraint allows one key per state.
    key.state = state
    for name, value in fields.items():
        setattr(key, name, value)
    key.save(update_fields=["state", *fields])


def _record(context: AuditContext, action: str, detail: dict) -> None:
    record(Kind.CREDENTIAL, "success", context, subject_type=SubjectType.SYSTEM, detail={"action": action, **detail})
