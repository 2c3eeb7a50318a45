"""The ``roles`` check: may ``--user`` do ``--action`` on ``--repository``, why (not), and who can change it.

The answer is the one the "Why was this denied?" page gives (``accounts.access.explain.answer``): the
engine the token endpoint uses, on the subject as it stands now. Allowed is ok; denied is a fail
whose fix names the team leads who can let the user in and the administrators' grant page. In
htpasswd mode the registry checks passwords only, so a missing role is a warn, not a refusal.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.urls import reverse

from accounts.access import explain
from accounts.constants import ROLE_ORDER
from accounts.models import AuthMode, User
from accounts.registry.doctor.model import Check, State, Target

ID = "roles"
NEEDED_ROLE = {"pull": "read", "push": "write", "delete": "admin"}
ADMINS_SHOWN = 5


def check(target: Target, state: State) -> Check:
    if not target.user and not target.repository:
        return Check(ID, "skip", "no question asked: give a user and a repository (--user U --repository R)")
    if not (target.user and target.repository):
        return Check(ID, "skip", "a user and a repository go together (--user U --repository R)")
    errors: dict[str, str] = {}
    found = explain.answer(target.user, target.repository, target.action, target.registry.service, errors)
    if found is None:
        return _unanswered(target, errors)
    if found.refusal:
        return Check(ID, "fail", found.refusal, [*_evidence(found, target)], [_why_link(target)])
    if not found.denied:
        return Check(ID, "ok", f"{_question(found)}: allowed", _evidence(found, target))
    if target.registry.auth_mode == AuthMode.HTPASSWD and not _inactive(found):
        summary = f"{_question(found)}: the engine denies it, but htpasswd mode does not enforce roles"
        fix = [f"switch registry {target.registry.service} to token mode to enforce grants", *_fixes(found, target)]
        return Check(ID, "warn", summary, _evidence(found, target), fix)
    return Check(ID, "fail", f"{_question(found)}: denied", _evidence(found, target), _fixes(found, target))


def _question(found: explain.Answer) -> str:
    return f"{found.subject} {', '.join(found.wanted)} {found.repository} on {found.registry}"


def _inactive(found: explain.Answer) -> bool:
    """An inactive user is left out of the htpasswd file too (a robot that cannot sign in has a refusal)."""
    return User.objects.filter(username=found.subject, is_active=False).exists()


def _unanswered(target: Target, errors: dict[str, str]) -> Check:
    """An unknown user or robot, or a repository name no registry stores: the question itself fails."""
    summary = "; ".join(errors.values())
    fix = []
    if "user" in errors:
        fix.append(
            f"check the name {target.user!r}: users are listed at {_page('users:list')} "
            "(directory users appear after their first sign-in or a directory sync)"
        )
    if "scope" in errors:
        fix.append("give a repository name such as web/app, or a scope such as repository:web/app:push")
    return Check(ID, "fail", summary, [f"asked: {target.user} {target.action} {target.repository}"], fix)


def _evidence(found: explain.Answer, target: Target) -> list[str]:
    lines = [f"granted: {', '.join(found.granted) or 'nothing'}; denied: {', '.join(found.denied) or 'nothing'}"]
    if found.explanation:
        lines.append(found.explanation)
    lines += [f"reason: {reason}" for reason in found.reasons]
    lines += [f"who can change it: {line}" for line in _changers(found)]
    return lines


def _changers(found: explain.Answer) -> list[str]:
    """The leads of each team holding a matching grant (and its directory groups), then the administrators."""
    lines = []
    for team in found.teams:
        line = f"{team.leads_text} (team {team.team} holds {team.role} on {team.pattern})"
        lines.append(f"{line}; {team.groups_text}" if team.groups else line)
    lines.append(f"administrators: {', '.join(_admins()) or 'none is active'}")
    return lines


def _fixes(found: explain.Answer, target: Target) -> list[str]:
    """Who to ask, and the exact page step: join a team whose grant covers the action, or a direct grant."""
    role = max((NEEDED_ROLE[action] for action in found.denied if action in NEEDED_ROLE), key=_rank, default="read")
    fixes = []
    for team in found.teams:
        if _rank(team.role) < _rank(role):
            continue
        who = f"a lead of team {team.team} ({', '.join(team.leads)})" if team.leads else "an administrator"
        step = f"{who} adds {found.subject} to team {team.team} at {_page('teams:detail', name=team.team)}"
        fixes.append(f"{step} (or: {team.groups_text})" if team.groups else step)
    registry = f", registry {found.registry}" if found.registry else ""
    fixes.append(
        f"or an administrator grants it at {_page('grants:new')}: give to {found.subject}, "
        f"pattern {found.repository}, role {role}{registry}"
    )
    fixes.append(_why_link(target))
    return fixes


def _why_link(target: Target) -> str:
    query = urlencode(
        {"user": target.user, "scope": target.repository, "action": target.action, "registry": target.registry.service}
    )
    return f"the same answer, explained: {_page('access:why')}?{query}"


def _rank(role: str) -> int:
    return ROLE_ORDER.index(role) if role in ROLE_ORDER else -1


def _admins() -> list[str]:
    admins = User.objects.filter(is_active=True, is_superuser=True).order_by("username")
    return list(admins.values_list("username", flat=True)[:ADMINS_SHOWN])


def _page(url_name: str, **kwargs: str) -> str:
    return f"{settings.PUBLIC_URL}{reverse(url_name, kwargs=kwargs or None)}"
