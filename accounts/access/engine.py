"""Who may pull, push or delete what: the access decision engine.

Plain data in, plain data out: the caller loads a ``Subject`` (flags, teams,
grants, ceilings) and asks about one repository; nothing here touches the
database, the clock or Django, so every rule can be tested in isolation and
the token endpoint, the dashboard and the "my access" page all agree.

The rules, in order:

* an inactive subject gets nothing, not even pull on public repositories;
* an anonymous subject gets pull on public repositories and nothing else;
* an active superuser gets pull, push and delete;
* everyone else gets the union of the roles of their applicable grants (own
  grants and their teams' grants whose pattern matches, whose registry is
  unset or this one, and which have not expired) plus pull on public
  repositories;
* finally, ceilings (robots: what their team holds; personal access tokens:
  read-only or a few patterns) cut that down.

Roles are nested (read < write < admin), so every answer is one of
nothing, pull, pull+push or pull+push+delete.

Was ``accounts/permissions.py`` before the layout split.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from accounts.access.patterns import InvalidName, is_valid_repository_name, pattern_contains, pattern_matcher
from accounts.constants import ACTIONS, ROLE_ORDER

__all__ = [
    "REASON_KINDS",
    "ROLE_ACTIONS",
    "AccessEntry",
    "Ceiling",
    "Decision",
    "GrantData",
    "Reason",
    "Subject",
    "actions_for_role",
    "allowed_actions",
    "catalog_allowed",
    "decide",
    "describe_access",
    "explain_missing",
    "role_at_most",
]

ROLE_ACTIONS: dict[str, frozenset[str]] = {
    "read": frozenset({"pull"}),
    "write": frozenset({"pull", "push"}),
    "admin": frozenset({"pull", "push", "delete"}),
}
REASON_KINDS = (
    "superuser",
    "grant",
    "team_grant",
    "public",
    "inactive",
    "expired",
    "ceiling",
    "no_grant",
    "registry_mismatch",
    "anonymous",
)

_ALL = frozenset(ACTIONS)
_NOTHING: frozenset[str] = frozenset()
_PULL = frozenset({"pull"})
# The weakest role that carries each action, for "push needs write".
_ROLE_NEEDED = {"pull": "read", "push": "write", "delete": "admin"}
# Reasons that hand out actions; the others say why actions are withheld.
_GRANTING_KINDS = frozenset({"superuser", "grant", "team_grant", "public"})


def actions_for_role(role: str) -> frozenset[str]:
    """The actions a role allows; ``ValueError`` for a role that does not exist."""
    try:
        return ROLE_ACTIONS[role]
    except KeyError:
        raise ValueError(f"unknown role {role!r}; roles are {', '.join(ROLE_ORDER)}") from None


def role_at_most(role: str, cap: str) -> bool:
    """Whether ``role`` allows nothing beyond ``cap`` (e.g. read is at most write)."""
    return actions_for_role(role) <= actions_for_role(cap)


# --- data --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GrantData:
    """One grant as the engine sees it: a role on a pattern, for a user or a team."""

    id: int
    pattern: str
    role: str  # read | write | admin
    registry: str | None = None  # registry service name; None = every registry
    expires_at: datetime | None = None  # tz-aware
    user: str | None = None  # username (or robot name) for a grant to a user or robot
    team: str | None = None  # team name, for a grant to a team
    managed_by: str | None = None  # team that manages it


@dataclass(frozen=True, slots=True)
class Ceiling:
    """An upper bound on a subject: at most ``role`` on ``pattern``."""

    pattern: str
    role: str
    registry: str | None = None


@dataclass(frozen=True, slots=True)
class Subject:
    """Whoever asks: a user, a robot or nobody in particular (anonymous)."""

    kind: str  # "user" | "robot" | "anonymous"
    name: str = ""  # username ("" for anonymous)
    is_active: bool = True
    is_superuser: bool = False
    catalog: bool = False  # explicitly granted registry:catalog:*
    teams: frozenset[str] = frozenset()
    grants: tuple[GrantData, ...] = ()  # own grants plus those of its teams
    ceilings: tuple[Ceiling, ...] | None = None  # None = no cap; () = capped to nothing
    ceiling_label: str = ""  # e.g. "team web's grants" or "token ci-read (read-only)"


@dataclass(frozen=True, slots=True)
class Reason:
    """One fact behind a decision.

    ``action_set`` holds the actions the fact is about: those it grants (kinds
    superuser, grant, team_grant, public) or those it withholds (the others).
    """

    action_set: frozenset[str]
    kind: str
    text: str
    grant_id: int | None = None
    team: str | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """The allowed actions on one repository, and the reasons, in plain English."""

    actions: frozenset[str]
    reasons: tuple[Reason, ...]


@dataclass(frozen=True, slots=True)
class AccessEntry:
    """One line of a "my access" page: what a pattern gives, and through what."""

    pattern: str
    registry: str | None  # None = every registry
    actions: tuple[str, ...]  # in ACTIONS order, ready to display
    via: str  # e.g. "own grant, team web" or "administrator"
    expires_at: datetime | None = None  # when the first grant behind it expires
    grant_ids: tuple[int, ...] = ()

    @property
    def text(self) -> str:
        """E.g. "web/* : pull, push (own grant, team web)"."""
        where = self.pattern if self.registry is None else f"{self.pattern} on {self.registry}"
        return f"{where} : {', '.join(self.actions) or 'nothing'} ({self.via})"


# --- deciding ----------------------------------------------------------------


def decide(subject: Subject, repository: str, *, registry: str, public: bool, now: datetime) -> Decision:
    """What ``subject`` may do on ``repository`` in ``registry``, and why."""
    notes: list[Reason] = []
    actions = _evaluate(subject, repository, registry, public, now, notes)
    return Decision(actions, tuple(notes))


def allowed_actions(subject: Subject, repository: str, *, registry: str, public: bool, now: datetime) -> frozenset[str]:
    """``decide(...).actions`` without writing the reasons (the token endpoint's hot path)."""
    return _evaluate(subject, repository, registry, public, now, None)


def catalog_allowed(subject: Subject) -> bool:
    """Whether ``subject`` may list every repository (registry:catalog:*)."""
    if not subject.is_active or subject.kind == "anonymous":
        return False
    if subject.ceilings is not None and not any(c.pattern == "**" and c.registry is None for c in subject.ceilings):
        return False  # a token limited to some repositories must not list them all
    return subject.is_superuser or subject.catalog


# Each step below takes ``notes``: a list to append reasons to, or None when
# only the actions matter. Reason texts are built only when asked for.


def _evaluate(
    subject: Subject, repository: str, registry: str, public: bool, now: datetime, notes: list[Reason] | None
) -> frozenset[str]:
    if not subject.is_active:
        if notes is not None:
            notes.append(Reason(_ALL, "inactive", _inactive_text(subject)))
        return _NOTHING
    if not is_valid_repository_name(repository):
        # No registry stores such a name; refusing beats guessing what was meant.
        if notes is not None:
            notes.append(Reason(_ALL, "no_grant", f"{repository!r} is not a valid repository name"))
        return _NOTHING
    actions = _uncapped(subject, repository, registry, public, now, notes)
    if subject.ceilings is None:
        return actions
    return _apply_ceilings(subject, repository, registry, actions, notes)


def _uncapped(
    subject: Subject, repository: str, registry: str, public: bool, now: datetime, notes: list[Reason] | None
) -> frozenset[str]:
    """The actions before ceilings."""
    if subject.kind not in ("user", "robot"):
        # Anonymous, or a kind this engine does not know: what everyone gets.
        return _anonymous(repository, public, notes)
    if subject.is_superuser:
        if notes is not None:
            notes.append(Reason(_ALL, "superuser", f"{subject.name} is an administrator: pull, push, delete"))
        return _ALL
    actions = _from_grants(subject, repository, registry, now, notes)
    if public:
        actions |= _PULL
        if notes is not None:
            notes.append(_public_reason(repository))
    return actions


def _anonymous(repository: str, public: bool, notes: list[Reason] | None) -> frozenset[str]:
    if notes is not None:
        if public:
            notes.append(_public_reason(repository))
            text = "anonymous users may only pull"
        else:
            text = f"anonymous users may only pull public repositories, and {repository} is not public"
        notes.append(Reason(_ALL - _PULL if public else _ALL, "anonymous", text))
    return _PULL if public else _NOTHING


def _public_reason(repository: str) -> Reason:
    return Reason(_PULL, "public", f"{repository} is public: everyone may pull")


def _from_grants(
    subject: Subject, repository: str, registry: str, now: datetime, notes: list[Reason] | None
) -> frozenset[str]:
    """The union of the subject's applicable grants (before public pull and ceilings)."""
    actions = _NOTHING
    unusable = False  # a matching grant that was expired or for another registry
    for grant in subject.grants:
        holder = _holder(subject, grant)
        if holder is None or not _matches(grant.pattern, repository):
            continue
        problem = _grant_problem(grant, registry, now)
        if problem is not None:
            unusable = True
            if notes is not None:
                notes.append(_unusable_reason(grant, problem, registry))
            continue
        granted = ROLE_ACTIONS.get(grant.role, _NOTHING)  # an unknown role grants nothing
        actions |= granted
        if notes is not None and granted:
            notes.append(_grant_reason(subject, grant, holder, granted))
    if not actions and notes is not None:
        notes.append(_no_grant_reason(subject, repository, unusable=unusable))
    return actions


def _grant_problem(grant: GrantData, registry: str, now: datetime) -> str | None:
    """Why a matching grant cannot be used here: "registry_mismatch", "expired" or None."""
    if grant.registry is not None and grant.registry != registry:
        return "registry_mismatch"
    if grant.expires_at is not None and grant.expires_at <= now:
        return "expired"
    return None


def _holder(subject: Subject, grant: GrantData) -> str | None:
    """Through what the grant reaches the subject: "user", "team", or None (it does not)."""
    if grant.user is not None:
        # A grant to someone else never applies, whatever its team field says.
        return "user" if subject.name and grant.user == subject.name else None
    if grant.team is not None and grant.team in subject.teams:
        return "team"
    return None


def _matches(pattern: str, repository: str) -> bool:
    """Pattern matching that fails closed: a corrupt stored pattern grants nothing."""
    try:
        return pattern_matcher(pattern)(repository)
    except InvalidName:
        return False


def _apply_ceilings(
    subject: Subject, repository: str, registry: str, actions: frozenset[str], notes: list[Reason] | None
) -> frozenset[str]:
    cap: frozenset[str] = _NOTHING
    for ceiling in subject.ceilings or ():
        if ceiling.registry in (None, registry) and _matches(ceiling.pattern, repository):
            cap |= ROLE_ACTIONS.get(ceiling.role, _NOTHING)
    withheld = actions - cap
    if withheld and notes is not None:
        notes.append(Reason(withheld, "ceiling", _ceiling_text(subject, repository, cap, withheld)))
    return actions & cap


# --- reason texts ------------------------------------------------------------


def _actions_text(actions: Iterable[str]) -> str:
    """Actions in their usual order: "pull, push"."""
    chosen = set(actions)
    return ", ".join(action for action in ACTIONS if action in chosen) or "nothing"


def _who(subject: Subject) -> str:
    return subject.name or "anonymous"


def _role_on(role: str, pattern: str, registry: str | None) -> str:
    """E.g. "write on web/*" or "write on web/* in registry main"."""
    where = f" in registry {registry}" if registry is not None else ""
    return f"{role} on {pattern}{where}"


def _grant_label(grant: GrantData) -> str:
    return f"grant #{grant.id} ({grant.role} on {grant.pattern})"


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _inactive_text(subject: Subject) -> str:
    if subject.kind == "anonymous":
        return "anonymous access is switched off"
    return f"{_who(subject)}'s account is inactive: no access, not even to public repositories"


def _grant_reason(subject: Subject, grant: GrantData, holder: str, granted: frozenset[str]) -> Reason:
    role_on = _role_on(grant.role, grant.pattern, grant.registry)
    if holder == "team":
        text = f"{role_on} through team {grant.team} grants {_actions_text(granted)}"
        return Reason(granted, "team_grant", text, grant_id=grant.id, team=grant.team)
    text = f"{_who(subject)}'s own grant {role_on} grants {_actions_text(granted)}"
    return Reason(granted, "grant", text, grant_id=grant.id)


def _unusable_reason(grant: GrantData, problem: str, registry: str) -> Reason:
    """The reason a matching grant gave nothing; ``problem`` is the reason kind."""
    if problem == "expired" and grant.expires_at is not None:
        text = f"{_grant_label(grant)} expired {_when(grant.expires_at)}"
    else:
        text = f"{_grant_label(grant)} is for registry {grant.registry}, not {registry}"
    withheld = ROLE_ACTIONS.get(grant.role, _NOTHING)
    return Reason(withheld, problem, text, grant_id=grant.id, team=grant.team)


def _no_grant_reason(subject: Subject, repository: str, *, unusable: bool) -> Reason:
    # With an expired or mismatched grant around, "no grant" alone would be untrue.
    adjective = "usable " if unusable else ""
    return Reason(_ALL, "no_grant", f"{_who(subject)} holds no {adjective}grant matching {repository}")


def _ceiling_text(subject: Subject, repository: str, cap: frozenset[str], withheld: frozenset[str]) -> str:
    label = subject.ceiling_label or f"the ceiling on {_who(subject)}"
    allowed = f"only {_actions_text(cap)}" if cap else "nothing"
    return f"capped by {label}: {allowed} allowed on {repository} (withheld: {_actions_text(withheld)})"


# --- explaining --------------------------------------------------------------


def explain_missing(decision: Decision, wanted: Iterable[str]) -> str:
    """Plain words for why not all of ``wanted`` is allowed ("" when it is).

    E.g. "push needs write; carol's own grant read on web/app grants pull".
    """
    wanted_set = set(wanted)
    missing = [action for action in ACTIONS if action in wanted_set and action not in decision.actions]
    unknown = sorted(wanted_set - _ALL)
    if not missing and not unknown:
        return ""
    inactive = [reason.text for reason in decision.reasons if reason.kind == "inactive"]
    if inactive:
        return inactive[0]  # nothing else matters for an inactive account
    parts = [f"{action} needs {_ROLE_NEEDED[action]}" for action in missing]
    parts += [f"{action!r} is not an action (use {', '.join(ACTIONS)})" for action in unknown]
    if missing:
        parts += _relevant_reasons(decision, set(missing))
    return "; ".join(parts)


def _relevant_reasons(decision: Decision, missing: set[str]) -> list[str]:
    """What withheld the missing actions first, then what was granted instead."""
    withholding = [
        reason.text for reason in decision.reasons if reason.kind not in _GRANTING_KINDS and reason.action_set & missing
    ]
    granting = [reason.text for reason in decision.reasons if reason.kind in _GRANTING_KINDS]
    return withholding + granting


# --- describing --------------------------------------------------------------


def describe_access(subject: Subject, *, now: datetime) -> list[AccessEntry]:
    """What ``subject`` holds, one entry per pattern and registry, for a "my access" page.

    Grants on the same pattern and registry merge into one entry. Public
    repositories are not listed (the page shows those separately).
    """
    if not subject.is_active or subject.kind not in ("user", "robot"):
        return []
    if subject.is_superuser:
        return _superuser_entries(subject)
    current = _current_grants(subject, now)
    if subject.ceilings is None:
        return _listing(_merged_entries(subject, current))
    return _listing(_capped_entries(subject, current))


def _current_grants(subject: Subject, now: datetime) -> list[tuple[GrantData, str]]:
    """The subject's usable grants, each with how it reaches the subject ("user" or "team")."""
    current = []
    for grant in subject.grants:
        holder = _holder(subject, grant)
        if holder is not None and _is_current(grant, now):
            current.append((grant, holder))
    return current


def _merged_entries(subject: Subject, current: list[tuple[GrantData, str]]) -> list[AccessEntry]:
    """Without ceilings: the grants on the same pattern and registry make one entry."""
    groups: dict[tuple[str, str | None], list[tuple[GrantData, str]]] = {}
    for grant, holder in current:
        groups.setdefault((grant.pattern, grant.registry), []).append((grant, holder))
    return [_entry(subject, pattern, registry, members) for (pattern, registry), members in groups.items()]


def _capped_entries(subject: Subject, current: list[tuple[GrantData, str]]) -> list[AccessEntry]:
    """Entries under ceilings: one per pattern of a grant or ceiling, with what surely holds on all of it.

    A grant or ceiling counts for an entry when its pattern contains the
    entry's, so a robot holding ``**`` under a ceiling of ``web/**`` shows
    ``web/**``. Partial overlaps are left out: the page may understate
    access, never overstate it.
    """
    ceilings = subject.ceilings or ()
    patterns = {grant.pattern for grant, _holder_kind in current} | {ceiling.pattern for ceiling in ceilings}
    registries = {grant.registry for grant, _holder_kind in current} | {ceiling.registry for ceiling in ceilings}
    entries = []
    for pattern in patterns:
        everywhere = _entry(subject, pattern, None, _covering(current, pattern, None))
        entries.append(everywhere)
        for registry in sorted(registries - {None}):
            here = _entry(subject, pattern, registry, _covering(current, pattern, registry))
            if set(here.actions) > set(everywhere.actions):  # a line of its own only if it adds something
                entries.append(here)
    return entries


def _covering(current: list[tuple[GrantData, str]], pattern: str, registry: str | None) -> list[tuple[GrantData, str]]:
    """The grants that hold on every name ``pattern`` matches in ``registry`` (None: in all)."""
    return [
        (grant, holder)
        for grant, holder in current
        if grant.registry in (None, registry) and _safe_contains(grant.pattern, pattern)
    ]


def _superuser_entries(subject: Subject) -> list[AccessEntry]:
    """An administrator holds everything, so only the ceilings (if any) shape the page."""
    if subject.ceilings is None:
        return [AccessEntry("**", None, ACTIONS, "administrator")]
    via = f"administrator, limited by {subject.ceiling_label}" if subject.ceiling_label else "administrator"
    return _listing(
        AccessEntry(ceiling.pattern, ceiling.registry, _ordered(ROLE_ACTIONS.get(ceiling.role, _NOTHING)), via)
        for ceiling in subject.ceilings
        if _is_valid_pattern(ceiling.pattern)
    )


def _listing(entries: Iterable[AccessEntry]) -> list[AccessEntry]:
    """Entries that allow something, in a stable order for the page."""
    return sorted(
        (entry for entry in entries if entry.actions), key=lambda entry: (entry.pattern, entry.registry or "")
    )


def _is_current(grant: GrantData, now: datetime) -> bool:
    """Not expired, with a role the engine knows and a pattern that can match."""
    if grant.expires_at is not None and grant.expires_at <= now:
        return False
    return grant.role in ROLE_ACTIONS and _is_valid_pattern(grant.pattern)


def _is_valid_pattern(pattern: str) -> bool:
    try:
        pattern_matcher(pattern)
    except InvalidName:
        return False
    return True


def _entry(subject: Subject, pattern: str, registry: str | None, members: list[tuple[GrantData, str]]) -> AccessEntry:
    """One entry from the grants that hold on ``pattern`` in ``registry``, capped by any ceilings."""
    grants = [grant for grant, _holder_kind in members]
    actions = _NOTHING.union(*(ROLE_ACTIONS[grant.role] for grant in grants))
    teams = sorted({grant.team for grant, holder in members if holder == "team" and grant.team})
    own = any(holder == "user" for _grant, holder in members)
    sources = (["own grant"] if own else []) + [f"team {team}" for team in teams]
    capped = _cap_entry(subject, pattern, registry, actions)
    if capped != actions and subject.ceiling_label:
        sources.append(f"limited by {subject.ceiling_label}")
    return AccessEntry(
        pattern=pattern,
        registry=registry,
        actions=_ordered(capped),
        via=", ".join(sources),
        # The entry shrinks as soon as any grant behind it runs out.
        expires_at=min((grant.expires_at for grant in grants if grant.expires_at is not None), default=None),
        grant_ids=tuple(sorted(grant.id for grant in grants)),
    )


def _cap_entry(subject: Subject, pattern: str, registry: str | None, actions: frozenset[str]) -> frozenset[str]:
    """Keep only what ceilings covering the whole pattern (and registry) allow."""
    if subject.ceilings is None:
        return actions
    cap: frozenset[str] = _NOTHING
    for ceiling in subject.ceilings:
        covers_registry = ceiling.registry is None or ceiling.registry == registry
        if covers_registry and _safe_contains(ceiling.pattern, pattern):
            cap |= ROLE_ACTIONS.get(ceiling.role, _NOTHING)
    return actions & cap


def _safe_contains(outer: str, inner: str) -> bool:
    try:
        return pattern_contains(outer, inner)
    except InvalidName:
        return False


def _ordered(actions: frozenset[str]) -> tuple[str, ...]:
    return tuple(action for action in ACTIONS if action in actions)
