"""Access reviews: campaigns that ask each team's leads to certify or revoke what the team gives.

**Starting** (``start_campaign``: an admin on /reviews/, ``manage.py start_review``, or the schedule
``SCHEDULE_ACCESS_REVIEW``) freezes one checklist item per right, as it stands then:

- for each team T, T's leads get T's memberships, T's active robots, and every grant T manages
  (``managed_by = T``) to a user or a robot;
- admins get (``team`` null) every team's own grants (T's leads cannot revoke those), every user or
  robot grant no team manages, and the global robots.

Expired grants, revoked or expired robots and their grants are left out: they give nothing. Each item
keeps subject, pattern, role, registry and ``last_used`` from the audit history's usage rollups
(``audit.usage``): for a grant, the newest pull/push/delete its holder (a team grant: any member) made
on a repository its pattern selects, on its registry; for a membership, the person's newest use of
anything (a registry login included) or web sign-in; for a robot, its ``last_used_at``. A start is a
few bulk queries whatever the size, one ``review.start`` record, then a mail to each lead with items.

**Answering** (``certify`` / ``revoke``): admins answer any item; a team's leads (``authz.led_team_ids``)
the items of their teams, escalated ones included: escalation adds the admins, it does not take the
item from the leads (late is better than never). Auditors and everyone else are refused. A revoke goes
through the same services as the team page (``lead_revoke``, ``lead_remove_membership``,
``lead_revoke_robot``: admins pass their checks too), so it is audited like any other; each answer also
writes its own ``review.certify`` / ``review.revoke`` record. An item whose right has gone meanwhile
(revoked, expired, removed) is marked ``gone`` when someone answers it. A membership only a directory
group gives cannot be revoked here: the service's ``ValidationError`` comes back and nothing changes.

**Deadline** (``check``, hourly through ``SCHEDULE_ACCESS_REVIEW_CHECKS``): ``ACCESS_REVIEW_REMIND_DAYS``
before it, once, each lead with waiting items gets a reminder; at the deadline the campaign and its
waiting items get ``escalated_at`` and every active admin with an address gets a mail
(``review.escalate``). A campaign closes when its last item is answered.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import asdict, astuple, dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count, Q, QuerySet
from django.urls import reverse
from django.utils import timezone

from accounts import authz
from accounts.constants import ROBOT_LOGIN_PREFIX
from accounts.models import (
    Grant,
    Membership,
    ReviewCampaign,
    ReviewDecision,
    ReviewItem,
    ReviewItemKind,
    Robot,
    TeamRole,
    User,
)
from accounts.querysets import CredentialState
from accounts.services.leads import lead_remove_membership, lead_revoke, lead_revoke_robot
from audit import usage
from audit.context import AuditContext
from audit.formats import FORMATS, csv_table, rfc3339
from audit.models import SubjectType
from audit.services import record_change
from registryadmin import mail

MAX_DAYS = 365
BATCH = 2000  # rows an INSERT: 18 columns stay well under PostgreSQL's 65,535 parameters
WAITING = ReviewDecision.PENDING.value
# Team names are slugs: this can never be one. Items with it answer to the admins.
ADMINS = "(admins)"
EVIDENCE_FIELDS = (
    "campaign_id",
    "campaign",
    "item_id",
    "team",
    "kind",
    "subject",
    "pattern",
    "registry",
    "role",
    "last_used",
    "decision",
    "decided_by",
    "decided_at",
    "escalated_at",
    "note",
)  # the CSV keeps client-supplied text from reading as a formula (audit.formats.safe_cell)


@dataclass(frozen=True)
class Started:
    """What ``start_campaign`` made: the campaign, its item counts and how many leads were mailed."""

    campaign: ReviewCampaign
    counts: dict[str, int]
    mailed: int


@dataclass(frozen=True)
class Answer:
    """How an answer ended: ``decision`` is certified, revoked or gone; ``message`` says it in words."""

    item: ReviewItem
    decision: str
    message: str


@dataclass
class Progress:
    """Counts of a campaign's items (or one team's part of them)."""

    total: int = 0
    waiting: int = 0
    certified: int = 0
    revoked: int = 0
    gone: int = 0
    escalated: int = 0

    def __add__(self, other: Progress) -> Progress:
        return Progress(*(a + b for a, b in zip(astuple(self), astuple(other), strict=True)))

    @property
    def answered(self) -> int:
        return self.total - self.waiting

    @property
    def percent(self) -> int:
        return 100 if not self.total else self.answered * 100 // self.total


# --- Starting ------------------------------------------------------------------------------


def check_name(name: Any) -> str:
    name = " ".join(str(name or "").split())
    if not name or len(name) > 100 or "\x00" in name:
        raise ValidationError({"name": "Give the review a name of 1 to 100 characters."})
    return name


def check_days(days: Any) -> int:
    try:
        value = int(str(days).strip())
    except (TypeError, ValueError):
        raise ValidationError({"days": f"days must be a whole number, not {str(days)[:20]!r}."}) from None
    if not 1 <= value <= MAX_DAYS:
        raise ValidationError({"days": f"days must be from 1 to {MAX_DAYS}."})
    return value


def start_campaign(
    name: str,
    *,
    context: AuditContext,
    days: int | None = None,
    started_by: User | None = None,
    scheduled: bool = False,
    now: datetime | None = None,
) -> Started:
    """Freeze every right into a new campaign (one transaction, one record), then mail each lead with items."""
    name = check_name(name)
    days = check_days(settings.ACCESS_REVIEW_DEADLINE_DAYS if days is None else days)
    now = now or timezone.now()
    campaign = ReviewCampaign(
        name=name,
        started_by=started_by,
        started_by_name=started_by.username if started_by else context.actor,
        scheduled=scheduled,
        started_at=now,
        deadline=now + timedelta(days=days),
    )
    # Read everything first, outside the transaction: on SQLite a transaction holds the write lock
    # every token request needs, and reading 50,000 grants and their use takes seconds.
    items = _freeze(campaign, now)
    with transaction.atomic():
        campaign.save()
        for item in items:
            item.campaign_id = campaign.pk
        ReviewItem.objects.bulk_create(items, batch_size=BATCH)
        counts = _counts(items)
        record_change(
            context, "review.start", _label(campaign), after={"deadline": rfc3339(campaign.deadline), **counts}
        )
    return Started(campaign, counts, _mail_leads(campaign, "has started"))


def start_scheduled(*, now: datetime | None = None) -> dict[str, Any]:
    """The quarterly start: one campaign a day at most, whatever beat does."""
    now = now or timezone.now()
    if ReviewCampaign.objects.filter(scheduled=True, started_at__date=now.date()).exists():
        return {"skipped": "a scheduled review already started today"}
    started = start_campaign(
        f"Access review {now:%Y-%m-%d}", context=AuditContext.system("schedule"), scheduled=True, now=now
    )
    return {"campaign": started.campaign.pk, **started.counts, "mailed": started.mailed}


def _counts(items: list[ReviewItem]) -> dict[str, int]:
    kinds = Counter(item.kind for item in items)
    return {
        "items": len(items),
        "grants": kinds[ReviewItemKind.GRANT],
        "memberships": kinds[ReviewItemKind.MEMBERSHIP],
        "robots": kinds[ReviewItemKind.ROBOT],
        "teams": len({item.team_id for item in items if item.team_id}),
        "for_admins": sum(1 for item in items if item.team_id is None),
    }


def _freeze(campaign: ReviewCampaign, now: datetime) -> list[ReviewItem]:
    """The items of every right there is: three reads, the usage rollups, no query per right.

    Grants are read as plain values (a review of 50,000 grants would otherwise build five model
    instances a grant), and items are built with ids, not instances.
    """
    memberships = list(Membership.objects.select_related("user", "team").order_by("team__name", "user__username"))
    robots = list(
        Robot.objects.with_state(now).filter(state=CredentialState.ACTIVE).select_related("team").order_by("pk")
    )
    live_robot = Q(robot__isnull=True) | Q(robot__revoked_at__isnull=True) & (
        Q(robot__expires_at__isnull=True) | Q(robot__expires_at__gt=now)
    )
    grants = [
        _GrantRow(*values)
        for values in Grant.objects.exclude(expires_at__lte=now).filter(live_robot).order_by("pk").values_list(*_GRANT)
    ]
    members = defaultdict(list)
    for membership in memberships:
        members[membership.team_id].append(membership.user.username)
    people = {(SubjectType.USER.value, m.user.username) for m in memberships}
    seen = usage.last_seen(people)
    items = [_membership_item(campaign, m, seen) for m in memberships]
    items += [_robot_item(campaign, robot) for robot in robots]
    last = _GrantUse(members)
    last.read(grants)
    return items + [_grant_item(campaign, grant, last(grant)) for grant in grants]


_GRANT = (
    "pk",
    "pattern",
    "role",
    "registry__service",
    "user__username",
    "team_id",
    "team__name",
    "robot_id",
    "robot__name",
    "robot__team__name",
    "managed_by_id",
    "managed_by__name",
)


@dataclass(frozen=True, slots=True)
class _GrantRow:
    """What an item needs of a grant, read as values (``_GRANT``)."""

    pk: int
    pattern: str
    role: str
    registry: str | None
    username: str | None
    team_id: int | None
    team: str | None
    robot_id: int | None
    robot: str | None
    robot_team: str | None
    managed_by_id: int | None
    managed_by: str | None

    @property
    def holder(self) -> tuple[str, str] | None:
        """Whose uses are this grant's: its user or robot (a team grant: its members, see ``_GrantUse``)."""
        if self.robot_id:
            return (SubjectType.ROBOT.value, self.robot_login)
        return (SubjectType.USER.value, self.username) if self.username else None

    @property
    def robot_login(self) -> str:
        """``Robot.login_name``, from the values."""
        return (
            f"{ROBOT_LOGIN_PREFIX}{self.robot_team}+{self.robot}"
            if self.robot_team
            else f"{ROBOT_LOGIN_PREFIX}{self.robot}"
        )

    @property
    def label(self) -> str:
        """``Grant.subject_label``, from the values."""
        if self.robot_id:
            return f"robot {self.robot_login}"
        return f"user {self.username}" if self.username else f"team {self.team}"


