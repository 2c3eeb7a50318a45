"""Policy as code: a YAML file of users, teams, grants and repositories.

``load`` parses and validates strictly (unknown or duplicate keys are errors),
``plan`` compares it with the database and returns the changes, each carrying
the service call that makes it. Nothing here writes except ``Change.apply``;
``run`` loads, plans and applies a file in one transaction (a dry run is the same
run, rolled back), for ``manage.py apply_policy`` and ``POST /api/policy`` alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import yaml
from django.contrib.auth.hashers import check_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts import services
from accounts.access.engine import role_at_most
from accounts.access.patterns import InvalidName, validate_pattern, validate_repository_name
from accounts.models import Grant, Membership, Registry, Repository, Role, Team, TeamRole, User
from audit.context import AuditContext
from audit.models import AuditRecord, Kind

USER_KEYS = {"username", "email", "password", "active", "admin", "auditor", "catalog"}
TEAM_KEYS = {"name", "description", "members", "directory_groups", "grants"}
MEMBER_KEYS = {"user", "role"}
DIRECTORY_GROUP_KEYS = {"group", "role"}
TEAM_GRANT_KEYS = {"repository", "role", "expires", "registry"}
GRANT_KEYS = {"user", "team", "repository", "role", "expires", "registry", "managed_by"}
REPOSITORY_KEYS = {"name", "public", "registry"}
TOP_KEYS = {"users", "teams", "grants", "repositories"}
USER_FLAGS = {"active": "is_active", "admin": "is_superuser", "auditor": "is_auditor", "catalog": "catalog_access"}


class PolicyError(Exception):
    """The file is wrong; ``errors`` name each bad entry."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


@dataclass
class Change:
    op: str  # "+" add, "-" remove, "~" change
    text: str
    apply: Callable[[AuditContext], object] = field(repr=False)

    def __str__(self) -> str:
        return f"{self.op} {self.text}"


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys instead of silently keeping the last."""


def _mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if not _hashable(key):
            line = key_node.start_mark.line + 1
            raise PolicyError([f"line {line}: a key must be a plain value, not {type(key).__name__}"])
        if key in seen:
            line = key_node.start_mark.line + 1
            raise PolicyError([f"line {line}: duplicate key {key!r}"])
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def load(text: str) -> dict[str, list[dict[str, Any]]]:
    """Parse and validate the file's shape and values; raise PolicyError listing every problem."""
    try:
        data = yaml.load(text, Loader=_StrictLoader) or {}
    except yaml.YAMLError as exc:
        raise PolicyError([f"not valid YAML: {exc}"]) from None
    if not isinstance(data, dict):
        raise PolicyError(["the policy must be a mapping with users, teams, grants, repositories"])
    errors: list[str] = []
    _keys("policy", data, TOP_KEYS, set(), errors)
    policy = {key: data.get(key) or [] for key in TOP_KEYS}
    for key, items in policy.items():
        if not isinstance(items, list):
            errors.append(f"{key}: must be a list")
            policy[key] = []
    _check_users(policy["users"], errors)
    _check_teams(policy["teams"], errors)
    for i, grant in enumerate(policy["grants"]):
        _check_grant(f"grants[{i}]", grant, GRANT_KEYS, errors, top_level=True)
    _check_repositories(policy["repositories"], errors)
    if errors:
        raise PolicyError(errors)
    return policy


def _keys(where: str, entry: Any, allowed: set[str], required: set[str], errors: list[str]) -> bool:
    if not isinstance(entry, dict):
        errors.append(f"{where}: must be a mapping")
        return False
    for key in sorted(set(entry) - allowed, key=str):
        errors.append(f"{where}: unknown key {key!r} (allowed: {', '.join(sorted(allowed))})")
    for key in sorted(required - set(entry)):
        errors.append(f"{where}: missing {key!r}")
    return True


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _strings(where: str, entry: dict[str, Any], keys: tuple[str, ...], errors: list[str]) -> None:
    """Names, patterns and roles are text: a YAML date, number, boolean or list there is an error."""
    for key in keys:
        if key in entry and not isinstance(entry[key], str):
            errors.append(f"{where}: {key} must be a string, not {_kind(entry[key])} ({entry[key]!r})")


