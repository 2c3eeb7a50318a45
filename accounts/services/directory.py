"""Directory (LDAP) users: sign-in through django-auth-ldap, the shared bind cache, groups to teams.

Which side handles a name (README "Directory users"):

- an account without a directory DN is **local**, whatever the directory holds: the directory is
  never asked for it, and a name that differs from a local account only in case is refused too;
- a directory-managed account, or a name nobody has, goes to the **directory**; directory names are
  compared case-insensitively and stored in lower case.

A successful bind is remembered for ``LDAP_BIND_CACHE_TTL`` in the shared cache (``CACHE_URL``) under
a keyed hash of (username, password): a wrong password never matches, and the entry also names the
user's password marker, which deactivation replaces, so deactivating drops every remembered bind.
The full sync lives in ``directory_sync``; both apply a person's groups with ``apply_groups``.
"""

from __future__ import annotations

import hmac
import logging
from collections import defaultdict
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import ldap
import ldap.dn
import ldap.filter
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, connection, transaction
from django.http import HttpRequest
from django.utils.crypto import salted_hmac
from django_auth_ldap.backend import LDAPBackend, ldap_error, populate_user

from accounts.models import ROLE_RANK, DirectoryGroup, Membership, Team, TeamRole, User
from accounts.services._common import user_state
from accounts.services.users import update_user
from audit.context import AuditContext
from audit.services import record_change
from registryadmin.metrics import LDAP_BIND_ERRORS

logger = logging.getLogger(__name__)

SYNC_ACTOR = "directory sync"
MAX_USERNAME = 150
RETRY_AFTER = 10  # seconds, on a 503 while the directory cannot answer (token endpoint and sign-in)

_last_error: ContextVar[Exception | None] = ContextVar("directory_last_error", default=None)


class DirectoryUnavailable(Exception):
    """The directory could not answer (down, timed out, TLS, or it refused our service account)."""


@dataclass(frozen=True)
class DirectoryOutcome:
    user: User | None
    reason: str = ""  # "bad_password" or "inactive" when ``user`` is None
    cached: bool = False


def enabled() -> bool:
    return bool(settings.LDAP_SERVER_URI)


def normalize_dn(dn: str) -> str:
    """One spelling per DN (lower case, no spaces around separators), as mappings are stored and compared."""
    text = dn.strip()
    try:
        return ldap.dn.dn2str(ldap.dn.str2dn(text)).lower()
    except ldap.DECODING_ERROR:
        return text.lower()


def clean_group_dn(dn: str) -> str:
    """A group DN as a mapping stores it; refuses a non-DN and one outside ``LDAP_GROUP_SEARCH_BASE``."""
    text = (dn or "").strip()
    if not text or "=" not in text or not ldap.dn.is_dn(text):
        raise ValidationError(
            {"group": f"{text!r} is not a distinguished name (e.g. cn=web-devs,ou=groups,dc=example,dc=org)."}
        )
    value = normalize_dn(text)
    if enabled() and not settings.LDAP_GROUP_SEARCH_BASE:
        raise ValidationError({"group": "Set LDAP_GROUP_SEARCH_BASE to map directory groups to teams."})
    base = normalize_dn(settings.LDAP_GROUP_SEARCH_BASE) if settings.LDAP_GROUP_SEARCH_BASE else ""
    if base and not (value == base or value.endswith("," + base)):
        raise ValidationError(
            {"group": f"{text} is outside LDAP_GROUP_SEARCH_BASE ({settings.LDAP_GROUP_SEARCH_BASE})."}
        )
    return value


def normalize_username(name: str) -> str:
    return name.strip().lower()


def describe(exc: Exception) -> str:
    """What went wrong with the directory, for the access record and the operator (never a password)."""
    info = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
    detail = str(info.get("info") or info.get("desc") or exc)[:200]
    if isinstance(exc, ldap.SERVER_DOWN):
        return f"cannot reach the directory at {settings.LDAP_SERVER_URI} ({detail})"
    if isinstance(exc, ldap.TIMEOUT):
        return f"the directory did not answer within LDAP_TIMEOUT={settings.LDAP_TIMEOUT}s"
    if isinstance(exc, ldap.INVALID_CREDENTIALS):
        return "the directory refused LDAP_BIND_DN / LDAP_BIND_PASSWORD"
    if isinstance(exc, ldap.CONNECT_ERROR):
        return f"TLS with the directory failed ({detail})"
    return f"directory error {type(exc).__name__}: {detail}"


