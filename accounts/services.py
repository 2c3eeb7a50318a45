"""Every state change to accounts, teams, repositories and grants.

Each function runs in one transaction and writes its audit record inside it:
a record exists exactly when the change committed. Views, management
commands, the admin site and Celery tasks all call these; none saves models
directly.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from accounts import authz, htpasswd
from accounts.models import (
    AuthMode,
    Grant,
    Membership,
    PersonalAccessToken,
    Registry,
    Repository,
    Robot,
    Role,
    Team,
    TeamRole,
    User,
)
from accounts.patterns import InvalidName, pattern_contains, validate_pattern, validate_repository_name
from accounts.permissions import role_at_most
from accounts.refresh import revoke_refresh_tokens
from accounts.secret_hash import new_secret, secret_hash
from audit.context import AuditContext
from audit.models import Kind, SubjectType
from audit.services import record, record_change

USER_FIELDS = (
    "username",
    "email",
    "first_name",
    "last_name",
    "is_active",
    "is_superuser",
    "is_auditor",
    "catalog_access",
)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def user_state(user: User) -> dict[str, Any]:
    return {field: getattr(user, field) for field in USER_FIELDS}


def grant_state(grant: Grant) -> dict[str, Any]:
    return {
        "pattern": grant.pattern,
        "role": grant.role,
        "user": grant.user.username if grant.user_id else None,
        "team": grant.team.name if grant.team_id else None,
        **({"robot": grant.robot.login_name} if grant.robot_id else {}),
        "registry": grant.registry.service if grant.registry_id else None,
        "expires_at": _iso(grant.expires_at),
        "managed_by": grant.managed_by.name if grant.managed_by_id else None,
    }


def _clean_pattern(pattern: str) -> str:
    try:
        return validate_pattern(pattern)
    except InvalidName as exc:
        raise ValidationError({"pattern": str(exc)}) from None


def _clean_repository(name: str) -> str:
    try:
        return validate_repository_name(name)
    except InvalidName as exc:
        raise ValidationError({"name": str(exc)}) from None


def _check_password(password: str, user: User | None, *, validate: bool) -> None:
    if len(password.encode()) > 72:
        # bcrypt (htpasswd mode) reads only 72 bytes: refuse rather than silently truncate.
        raise ValidationError({"password": "Passwords may be at most 72 bytes long (bcrypt's limit)."})
    if validate:
        validate_password(password, user)


# Users ---------------------------------------------------------------------


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
def update_user(user: User, *, context: AuditContext, **changes: Any) -> User:
    """Change profile fields and flags (not the password: see ``set_password``)."""
    unknown = set(changes) - set(USER_FIELDS)
    if unknown:
        raise ValueError(f"update_user cannot change {', '.join(sorted(unknown))}")
    user = User.objects.select_for_update().get(pk=user.pk)
    before = user_state(user)
    for field, value in changes.items():
        setattr(user, field, value)
    user.is_staff = user.is_superuser
    user.full_clean(exclude=["password"])
    after = user_state(user)
    if before == after:
        return user
    user.save()
    if before["is_active"] and not user.is_active:
        revoke_refresh_tokens(user, "deactivated")
    if before["is_active"] != user.is_active or before["username"] != user.username:
        htpasswd.sync_after_commit()
    record_change(
        context,
        "user.update",
        user.username,
        before={k: v for k, v in before.items() if after[k] != v},
        after={k: v for k, v in after.items() if before[k] != v},
    )
    return user


@transaction.atomic
def set_password(user: User, password: str, *, context: AuditContext, validate: bool = True) -> None:
    """Set a user's password. The audit record says it changed, never what to."""
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


# Teams ---------------------------------------------------------------------


@transaction.atomic
def create_team(name: str, *, context: AuditContext, description: str = "") -> Team:
    team = Team(name=name, description=description)
    team.full_clean()
    team.save()
    record_change(context, "team.create", name, after={"name": name, "description": description})
    return team


@transaction.atomic
def update_team(team: Team, *, context: AuditContext, description: str) -> Team:
    team = Team.objects.select_for_update().get(pk=team.pk)
    if team.description != description:
        before = team.description
        team.description = description
        team.full_clean()
        team.save(update_fields=["description"])
        record_change(
            context, "team.update", team.name, before={"description": before}, after={"description": description}
        )
    return team


