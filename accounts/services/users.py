"""Users: create, change, set or disable the password, delete, sign out of ``docker login`` and the web."""

from __future__ import annotations

from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from accounts.registry import htpasswd
from accounts.services._common import USER_FIELDS, user_state
from accounts.services.refresh import revoke_refresh_tokens
from audit.context import AuditContext
from audit.services import record_change

DIRECTORY_FIELDS = ("username", "email", "first_name", "last_name")


def _check_password(password: str, user: User | None, *, validate: bool) -> None:
    if len(password.encode()) > 72:
        # bcrypt (htpasswd mode) reads only 72 bytes: refuse rather than silently truncate.
        raise ValidationError({"password": "Passwords may be at most 72 bytes long (bcrypt's limit)."})
    if validate:
        validate_password(password, user)


@transaction.atomic
def create_user(
    username: str,
    *,
    context: AuditContext,
    email: str = "",
    first_name: str = "",
    last_name: str = "",
    password: str | None = None,
    is_active: bool = True,
    is_superuser: bool = False,
    is_auditor: bool = False,
    catalog_access: bool = False,
    validate: bool = True,
) -> User:
    """Create a user. Without a password the user cannot sign in until one is set."""
    user = User(
        username=username,
        email=email,
        first_name=first_name,
        last_name=last_name,
        is_active=is_active,
        is_superuser=is_superuser,
        is_staff=is_superuser,
        is_auditor=is_auditor,
        catalog_access=catalog_access,
    )
    user.full_clean(exclude=["password"])
    if User.objects.filter(username=username.lower()).exclude(directory_dn="").exists():
        raise ValidationError(
            {"username": f"{username.lower()} is a directory user; a local account may not differ only in case."}
        )
    if password:
        _check_password(password, user, validate=validate)
        user.set_password(password)
        user.htpasswd_hash = htpasswd.hash_password(password)
    else:
        user.set_unusable_password()
    user.save()
    record_change(context, "user.create", username, after=user_state(user))
    htpasswd.sync_after_commit()
    return user


@transaction.atomic
def update_user(user: User, *, context: AuditContext, from_directory: bool = False, **changes: Any) -> User:
    """Change profile fields and flags (not the password: see ``set_password``).

    A directory user's name, email and names follow the directory: only the directory sync
    (``from_directory``) changes them.
    """
    unknown = set(changes) - set(USER_FIELDS)
    if unknown:
        raise ValueError(f"update_user cannot change {', '.join(sorted(unknown))}")
    user = User.objects.select_for_update().get(pk=user.pk)
    before = user_state(user)
    followed = sorted(f for f in DIRECTORY_FIELDS if f in changes and changes[f] != before[f])
    if user.directory_dn and followed and not from_directory:
        raise ValidationError(
            {f: f"{user.username} is a directory user: this follows the directory." for f in followed}
        )
    for field, value in changes.items():
        setattr(user, field, value)
    user.is_staff = user.is_superuser
    # Only what changes is validated: a value stored long ago (or copied from a directory) that today's
    # rules refuse must never block another change, a deactivation above all.
    unchanged = [f.name for f in User._meta.concrete_fields if f.name not in changes and f.name != "is_staff"]
    user.full_clean(exclude=unchanged)
    after = user_state(user)
    if before == after:
        return user
    if before["is_active"] and not user.is_active and user.directory_dn:
        user.set_unusable_password()  # a new marker: every remembered directory bind of theirs misses now
    user.save()
    if before["is_active"] and not user.is_active:
        revoke_refresh_tokens(user, "deactivated")
        after["web_sessions_ended"] = end_web_sessions(user)
    if before["is_active"] != user.is_active or before["username"] != user.username:
        htpasswd.sync_after_commit()
    record_change(
        context,
        "user.update",
        user.username,
        before={k: v for k, v in before.items() if after[k] != v},
        after={k: v for k, v in after.items() if before.get(k) != v},
    )
    return user


def end_web_sessions(user: User) -> int:
    """Delete every stored web session of ``user`` (callers hold a transaction); how many there were.

    Django refuses an inactive user's session but honours it again once they are reactivated, so
    deactivating must end the sessions, not suspend them. A session is an opaque blob: decode the
    unexpired ones (as many as people signed in now) and delete the user's through the engine, so a
    cached_db engine forgets them too.
    """
    store = import_module(settings.SESSION_ENGINE).SessionStore
    if not hasattr(store, "get_model_class"):
        raise ImproperlyConfigured(f"SESSION_ENGINE {settings.SESSION_ENGINE} cannot list the sessions of a user")
    live = store.get_model_class().objects.filter(expire_date__gt=timezone.now())
    owner = str(user.pk)
    keys = [
        row.session_key
        for row in live.only("session_key", "session_data").iterator(chunk_size=500)
        if store().decode(row.session_data).get(SESSION_KEY) == owner
    ]
    for key in keys:
        store(session_key=key).delete()
    return len(keys)


@transaction.atomic
def set_password(user: User, password: str, *, context: AuditContext, validate: bool = True) -> None:
    """Set a user's password. The audit record says it changed, never what to."""
    if user.directory_dn:
        raise ValidationError(
            {"password": f"{user.username} signs in with their directory password; change it in the directory."}
        )
    _check_password(password, user, validate=validate)
    user.set_password(password)
    user.htpasswd_hash = htpasswd.hash_password(password)
    user.save(update_fields=["password", "htpasswd_hash"])
    htpasswd.sync_after_commit()
    revoked = revoke_refresh_tokens(user, "password changed")
    record_change(context, "user.set_password", user.username, after={"refresh_tokens_revoked": revoked})


@transaction.atomic
def disable_password(user: User, *, context: AuditContext) -> None:
    """Make password sign-in impossible for ``user`` (directory or token use only)."""
    user.set_unusable_password()
    user.htpasswd_hash = ""
    user.save(update_fields=["password", "htpasswd_hash"])
    htpasswd.sync_after_commit()
    revoked = revoke_refresh_tokens(user, "password disabled")
    record_change(context, "user.disable_password", user.username, after={"refresh_tokens_revoked": revoked})


@transaction.atomic
def delete_user(user: User, *, context: AuditContext) -> None:
    state = user_state(user)
    user.delete()
    record_change(context, "user.delete", state["username"], before=state)
    htpasswd.sync_after_commit()


@transaction.atomic
def revoke_user_refresh_tokens(user: User, *, context: AuditContext) -> int:
    """An admin signs a user out of every ``docker login`` made with refresh tokens."""
    revoked = revoke_refresh_tokens(user, "revoked by admin")
    record_change(context, "user.revoke_refresh_tokens", user.username, after={"refresh_tokens_revoked": revoked})
    return revoked