class _GrantUse:
    """A grant's last use: its holders' newest pull, push or delete under its pattern, on its registry."""

    def __init__(self, members: dict[int, list[str]]) -> None:
        self.members = members
        self.uses: dict[tuple[str, str], usage.UseIndex] = {}

    def read(self, grants: list[_GrantRow]) -> None:
        """The holders' uses under these grants' patterns (only those: not every right they ever used)."""
        wanted: dict[tuple[str, str], set[str]] = defaultdict(set)
        for grant in grants:
            for subject in self._holders(grant):
                wanted[subject].add(usage.prefix_of(grant.pattern))
        self.uses = usage.indexes_under(wanted)

    def __call__(self, grant: _GrantRow) -> datetime | None:
        newest = None
        for subject in self._holders(grant):
            index = self.uses.get(subject)
            if index is not None:
                newest = max((t for t in (newest, *index.newest(grant.pattern, grant.registry)) if t), default=None)
        return usage.at(newest)

    def _holders(self, grant: _GrantRow) -> list[tuple[str, str]]:
        if grant.holder:
            return [grant.holder]
        return [(SubjectType.USER.value, name) for name in self.members.get(grant.team_id, ())]


def _newest(*moments: datetime | None) -> datetime | None:
    return max((m for m in moments if m is not None), default=None)