@transaction.atomic
def delete_team(team: Team, *, context: AuditContext) -> None:
    state = {
        "name": team.name,
        "members": {m.user.username: m.role for m in team.memberships.select_related("user")},
        "grants": [grant_state(g) for g in team.grants.select_related("team", "registry", "managed_by")],
    }
    robots = [robot.login_name for robot in team.robots.select_related("team")]
    team.delete()
    record_change(context, "team.delete", state["name"], before=state)
    for login_name in robots:
        _credential_record(context, "robot.delete", login_name, reason=f"team {state['name']} deleted")
    htpasswd.sync_after_commit()  # the team's robots are gone: drop them from htpasswd files now


@transaction.atomic
def set_membership(team: Team, user: User, role: str, *, context: AuditContext) -> Membership:
    """Add ``user`` to ``team`` with ``role``, or change the role they have."""
    if role not in TeamRole.values:
        raise ValidationError({"role": f"Unknown team role {role!r}; use maintainer or member."})
    membership, created = Membership.objects.select_for_update().get_or_create(
        team=team, user=user, defaults={"role": role}
    )
    target = f"{user.username} in {team.name}"
    if created:
        record_change(context, "membership.add", target, after={"role": role})
    elif membership.role != role:
        before = membership.role
        membership.role = role
        membership.save(update_fields=["role"])
        record_change(context, "membership.change", target, before={"role": before}, after={"role": role})
    return membership


@transaction.atomic
def remove_membership(membership: Membership, *, context: AuditContext) -> None:
    target = f"{membership.user.username} in {membership.team.name}"
    role = membership.role
    membership.delete()
    record_change(context, "membership.remove", target, before={"role": role})


# Registries and repositories -------------------------------------------------


@transaction.atomic
def create_registry(service: str, *, context: AuditContext, url: str = "", auth_mode: str = AuthMode.TOKEN) -> Registry:
    registry = Registry(service=service, url=url.rstrip("/"), auth_mode=auth_mode)
    registry.full_clean()
    registry.save()
    record_change(context, "registry.create", service, after={"url": registry.url, "auth_mode": auth_mode})
    htpasswd.sync_after_commit()  # an htpasswd registry must never find its file missing
    return registry


@transaction.atomic
def update_registry(registry: Registry, *, context: AuditContext, **changes: Any) -> Registry:
    allowed = {"service", "url", "auth_mode"}
    if set(changes) - allowed:
        raise ValueError(f"update_registry cannot change {', '.join(sorted(set(changes) - allowed))}")
    registry = Registry.objects.select_for_update().get(pk=registry.pk)
    before = {field: getattr(registry, field) for field in allowed}
    for field, value in changes.items():
        setattr(registry, field, value)
    registry.full_clean()
    after = {field: getattr(registry, field) for field in allowed}
    if before != after:
        registry.save()
        record_change(context, "registry.update", registry.service, before=before, after=after)
        htpasswd.sync_after_commit()
    return registry


@transaction.atomic
def delete_registry(registry: Registry, *, context: AuditContext) -> None:
    state = {"service": registry.service, "url": registry.url, "auth_mode": registry.auth_mode}
    registry.delete()
    record_change(context, "registry.delete", state["service"], before=state)


@transaction.atomic
def create_repository(
    name: str, *, context: AuditContext, public: bool = False, registry: Registry | None = None
) -> Repository:
    name = _clean_repository(name)
    if Repository.objects.filter(name=name, registry=registry).exists():
        raise ValidationError({"name": f"Repository {name!r} already exists."})
    repository = Repository.objects.create(name=name, public=public, registry=registry)
    record_change(
        context,
        "repository.create",
        name,
        after={"public": public, "registry": registry.service if registry else None},
        repository=name,
    )
    return repository


@transaction.atomic
def set_repository_public(repository: Repository, public: bool, *, context: AuditContext) -> Repository:
    repository = Repository.objects.select_for_update().get(pk=repository.pk)
    if repository.public != public:
        before = repository.public
        repository.public = public
        repository.save(update_fields=["public"])
        record_change(
            context,
            "repository.update",
            repository.name,
            before={"public": before},
            after={"public": public},
            repository=repository.name,
        )
    return repository


@transaction.atomic
def delete_repository(repository: Repository, *, context: AuditContext) -> None:
    state = {"name": repository.name, "public": repository.public}
    repository.delete()
    record_change(context, "repository.delete", state["name"], before=state, repository=state["name"])


# Grants --------------------------------------------------------------------