def _kind(value: Any) -> str:
    names = {bool: "true/false", int: "a number", float: "a number", list: "a list", dict: "a mapping"}
    if isinstance(value, datetime | date):
        return "a date (quote it)"
    return names.get(type(value), "null" if value is None else type(value).__name__)


def _list(where: str, entry: dict[str, Any], key: str, errors: list[str]) -> list[Any]:
    value = entry.get(key) or []
    if not isinstance(value, list):
        errors.append(f"{where}: {key} must be a list, not {_kind(value)}")
        return []
    return value


def _unique(where: str, names: list[Any], errors: list[str]) -> None:
    seen: set[Any] = set()
    for name in names:
        if not _hashable(name):
            continue  # already reported as the wrong type
        if name in seen:
            errors.append(f"{where}: {name!r} is listed twice")
        seen.add(name)


def _check_users(users: list[Any], errors: list[str]) -> None:
    for i, user in enumerate(users):
        where = f"users[{i}]"
        if not _keys(where, user, USER_KEYS, {"username"}, errors):
            continue
        where = f"{where} ({user.get('username')})"
        if not isinstance(user.get("username"), str) or not user.get("username"):
            errors.append(f"{where}: username must be a non-empty string")
        for flag in USER_FLAGS:
            if flag in user and not isinstance(user[flag], bool):
                errors.append(f"{where}: {flag} must be true or false")
        _strings(where, user, ("email", "password"), errors)
    _unique("users", [u.get("username") for u in users if isinstance(u, dict)], errors)


def _check_teams(teams: list[Any], errors: list[str]) -> None:
    for i, team in enumerate(teams):
        where = f"teams[{i}]"
        if not _keys(where, team, TEAM_KEYS, {"name"}, errors):
            continue
        _strings(where, team, ("name", "description"), errors)
        where = f"{where} ({team.get('name')})"
        members = _list(where, team, "members", errors)
        for j, member in enumerate(members):
            mwhere = f"{where}.members[{j}]"
            if _keys(mwhere, member, MEMBER_KEYS, {"user"}, errors):
                _strings(mwhere, member, ("user", "role"), errors)
                if _hashable(member.get("role")) and member.get("role", TeamRole.MEMBER) not in TeamRole.values:
                    errors.append(f"{mwhere}: role must be maintainer or member")
        _unique(f"{where}.members", [m.get("user") for m in members if isinstance(m, dict)], errors)
        _check_directory_groups(where, _list(where, team, "directory_groups", errors), errors)
        grants = _list(where, team, "grants", errors)
        for j, grant in enumerate(grants):
            _check_grant(f"{where}.grants[{j}]", grant, TEAM_GRANT_KEYS, errors, top_level=False)
        _unique(
            f"{where}.grants",
            [(g.get("repository"), g.get("registry")) for g in grants if isinstance(g, dict)],
            errors,
        )
    _unique("teams", [t.get("name") for t in teams if isinstance(t, dict)], errors)


def _check_directory_groups(where: str, groups: list[Any], errors: list[str]) -> None:
    """Each entry's ``group`` becomes the normalized DN, as the mapping stores it and the planner compares it."""
    seen: dict[str, str] = {}
    for j, entry in enumerate(groups):
        gwhere = f"{where}.directory_groups[{j}]"
        if not _keys(gwhere, entry, DIRECTORY_GROUP_KEYS, {"group"}, errors):
            continue
        _strings(gwhere, entry, ("group", "role"), errors)
        if _hashable(entry.get("role")) and entry.get("role", TeamRole.MEMBER) not in TeamRole.values:
            errors.append(f"{gwhere}: role must be maintainer or member")
        if not isinstance(entry.get("group"), str):
            continue
        try:
            dn = services.directory.clean_group_dn(entry["group"])
        except ValidationError as exc:
            errors.append(f"{gwhere}: {'; '.join(exc.messages)}")
            continue
        if dn in seen:
            errors.append(f"{gwhere}: {entry['group']!r} is listed twice (also as {seen[dn]!r})")
        seen[dn] = entry["group"]
        entry["group"] = dn