def _membership_item(campaign: ReviewCampaign, membership: Membership, seen: dict) -> ReviewItem:
    registry_seen = seen.get((SubjectType.USER.value, membership.user.username))
    return ReviewItem(
        campaign_id=campaign.pk,
        team_id=membership.team_id,
        team_name=membership.team.name,
        kind=ReviewItemKind.MEMBERSHIP,
        membership_id=membership.pk,
        subject=membership.user.username,
        role=membership.role,
        last_used=_newest(membership.user.last_login, registry_seen),
    )


def _robot_item(campaign: ReviewCampaign, robot: Robot) -> ReviewItem:
    return ReviewItem(
        campaign_id=campaign.pk,
        team_id=robot.team_id,
        team_name=robot.team.name if robot.team_id else "",
        kind=ReviewItemKind.ROBOT,
        robot_id=robot.pk,
        subject=robot.login_name,
        last_used=robot.last_used_at,
    )


def _grant_item(campaign: ReviewCampaign, grant: _GrantRow, last_used: datetime | None) -> ReviewItem:
    # A team's own grant, and a grant no team manages, answer to the admins.
    managed = grant.managed_by_id is not None and grant.team_id is None
    return ReviewItem(
        campaign_id=campaign.pk,
        team_id=grant.managed_by_id if managed else None,
        team_name=grant.managed_by if managed else "",
        kind=ReviewItemKind.GRANT,
        grant_id=grant.pk,
        subject=grant.label,
        pattern=grant.pattern,
        registry=grant.registry or "",
        role=grant.role,
        last_used=last_used,
    )