def _remember_error(sender: Any, context: str, user: Any, request: Any, exception: Exception, **kwargs: Any) -> None:
    _last_error.set(exception)


ldap_error.connect(_remember_error, dispatch_uid="registryadmin.directory.errors")


def tidy_profile(email: str, first_name: str, last_name: str) -> tuple[str, str, str]:
    """Directory values as the account can hold them: names cut to 150, an email Django refuses left empty."""
    email = (email or "").strip()[:254]
    try:
        validate_email(email)
    except ValidationError:
        email = ""
    return email, (first_name or "").strip()[:150], (last_name or "").strip()[:150]


def _tidy_populated(sender: Any, user: User, ldap_user: Any, **kwargs: Any) -> None:
    """django-auth-ldap copied the directory's attributes onto ``user``; make them fit before it saves."""
    user.email, user.first_name, user.last_name = tidy_profile(user.email, user.first_name, user.last_name)


populate_user.connect(_tidy_populated, dispatch_uid="registryadmin.directory.tidy")


def resolve(username: str) -> tuple[User | None, bool]:
    """(the account for ``username``, whether the directory handles it): the rule in the module docstring."""
    exact = User.objects.filter(username=username).first()
    if exact is not None and not exact.directory_dn:
        return exact, False
    if not enabled():
        return exact, False
    name = normalize_username(username)
    if not name or len(name) > MAX_USERNAME or "\0" in name or name != username.lower():
        return None, False  # surrounding spaces are not a second spelling of a name
    if exact is not None and exact.username == name:
        return exact, True
    rows = same_name(name)
    if any(not row.directory_dn for row in rows):
        return None, False  # differs from a local account only in case: never a second account
    return next((row for row in rows if row.username == name), None), True


def same_name(name: str) -> list[User]:
    """Accounts whose username equals ``name`` ignoring case (SQLite's own comparison knows ASCII only)."""
    if name.isascii() or connection.vendor != "sqlite":
        return list(User.objects.filter(username__iexact=name)[:10])
    folded = name.casefold()
    return [user for user in User.objects.exclude(username__regex=r"^[ -~]*$") if user.username.casefold() == folded]


# --- The bind cache ---------------------------------------------------------------------------------


def _bind_key(name: str, password: str) -> str:
    digest = salted_hmac("registryadmin.directory.bind", f"{name}\0{password}", algorithm="sha256").hexdigest()
    return f"ldap-bind:{digest}"


def _stamp(user: User) -> str:
    """Names the account and its password marker: deactivation replaces the marker, so old entries miss."""
    return salted_hmac("registryadmin.directory.stamp", f"{user.pk}\0{user.password}", algorithm="sha256").hexdigest()


def _cached(name: str, password: str, user: User | None) -> bool:
    if user is None or not settings.LDAP_BIND_CACHE_TTL:
        return False
    try:
        stamp = cache.get(_bind_key(name, password))
    except Exception:  # a cache that is down costs a bind, never a sign-in
        logger.warning("the bind cache cannot be read; asking the directory")
        return False
    return isinstance(stamp, str) and hmac.compare_digest(stamp, _stamp(user))


def remembered(username: str, password: str, user: User) -> bool:
    """Whether a bind of ``username`` with ``password`` is remembered for ``user`` (no directory asked)."""
    return _cached(normalize_username(username), password, user)


def _remember(name: str, password: str, user: User) -> None:
    if not settings.LDAP_BIND_CACHE_TTL:
        return
    try:
        cache.set(_bind_key(name, password), _stamp(user), settings.LDAP_BIND_CACHE_TTL)
    except Exception:
        logger.warning("the bind cache cannot be written; the next request binds again")


# --- Sign-in ----------------------------------------------------------------------------------------