def _check_grant(where: str, grant: Any, allowed: set[str], errors: list[str], *, top_level: bool) -> None:
    if not _keys(where, grant, allowed, {"repository", "role"}, errors):
        return
    if top_level and ("user" in grant) == ("team" in grant):
        errors.append(f"{where}: give exactly one of user or team")
    _strings(where, grant, ("user", "team", "repository", "role", "registry", "managed_by"), errors)
    try:
        validate_pattern(str(grant.get("repository", "")))
    except InvalidName as exc:
        errors.append(f"{where}: {exc}")
    if not _hashable(grant.get("role")) or grant.get("role") not in Role.values:
        errors.append(f"{where}: role must be read, write or admin")
    if "expires" in grant:
        try:
            grant["expires"] = _datetime(grant["expires"])
        except ValueError:
            errors.append(f"{where}: expires {grant['expires']!r} is not an ISO 8601 date or time")


def _check_repositories(repositories: list[Any], errors: list[str]) -> None:
    for i, repo in enumerate(repositories):
        where = f"repositories[{i}]"
        if not _keys(where, repo, REPOSITORY_KEYS, {"name"}, errors):
            continue
        _strings(where, repo, ("name", "registry"), errors)
        try:
            validate_repository_name(str(repo.get("name", "")))
        except InvalidName as exc:
            errors.append(f"{where}: {exc}")
        if "public" in repo and not isinstance(repo["public"], bool):
            errors.append(f"{where}: public must be true or false")
    _unique("repositories", [(r.get("name"), r.get("registry")) for r in repositories if isinstance(r, dict)], errors)


