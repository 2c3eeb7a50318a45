"""Unused rights: what the audit history says nobody uses, proposed for taking back, applied or dismissed.

"Use" of a grant is a token that granted an action under it: a push or delete for ``write`` and
``admin``, a pull for ``read``. The history comes from the usage rollups the audit sealer keeps
(``audit.usage``), never from a scan of the access records, so the report costs the same at
10 million records as at ten. Proposals, for grants and subjects older than N days:

- a ``write``/``admin`` grant with no push or delete under it in N days: lower it to ``read``; with
  no pull either: revoke it;
- a ``read`` grant with no pull under it in N days: revoke it;
- a robot or personal access token unused for N days: revoke it;
- a person who has neither signed in (web or registry) nor pulled for N days: deactivate them
  (their grants are then not proposed one by one).

Applying goes through the same services as every other change (audited, in one transaction,
with an ``unused.apply`` record carrying the evidence); dismissing remembers the reason and
keeps that proposal away for N days. Team leads see and act on what their teams manage; people
and personal access tokens are for admins.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, Max, Q
from django.utils import timezone

from accounts import authz
from accounts.access import version
from accounts.access.patterns import pattern_matcher
from accounts.constants import ROBOT_LOGIN_PREFIX
from accounts.models import DismissedProposal, Grant, PersonalAccessToken, ProposalKind, Robot, Team, User
from accounts.services.credentials import revoke_access_token, revoke_robot
from accounts.services.grants import revoke_grant, update_grant
from accounts.services.users import update_user
from audit import usage
from audit.context import AuditContext
from audit.models import SubjectType
from audit.services import record_change

DEFAULT_DAYS = 90


def max_days() -> int:
    """The report reaches back as far as access records are kept, no further."""
    return int(settings.AUDIT_RETENTION_DAYS.get("access") or DEFAULT_DAYS)


def default_days() -> int:
    """90 days, or the access records' whole retention when that is shorter."""
    return min(DEFAULT_DAYS, max_days())


def check_days(days: Any) -> int:
    """``days`` as an int from 1 to the access records' retention, or a ValidationError saying so."""
    try:
        value = int(str(days).strip())
    except (TypeError, ValueError):
        raise ValidationError(f"days must be a whole number, not {str(days)[:20]!r}.") from None
    if not 1 <= value <= max_days():
        raise ValidationError(f"days must be from 1 to {max_days()} (access records are kept {max_days()} days).")
    return value


@dataclass(frozen=True)
class Proposal:
    """One right to take back, with the evidence; ``target_id`` is the grant, robot, token or user."""

    subject_type: str  # user | robot | token
    subject: str
    pattern: str  # "" for a whole robot, token or person
    role: str
    registry: str  # "" = every registry
    proposal: str  # ProposalKind
    last_used: datetime | None
    evidence: str
    target_id: int
    team: str = ""  # the team whose leads may act on it ("" = admins only)

    @property
    def key(self) -> str:
        """Names the proposal (not its evidence): what a dismissal remembers and a form posts back."""
        text = "\0".join((self.subject_type, self.subject, self.registry, self.pattern, self.proposal))
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def as_json(self) -> dict[str, Any]:
        return {
            "subject_type": self.subject_type,
            "subject": self.subject,
            "pattern": self.pattern,
            "role": self.role,
            "proposal": self.proposal,
            "last_used": rfc3339(self.last_used),
            "evidence": self.evidence,
        }


@dataclass
class Report:
    days: int
    generated_at: datetime
    proposals: list[Proposal] = field(default_factory=list)
    dismissed: int = 0

    def as_json(self) -> dict[str, Any]:
        return {"days": self.days, "proposals": [p.as_json() for p in self.proposals]}