class DirectoryBackend(LDAPBackend):
    """django-auth-ldap held to the rule above: it never answers for a local account.

    On a fresh bind it creates or updates the account (email and names from the directory) and
    applies the person's groups to their team memberships, all audited as the directory sync.
    """

    def authenticate(
        self, request: HttpRequest | None, username: str | None = None, password: str | None = None, **kwargs: Any
    ) -> User | None:
        if not (username and password and enabled()):
            return None
        user, directory = resolve(username)
        if not directory:
            return None
        try:
            outcome = check_password(username, password, user=user, request=request)
        except DirectoryUnavailable as exc:
            if request is not None:
                request.directory_unavailable = str(exc)  # type: ignore[attr-defined]
            return None
        return outcome.user

    before: dict[str, Any] | None = None

    def bind(self, request: HttpRequest | None, name: str, password: str) -> User | None:
        return super().authenticate(request, name, password)

    def ldap_to_django_username(self, username: str) -> str:
        return normalize_username(username)

    def get_or_build_user(self, username: str, ldap_user: Any) -> tuple[User, bool]:
        """The person's account: found by their entry's DN first (a second uid is the same person), else
        by name; a new one takes the name the sync uses (the entry's first ``LDAP_USERNAME_ATTR`` value)."""
        user = User.objects.filter(directory_dn__iexact=ldap_user.dn).first()
        if user is None:
            values = ldap_user.attrs.get(settings.LDAP_USERNAME_ATTR) or [username]
            chosen = normalize_username(values[0]) or username
            if any(not row.directory_dn for row in same_name(chosen)):
                raise ldap_user.AuthenticationFailed(f"{chosen} is a local account; it stays local")
            user = User.objects.filter(username=chosen, directory_dn__gt="").first() or User(username=chosen)
        built = user.pk is None
        self.before = None if built else user_state(user)  # for the audit record of what the directory changed
        user.directory_dn = ldap_user.dn
        return user, built


def check_password(
    username: str, password: str, *, user: User | None, request: HttpRequest | None = None
) -> DirectoryOutcome:
    """Check a directory person's password (``resolve`` said the directory handles ``username``).

    Raises ``DirectoryUnavailable`` when the directory cannot answer: never a fallback that lets a
    wrong password in. A remembered bind still answers while the directory is down.
    """
    name = normalize_username(username)
    if _cached(name, password, user):
        assert user is not None
        return DirectoryOutcome(user if user.is_active else None, "" if user.is_active else "inactive", cached=True)
    for attempt in range(2):
        try:
            bound = _bind_and_apply(name, password, user, request)
        except IntegrityError:
            # Another worker created the account or a membership at the same moment: once more, on its rows.
            if attempt:
                raise
            user = User.objects.filter(username=name, directory_dn__gt="").first()
            continue
        break
    if bound is None:
        return DirectoryOutcome(None, "bad_password")
    bound.refresh_from_db()
    if not bound.is_active:
        return DirectoryOutcome(None, "inactive")
    _remember(name, password, bound)
    return DirectoryOutcome(bound)


def _bind_and_apply(name: str, password: str, user: User | None, request: HttpRequest | None) -> User | None:
    """Bind as the person; on success save the profile and apply their groups, in one transaction."""
    backend = DirectoryBackend()
    token = _last_error.set(None)
    try:
        with transaction.atomic():
            bound = backend.bind(request, name, password)
            failure = _last_error.get()
            if bound is None:
                if failure is not None:
                    LDAP_BIND_ERRORS.inc()  # the directory erred; a wrong password leaves no failure
                    raise DirectoryUnavailable(describe(failure))
                return None
            stored = bound.ldap_user.attrs.get(settings.LDAP_USERNAME_ATTR) or [name]  # memberUid is case-exact
            groups = groups_of(bound.ldap_user.connection, bound.directory_dn, stored[0])
            context = AuditContext.system(SYNC_ACTOR)
            _record_profile(context, bound, backend.before)
            apply_groups(bound, groups, context, mappings=load_mappings(groups))
    except ldap.LDAPError as exc:
        LDAP_BIND_ERRORS.inc()
        raise DirectoryUnavailable(describe(exc)) from None
    finally:
        _last_error.reset(token)
    return bound


def _record_profile(context: AuditContext, user: User, before: dict[str, Any] | None) -> None:
    """django-auth-ldap saved the account: record its creation or what the directory changed."""
    after = user_state(user)
    if before is None:
        record_change(context, "user.create", user.username, after={**after, "directory_dn": user.directory_dn})
    elif before != after:
        record_change(
            context,
            "user.update",
            user.username,
            before={k: v for k, v in before.items() if after[k] != v},
            after={k: v for k, v in after.items() if before[k] != v},
        )
    if user.directory_missing_since is not None:  # back in the directory after the sync deactivated them
        update_user(user, context=context, from_directory=True, is_active=True)
        User.objects.filter(pk=user.pk).update(directory_missing_since=None)


