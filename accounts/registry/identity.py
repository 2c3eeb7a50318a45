"""Who is asking at the token endpoint: a user (password), a robot, a personal access token, or nobody.

Every path answers with an ``Identity`` or a ``Failure``; the failure's
``reason`` is for the audit record only: clients always hear the same thing.

Was ``accounts/identity.py`` before the layout split.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Model
from django.utils import timezone

from accounts import services
from accounts.access.engine import Subject
from accounts.access.subjects import ANONYMOUS, subject_for_user
from accounts.constants import PAT_PREFIX, ROBOT_LOGIN_PREFIX, ROBOT_SECRET_PREFIX
from accounts.models import PersonalAccessToken, Robot, User
from accounts.registry.refresh import user_for_refresh_token
from accounts.registry.secrets import hash_candidates
from accounts.registry.snapshot import FRESH, Fresh
from audit.context import AuditContext
from audit.models import Kind, SubjectType
from audit.services import record

TOUCH_EVERY = timedelta(minutes=1)


@dataclass(frozen=True)
class Identity:
    subject: Subject
    subject_type: str
    actor: str = ""
    actor_id: int | None = None
    credential: str = ""
    refresh_token: str | None = None
    secret: str = ""  # a robot's: "current", or "previous" during a rotation's grace period


@dataclass(frozen=True)
class Failure:
    reason: str
    subject_type: str = SubjectType.USER
    credential: str = ""
    status: int = 401  # 503 when the directory cannot answer (not the client's fault: not counted as a guess)


ANONYMOUS_IDENTITY = Identity(ANONYMOUS, SubjectType.ANONYMOUS)


def identify(
    username: str | None,
    password: str,
    *,
    grant_type: str,
    refresh_token: str | None,
    service: str,
    offline: bool,
    client_id: str,
    context: AuditContext,
    lookups: Fresh = FRESH,
) -> Identity | Failure:
    """Who this is; ``lookups`` is where the rows come from (``accounts.registry.snapshot``)."""
    if grant_type == "refresh_token":
        user = user_for_refresh_token(refresh_token or "", service)
        if user is None:
            return Failure("invalid, expired or revoked refresh token")
        return _user_identity(user, refresh_token=refresh_token)
    if username is None:
        return ANONYMOUS_IDENTITY
    if username.startswith(ROBOT_LOGIN_PREFIX) or password.startswith(ROBOT_SECRET_PREFIX):
        return _robot(username, password, context, lookups)
    if password.startswith(PAT_PREFIX):
        return _access_token(username, password, context, lookups)
    result = lookups.check_password(username, password)
    if not result.ok:
        if result.reason == "directory_unavailable":
            return Failure(f"directory unavailable: {result.detail}", status=503)
        return Failure("user is inactive" if result.reason == "inactive" else "bad username or password")
    refresh = services.new_refresh_token(result.user, service, client_id) if offline else None
    return _user_identity(result.user, refresh_token=refresh, subject=lookups.subject_for_user(result.user))


def _user_identity(user: User, *, refresh_token: str | None, subject: Subject | None = None) -> Identity:
    subject = subject or subject_for_user(user)
    return Identity(subject, SubjectType.USER, user.username, user.pk, refresh_token=refresh_token)


def _robot(username: str, secret: str, context: AuditContext, lookups: Fresh) -> Identity | Failure:
    candidates = hash_candidates(secret, lookups.peppers())
    robot = lookups.robot(candidates)
    if robot is None or not hmac.compare_digest(robot.login_name.encode(), username.encode()):
        return Failure("bad robot name or secret", SubjectType.ROBOT)
    now = timezone.now()
    refusal = robot.refusal(now)
    if refusal:
        return Failure(f"robot {robot.login_name} {refusal}", SubjectType.ROBOT, robot.login_name)
    used = "current" if robot.secret_hash in candidates else "previous"
    if used == "previous" and (robot.previous_valid_until is None or robot.previous_valid_until <= now):
        ended = f" on {robot.previous_valid_until:%Y-%m-%d %H:%M} UTC" if robot.previous_valid_until else ""
        reason = f"robot {robot.login_name} used its previous secret after the rotation's grace period ended{ended}"
        return Failure(reason, SubjectType.ROBOT, robot.login_name)
    _touch(robot, now, context, robot.login_name)
    subject = lookups.subject_for_robot(robot, now)
    return Identity(subject, SubjectType.ROBOT, robot.login_name, credential=robot.login_name, secret=used)


def _access_token(username: str, secret: str, context: AuditContext, lookups: Fresh) -> Identity | Failure:
    token = lookups.token(hash_candidates(secret, lookups.peppers()))
    if token is None or not hmac.compare_digest(token.user.username.encode(), username.encode()):
        return Failure("bad username or token", SubjectType.TOKEN)
    label = f"{token.user.username}/{token.name}"
    now = timezone.now()
    refusal = token.refusal(now)
    if refusal:
        return Failure(f"token {label} {refusal}", SubjectType.TOKEN, label)
    if not token.user.is_active:
        return Failure(f"user is inactive (token {label})", SubjectType.TOKEN, label)
    _touch(token, now, context, label)
    subject = lookups.subject_for_token(token)
    return Identity(subject, SubjectType.TOKEN, token.user.username, token.user.pk, credential=label)


def _touch(credential: Robot | PersonalAccessToken, now: datetime, context: AuditContext, label: str) -> None:
    """Keep last-used time and address without a write on every request (at most once a minute).

    ``credential`` may be a cached row: its ``last_used_at`` is updated in place, and first use is
    the UPDATE that found ``last_used_at`` empty, so two workers never both record it.
    """
    last = credential.last_used_at
    if last is not None and now - last < TOUCH_EVERY:
        return
    model: type[Model] = type(credential)
    rows = model.objects.filter(pk=credential.pk)
    credential.last_used_at, credential.last_used_ip = now, context.ip
    if last is not None:
        rows.update(last_used_at=now, last_used_ip=context.ip)
        return
    if rows.filter(last_used_at__isnull=True).update(last_used_at=now, last_used_ip=context.ip) == 1:
        record(
            Kind.CREDENTIAL,
            "success",
            context,
            subject_type=SubjectType.SYSTEM,
            detail={"action": "credential.first_use", "credential": label},
        )
    else:
        rows.update(last_used_at=now, last_used_ip=context.ip)