def rfc3339(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _day(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d") if moment else "never"


def _latest(*moments: datetime | None) -> datetime | None:
    present = [m for m in moments if m is not None]
    return max(present) if present else None


# --- The report ------------------------------------------------------------------------


def report(days: int = DEFAULT_DAYS, *, now: datetime | None = None, team_ids: set[int] | None = None) -> Report:
    """Every proposal (``team_ids`` None), or only those the leads of ``team_ids`` may act on."""
    days = check_days(days)
    now = now or timezone.now()
    cutoff = now - timedelta(days=days)
    whole = _whole_subjects(cutoff, now, team_ids)
    proposals = whole + _grant_proposals(cutoff, now, team_ids, skip={(p.subject_type, p.subject) for p in whole})
    dismissed = _dismissed(now)
    kept = [p for p in proposals if p.key not in dismissed]
    order = {"deactivate": 0, "revoke": 1, "read": 2}
    kept.sort(key=lambda p: (order[p.proposal], p.subject_type, p.subject, p.pattern))
    return Report(days, now, kept, dismissed=len(proposals) - len(kept))


class _RecentReports:
    """This process's last few reports, for paging through one without computing it again.

    A report is kept under the ``authz`` version (any change to a grant, person, robot or token,
    applying a proposal included, makes a new one), the dismissals and the minute: what a page
    shows is at most a minute behind the usage rollups, and ``apply`` always checks afresh.
    """

    def __init__(self, size: int = 4) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._reports: dict[tuple[Any, ...], Report] = {}

    def get(self, days: int, team_ids: set[int] | None) -> Report:
        dismissals = DismissedProposal.objects.aggregate(n=Count("pk"), last=Max("dismissed_at"))
        key = (
            days,
            None if team_ids is None else frozenset(team_ids),
            version.read_state().authz,
            dismissals["n"],
            dismissals["last"],
            int(time.time() // 60),
        )
        with self._lock:
            found = self._reports.get(key)
        if found is None:
            found = report(days, team_ids=team_ids)
            with self._lock:
                while len(self._reports) >= self.size:
                    self._reports.pop(next(iter(self._reports)))
                self._reports[key] = found
        return found

    def clear(self) -> None:
        with self._lock:
            self._reports.clear()


recent = _RecentReports()


def _dismissed(now: datetime) -> set[str]:
    return set(DismissedProposal.objects.filter(until__gt=now).values_list("key", flat=True))


def _whole_subjects(cutoff: datetime, now: datetime, team_ids: set[int] | None) -> list[Proposal]:
    """Robots and tokens unused, and people inactive, for the whole of the period."""
    unused = Q(last_used_at__isnull=True) | Q(last_used_at__lt=cutoff)
    robots = Robot.objects.with_state(now).filter(unused, state="active", created_at__lte=cutoff)
    if team_ids is not None:
        robots = robots.filter(team_id__in=team_ids)
    proposals = [
        _credential_proposal(SubjectType.ROBOT, r.login_name, r, cutoff) for r in robots.select_related("team")
    ]
    if team_ids is not None:
        return proposals  # people and personal tokens are for admins
    tokens = PersonalAccessToken.objects.with_state(now).filter(
        unused, state="active", created_at__lte=cutoff, user__is_active=True
    )
    for token in tokens.select_related("user"):
        proposals.append(_credential_proposal(SubjectType.TOKEN, f"{token.user.username}/{token.name}", token, cutoff))
    return proposals + _people(cutoff)


def _credential_proposal(
    subject_type: str, name: str, credential: Robot | PersonalAccessToken, cutoff: datetime
) -> Proposal:
    kind = "robot" if subject_type == SubjectType.ROBOT else "token"
    evidence = (
        f"{kind} never used since it was made on {_day(credential.created_at)}"
        if credential.last_used_at is None
        else f"{kind} last used {_day(credential.last_used_at)}, before the period began ({_day(cutoff)})"
    )
    team = credential.team.name if isinstance(credential, Robot) and credential.team_id else ""
    return Proposal(
        subject_type, name, "", "", "", ProposalKind.REVOKE, credential.last_used_at, evidence, credential.pk, team
    )


def _people(cutoff: datetime) -> list[Proposal]:
    """Active people who joined before the period and were not seen in it (web sign-in or registry)."""
    people = list(
        User.objects.filter(is_active=True, date_joined__lte=cutoff)
        .filter(Q(last_login__isnull=True) | Q(last_login__lt=cutoff))
        .only("pk", "username", "last_login")
    )
    seen = usage.last_seen((SubjectType.USER.value, person.username) for person in people)
    proposals = []
    for person in people:
        registry_seen = seen[(SubjectType.USER.value, person.username)]
        last = _latest(person.last_login, registry_seen)
        if last is not None and last >= cutoff:
            continue
        evidence = (
            f"no web sign-in since {_day(person.last_login)}; no registry sign-in or pull since {_day(registry_seen)}"
        )
        proposals.append(
            Proposal(SubjectType.USER, person.username, "", "", "", ProposalKind.DEACTIVATE, last, evidence, person.pk)
        )
    return proposals


@dataclass(frozen=True, slots=True)
class _GrantRow:
    """What the report needs of a grant, read as plain values (50,000 model instances cost seconds)."""

    pk: int
    pattern: str
    role: str
    service: str | None
    subject: tuple[str, str]
    team: str


_GRANT_VALUES = (
    "pk",
    "pattern",
    "role",
    "registry__service",
    "user__username",
    "robot__name",
    "robot__team__name",
    "managed_by__name",
)


def _grant_rows(cutoff: datetime, now: datetime, team_ids: set[int] | None) -> Iterator[_GrantRow]:
    """Current user and robot grants older than the period (robots that still sign in; active people)."""
    live_robot = Q(robot__revoked_at__isnull=True) & (Q(robot__expires_at__isnull=True) | Q(robot__expires_at__gt=now))
    grants = (
        Grant.objects.filter(Q(user__is_active=True) | (Q(robot__isnull=False) & live_robot), created_at__lte=cutoff)
        .exclude(expires_at__lte=now)
        .order_by("pk")
    )
    if team_ids is not None:
        grants = grants.filter(managed_by_id__in=team_ids)  # what the team's leads may revoke (authz.can_revoke)
    for pk, pattern, role, service, username, robot, robot_team, managed_by in grants.values_list(*_GRANT_VALUES):
        if robot is not None:
            login = f"{ROBOT_LOGIN_PREFIX}{robot_team}+{robot}" if robot_team else f"{ROBOT_LOGIN_PREFIX}{robot}"
            subject = (SubjectType.ROBOT.value, login)
        else:
            subject = (SubjectType.USER.value, username)
        yield _GrantRow(pk, pattern, role, service, subject, managed_by or "")


def _grant_proposals(
    cutoff: datetime, now: datetime, team_ids: set[int] | None, *, skip: set[tuple[str, str]]
) -> list[Proposal]:
    rows = [row for row in _grant_rows(cutoff, now, team_ids) if row.subject not in skip]
    wanted: dict[tuple[str, str], set[str]] = defaultdict(set)
    for row in rows:
        wanted[row.subject].add(usage.prefix_of(row.pattern))
    uses = usage.indexes_under(wanted)
    since = int(cutoff.timestamp())
    proposals = [p for row in rows if (p := _judge(row, uses[row.subject], since)) is not None]
    return _with_pull_counts(proposals, cutoff)


def _judge(grant: _GrantRow, uses: usage.UseIndex, since: int) -> Proposal | None:
    """The proposal for one grant, or None when it was used as its role needs since ``since`` (epoch seconds)."""
    last_write, last_pull = uses.newest(grant.pattern, grant.service)
    last_any = max((t for t in (last_write, last_pull) if t is not None), default=None)
    if grant.role == "read":
        if last_pull is not None and last_pull >= since:
            return None
        kind, evidence = ProposalKind.REVOKE, f"no pull under {grant.pattern} since {_day(usage.at(last_pull))}"
    elif last_write is not None and last_write >= since:
        return None
    elif last_pull is not None and last_pull >= since:
        kind = ProposalKind.READ
        evidence = (
            f"no push or delete under {grant.pattern} since {_day(usage.at(last_write))};"
            f" last pull {_day(usage.at(last_pull))}"
        )
    else:
        kind = ProposalKind.REVOKE
        evidence = f"no pull, push or delete under {grant.pattern} since {_day(usage.at(last_any))}"
    subject_type, subject = grant.subject
    return Proposal(
        subject_type,
        subject,
        grant.pattern,
        grant.role,
        grant.service or "",
        kind,
        usage.at(last_any),
        evidence,
        grant.pk,
        grant.team,
    )


def _with_pull_counts(proposals: list[Proposal], cutoff: datetime) -> list[Proposal]:
    """ "Lower to read" says how many pulls it keeps: counted from the day rollup, for those proposals only."""
    wanted = {(p.subject_type, p.subject) for p in proposals if p.proposal == ProposalKind.READ}
    if not wanted:
        return proposals
    by_subject: dict[tuple[str, str], list[tuple[str, str, int]]] = {}
    for (subject_type, actor, registry, repository), count in usage.pull_counts(wanted, cutoff.date()).items():
        by_subject.setdefault((subject_type, actor), []).append((registry, repository, count))
    counted = []
    for proposal in proposals:
        if proposal.proposal == ProposalKind.READ:
            matches = pattern_matcher(proposal.pattern)
            pulls = sum(
                count
                for registry, repository, count in by_subject.get((proposal.subject_type, proposal.subject), [])
                if matches(repository) and (not proposal.registry or registry == proposal.registry)
            )
            evidence = f"{proposal.evidence}; {pulls} pull{'s' if pulls != 1 else ''} in the period"
            proposal = dataclasses.replace(proposal, evidence=evidence)
        counted.append(proposal)
    return counted


# --- Acting on a proposal ------------------------------------------------------------------


def find(key: str, days: int, *, acting_user: User, now: datetime | None = None) -> Proposal:
    """The proposal ``key`` as the report stands now for ``acting_user``, or a ValidationError."""
    scope = None if acting_user.is_active and acting_user.is_superuser else authz.led_team_ids(acting_user)
    if scope is not None and not scope:
        raise PermissionDenied(
            f"{acting_user.username} leads no team: only admins and team leads act on unused rights."
        )
    for proposal in report(days, now=now, team_ids=scope).proposals:
        if proposal.key == key:
            return proposal
    raise ValidationError(
        "That proposal no longer stands (the right was used, changed or dismissed since):"
        " here is the report as it is now."
    )


def may_act(user: User, proposal: Proposal) -> bool:
    """Admins on anything; a team's leads on what the team manages; auditors and others on nothing."""
    if not user.is_active or (user.is_auditor and not user.is_superuser):
        return False
    if user.is_superuser:
        return True
    if not proposal.team:
        return False  # people, their tokens and what no team manages are for admins
    team = Team.objects.filter(name=proposal.team).first()
    return team is not None and authz.is_team_lead(user, team)


def apply(key: str, days: int, *, acting_user: User, context: AuditContext) -> Proposal:
    """Carry out one proposal through the services; the evidence goes into its own record.

    The report is computed before the transaction: on SQLite a transaction holds the write lock
    every token request needs, and the report can take seconds at scale.
    """
    proposal = find(key, days, acting_user=acting_user)
    if not may_act(acting_user, proposal):
        raise PermissionDenied(f"{acting_user.username} may not act on {proposal.subject}'s rights.")
    with transaction.atomic():
        _carry_out(proposal, acting_user, context)
        record_change(context, "unused.apply", describe(proposal), after={**proposal.as_json(), "days": days})
    return proposal


def _carry_out(proposal: Proposal, acting_user: User, context: AuditContext) -> None:
    if proposal.pattern:
        grant = (
            Grant.objects.select_related("user", "team", "robot__team", "registry", "managed_by")
            .filter(pk=proposal.target_id)
            .first()
        )
        if grant is None:
            raise ValidationError("That grant is gone already: here is the report as it is now.")
        if not authz.can_revoke(acting_user, grant):  # the team page's own rule: grants the team manages
            raise PermissionDenied(f"{acting_user.username} may not change {grant}.")
        if proposal.proposal == ProposalKind.READ:
            update_grant(grant, role="read", context=context)
        else:
            revoke_grant(grant, context=context)
    elif proposal.subject_type == SubjectType.ROBOT:
        revoke_robot(Robot.objects.select_related("team").get(pk=proposal.target_id), context=context)
    elif proposal.subject_type == SubjectType.TOKEN:
        revoke_access_token(
            PersonalAccessToken.objects.select_related("user").get(pk=proposal.target_id), context=context
        )
    else:
        update_user(User.objects.get(pk=proposal.target_id), is_active=False, context=context)


def dismiss(key: str, days: int, reason: str, *, acting_user: User, context: AuditContext) -> DismissedProposal:
    """Keep one proposal away for ``days`` days, remembering who and why."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": "Say why this right stays (a sentence is enough)."})
    if len(reason) > 500:
        raise ValidationError({"reason": "Keep the reason under 500 characters."})
    proposal = find(key, days, acting_user=acting_user)
    if not may_act(acting_user, proposal):
        raise PermissionDenied(f"{acting_user.username} may not act on {proposal.subject}'s rights.")
    now = timezone.now()
    try:
        with transaction.atomic():
            return _dismiss(proposal, days, reason, acting_user, context, now)
    except IntegrityError:  # someone dismissed it at the same moment: theirs stands, ours updates it
        with transaction.atomic():
            return _dismiss(proposal, days, reason, acting_user, context, now)


def _dismiss(
    proposal: Proposal, days: int, reason: str, acting_user: User, context: AuditContext, now: datetime
) -> DismissedProposal:
    dismissal, _ = DismissedProposal.objects.update_or_create(
        key=proposal.key,
        defaults={
            "subject_type": proposal.subject_type,
            "subject": proposal.subject,
            "pattern": proposal.pattern,
            "proposal": proposal.proposal,
            "reason": reason,
            "dismissed_by": acting_user,
            "dismissed_by_name": acting_user.username,
            "dismissed_at": now,
            "until": now + timedelta(days=days),
        },
    )
    record_change(
        context,
        "unused.dismiss",
        describe(proposal),
        after={**proposal.as_json(), "days": days, "reason": reason, "until": rfc3339(dismissal.until)},
    )
    return dismissal


def describe(proposal: Proposal) -> str:
    what = {"read": "lower to read", "revoke": "revoke", "deactivate": "deactivate"}[proposal.proposal]
    on = f" {proposal.role} on {proposal.pattern}" if proposal.pattern else ""
    return f"{what}{on} of {proposal.subject_type} {proposal.subject}"


def visible_team_ids(user: User) -> set[int] | None:
    """None: the whole report (admins, auditors); else the teams whose part ``user`` may see (their leads')."""
    if user.is_active and (user.is_superuser or user.is_auditor):
        return None
    return authz.led_team_ids(user)