def groups_of(connection: Any, dn: str, username: str) -> set[str]:
    """The normalized DNs of the groups (under ``LDAP_GROUP_SEARCH_BASE``) that ``dn`` is in; errors raise.

    ``activeDirectory`` follows nesting: a member of a group that is a member of G is in G.
    """
    base = settings.LDAP_GROUP_SEARCH_BASE
    if not base:
        return set()
    attr = settings.LDAP_GROUP_MEMBER_ATTR
    frontier = [username if settings.LDAP_GROUP_TYPE == "posixGroup" else dn]
    found: set[str] = set()
    while frontier:
        terms = "".join(f"({attr}={ldap.filter.escape_filter_chars(value)})" for value in frontier[:200])
        frontier = frontier[200:]
        results = connection.search_st(
            base,
            ldap.SCOPE_SUBTREE,
            f"(&{settings.LDAP_GROUP_FILTER}(|{terms}))",
            ["1.1"],
            timeout=settings.LDAP_TIMEOUT,
        )
        new = {normalize_dn(group) for group, _attrs in results if group} - found
        found |= new
        if settings.LDAP_GROUP_TYPE == "activeDirectory":
            frontier.extend(sorted(new))
    return found


# --- Groups to memberships --------------------------------------------------------------------------


@dataclass
class Mappings:
    by_dn: dict[str, list[DirectoryGroup]]
    admin: str
    auditor: str

    @property
    def dns(self) -> set[str]:
        return set(self.by_dn) | {dn for dn in (self.admin, self.auditor) if dn}


def load_mappings(only: Iterable[str] | None = None) -> Mappings:
    """Every team's group mappings, or only those of the groups in ``only`` (one person's, at sign-in)."""
    by_dn: dict[str, list[DirectoryGroup]] = defaultdict(list)
    found = DirectoryGroup.objects.select_related("team")
    if only is not None:
        found = found.filter(dn__in=list(only))
    for mapping in found:
        by_dn[mapping.dn].append(mapping)
    admin = normalize_dn(settings.LDAP_ADMIN_GROUP) if settings.LDAP_ADMIN_GROUP else ""
    auditor = normalize_dn(settings.LDAP_AUDITOR_GROUP) if settings.LDAP_AUDITOR_GROUP else ""
    return Mappings(dict(by_dn), admin, auditor)


def _highest(roles: Iterable[str]) -> str:
    return max(roles, key=lambda role: ROLE_RANK[role])


def apply_groups(user: User, groups: set[str], context: AuditContext, *, mappings: Mappings) -> list[str]:
    """Make ``user``'s directory-sourced memberships and flags match ``groups``; one line per change.

    Local sources are never touched; leaving a group removes only that source. Call inside a transaction.
    """
    lines: list[str] = []
    wanted: dict[int, list[DirectoryGroup]] = defaultdict(list)
    for dn in groups:
        for mapping in mappings.by_dn.get(dn, ()):
            wanted[mapping.team_id].append(mapping)
    memberships = {
        m.team_id: m
        for m in Membership.objects.select_for_update()
        .filter(user=user)
        .select_related("team")
        .prefetch_related("directory_groups")
    }
    teams = {m.team_id: m.team for group in wanted.values() for m in group}
    teams.update({tid: m.team for tid, m in memberships.items() if m.directory_groups.all()})
    for team_id, team in sorted(teams.items(), key=lambda item: item[1].name):
        membership = memberships.get(team_id)
        target = sorted(wanted.get(team_id, []), key=lambda m: m.dn)
        current = sorted(membership.directory_groups.all(), key=lambda m: m.dn) if membership else []
        if [m.pk for m in target] == [m.pk for m in current]:
            continue
        label = f"{user.username} in {team.name}"
        sources = [m.dn for m in target]
        if membership is None:
            role = _highest(m.role for m in target)
            membership = Membership.objects.create(team=team, user=user, role=role, local_role="")
            membership.directory_groups.set(target)
            record_change(context, "membership.add", label, after={"role": role, "directory_groups": sources})
            lines.append(f"+ {user.username} {team.name} ({role}, from {', '.join(sources)})")
            continue
        before = {"role": membership.role, "directory_groups": [m.dn for m in current]}
        role = membership.effective_role([m.role for m in target])
        if role is None:
            membership.delete()
            record_change(context, "membership.remove", label, before=before)
            lines.append(f"- {user.username} {team.name} (left {', '.join(before['directory_groups'])})")
            continue
        membership.directory_groups.set(target)
        if role != membership.role:
            membership.role = role
            membership.save(update_fields=["role"])
        after = {"role": role, "directory_groups": sources}
        record_change(context, "membership.change", label, before=before, after=after)
        change = f"{before['role']} -> {role}" if before["role"] != role else "same role"
        lines.append(f"~ {user.username} {team.name} ({change}; groups now {', '.join(sources) or 'none'})")
    lines += _apply_flags(user, groups, context, mappings)
    return lines


