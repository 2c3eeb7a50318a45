"""Where the token endpoint reads what it decides on: the database, or this process's exact cache.

``tokens.issue`` runs one body of rules against a ``Lookups``:

- ``FRESH`` reads every row from the database (and writes the access record unguarded);
- ``cached()`` answers from a per-process ``Generation``: rows read once, tagged with the
  ``authz``/``limits`` versions read *before* them (``accounts.access.version``). Its access record
  is written with a guard that holds only while those versions do; when it writes nothing, the
  generation is dropped (or, when only ``limits`` moved, its clean pairs) and the request is
  decided again. So a change committed anywhere is seen by the very next request of every worker,
  and a repeat request costs one statement: the guarded INSERT.

The cached lookups serve only the plain case: they raise ``Decline`` for anything else (a refusal,
a password not yet verified, a pair with failures to forget, a hold, an unremembered directory
bind), and the request is answered on ``FRESH`` instead, exactly as before this cache existed.
Expiry is never cached: grants, robots and tokens are checked against the clock on every request,
and a robot's team ceilings are reloaded when the first of them expires.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from django.db.models import Q
from django.utils import timezone

from accounts import services
from accounts.access import version
from accounts.access.engine import Subject
from accounts.access.subjects import subject_for_robot, subject_for_token, subject_for_user
from accounts.models import Grant, PersonalAccessToken, Registry, Repository, Robot, User
from accounts.registry.keys import current_signer
from accounts.registry.passwords import AuthResult, check_password, verified_cache
from accounts.registry.secrets import kept_peppers
from accounts.registry.signing import Signer

T = TypeVar("T")
ATTEMPTS = 3  # cached tries before the fresh path answers (each failed try means a change just landed)
MAX_ENTRIES = 50_000  # per generation; past it, rows are read but not kept (no growth under a flood of names)


class Decline(Exception):
    """Not a case the cache answers: decide this request on the fresh path."""


class Stale(Exception):
    """The guarded record found the versions moved: reload and decide again."""


class Fresh:
    """Every read from the database: the path for everything unusual, and the reference for the cache."""

    cached = False

    def registry(self, service: str) -> Registry | None:
        return Registry.objects.filter(service=service).first()

    def public_names(self, names: list[str], service: str) -> set[str]:
        rows = Repository.objects.filter(
            Q(registry__isnull=True) | Q(registry__service=service), name__in=names, public=True
        )
        return set(rows.values_list("name", flat=True))

    def check_limits(self, name: str, ip: str | None) -> services.limits.Check:
        return services.limits.check(name, ip)

    def check_password(self, username: str, password: str) -> AuthResult:
        return check_password(username, password)

    def peppers(self) -> list[bytes]:
        """Peppers restored backups brought, tried after this host's own (``accounts.registry.secrets``)."""
        return kept_peppers()

    def robot(self, candidates: list[str]) -> Robot | None:
        """The robot whose secret, or previous secret (a rotation's grace: checked by the caller), is one of these."""
        rows = Robot.objects.select_related("team")
        return rows.filter(Q(secret_hash__in=candidates) | Q(previous_secret_hash__in=candidates)).first()

    def token(self, candidates: list[str]) -> PersonalAccessToken | None:
        return PersonalAccessToken.objects.select_related("user").filter(secret_hash__in=candidates).first()

    def subject_for_user(self, user: User) -> Subject:
        return subject_for_user(user)

    def subject_for_robot(self, robot: Robot, now: datetime) -> Subject:
        return subject_for_robot(robot)

    def subject_for_token(self, token: PersonalAccessToken) -> Subject:
        return subject_for_token(token)

    def signer(self) -> Signer:
        return current_signer.get()

    def guard(self) -> tuple[str, list[Any]] | None:
        return None


FRESH = Fresh()


@dataclass
class Generation:
    """What one process read under one pair of versions."""

    state: version.State
    entries: dict[tuple[Any, ...], Any] = field(default_factory=dict)
    clean: set[tuple[str, str]] = field(default_factory=set)  # (name, address) with no failures, under state.limits