@transaction.atomic
def create_grant(
    subject: User | Team | Robot,
    pattern: str,
    role: str,
    *,
    context: AuditContext,
    registry: Registry | None = None,
    expires_at: datetime | None = None,
    managed_by: Team | None = None,
) -> Grant:
    """Give ``subject`` (a user or a team) ``role`` on repositories matching ``pattern``."""
    pattern = _clean_pattern(pattern)
    if role not in Role.values:
        raise ValidationError({"role": f"Unknown role {role!r}; use read, write or admin."})
    _check_expiry(expires_at)
    if isinstance(subject, Robot):
        check_robot_grant(subject, pattern, role, registry)
    grant = Grant(
        pattern=pattern,
        role=role,
        registry=registry,
        expires_at=expires_at,
        managed_by=managed_by,
        created_by_id=context.actor_id,
        user=subject if isinstance(subject, User) else None,
        team=subject if isinstance(subject, Team) else None,
        robot=subject if isinstance(subject, Robot) else None,
    )
    try:
        with transaction.atomic():
            grant.save()
    except IntegrityError:
        raise ValidationError(
            {"pattern": f"{grant.subject_label} already has a grant on {pattern!r}; change that one instead."}
        ) from None
    record_change(context, "grant.create", str(grant), after=grant_state(grant), registry=_svc(registry))
    return grant


@transaction.atomic
def update_grant(
    grant: Grant,
    *,
    context: AuditContext,
    role: str | None = None,
    expires_at: datetime | object | None = ...,
) -> Grant:
    """Change a grant's role and/or expiry (pass ``expires_at=None`` to remove the expiry)."""
    grant = _grants().select_for_update(of=("self",)).get(pk=grant.pk)
    before = grant_state(grant)
    if role is not None:
        if role not in Role.values:
            raise ValidationError({"role": f"Unknown role {role!r}; use read, write or admin."})
        grant.role = role
    if expires_at is not ...:
        grant.expires_at = expires_at  # type: ignore[assignment]
    after = grant_state(grant)
    if before != after:
        grant.save(update_fields=["role", "expires_at"])
        record_change(context, "grant.update", str(grant), before=before, after=after, registry=_svc(grant.registry))
    return grant


@transaction.atomic
def revoke_grant(grant: Grant, *, context: AuditContext, reason: str = "grant.revoke") -> None:
    state = grant_state(grant)
    label = str(grant)
    grant.delete()
    record_change(context, reason, label, before=state, registry=state["registry"] or "")


def purge_expired_grants(*, now: datetime | None = None) -> int:
    """Delete grants whose expiry has passed, one audit record each (in its own transaction)."""
    now = now or timezone.now()
    context = AuditContext.system("expiry")
    expired = Grant.objects.filter(expires_at__lte=now).select_related("user", "team", "registry", "managed_by")
    count = 0
    for grant in expired.iterator():
        with transaction.atomic():
            locked = Grant.objects.select_for_update().filter(pk=grant.pk, expires_at__lte=now).first()
            if locked is None:
                continue  # revoked or extended meanwhile
            revoke_grant(grant, context=context, reason="grant.expire")
            count += 1
    return count


def _grants():
    return Grant.objects.select_related("user", "team", "registry", "managed_by")


def _svc(registry: Registry | None) -> str:
    return registry.service if registry else ""


@transaction.atomic
def ensure_repository(name: str, registry: Registry, *, context: AuditContext) -> Repository | None:
    """Make the row for a repository first seen in a registry event (pushes need none beforehand)."""
    try:
        validate_repository_name(name)
    except InvalidName:
        return None
    if Repository.objects.filter(name=name).filter(Q(registry=registry) | Q(registry__isnull=True)).exists():
        return None
    repository = Repository.objects.create(name=name, registry=registry)
    record_change(
        context,
        "repository.discover",
        name,
        after={"registry": registry.service},
        repository=name,
        registry=registry.service,
    )
    return repository


# Robots and personal access tokens ------------------------------------------------

ROBOT_PREFIX = "rgb_"
TOKEN_PREFIX = "rga_"
_ROBOT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")


def _check_expiry(expires_at: datetime | None) -> None:
    if expires_at is not None and timezone.is_naive(expires_at):
        raise ValidationError({"expires_at": "Expiry needs a time zone (e.g. 2026-12-31T00:00:00Z)."})