def _apply_flags(user: User, groups: set[str], context: AuditContext, mappings: Mappings) -> list[str]:
    """Admin / auditor from LDAP_ADMIN_GROUP / LDAP_AUDITOR_GROUP; only flags the directory gave are taken back."""
    lines = []
    for dn, flag, source, word in (
        (mappings.admin, "is_superuser", "admin_from_directory", "admin"),
        (mappings.auditor, "is_auditor", "auditor_from_directory", "auditor"),
    ):
        if not dn:
            continue
        user.refresh_from_db(fields=[flag, source])
        member = dn in groups
        if member and not getattr(user, flag):
            update_user(user, context=context, from_directory=True, **{flag: True})
            User.objects.filter(pk=user.pk).update(**{source: True})
            lines.append(f"+ {user.username} {word} (from {dn})")
        elif not member and getattr(user, source):
            update_user(user, context=context, from_directory=True, **{flag: False})
            User.objects.filter(pk=user.pk).update(**{source: False})
            lines.append(f"- {user.username} {word} (left {dn})")
    return lines


@transaction.atomic
def set_directory_groups(team: Team, groups: list[tuple[str, str]], *, context: AuditContext) -> list[DirectoryGroup]:
    """Make ``team``'s directory groups exactly ``groups`` [(dn, role)]: the authoritative list.

    A removed group takes its source off every membership at once (the membership goes when no source
    is left); a changed role re-ranks them. New groups' members join at the next sync or sign-in.
    """
    wanted: dict[str, str] = {}
    for dn, role in groups:
        if role not in TeamRole.values:
            raise ValidationError({"role": f"Unknown team role {role!r} for {dn}; use maintainer or member."})
        clean = clean_group_dn(dn)
        if clean in wanted:
            raise ValidationError({"group": f"{dn} is listed twice for team {team.name}."})
        wanted[clean] = role
    current = {m.dn: m for m in DirectoryGroup.objects.select_for_update().filter(team=team)}
    touched: list[DirectoryGroup] = []
    for dn, mapping in current.items():
        if dn not in wanted:
            affected = list(mapping.memberships.values_list("pk", flat=True))
            mapping.delete()
            record_change(context, "team.directory_group.remove", f"{dn} -> {team.name}", before={"role": mapping.role})
            _rerank(affected, context)
        elif wanted[dn] != mapping.role:
            before = mapping.role
            mapping.role = wanted[dn]
            mapping.save(update_fields=["role"])
            record_change(
                context,
                "team.directory_group.change",
                f"{dn} -> {team.name}",
                before={"role": before},
                after={"role": mapping.role},
            )
            touched.append(mapping)
    for dn, role in wanted.items():
        if dn not in current:
            DirectoryGroup.objects.create(team=team, dn=dn, role=role)
            record_change(context, "team.directory_group.add", f"{dn} -> {team.name}", after={"role": role})
    for mapping in touched:
        _rerank(list(mapping.memberships.values_list("pk", flat=True)), context)
    return list(DirectoryGroup.objects.filter(team=team))


def _rerank(membership_ids: list[int], context: AuditContext) -> None:
    """Recompute the role of memberships whose directory sources changed; drop those with none left."""
    for membership in (
        Membership.objects.select_for_update().filter(pk__in=membership_ids).select_related("team", "user")
    ):
        role = membership.effective_role(list(membership.directory_groups.values_list("role", flat=True)))
        label = f"{membership.user.username} in {membership.team.name}"
        if role is None:
            before = {"role": membership.role}
            membership.delete()
            record_change(
                context, "membership.remove", label, before={**before, "reason": "its directory group was unmapped"}
            )
        elif role != membership.role:
            record_change(context, "membership.change", label, before={"role": membership.role}, after={"role": role})
            membership.role = role
            membership.save(update_fields=["role"])


def membership_sources(membership: Membership) -> list[str]:
    """Readable sources of a membership: "local (member)", "cn=web-devs,... (maintainer)"."""
    sources = [f"local ({membership.local_role})"] if membership.local_role else []
    sources += [f"{group.dn} ({group.role})" for group in membership.directory_groups.all()]
    return sources


__all__ = [
    "RETRY_AFTER",
    "SYNC_ACTOR",
    "DirectoryBackend",
    "DirectoryOutcome",
    "DirectoryUnavailable",
    "Mappings",
    "apply_groups",
    "check_password",
    "clean_group_dn",
    "describe",
    "enabled",
    "groups_of",
    "load_mappings",
    "membership_sources",
    "normalize_dn",
    "normalize_username",
    "resolve",
    "set_directory_groups",
    "tidy_profile",
]
