"""Why a subject may or may not do something: the answers behind "Why denied?" and the audit record page.

Everything here asks the engine the token endpoint uses (``decide``, ``explain_missing``) about
subjects loaded as they stand now; the pages only parse the question and render the answer.
``audit.views.records`` calls ``subject_for_actor`` and ``refused_scopes`` to explain a refused access
attempt: a documented one-way dependency (audit -> access), never the other way round.
A team grant's reason names the directory group behind the membership when there is one, and a
team's directory groups are listed beside its leads: joining one is another way in.
Moved from ``accounts/access_views.py`` and ``audit/views.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Q
from django.utils import timezone

from accounts.access.engine import Subject, decide, explain_missing
from accounts.access.matrix import directory_sources, matching_patterns, reason_texts
from accounts.access.patterns import InvalidName, validate_repository_name
from accounts.access.scopes import ScopeError, parse_scope
from accounts.access.subjects import (
    ANONYMOUS,
    find_robot,
    is_public,
    subject_for_robot,
    subject_for_token,
    subject_for_user,
)
from accounts.constants import ACTIONS, ROBOT_LOGIN_PREFIX
from accounts.models import DirectoryGroup, Grant, Membership, PersonalAccessToken, TeamRole, User

# --- "why denied?": one question about one subject ---------------------------------


@dataclass(frozen=True)
class TeamAccess:
    """A team whose grant matches a repository, the leads who can change it, and its directory groups."""

    team: str
    role: str
    pattern: str
    registry: str | None
    leads: tuple[str, ...]
    groups: tuple[str, ...] = ()  # "cn=web-devs,... (member)": its members join the team

    @property
    def groups_text(self) -> str:
        """E.g. "members of directory group cn=web-devs,... (member) join the team" ("" when none is mapped)."""
        if not self.groups:
            return ""
        word = "group" if len(self.groups) == 1 else "groups"
        return f"members of directory {word} {', '.join(self.groups)} join the team"

    @property
    def leads_text(self) -> str:
        if not self.leads:
            return f"team {self.team} has no team lead"
        return f"team leads of {self.team} are {', '.join(self.leads)}"


@dataclass(frozen=True)
class Answer:
    """The engine's decision on one question, ready to show."""

    subject: str
    repository: str
    registry: str
    wanted: tuple[str, ...]
    granted: tuple[str, ...]
    denied: tuple[str, ...]
    reasons: tuple[str, ...]
    explanation: str
    refusal: str
    teams: list[TeamAccess]


def teams_granting(repository: str, registry: str) -> list[TeamAccess]:
    """Teams with a current grant matching ``repository`` in ``registry``, with their leads and directory groups.

    Four queries: the patterns, the grants, the leads, the directory groups.
    """
    now = timezone.now()
    matching = list(
        Grant.objects.filter(team__isnull=False, pattern__in=matching_patterns(repository))
        .filter(Q(registry__isnull=True) | Q(registry__service=registry))
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .order_by("team__name", "pattern")
        .values_list("team_id", "team__name", "role", "pattern", "registry__service")
    )
    leads: dict[int, list[str]] = {}
    maintainers = Membership.objects.filter(
        team_id__in={row[0] for row in matching}, role=TeamRole.MAINTAINER, user__is_active=True
    ).order_by("user__username")
    for team_id, username in maintainers.values_list("team_id", "user__username"):
        leads.setdefault(team_id, []).append(username)
    groups: dict[int, list[str]] = {}
    mapped = DirectoryGroup.objects.filter(team_id__in={row[0] for row in matching}).order_by("dn")
    for team_id, dn, role in mapped.values_list("team_id", "dn", "role"):
        groups.setdefault(team_id, []).append(f"{dn} ({role})")
    return [
        TeamAccess(name, role, pattern, service, tuple(leads.get(team_id, ())), tuple(groups.get(team_id, ())))
        for team_id, name, role, pattern, service in matching
    ]


def _sources_of(subject: Subject) -> dict[str, str]:
    """team name -> how a user subject is in it, for the memberships a directory group gives (one query)."""
    if subject.kind != "user" or not subject.name:
        return {}
    memberships = Membership.objects.filter(user__username=subject.name)
    return directory_sources(memberships).get(subject.name, {})


MAX_NAME = 255