def check_within_team(team: Team, pattern: str, role: str, registry: Registry | None = None) -> datetime | None:
    """``role`` on ``pattern`` must lie inside one of the team's unexpired grants (engine's containment test).

    Returns when the longest-lived of those containing grants ends (None: one of them never does).
    """
    now = timezone.now()
    ends: list[datetime | None] = []
    for grant in Grant.objects.filter(team=team).select_related("registry"):
        if grant.expires_at is not None and grant.expires_at <= now:
            continue
        if grant.registry_id is not None and grant.registry_id != (registry.pk if registry else None):
            continue
        if pattern_contains(grant.pattern, pattern) and role_at_most(role, grant.role):
            ends.append(grant.expires_at)
    if not ends:
        raise ValidationError({"pattern": f"{role} on {pattern!r} lies outside what team {team.name} holds."})
    return None if None in ends else max(end for end in ends if end is not None)


def check_robot_grant(robot: Robot, pattern: str, role: str, registry: Registry | None = None) -> None:
    """A team robot may only be granted what lies inside its team's grants."""
    if robot.team_id is not None:
        check_within_team(robot.team, pattern, role, registry)


def _credential_record(context: AuditContext, action: str, credential: str, **detail: Any) -> None:
    record(
        Kind.CREDENTIAL,
        "success",
        context,
        subject_type=SubjectType.USER if context.actor_id else SubjectType.SYSTEM,
        detail={"action": action, "credential": credential, **detail},
    )


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
    secret = new_secret(ROBOT_PREFIX)
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
    secret = new_secret(TOKEN_PREFIX)
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


# Team leads ---------------------------------------------------------------------------


@transaction.atomic
def lead_grant(
    team: Team,
    subject: User | Robot,
    pattern: str,
    role: str,
    *,
    acting_user: User,
    context: AuditContext,
    registry: Registry | None = None,
    expires_at: datetime | None = None,
) -> Grant:
    """A team lead grants a role inside the team's own grants; the team then manages the grant.

    It lasts no longer than the team's grant it lies in: a lead cannot hand out beyond the team's own expiry.
    """
    if not authz.is_team_lead(acting_user, team):
        raise PermissionDenied(f"{acting_user.username} does not lead team {team.name}.")
    if isinstance(subject, Robot) and subject.team_id != team.pk:
        raise PermissionDenied(f"{subject.login_name} is not a robot of team {team.name}.")
    team_ends = check_within_team(team, _clean_pattern(pattern), role, registry)
    if team_ends is not None and (expires_at is None or expires_at > team_ends):
        expires_at = team_ends
    return create_grant(
        subject, pattern, role, registry=registry, expires_at=expires_at, managed_by=team, context=context
    )


@transaction.atomic
def lead_revoke(grant: Grant, *, acting_user: User, context: AuditContext) -> None:
    """Revoke a grant if ``acting_user`` may: admins any, team leads those their team manages."""
    if not authz.can_revoke(acting_user, grant):
        raise PermissionDenied(f"{acting_user.username} may not revoke {grant}.")
    revoke_grant(grant, context=context)


@transaction.atomic
def lead_set_membership(team: Team, user: User, role: str, *, acting_user: User, context: AuditContext) -> Membership:
    if not authz.is_team_lead(acting_user, team):
        raise PermissionDenied(f"{acting_user.username} does not lead team {team.name}.")
    return set_membership(team, user, role, context=context)


@transaction.atomic
def lead_remove_membership(membership: Membership, *, acting_user: User, context: AuditContext) -> None:
    if not authz.is_team_lead(acting_user, membership.team):
        raise PermissionDenied(f"{acting_user.username} does not lead team {membership.team.name}.")
    remove_membership(membership, context=context)


@transaction.atomic
def lead_create_robot(
    team: Team,
    name: str,
    *,
    acting_user: User,
    context: AuditContext,
    expires_at: datetime | None = None,
    grants: list[tuple[str, str]] | None = None,
    description: str = "",
) -> tuple[Robot, str]:
    """A team lead makes a robot of their team; ``create_robot`` keeps its grants inside the team's."""
    if not authz.is_team_lead(acting_user, team):
        raise PermissionDenied(f"{acting_user.username} does not lead team {team.name}.")
    return create_robot(team, name, context=context, expires_at=expires_at, grants=grants, description=description)


@transaction.atomic
def lead_revoke_robot(robot: Robot, *, acting_user: User, context: AuditContext) -> None:
    """Revoke ``robot`` if ``acting_user`` may (``authz.can_revoke_robot``)."""
    if not authz.can_revoke_robot(acting_user, robot):
        raise PermissionDenied(f"{acting_user.username} may not revoke {robot.login_name}.")
    revoke_robot(robot, context=context)