# --- Who sees and answers what -------------------------------------------------------------


def sees_every_item(user: User) -> bool:
    return bool(user.is_active and (user.is_superuser or user.is_auditor))


def visible_items(user: User, campaign: ReviewCampaign) -> QuerySet[ReviewItem]:
    """The items ``user`` may see: admins and auditors every one, a lead their teams'; others are refused."""
    if sees_every_item(user):
        return campaign.items.all()
    led = authz.led_team_ids(user)
    if not led:
        raise PermissionDenied("Only administrators, auditors and team leads see access reviews.")
    return campaign.items.filter(team_id__in=led)


def may_answer(user: User, item: ReviewItem, led: set[int] | None = None) -> bool:
    """Admins any item; a team's leads the items of their teams (escalated ones too); nobody else."""
    if not user.is_active:
        return False
    if user.is_superuser:
        return True
    led = authz.led_team_ids(user) if led is None else led
    return item.team_id is not None and item.team_id in led


def waiting_for(user: User) -> list[dict[str, Any]]:
    """Open campaigns with items waiting for ``user``: admins their own and the escalated, leads their teams'."""
    items = ReviewItem.objects.filter(campaign__closed_at__isnull=True, decision=WAITING)
    if user.is_active and user.is_superuser:
        items = items.filter(Q(team__isnull=True) | Q(escalated_at__isnull=False))
    else:
        led = authz.led_team_ids(user)
        if not led:
            return []
        items = items.filter(team_id__in=led)
    counts = dict(items.order_by().values_list("campaign").annotate(n=Count("*")))
    campaigns = ReviewCampaign.objects.filter(pk__in=counts).order_by("deadline")
    return [{"campaign": campaign, "waiting": counts[campaign.pk]} for campaign in campaigns]


def progress(items: QuerySet[ReviewItem], by: str) -> dict[Any, Progress]:
    """Counts per ``by`` (``campaign`` or ``team_name``) in one grouped query."""
    rows = (
        items.order_by()
        .values(by)
        .annotate(
            total=Count("pk"),
            waiting=Count("pk", filter=Q(decision=WAITING)),
            certified=Count("pk", filter=Q(decision=ReviewDecision.CERTIFIED)),
            revoked=Count("pk", filter=Q(decision=ReviewDecision.REVOKED)),
            gone=Count("pk", filter=Q(decision=ReviewDecision.GONE)),
            escalated=Count("pk", filter=Q(escalated_at__isnull=False)),
        )
    )
    return {row.pop(by): Progress(**row) for row in rows}


# --- Answering -----------------------------------------------------------------------------


@transaction.atomic
def certify(item: ReviewItem, *, acting_user: User, context: AuditContext, note: str = "") -> Answer:
    """Keep the right as it is; a ``review.certify`` record says who kept what, and when."""
    item, now = _answerable(item, acting_user), timezone.now()
    if gone := _gone(item, now):
        return _mark_gone(item, gone, acting_user, context, now)
    _decide(item, ReviewDecision.CERTIFIED, acting_user, now, note)
    record_change(context, "review.certify", _target(item), after=_evidence(item))
    _close_if_done(item.campaign, context, now)
    return Answer(item, ReviewDecision.CERTIFIED, f"Certified {_describe(item)}.")


