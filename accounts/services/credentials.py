"""Robots and personal access tokens: secrets shown once and stored hashed, revocation, expiry records."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.constants import PAT_PREFIX, ROBOT_SECRET_PREFIX
from accounts.models import AuthMode, PersonalAccessToken, Registry, Robot, Team, User
from accounts.registry import htpasswd
from accounts.registry.secrets import new_secret, secret_hash
from accounts.services._common import _check_expiry, _clean_pattern, _credential_record, _iso
from accounts.services.grants import create_grant
from audit.context import AuditContext

_ROBOT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")


@transaction.atomic
def create_robot(
    team: Team | None,
    name: str,
    *,
    context: AuditContext,
    expires_at: datetime | None = None,
    grants: list[tuple[str, str]] | None = None,
    description: str = "",
) -> tuple[Robot, str]:
    """Make a robot and its grants; returns the robot and its secret (shown once, stored hashed)."""
    if not _ROBOT_NAME.match(name):
        raise ValidationError({"name": f"Robot name {name!r} must be lowercase letters, digits, - or _."})
    _check_expiry(expires_at)
    secret = new_secret(ROBOT_SECRET_PREFIX)
    robot = Robot(
        team=team,
        name=name,
        description=description,
        secret_hash=secret_hash(secret),
        bcrypt_hash=htpasswd.hash_password(secret),
        expires_at=expires_at,
        created_by_id=context.actor_id,
    )
    try:
        with transaction.atomic():
            robot.save()
    except IntegrityError:
        raise ValidationError({"name": f"{robot.login_name} already exists."}) from None
    for pattern, role in grants or []:
        create_grant(robot, pattern, role, context=context, managed_by=team)
    _credential_record(
        context,
        "robot.create",
        robot.login_name,
        expires_at=_iso(expires_at),
        grants=[f"{pattern}:{role}" for pattern, role in grants or []],
    )
    htpasswd.sync_after_commit()
    return robot, secret


ROBOT_GRACE = timedelta(hours=24)


@dataclass(frozen=True)
class RobotRotation:
    """A robot's new secret (shown once), until when the old one still works, and what to tell people."""

    robot: Robot
    secret: str
    previous_valid_until: datetime | None
    notes: tuple[str, ...]


@transaction.atomic
def rotate_robot(robot: Robot, *, context: AuditContext, grace: timedelta = ROBOT_GRACE) -> RobotRotation:
    """A new secret for ``robot``; the old one keeps working for ``grace`` (0: stops at once).

    Both hashes are kept meanwhile and each use is recorded with which one it was. In htpasswd mode
    the file holds one hash per name: there the new secret takes over at once, whatever the grace.
    """
    # ``of``: a global robot has no team, and PostgreSQL locks no row on the nullable side of a join.
    robot = Robot.objects.select_for_update(of=("self",)).select_related("team").get(pk=robot.pk)
    if robot.revoked_at is not None:
        raise ValidationError(f"{robot.login_name} is revoked: make a new robot instead.")
    if grace < timedelta(0):
        raise ValidationError({"grace": "The grace period cannot be negative."})
    now = timezone.now()
    secret = new_secret(ROBOT_SECRET_PREFIX)
    until = now + grace if grace else None
    robot.previous_secret_hash, robot.previous_valid_until = (robot.secret_hash, until) if until else ("", None)
    robot.secret_hash, robot.bcrypt_hash, robot.secret_set_at = secret_hash(secret), htpasswd.hash_password(secret), now
    robot.save(
        update_fields=["secret_hash", "bcrypt_hash", "secret_set_at", "previous_secret_hash", "previous_valid_until"]
    )
    _credential_record(context, "robot.rotate", robot.login_name, previous_valid_until=_iso(until))
    htpasswd.sync_after_commit()
    notes = []
    if until:
        notes.append(
            f"The old secret keeps working until {until:%Y-%m-%d %H:%M} UTC; replace it everywhere before then."
        )
    else:
        notes.append("The old secret stopped working now.")
    htpasswd_registries = list(Registry.objects.filter(auth_mode=AuthMode.HTPASSWD).values_list("service", flat=True))
    if htpasswd_registries and until:
        notes.append(
            f"Registries in htpasswd mode ({', '.join(htpasswd_registries)}) hold one hash per name: there the new "
            "secret works now and the old one stopped (no grace)."
        )
    return RobotRotation(robot, secret, until, tuple(notes))


@transaction.atomic
def revoke_robot(robot: Robot, *, context: AuditContext) -> None:
    if Robot.objects.filter(pk=robot.pk, revoked_at__isnull=True).update(revoked_at=timezone.now()):
        _credential_record(context, "robot.revoke", robot.login_name)
        htpasswd.sync_after_commit()


@transaction.atomic
def create_access_token(
    user: User,
    name: str,
    *,
    context: AuditContext,
    read_only: bool = False,
    patterns: list[str] | None = None,
    expires_at: datetime | None = None,
) -> tuple[PersonalAccessToken, str]:
    """A personal access token limited to part of ``user``'s rights; returns it and its secret (once)."""
    if not name or len(name) > 100:
        raise ValidationError({"name": "Give the token a name of at most 100 characters."})
    cleaned = [_clean_pattern(p) for p in patterns or []]
    _check_expiry(expires_at)
    secret = new_secret(PAT_PREFIX)
    token = PersonalAccessToken(
        user=user,
        name=name,
        read_only=read_only,
        patterns=cleaned,
        secret_hash=secret_hash(secret),
        expires_at=expires_at,
        created_by_id=context.actor_id,
    )
    try:
        with transaction.atomic():
            token.save()
    except IntegrityError:
        raise ValidationError({"name": f"{user.username} already has a token named {name!r}."}) from None
    _credential_record(
        context,
        "token.create",
        f"{user.username}/{name}",
        read_only=read_only,
        patterns=cleaned,
        expires_at=_iso(expires_at),
    )
    return token, secret


@transaction.atomic
def revoke_access_token(token: PersonalAccessToken, *, context: AuditContext) -> None:
    if PersonalAccessToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now()):
        _credential_record(context, "token.revoke", f"{token.user.username}/{token.name}")


def record_credential_expiries(*, now: datetime | None = None) -> int:
    """Record each robot and token whose expiry has passed, once."""
    now = now or timezone.now()
    context = AuditContext.system("expiry")
    count = 0
    for model, action in ((Robot, "robot.expire"), (PersonalAccessToken, "token.expire")):
        for credential in model.objects.filter(expires_at__lte=now, expiry_recorded_at__isnull=True):
            with transaction.atomic():
                if model.objects.filter(pk=credential.pk, expiry_recorded_at__isnull=True).update(
                    expiry_recorded_at=now
                ):
                    _credential_record(context, action, str(credential), expired_at=_iso(credential.expires_at))
                    count += 1
    if count:
        htpasswd.sync_all()
    return count