def _datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    else:
        raise ValueError(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class _Planner:
    """Compares a loaded policy with the database and collects the changes."""

    def __init__(self, policy: dict[str, list[dict[str, Any]]]) -> None:
        self.policy = policy
        self.changes: list[Change] = []
        self.errors: list[str] = []
        self.users = {u.username: u for u in User.objects.all()}
        self.teams = {t.name: t for t in Team.objects.all()}
        self.registries = {r.service: r for r in Registry.objects.all()}
        self.file_users = {u["username"] for u in policy["users"]}
        self.file_teams = {t["name"] for t in policy["teams"]}

    def run(self) -> list[Change]:
        for entry in self.policy["users"]:
            self._user(entry)
        for entry in self.policy["repositories"]:
            self._repository(entry)
        for entry in self.policy["teams"]:
            self._team(entry)
        for i, entry in enumerate(self.policy["grants"]):
            self._top_grant(f"grants[{i}]", entry)
        if self.errors:
            raise PolicyError(self.errors)
        return self.changes

    # references -------------------------------------------------------------
    def _check_user(self, where: str, name: Any) -> None:
        if name not in self.users and name not in self.file_users:
            self.errors.append(f"{where}: unknown user {name!r}")

    def _check_team(self, where: str, name: Any) -> None:
        if name not in self.teams and name not in self.file_teams:
            self.errors.append(f"{where}: unknown team {name!r}")

    def _registry(self, where: str, service: Any) -> Registry | None:
        if service is None:
            return None
        if service not in self.registries:
            self.errors.append(f"{where}: unknown registry {service!r}")
        return self.registries.get(service)

    def _add(self, op: str, text: str, apply: Callable[[AuditContext], object]) -> None:
        self.changes.append(Change(op, text, apply))

    # users ----------------------------------------------------------------
    def _user(self, entry: dict[str, Any]) -> None:
        name = entry["username"]
        flags = {USER_FLAGS[k]: entry[k] for k in USER_FLAGS if k in entry}
        password = entry.get("password")
        user = self.users.get(name)
        if user is None:
            self._add(
                "+",
                f"user {name}",
                lambda ctx: services.create_user(
                    name,
                    email=entry.get("email", ""),
                    password=password,
                    context=ctx,
                    is_active=flags.get("is_active", True),
                    is_superuser=flags.get("is_superuser", False),
                    is_auditor=flags.get("is_auditor", False),
                    catalog_access=flags.get("catalog_access", False),
                ),
            )
            return
        if "email" in entry:
            flags["email"] = entry["email"]
        changed = {k: v for k, v in flags.items() if getattr(user, k) != v}
        if changed:
            summary = ", ".join(f"{k}={v}" for k, v in changed.items())
            self._add(
                "~",
                f"user {name}: {summary}",
                lambda ctx: services.update_user(User.objects.get(username=name), context=ctx, **changed),
            )
        # hashers.check_password: no setter, so a dry run never re-hashes and saves a password.
        if password and not check_password(password, user.password):
            self._add(
                "~",
                f"user {name}: password",
                lambda ctx: services.set_password(User.objects.get(username=name), password, context=ctx),
            )

    # repositories -----------------------------------------------------------
    def _repository(self, entry: dict[str, Any]) -> None:
        name = entry["name"]
        registry = self._registry(f"repository {name}", entry.get("registry"))
        public = entry.get("public", False)
        existing = Repository.objects.filter(name=name, registry=registry).first()
        where = f"repository {name}" + (f" on {registry}" if registry else "")
        if existing is None:
            self._add(
                "+",
                f"{where} (public={public})",
                lambda ctx: services.create_repository(name, public=public, registry=registry, context=ctx),
            )
        elif "public" in entry and existing.public != public:
            self._add(
                "~",
                f"{where}: public={public}",
                lambda ctx: services.set_repository_public(existing, public, context=ctx),
            )

    # teams ----------------------------------------------------------------
    def _team(self, entry: dict[str, Any]) -> None:
        name = entry["name"]
        team = self.teams.get(name)
        description = entry.get("description")
        if team is None:
            self._add(
                "+", f"team {name}", lambda ctx: services.create_team(name, description=description or "", context=ctx)
            )
        elif description is not None and team.description != description:
            self._add(
                "~",
                f"team {name}: description",
                lambda ctx: services.update_team(Team.objects.get(name=name), description=description, context=ctx),
            )
        groups = {g["group"]: g.get("role", TeamRole.MEMBER) for g in entry.get("directory_groups") or []}
        # Members first: a local role added here keeps a membership whose directory group goes below.
        self._members(name, team, entry.get("members") or [], groups)
        self._directory_groups(name, team, groups)
        self._team_grants(name, team, entry.get("grants") or [])

    def _members(
        self, team_name: str, team: Team | None, members: list[dict[str, Any]], groups: dict[str, str]
    ) -> None:
        """``members`` lists the local sources only; directory groups keep their memberships."""
        current = {}
        if team is not None:
            current = {
                m.user.username: m
                for m in team.memberships.exclude(local_role="")
                .select_related("user")
                .prefetch_related("directory_groups")
            }
        for j, member in enumerate(members):
            user_name, role = member["user"], member.get("role", TeamRole.MEMBER)
            self._check_user(f"team {team_name}.members[{j}]", user_name)
            existing = current.get(user_name)
            if existing is None or existing.local_role != role:
                op = "+" if existing is None else "~"
                self._add(
                    op,
                    f"member {user_name} of team {team_name} ({role})",
                    lambda ctx, u=user_name, r=role: services.set_membership(
                        Team.objects.get(name=team_name), User.objects.get(username=u), r, context=ctx
                    ),
                )
        listed = {m["user"] for m in members}
        for user_name, membership in current.items():
            if user_name not in listed:
                kept = any(g.dn in groups for g in membership.directory_groups.all())
                self._add(
                    "-",
                    f"member {user_name} of team {team_name}"
                    + (" (local role; directory groups keep it)" if kept else ""),
                    lambda ctx, m=membership: services.remove_membership(Membership.objects.get(pk=m.pk), context=ctx),
                )

    def _directory_groups(self, team_name: str, team: Team | None, groups: dict[str, str]) -> None:
        current = {g.dn: g.role for g in team.directory_groups.all()} if team is not None else {}

        # The service takes the whole list: each line's call makes every change, the calls after it find
        # nothing left to do (and record nothing). One line per group keeps the plan readable.
        def apply(ctx: AuditContext) -> object:
            return services.directory.set_directory_groups(
                Team.objects.get(name=team_name), list(groups.items()), context=ctx
            )

        for dn, role in groups.items():
            if dn not in current:
                self._add("+", f"directory group {dn} -> team {team_name} ({role})", apply)
            elif current[dn] != role:
                self._add("~", f"directory group {dn} -> team {team_name}: {current[dn]} -> {role}", apply)
        for dn, role in current.items():
            if dn not in groups:
                self._add("-", f"directory group {dn} -> team {team_name} ({role})", apply)

    def _team_grants(self, team_name: str, team: Team | None, grants: list[dict[str, Any]]) -> None:
        current = {}
        if team is not None:
            current = {
                (g.pattern, g.registry.service if g.registry_id else None): g
                for g in team.grants.select_related("registry")
            }
        for j, entry in enumerate(grants):
            registry = self._registry(f"team {team_name}.grants[{j}]", entry.get("registry"))
            key = (entry["repository"], entry.get("registry"))
            self._upsert_grant(
                f"team {team_name}", current.get(key), entry, registry, lambda: Team.objects.get(name=team_name), None
            )
        listed = {(g["repository"], g.get("registry")) for g in grants}
        for key, grant in current.items():
            if key not in listed:
                self._add(
                    "-",
                    f"grant {grant.role} on {grant.pattern} to team {team_name}",
                    lambda ctx, g=grant: services.revoke_grant(Grant.objects.get(pk=g.pk), context=ctx),
                )

    def _top_grant(self, where: str, entry: dict[str, Any]) -> None:
        registry = self._registry(where, entry.get("registry"))
        managed_by = entry.get("managed_by")
        if managed_by is not None:
            self._check_team(where, managed_by)
        if "user" in entry:
            name = entry["user"]
            self._check_user(where, name)
            label, lookup = f"user {name}", (lambda: User.objects.get(username=name))
            existing = Grant.objects.filter(user__username=name, pattern=entry["repository"], registry=registry).first()
        else:
            name = entry["team"]
            self._check_team(where, name)
            if name in self.file_teams:
                self.errors.append(f"{where}: team {name!r} is listed under teams; put this grant in its grants")
            label, lookup = f"team {name}", (lambda: Team.objects.get(name=name))
            existing = Grant.objects.filter(team__name=name, pattern=entry["repository"], registry=registry).first()
        # Without managed_by the file leaves an existing grant's managing team as it is: still bound by it.
        team = managed_by or (existing.managed_by.name if existing is not None and existing.managed_by_id else None)
        if team is not None:
            self._check_inside_team(where, entry, registry, team)
        self._upsert_grant(label, existing, entry, registry, lookup, managed_by)

    def _check_inside_team(self, where: str, entry: dict[str, Any], registry: Registry | None, team: str) -> None:
        """A managed grant must lie inside its team's unexpired grants as they will be after this policy."""
        pattern, role = entry["repository"], entry["role"]
        now = timezone.now()
        held = self._team_grants_after(team)
        registry_id = registry.pk if registry else None
        for grant in services.covering_grants(held, pattern, registry_id, now):
            if role_at_most(role, grant.role):
                return
        self.errors.append(
            f"{where}: {role} on {pattern!r} lies outside what team {team} holds"
            " (a grant its team manages must lie inside one of the team's unexpired grants)"
        )

    def _team_grants_after(self, name: str) -> list[Grant]:
        """The team's grants once this policy is applied: the file's list for a team it lists, else today's."""
        for team in self.policy["teams"]:
            if team["name"] == name:
                return [
                    Grant(
                        pattern=g["repository"],
                        role=g["role"],
                        expires_at=g.get("expires"),
                        registry=self.registries.get(g.get("registry")) if g.get("registry") else None,
                    )
                    for g in team.get("grants") or []
                ]
        team = self.teams.get(name)
        return list(team.grants.select_related("registry")) if team is not None else []

    def _upsert_grant(
        self,
        label: str,
        existing: Grant | None,
        entry: dict[str, Any],
        registry: Registry | None,
        subject: Callable[[], User | Team],
        managed_by: str | None,
    ) -> None:
        pattern, role, expires = entry["repository"], entry["role"], entry.get("expires")
        on = f"{pattern}" + (f" on {registry}" if registry else "")
        if existing is None:
            self._add(
                "+",
                f"grant {role} on {on} to {label}" + (f" until {expires:%Y-%m-%d %H:%M}Z" if expires else ""),
                lambda ctx: services.create_grant(
                    subject(),
                    pattern,
                    role,
                    registry=registry,
                    expires_at=expires,
                    context=ctx,
                    managed_by=Team.objects.get(name=managed_by) if managed_by else None,
                ),
            )
            return
        if existing.role != role or existing.expires_at != expires:
            self._add(
                "~",
                f"grant on {on} to {label}: {existing.role} -> {role}, expires {expires}",
                lambda ctx: services.update_grant(
                    Grant.objects.get(pk=existing.pk), role=role, expires_at=expires, context=ctx
                ),
            )


def plan(policy: dict[str, list[dict[str, Any]]]) -> list[Change]:
    """The changes that would make the database match ``policy`` (raises PolicyError)."""
    return _Planner(policy).run()


@dataclass(frozen=True)
class Outcome:
    """What ``run`` did: each change's line, what the changes took with them, and whether it stayed."""

    changes: list[str]
    consequences: list[str]
    applied: bool


def run(
    text: str, context: AuditContext, *, dry_run: bool, on_change: Callable[[str], object] | None = None
) -> Outcome:
    """Load, plan and apply ``text`` in one transaction; a dry run is the same run, rolled back.

    ``on_change`` hears each change's line just before it is applied (the command prints it then, so
    a change that fails is the last line shown). Raises PolicyError or ValidationError, having changed nothing.
    """
    lines: list[str] = []
    with transaction.atomic():
        actor_before = _actor_state(context)
        changes = plan(load(text))
        mark = last_record_id()
        for change in changes:
            lines.append(str(change))
            if on_change is not None:
                on_change(str(change))
            change.apply(context)
        _keep_the_actor(context, actor_before)
        # What the changes took with them: grants a team managed that its grants no longer cover.
        after = consequences(after=mark)
        if dry_run:
            transaction.set_rollback(True)
    return Outcome(lines, after, applied=not dry_run)


def _actor_state(context: AuditContext) -> dict[str, Any] | None:
    return User.objects.filter(pk=context.actor_id).values("username", "is_superuser", "is_active").first()


def _keep_the_actor(context: AuditContext, before: dict[str, Any] | None) -> None:
    """As on the pages, nobody removes their own admin flag or deactivates (or deletes) themselves by a file.

    Checked after the changes, inside their transaction: the error rolls every one of them back. Without
    a signed-in actor (``manage.py apply_policy``, the operator at the shell) there is nobody to keep.
    """
    if context.actor_id is None or before is None:
        return
    now = _actor_state(context)
    name = before["username"]
    if now is None:
        raise PolicyError([f"users: the file would delete {name!r}, the person applying it"])
    if before["is_active"] and not now["is_active"]:
        raise PolicyError([f"users[{name}]: you cannot deactivate yourself"])
    if before["is_superuser"] and not now["is_superuser"]:
        raise PolicyError([f"users[{name}]: you cannot remove your own admin flag"])


def last_record_id() -> int:
    """The newest audit record's id: ``consequences`` lists what was written after it."""
    return AuditRecord.objects.order_by("-id").values_list("id", flat=True).first() or 0


def consequences(*, after: int) -> list[str]:
    """Lines for the changes that other changes caused (a team grant revoked caps or ends managed grants)."""
    records = AuditRecord.objects.filter(id__gt=after, kind=Kind.ADMIN_CHANGE).order_by("id")
    lines = []
    for detail in records.values_list("detail", flat=True):
        cause = detail.get("cause") if isinstance(detail, dict) else None
        if not cause:
            continue
        what = "capped" if detail.get("action") == "grant.cap" else "revoked"
        after_role = (detail.get("after") or {}).get("role")
        because = f"team {cause.get('team')}'s {cause.get('role')} on {cause.get('pattern')} {cause.get('change')}"
        if not cause.get("pattern"):
            because = f"team {cause.get('team')} {cause.get('change')}"
        to = f" to {after_role}" if after_role else ""
        lines.append(f"  -> {what} {detail.get('target')}{to} ({because})")
    return lines


def export() -> dict[str, list[dict[str, Any]]]:
    """The current state in the policy format (no passwords): ``plan(export())`` is empty."""
    users = [
        {
            "username": u.username,
            "email": u.email,
            "active": u.is_active,
            "admin": u.is_superuser,
            "auditor": u.is_auditor,
            "catalog": u.catalog_access,
        }
        for u in User.objects.order_by("username")
    ]
    teams = []
    prefetched = Team.objects.prefetch_related("memberships__user", "directory_groups", "grants__registry")
    for team in prefetched.order_by("name"):
        entry: dict[str, Any] = {"name": team.name}
        if team.description:
            entry["description"] = team.description
        # Only local sources: a directory group's members come back through the group, not this list.
        entry["members"] = [
            {"user": m.user.username, "role": m.local_role}
            for m in sorted(team.memberships.all(), key=lambda m: m.user.username)
            if m.local_role
        ]
        if groups := sorted(team.directory_groups.all(), key=lambda g: g.dn):
            entry["directory_groups"] = [{"group": g.dn, "role": g.role} for g in groups]
        entry["grants"] = [_grant_entry(g) for g in sorted(team.grants.all(), key=lambda g: (g.pattern, g.pk))]
        teams.append(entry)
    grants = [
        {"user": g.user.username, **_grant_entry(g), **({"managed_by": g.managed_by.name} if g.managed_by_id else {})}
        for g in Grant.objects.filter(user__isnull=False)
        .select_related("user", "registry", "managed_by")
        .order_by("user__username", "pattern")
    ]
    repositories = [
        {"name": r.name, "public": r.public, **({"registry": r.registry.service} if r.registry_id else {})}
        for r in Repository.objects.select_related("registry").order_by("name")
    ]
    return {"users": users, "teams": teams, "grants": grants, "repositories": repositories}


def _grant_entry(grant: Grant) -> dict[str, Any]:
    entry: dict[str, Any] = {"repository": grant.pattern, "role": grant.role}
    if grant.expires_at:
        entry["expires"] = grant.expires_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if grant.registry_id:
        entry["registry"] = grant.registry.service
    return entry


def dump(policy: dict[str, list[dict[str, Any]]]) -> str:
    return yaml.safe_dump(policy, sort_keys=False, default_flow_style=False, allow_unicode=True)