@transaction.atomic
def revoke(item: ReviewItem, *, acting_user: User, context: AuditContext, note: str = "") -> Answer:
    """Take the right back through its own service (audited there), then record ``review.revoke``.

    A ``ValidationError`` from the service (a membership only a directory group gives) rolls it all back.
    """
    item, now = _answerable(item, acting_user), timezone.now()
    if gone := _gone(item, now):
        return _mark_gone(item, gone, acting_user, context, now)
    outcome = _take_back(item, acting_user, context)
    _decide(item, ReviewDecision.REVOKED, acting_user, now, note or outcome)
    record_change(context, "review.revoke", _target(item), after=_evidence(item))
    _close_if_done(item.campaign, context, now)
    return Answer(item, ReviewDecision.REVOKED, f"Revoked {_describe(item)}. {outcome}".strip())


def _answerable(item: ReviewItem, user: User) -> ReviewItem:
    """The item locked for this answer; refused (403) to whoever may not answer it, 400 once answered."""
    # The campaign row first: two last answers at once must not both see the other still waiting
    # (the campaign would never close).
    ReviewCampaign.objects.select_for_update().filter(pk=item.campaign_id).first()
    item = ReviewItem.objects.select_for_update().get(pk=item.pk)
    if not may_answer(user, item):
        raise PermissionDenied(f"{user.get_username()} may not answer this review item.")
    if item.decision != WAITING:
        when = f"{item.decided_at:%Y-%m-%d %H:%M} UTC" if item.decided_at else "earlier"
        label = ReviewDecision(item.decision).label.lower()
        raise ValidationError(
            f"This item was already answered: {label} by {item.decided_by_name or 'someone'}, {when}."
        )
    return item


def _gone(item: ReviewItem, now: datetime) -> str:
    """Why the right this item asks about no longer exists ("" while it does)."""
    if item.kind == ReviewItemKind.GRANT:
        grant = Grant.objects.select_related("robot").filter(pk=item.grant_id).first()
        if grant is None:
            return "the grant was revoked since the review started"
        if grant.expires_at is not None and grant.expires_at <= now:
            return "the grant has expired"
        if grant.role != item.role:
            return f"the grant was changed from {item.role} to {grant.role} since the review started"
        return f"its robot is {grant.robot.refusal(now)}" if grant.robot_id and grant.robot.refusal(now) else ""
    if item.kind == ReviewItemKind.MEMBERSHIP:
        role = Membership.objects.filter(pk=item.membership_id).values_list("role", flat=True).first()
        if role is None:
            return "the membership was removed since the review started"
        return f"the role changed from {item.role} to {role} since the review started" if role != item.role else ""
    robot = Robot.objects.filter(pk=item.robot_id).first()
    if robot is None:
        return "the robot was deleted since the review started"
    return f"the robot is {robot.refusal(now)}" if robot.refusal(now) else ""


def _mark_gone(item: ReviewItem, why: str, user: User, context: AuditContext, now: datetime) -> Answer:
    _decide(item, ReviewDecision.GONE, user, now, why)
    record_change(context, "review.gone", _target(item), after=_evidence(item))
    _close_if_done(item.campaign, context, now)
    return Answer(item, ReviewDecision.GONE, f"Nothing to answer for {_describe(item)}: {why}.")


def _take_back(item: ReviewItem, user: User, context: AuditContext) -> str:
    """Revoke through the services the team page uses; returns what is left to say ("" mostly)."""
    if item.kind == ReviewItemKind.GRANT:
        lead_revoke(Grant.objects.get(pk=item.grant_id), acting_user=user, context=context)
        return ""
    if item.kind == ReviewItemKind.ROBOT:
        lead_revoke_robot(Robot.objects.select_related("team").get(pk=item.robot_id), acting_user=user, context=context)
        return ""
    membership = Membership.objects.select_related("team", "user").get(pk=item.membership_id)
    lead_remove_membership(membership, acting_user=user, context=context)
    kept = Membership.objects.filter(pk=membership.pk).first()
    return "" if kept is None else f"The local role is gone; a directory group keeps them a {kept.role}."


def _decide(item: ReviewItem, decision: str, user: User, now: datetime, note: str) -> None:
    item.decision, item.decided_by, item.decided_by_name = decision, user, user.get_username()
    item.decided_at, item.note = now, note[:500]
    item.save(update_fields=["decision", "decided_by", "decided_by_name", "decided_at", "note"])


