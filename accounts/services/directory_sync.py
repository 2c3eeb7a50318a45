"""The directory sync: everyone's groups to team memberships, people who vanished deactivated.

Run on schedule (``SCHEDULE_SYNC_LDAP``), on demand (``manage.py sync_ldap``, the jobs page) and,
for one person, at each directory sign-in (``directory.check_password``). It adds members, removes
members who left a group, changes roles, creates accounts for people in mapped groups, deactivates
directory accounts whose entry is gone (``LDAP_DEACTIVATE_MISSING``) and reactivates those that
return; local memberships and local accounts are never touched. Every change is an ``admin_change``
record made by "directory sync". ``dry_run`` does all of it in one transaction and rolls it back, so
its lines are exactly what a real run would do.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import ldap
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from ldap.controls import SimplePagedResultsControl

from accounts.models import User
from accounts.services.directory import (
    SYNC_ACTOR,
    Mappings,
    apply_groups,
    describe,
    load_mappings,
    normalize_dn,
    normalize_username,
    tidy_profile,
)
from accounts.services.users import create_user, update_user
from audit.context import AuditContext

PAGE_SIZE = 500
Progress = Callable[[str], None]


class SyncFailed(Exception):
    """The sync could not read the directory, or refused to act on what it read; nothing was changed."""


@dataclass
class Person:
    dn: str
    username: str
    email: str = ""
    first_name: str = ""
    last_name: str = ""


@dataclass
class SyncReport:
    dry_run: bool
    people: int = 0
    groups: int = 0
    lines: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        """For the job record and the jobs page (the diff is capped: the audit log has every change)."""
        return {
            "dry_run": self.dry_run,
            "people": self.people,
            "groups": self.groups,
            "changes": len(self.lines),
            "counts": dict(self.counts),
            "diff": self.lines[:200],
            "errors": self.errors[:50],
            "seconds": round(self.seconds, 2),
        }


def connect() -> Any:
    """A connection bound as ``LDAP_BIND_DN`` with the same timeouts and TLS settings as sign-in."""
    connection = ldap.initialize(settings.LDAP_SERVER_URI, bytes_mode=False)
    for option, value in settings.AUTH_LDAP_CONNECTION_OPTIONS.items():
        connection.set_option(option, value)
    if settings.LDAP_START_TLS:
        connection.start_tls_s()
    connection.simple_bind_s(settings.LDAP_BIND_DN, settings.LDAP_BIND_PASSWORD)
    return connection


def _paged(
    connection: Any, base: str, filterstr: str, attrs: list[str]
) -> Iterator[tuple[str, dict[str, list[bytes]]]]:
    """Every entry of a subtree search, a page at a time (directories cap unpaged results)."""
    control = SimplePagedResultsControl(True, size=PAGE_SIZE, cookie="")
    while True:
        msgid = connection.search_ext(base, ldap.SCOPE_SUBTREE, filterstr, attrs, serverctrls=[control])
        _type, entries, _msgid, controls = connection.result3(msgid, timeout=settings.LDAP_TIMEOUT * 4)
        for dn, entry in entries:
            if dn:  # referrals come back without a DN
                yield dn, entry
        cookie = next((c.cookie for c in controls if c.controlType == SimplePagedResultsControl.controlType), b"")
        if not cookie:
            return
        control.cookie = cookie


def _first(entry: dict[str, list[bytes]], attr: str) -> str:
    for key, values in entry.items():
        if key.lower() == attr.lower() and values:
            return values[0].decode("utf-8", "replace")
    return ""


def _values(entry: dict[str, list[bytes]], attr: str) -> list[str]:
    return [
        v.decode("utf-8", "replace") for key, values in entry.items() if key.lower() == attr.lower() for v in values
    ]


def _ranged_values(connection: Any, dn: str, entry: dict[str, list[bytes]], attr: str) -> list[str]:
    """All of a group's member values, following Active Directory's ranged retrieval.

    AD answers a group of more than 1,500 members with ``member;range=0-1499`` and wants the next
    slice asked for by name (``member;range=1500-*``) until a range ends in ``*``.
    """
    values = _values(entry, attr)
    prefix = f"{attr.lower()};range="
    while True:
        ranged = next(((key, chunk) for key, chunk in entry.items() if key.lower().startswith(prefix)), None)
        if ranged is None:
            return values
        key, chunk = ranged
        values += [value.decode("utf-8", "replace") for value in chunk]
        end = key.rsplit("-", 1)[-1]
        if end == "*" or not end.isdigit():
            return values
        found = connection.search_st(
            dn,
            ldap.SCOPE_BASE,
            settings.LDAP_GROUP_FILTER,
            [f"{attr};range={int(end) + 1}-*"],
            timeout=settings.LDAP_TIMEOUT,
        )
        entry = found[0][1] if found else {}


def read_people(connection: Any, progress: Progress) -> dict[str, Person]:
    """Everyone the user filter matches under ``LDAP_USER_SEARCH_BASE``, by lower-case username."""
    attr = settings.LDAP_USERNAME_ATTR
    filterstr = settings.LDAP_USER_FILTER.replace("%(user)s", "*").replace("%%", "%")
    wanted = [attr, settings.LDAP_ATTR_EMAIL, settings.LDAP_ATTR_FIRST_NAME, settings.LDAP_ATTR_LAST_NAME]
    people: dict[str, Person] = {}
    for dn, entry in _paged(connection, settings.LDAP_USER_SEARCH_BASE, filterstr, wanted):
        name = normalize_username(_first(entry, attr))
        if not name or len(name) > 150:
            continue
        email, first_name, last_name = tidy_profile(
            _first(entry, settings.LDAP_ATTR_EMAIL),
            _first(entry, settings.LDAP_ATTR_FIRST_NAME),
            _first(entry, settings.LDAP_ATTR_LAST_NAME),
        )
        people[name] = Person(dn=dn, username=name, email=email, first_name=first_name, last_name=last_name)
        if len(people) % 1000 == 0:
            progress(f"people: {len(people):,} read")
    progress(f"people: {len(people):,} read")
    return people


def read_groups(connection: Any, dns: set[str], people: dict[str, Person], errors: list[str]) -> dict[str, set[str]]:
    """Each mapped group's members (usernames), following nesting for ``activeDirectory``.

    Without ``LDAP_GROUP_SEARCH_BASE`` no group gives anybody anything, exactly as at sign-in.
    """
    if not settings.LDAP_GROUP_SEARCH_BASE:
        if dns:
            errors.append(f"LDAP_GROUP_SEARCH_BASE is not set: the {len(dns)} mapped groups give nobody a membership")
        return {}
    by_dn = {normalize_dn(person.dn): person.username for person in people.values()}
    return {dn: _members(connection, dn, by_dn, people, errors, seen={dn}, top=True) for dn in sorted(dns)}


def _members(
    connection: Any,
    dn: str,
    by_dn: dict[str, str],
    people: dict[str, Person],
    errors: list[str],
    *,
    seen: set[str],
    top: bool = False,
) -> set[str]:
    attr = settings.LDAP_GROUP_MEMBER_ATTR
    try:
        found = connection.search_st(
            dn, ldap.SCOPE_BASE, settings.LDAP_GROUP_FILTER, [attr], timeout=settings.LDAP_TIMEOUT
        )
    except ldap.NO_SUCH_OBJECT:
        found = []
    if not found:
        if top:
            errors.append(
                f"group {dn} is not in the directory (or is not a {settings.LDAP_GROUP_TYPE}): "
                "nobody is a member through it"
            )
        return set()
    values = _ranged_values(connection, dn, found[0][1], attr)
    if settings.LDAP_GROUP_TYPE == "posixGroup":
        return {normalize_username(v) for v in values if normalize_username(v) in people}
    names: set[str] = set()
    for value in values:
        key = normalize_dn(value.split("#", 1)[0] if attr == "uniqueMember" else value)
        if key in by_dn:
            names.add(by_dn[key])
        elif settings.LDAP_GROUP_TYPE == "activeDirectory" and key not in seen:
            seen.add(key)
            names |= _members(connection, key, by_dn, people, errors, seen=seen)
    return names


def sync_all(*, dry_run: bool = False, progress: Progress | None = None) -> SyncReport:
    """Read the whole directory, then apply it person by person (each in its own transaction)."""
    say = progress or (lambda _message: None)
    started = time.monotonic()
    report = SyncReport(dry_run=dry_run)
    mappings = load_mappings()
    try:
        connection = connect()
        try:
            people = read_people(connection, say)
            members = read_groups(connection, mappings.dns, people, report.errors)
        finally:
            connection.unbind_s()
    except ldap.LDAPError as exc:
        raise SyncFailed(f"{describe(exc)}; nothing was changed") from None
    report.people, report.groups = len(people), len(members)
    say(f"groups: {len(members)} read")
    groups_of: dict[str, set[str]] = defaultdict(set)
    for dn, names in members.items():
        for name in names:
            groups_of[name].add(dn)
    known = {user.username: user for user in User.objects.exclude(directory_dn="")}
    if not people and known:
        raise SyncFailed(
            f"the directory returned nobody under LDAP_USER_SEARCH_BASE={settings.LDAP_USER_SEARCH_BASE} with "
            f"{settings.LDAP_USER_FILTER}; refusing to deactivate {len(known)} directory users (nothing was changed)"
        )
    names = sorted(set(known) | {name for name in groups_of if name in people})
    context = AuditContext.system(SYNC_ACTOR)
    if dry_run:
        with transaction.atomic():
            _apply_everyone(names, people, known, groups_of, mappings, context, report, say)
            transaction.set_rollback(True)
    else:
        _apply_everyone(names, people, known, groups_of, mappings, context, report, say)
    report.seconds = time.monotonic() - started
    return report


def _apply_everyone(
    names: list[str],
    people: dict[str, Person],
    known: dict[str, User],
    groups_of: dict[str, set[str]],
    mappings: Mappings,
    context: AuditContext,
    report: SyncReport,
    say: Progress,
) -> None:
    for done, name in enumerate(names, 1):
        try:
            with transaction.atomic():
                lines = _apply_person(
                    name, people.get(name), known.get(name), groups_of.get(name, set()), mappings, context
                )
        except Exception as exc:  # one bad entry must not stop everyone else's sync
            report.errors.append(f"{name}: {type(exc).__name__}: {str(exc)[:200]}")
            continue
        report.lines += lines
        report.counts.update(line[0] for line in lines)
        if done % 1000 == 0 or done == len(names):
            say(f"applied: {done:,}/{len(names):,} people, {len(report.lines):,} changes")


def _apply_person(
    name: str, person: Person | None, user: User | None, groups: set[str], mappings: Mappings, context: AuditContext
) -> list[str]:
    lines: list[str] = []
    if person is None:  # a directory account whose entry is gone
        assert user is not None
        if user.is_active and settings.LDAP_DEACTIVATE_MISSING:
            update_user(user, context=context, from_directory=True, is_active=False)
            User.objects.filter(pk=user.pk).update(directory_missing_since=timezone.now())
            lines.append(f"- {name} (deactivated: no longer in the directory)")
        return lines + apply_groups(user, set(), context, mappings=mappings)
    if user is None:
        if User.objects.filter(username__iexact=name).exists():
            raise ValueError("a local account has this name; it stays local and is not synced")
        user = create_user(
            name,
            context=context,
            email=person.email,
            first_name=person.first_name,
            last_name=person.last_name,
            validate=False,
        )
        user.set_unusable_password()
        user.directory_dn = person.dn
        user.save(update_fields=["password", "directory_dn"])
        lines.append(f"+ {name} (new directory user {person.dn})")
    else:
        profile = {"email": person.email, "first_name": person.first_name, "last_name": person.last_name}
        changed = {key: value for key, value in profile.items() if getattr(user, key) != value}
        if changed:
            update_user(user, context=context, from_directory=True, **changed)
            lines.append(f"~ {name} ({', '.join(sorted(changed))} from the directory)")
        if user.directory_dn != person.dn:
            User.objects.filter(pk=user.pk).update(directory_dn=person.dn)
        if user.directory_missing_since is not None:
            update_user(user, context=context, from_directory=True, is_active=True)
            User.objects.filter(pk=user.pk).update(directory_missing_since=None)
            lines.append(f"+ {name} (reactivated: back in the directory)")
    return lines + apply_groups(user, groups, context, mappings=mappings)