class Cached(Fresh):
    """One request's view of the current generation (which stays the same for the whole request)."""

    cached = True

    def __init__(self, generation: Generation) -> None:
        self.generation = generation
        self.skipped_limits = False

    def _memo(self, key: tuple[Any, ...], load: Callable[[], T], *, keep: Callable[[T], bool] = bool) -> T:
        """The cached value, else ``load()``'s, kept when ``keep`` says so (misses are not: a flood of
        unknown names or secrets must not grow the cache) and there is room."""
        entries = self.generation.entries
        try:
            return entries[key]
        except KeyError:
            value = load()
            if keep(value) and len(entries) < MAX_ENTRIES:
                entries[key] = value
            return value

    def registry(self, service: str) -> Registry | None:
        found = self._memo(("registry", service), lambda: super(Cached, self).registry(service))
        if found is None:
            raise Decline  # refused: recorded by the fresh path
        return found

    def public_names(self, names: list[str], service: str) -> set[str]:
        return self._memo(
            ("public", service, tuple(names)),
            lambda: frozenset(super(Cached, self).public_names(names, service)),
            keep=lambda _: True,  # "none of these is public" is an answer too
        )

    def check_limits(self, name: str, ip: str | None) -> services.limits.Check:
        if not services.limits.counted(ip):
            return services.limits.CLEAR
        pair = (name.casefold(), ip or "")
        if pair in self.generation.clean:
            self.skipped_limits = True  # the record's guard covers what the check would have read
            return services.limits.CLEAR
        checked = services.limits.check(name, ip)
        if checked.hold is not None or checked.dirty:
            raise Decline
        if len(self.generation.clean) < MAX_ENTRIES:
            self.generation.clean.add(pair)
        return checked

    def check_password(self, username: str, password: str) -> AuthResult:
        if not username or len(username) > 150 or "\0" in username:
            raise Decline
        user, directory = self._memo(
            ("resolve", username), lambda: services.directory.resolve(username), keep=lambda found: found[0] is not None
        )
        if user is None or not user.is_active:
            raise Decline
        if directory:
            if not services.directory.remembered(username, password, user):
                raise Decline
        elif not verified_cache.hit(user, password):
            raise Decline
        return AuthResult(user)

    def peppers(self) -> list[bytes]:
        return self._memo(("peppers",), kept_peppers, keep=lambda _: True)

    def robot(self, candidates: list[str]) -> Robot | None:
        found = self._memo(("robot", *candidates), lambda: super(Cached, self).robot(candidates))
        if found is None:
            raise Decline
        return found

    def token(self, candidates: list[str]) -> PersonalAccessToken | None:
        found = self._memo(("token", *candidates), lambda: super(Cached, self).token(candidates))
        if found is None:
            raise Decline
        return found

    def subject_for_user(self, user: User) -> Subject:
        return self._memo(("user-subject", user.pk), lambda: subject_for_user(user))

    def subject_for_robot(self, robot: Robot, now: datetime) -> Subject:
        key = ("robot-subject", robot.pk)
        subject, valid_until = self._memo(key, lambda: (subject_for_robot(robot), _ceilings_valid_until(robot)))
        if valid_until is not None and now >= valid_until:
            # A team grant capping it expired since: its ceilings are read again (expiry is never cached).
            subject, valid_until = self.generation.entries[key] = (
                subject_for_robot(robot),
                _ceilings_valid_until(robot),
            )
        return subject

    def subject_for_token(self, token: PersonalAccessToken) -> Subject:
        return self._memo(("token-subject", token.pk), lambda: subject_for_token(token))

    def signer(self) -> Signer:
        return self._memo(("signer",), current_signer.get)

    def guard(self) -> tuple[str, list[Any]] | None:
        return version.guard(self.generation.state, limits=self.skipped_limits)


def _ceilings_valid_until(robot: Robot) -> datetime | None:
    """When the first team grant that caps ``robot`` expires (None: none will)."""
    if robot.team_id is None:
        return None
    now = timezone.now()
    return (
        Grant.objects.filter(team_id=robot.team_id, expires_at__gt=now)
        .order_by("expires_at")
        .values_list("expires_at", flat=True)
        .first()
    )


class _Snapshot:
    """The process's current generation; replaced, never edited, when the versions move."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._generation: Generation | None = None

    def lookups(self) -> Cached:
        generation = self._generation
        if generation is None:
            with self._lock:
                if self._generation is None:
                    self._generation = Generation(version.read_state())  # before any row it tags
                generation = self._generation
        return Cached(generation)

    def stale(self, seen: Cached) -> None:
        """The guard refused ``seen``'s generation: read the versions and keep what still holds."""
        with self._lock:
            if self._generation is not seen.generation:
                return  # another thread already moved on
            state = version.read_state()
            old = seen.generation
            if state.authz == old.state.authz:
                self._generation = Generation(state, old.entries)  # only failures moved: the rows stand
            else:
                self._generation = Generation(state)

    def clear(self) -> None:
        with self._lock:
            self._generation = None


snapshot = _Snapshot()