def _close_if_done(campaign: ReviewCampaign, context: AuditContext, now: datetime) -> None:
    if campaign.closed_at is None and not campaign.items.filter(decision=WAITING).exists():
        ReviewCampaign.objects.filter(pk=campaign.pk).update(closed_at=now)
        campaign.closed_at = now
        answered = progress(campaign.items.all(), "campaign").get(campaign.pk, Progress())
        record_change(context, "review.close", _label(campaign), after=asdict(answered))


# --- The deadline ----------------------------------------------------------------------------


def check(*, now: datetime | None = None) -> dict[str, int]:
    """The hourly check: reminders before the deadline, escalation at it."""
    now = now or timezone.now()
    return {**remind_due(now=now), **escalate_overdue(now=now)}


def remind_due(*, now: datetime | None = None) -> dict[str, int]:
    """Once per campaign, ``ACCESS_REVIEW_REMIND_DAYS`` before its deadline: mail each lead with waiting items.

    A campaign that started inside that window already told its leads, so it gets no reminder;
    ``0`` turns reminders off.
    """
    now = now or timezone.now()
    before = timedelta(days=settings.ACCESS_REVIEW_REMIND_DAYS)
    reminded = mailed = 0
    if not before:
        return {"reminded": 0, "reminder_mails": 0}
    due = ReviewCampaign.objects.filter(
        closed_at__isnull=True, escalated_at__isnull=True, reminded_at__isnull=True, deadline__gt=now
    ).filter(deadline__lte=now + before)
    for campaign in due:
        if campaign.started_at > campaign.deadline - before:
            continue
        with transaction.atomic():
            if not ReviewCampaign.objects.filter(pk=campaign.pk, reminded_at__isnull=True).update(reminded_at=now):
                continue  # another run took it
            record_change(AuditContext.system("review reminder"), "review.remind", _label(campaign))
        reminded += 1
        mailed += _mail_leads(campaign, "ends soon")
    return {"reminded": reminded, "reminder_mails": mailed}


def escalate_overdue(*, now: datetime | None = None) -> dict[str, int]:
    """Campaigns past their deadline: their waiting items go to the admins, who are mailed."""
    now = now or timezone.now()
    escalated = mailed = 0
    for campaign in ReviewCampaign.objects.filter(deadline__lte=now, escalated_at__isnull=True, closed_at__isnull=True):
        with transaction.atomic():
            if not ReviewCampaign.objects.filter(pk=campaign.pk, escalated_at__isnull=True).update(escalated_at=now):
                continue
            waiting = campaign.items.filter(decision=WAITING)
            by_team = Counter(waiting.values_list("team_name", flat=True))
            count = waiting.update(escalated_at=now)
            campaign.escalated_at = now
            if not count:
                ReviewCampaign.objects.filter(pk=campaign.pk).update(closed_at=now)
            record_change(
                AuditContext.system("review deadline"),
                "review.escalate",
                _label(campaign),
                after={"items": count, "teams": len(by_team)},
            )
        escalated += 1
        mailed += _mail_admins(campaign, by_team) if count else 0
    return {"escalated": escalated, "escalation_mails": mailed}


# --- Mail ----------------------------------------------------------------------------------


def _link(campaign: ReviewCampaign, team: str = "") -> str:
    path = reverse("reviews:detail", kwargs={"pk": campaign.pk})
    return settings.PUBLIC_URL.rstrip("/") + path + (f"?team={team}" if team else "")


def _leads_with_waiting(campaign: ReviewCampaign) -> dict[User, dict[str, int]]:
    """Active leads (with an address) of the teams with waiting items, and those items per team."""
    waiting = dict(
        campaign.items.filter(decision=WAITING, team__isnull=False)
        .order_by()
        .values_list("team_id")
        .annotate(n=Count("pk"))
    )
    leads = (
        Membership.objects.filter(team_id__in=waiting, role=TeamRole.MAINTAINER, user__is_active=True)
        .exclude(user__email="")
        .exclude(user__is_auditor=True, user__is_superuser=False)  # auditors lead nothing (authz.led_team_ids)
        .select_related("user", "team")
        .order_by("user__username", "team__name")
    )
    found: dict[User, dict[str, int]] = defaultdict(dict)
    for membership in leads:
        found[membership.user][membership.team.name] = waiting[membership.team_id]
    return found