def load_subject(name: str) -> tuple[Subject, str]:
    """The engine's subject for a username or robot login, and why it cannot sign in ("" if it can)."""
    if "\x00" in name or len(name) > MAX_NAME:
        raise LookupError("that is not a user or robot name (at most 255 characters, no NUL)")
    if name.startswith(ROBOT_LOGIN_PREFIX):
        robot = find_robot(name)
        if robot is None:
            raise LookupError(f"there is no robot called {name!r}")
        refusal = robot.refusal(timezone.now())
        return subject_for_robot(robot), f"{robot.login_name} cannot sign in: {refusal}" if refusal else ""
    user = User.objects.filter(username=name).first()
    if user is None:
        raise LookupError(f"there is no user called {name!r}")
    return subject_for_user(user), ""


def read_question(scope_text: str, action: str) -> tuple[str, tuple[str, ...]]:
    """The repository and actions asked about: a full scope, or a bare name plus one action."""
    if ":" not in scope_text:
        try:
            validate_repository_name(scope_text)
        except InvalidName as exc:
            raise ScopeError(str(exc)) from None
        if action not in ACTIONS:
            raise ScopeError(f"choose an action: {', '.join(ACTIONS)}")
        return scope_text, (action,)
    scope = parse_scope(scope_text)
    if scope.type != "repository":
        raise ScopeError("only repository scopes can be explained, e.g. repository:web/app:push")
    return scope.name, scope.actions


def answer(name: str, scope_text: str, action: str, registry: str, errors: dict[str, str]) -> Answer | None:
    """Run the engine on the question, or fill ``errors`` and return None."""
    try:
        repository, wanted = read_question(scope_text, action)
    except ScopeError as exc:
        errors["scope"] = str(exc)
    try:
        subject, refusal = load_subject(name)
    except LookupError as exc:
        errors["user"] = str(exc)
    if errors:
        return None
    public = is_public(repository, registry)
    decision = decide(subject, repository, registry=registry, public=public, now=timezone.now())
    return Answer(
        subject=name,
        repository=repository,
        registry=registry,
        wanted=wanted,
        granted=tuple(a for a in wanted if a in decision.actions),
        denied=tuple(a for a in wanted if a not in decision.actions),
        reasons=reason_texts(decision.reasons, _sources_of(subject)),
        explanation=explain_missing(decision, wanted),
        refusal=refusal,
        teams=teams_granting(repository, registry),
    )


# --- a refused access attempt, explained as the rules stand now ---------------------


@dataclass(frozen=True)
class ScopeExplanation:
    """One refused scope of an access attempt, explained by the engine as the rules stand now."""

    name: str
    denied: list[str]
    allowed_now: list[str]
    missing: str
    reasons: list[str]


def refused_scopes(subject: Subject, scopes: list[Any], registry: str, now: datetime) -> list[ScopeExplanation]:
    """One explanation per repository scope with refused actions (``scopes`` as an access record keeps them)."""
    explained = []
    sources: dict[str, str] | None = None
    for scope in scopes:
        if not isinstance(scope, dict) or scope.get("type") != "repository" or not scope.get("denied"):
            continue
        name, denied = str(scope.get("name", "")), [str(action) for action in scope["denied"]]
        decision = decide(subject, name, registry=registry, public=is_public(name, registry), now=now)
        allowed = [action for action in ACTIONS if action in decision.actions]
        missing = explain_missing(decision, denied) or "the rules now allow it"
        sources = _sources_of(subject) if sources is None else sources
        reasons = list(reason_texts(decision.reasons, sources))
        explained.append(ScopeExplanation(name, denied, allowed, missing, reasons))
    return explained


def subject_for_actor(kind: str, actor: str, actor_id: int | None, credential: str = "") -> tuple[Subject | None, str]:
    """The engine's subject for a recorded actor as it exists today, or None and why not.

    ``kind`` is the record's subject type (``user``, ``robot``, ``token``, ``anonymous``);
    ``credential`` a token's ``owner/name`` as the access record names it.
    """
    if kind == "anonymous" or not actor:
        return ANONYMOUS, ""
    if kind == "robot":
        robot = find_robot(actor)
        return (subject_for_robot(robot), "") if robot else (None, f"robot {actor} no longer exists.")
    if kind == "token":
        owner, _, name = credential.partition("/")
        token = PersonalAccessToken.objects.select_related("user").filter(user__username=owner, name=name).first()
        if token is not None:
            return subject_for_token(token), ""
    users = User.objects.filter(pk=actor_id) if actor_id else User.objects.filter(username=actor)
    user = users.first()
    if user is None:
        return None, f"user {actor} no longer exists."
    note = "" if kind != "token" else "the token no longer exists; explained for its user."
    return subject_for_user(user), note