def _mail_leads(campaign: ReviewCampaign, what: str) -> int:
    sent = 0
    for lead, teams in _leads_with_waiting(campaign).items():
        lines = [
            f"  {team}: {count} item{'s' if count != 1 else ''}, {_link(campaign, team)}"
            for team, count in teams.items()
        ]
        body = (
            f'Access review "{campaign.name}" {what}. Please certify or revoke what your teams give '
            f"by {campaign.deadline:%Y-%m-%d %H:%M} UTC.\n\nWaiting for you:\n" + "\n".join(lines) + "\n\n"
            "Items still waiting at the deadline go to the administrators.\n"
        )
        sent += mail.send([lead.email], f'Access review "{campaign.name}" {what}', body)
    return sent


def _mail_admins(campaign: ReviewCampaign, by_team: Counter[str]) -> int:
    admins = User.objects.filter(is_active=True, is_superuser=True).exclude(email="").values_list("email", flat=True)
    lines = [f"  {team or 'administrators'}: {count}" for team, count in sorted(by_team.items())[:50]]
    if len(by_team) > 50:
        lines.append(f"  ... and {len(by_team) - 50} more teams")
    body = (
        f'Access review "{campaign.name}" passed its deadline ({campaign.deadline:%Y-%m-%d %H:%M} UTC) with '
        f"{sum(by_team.values())} item(s) unanswered. They now wait for the administrators:\n"
        + "\n".join(lines)
        + f"\n\nThe escalated items: {_link(campaign)}?state=escalated\n"
    )
    return mail.send(list(admins), f'Access review "{campaign.name}" escalated', body)


# --- Evidence ------------------------------------------------------------------------------


def evidence_lines(campaign: ReviewCampaign, fmt: str, context: AuditContext) -> Iterator[str]:
    """Record the export (``review.export``), then every item as CSV or JSONL, read in chunks."""
    if fmt not in FORMATS:
        raise ValidationError({"format": f"{fmt[:20]!r} is not an export format; use csv or jsonl."})
    with transaction.atomic():
        record_change(context, "review.export", _label(campaign), after={"format": fmt})
    rows = _evidence_rows(campaign)
    if fmt == "csv":
        return csv_table(EVIDENCE_FIELDS, ([row[f] for f in EVIDENCE_FIELDS] for row in rows))
    return (json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def _evidence_rows(campaign: ReviewCampaign) -> Iterator[dict[str, Any]]:
    items = campaign.items.order_by("team_name", "kind", "subject", "pattern", "id")
    for item in items.iterator(chunk_size=2000):
        row = {"campaign_id": campaign.pk, "campaign": campaign.name, "item_id": item.pk, **_evidence(item)}
        yield {field: row[field] for field in EVIDENCE_FIELDS}


def _evidence(item: ReviewItem) -> dict[str, Any]:
    return {
        "team": item.team_name or ADMINS,
        "kind": item.kind,
        "subject": item.subject,
        "pattern": item.pattern,
        "registry": item.registry,
        "role": item.role,
        "last_used": _time(item.last_used),
        "decision": item.decision or "waiting",
        "decided_by": item.decided_by_name,
        "decided_at": _time(item.decided_at),
        "escalated_at": _time(item.escalated_at),
        "note": item.note,
    }


def _time(value: datetime | None) -> str | None:
    return rfc3339(value) if value else None


def _label(campaign: ReviewCampaign) -> str:
    return f"review {campaign.name} (#{campaign.pk})"


def _target(item: ReviewItem) -> str:
    return f"{_describe(item)} in review #{item.campaign_id}"


def _describe(item: ReviewItem) -> str:
    if item.kind == ReviewItemKind.GRANT:
        where = f" on {item.registry}" if item.registry else ""
        return f"{item.role} on {item.pattern}{where} to {item.subject}"
    if item.kind == ReviewItemKind.MEMBERSHIP:
        return f"{item.subject}'s membership of team {item.team_name} ({item.role})"
    return f"robot {item.subject}"
