"""Reminders by mail: before a grant, robot or personal access token expires, and when a robot's secret is old.

``send_stale_robot_secrets`` tells a team's leads once per secret that a robot's secret is older than
``ROBOT_SECRET_MAX_AGE_DAYS`` (pages list those robots every day). ``send_due`` is the expiry part,
``EXPIRY_REMINDER_DAYS`` before something expires:

Who is told, and where the mail says to extend it (absolute links from ``PUBLIC_URL``):

- a grant: its user (a team grant: the team's leads), and the leads of the team that manages it;
  the link is the managing team's page, or the grants page, where an admin extends it;
- a robot: nobody but its team's leads (a robot reads no mail), linked to the team page; a global
  robot has no team, so its admins are told, linked to the robots page;
- a personal access token: its user only, linked to their token page.

Each expiry is reminded once: an ``ExpiryReminder`` row per (kind, id, expiry) is claimed before the
mail goes (its unique constraint settles two runs at once), so extending the expiry makes a new
reminder due. When nobody could be mailed because the mail server refused, the claim is dropped and
the next run tries again. Inactive people, revoked credentials and what they hold are skipped. No
mail carries a secret: only names, patterns, roles and times.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from accounts.models import ExpiryReminder, Grant, Membership, PersonalAccessToken, Robot, TeamRole, User
from registryadmin import mail

IN_CHUNK = 900


@dataclass(frozen=True)
class Due:
    """One reminder to send: what expires, when, who is told and where to extend it."""

    kind: str  # grant | robot | token | robot_secret (then ``expires_at`` is when the secret was set)
    object_id: int
    expires_at: datetime
    what: str
    recipients: tuple[str, ...]
    link: str
    who_extends: str


def send_due(*, now: datetime | None = None) -> dict[str, int]:
    """Mail every reminder due now and not sent yet for that expiry; the counts go into the job result."""
    now = now or timezone.now()
    counts = {"sent": 0, "reminders": 0, "nobody_to_tell": 0, "not_delivered": 0}
    for due in _not_yet_sent(list(due_reminders(now))):
        claim = _claim(due, now)
        if claim is None:
            continue  # another run sent it
        sent = mail.send(due.recipients, f"{due.what} expires {_when(due.expires_at)}", _body(due, now))
        if due.recipients and not sent:
            claim.delete()  # the server refused every copy: the next run tries again
            counts["not_delivered"] += 1
            continue
        ExpiryReminder.objects.filter(pk=claim.pk).update(recipients=sent)
        counts["reminders"] += 1
        counts["sent"] += sent
        counts["nobody_to_tell"] += not due.recipients
    return counts


def stale_robots(now: datetime, team_ids: Iterable[int] | None = None, *, limit: int | None = None) -> list[Robot]:
    """Active robots whose secret is older than ``ROBOT_SECRET_MAX_AGE_DAYS`` (those teams' only, if given)."""
    robots = Robot.objects.with_state(now).filter(
        state="active", secret_set_at__lt=now - timedelta(days=settings.ROBOT_SECRET_MAX_AGE_DAYS)
    )
    if team_ids is not None:
        robots = robots.filter(team_id__in=list(team_ids))
    robots = robots.select_related("team").order_by("secret_set_at", "pk")
    return list(robots[:limit] if limit is not None else robots)


def send_stale_robot_secrets(*, now: datetime | None = None) -> dict[str, int]:
    """Tell each team's leads (a global robot: the admins) once per secret that it is past its age.

    The reminder is kept per secret (its ``secret_set_at``), so a rotation makes the next one due
    when the new secret ages in its turn.
    """
    now = now or timezone.now()
    robots = stale_robots(now)
    leads, admins = _lead_addresses({r.team_id for r in robots}), _admin_addresses()
    counts = {"stale": len(robots), "reminders": 0, "sent": 0, "not_delivered": 0}
    for due in _not_yet_sent([_stale_due(robot, leads, admins) for robot in robots]):
        claim = _claim(due, now)
        if claim is None:
            continue
        age = (now - due.expires_at).days
        body = (
            f"{due.what} has had the same secret for {age} days (since {_when(due.expires_at)}); the limit is "
            f"{settings.ROBOT_SECRET_MAX_AGE_DAYS} days.\n\n"
            f"{due.who_extends}: the new secret is shown once, and the old one keeps working for a grace period "
            f"(24 hours unless you choose) while you replace it in CI and on deploy hosts:\n{due.link}\n"
        )
        sent = mail.send(due.recipients, f"{due.what}: rotate its secret", body)
        if due.recipients and not sent:
            claim.delete()
            counts["not_delivered"] += 1
            continue
        ExpiryReminder.objects.filter(pk=claim.pk).update(recipients=sent)
        counts["reminders"] += 1
        counts["sent"] += sent
    return counts


def _stale_due(robot: Robot, leads: dict[int, list[str]], admins: Iterable[str]) -> Due:
    if robot.team_id is None:
        told, link, who = admins, _url("robots:list"), "An administrator rotates it on the robots page"
    else:
        told, link = leads.get(robot.team_id, []), _url("teams:detail", name=robot.team.name)
        who = f"Team {robot.team.name}'s leads rotate it on the team page"
    what = f"Robot {robot.login_name}"
    return Due("robot_secret", robot.pk, robot.secret_set_at, what, _addresses(told), link, who)


def due_reminders(now: datetime) -> Iterator[Due]:
    """Everything that expires within ``EXPIRY_REMINDER_DAYS`` and still counts, with its recipients."""
    horizon = now + timedelta(days=settings.EXPIRY_REMINDER_DAYS)
    window = {"expires_at__gt": now, "expires_at__lte": horizon}
    grants = list(
        Grant.objects.filter(**window)
        .filter(Q(user__isnull=True) | Q(user__is_active=True))
        .filter(Q(robot__isnull=True) | Q(robot__revoked_at__isnull=True))
        .select_related("user", "team", "robot__team", "registry", "managed_by")
        .order_by("expires_at", "pk")
    )
    robots = list(Robot.objects.filter(**window, revoked_at__isnull=True).select_related("team").order_by("pk"))
    tokens = PersonalAccessToken.objects.filter(**window, revoked_at__isnull=True, user__is_active=True)
    leads = _lead_addresses(
        {g.managed_by_id for g in grants} | {g.team_id for g in grants} | {r.team_id for r in robots}
    )
    for grant in grants:
        yield _grant_due(grant, leads)
    admins = _admin_addresses() if any(robot.team_id is None for robot in robots) else ()
    for robot in robots:
        yield _robot_due(robot, leads, admins)
    for token in tokens.select_related("user").order_by("pk"):
        yield Due(
            "token",
            token.pk,
            token.expires_at,
            f"Personal access token {token.name} of {token.user.username}",
            _addresses([token.user.email]),
            _url("tokens:list"),
            "You make a new token",
        )


def _grant_due(grant: Grant, leads: dict[int, list[str]]) -> Due:
    told = [grant.user.email] if grant.user_id else leads.get(grant.team_id, [])
    told = [*told, *leads.get(grant.managed_by_id, [])]
    where = f" on {grant.registry.service}" if grant.registry_id else ""
    what = f"Grant {grant.role} on {grant.pattern}{where} to {grant.subject_label}"
    if grant.managed_by_id and grant.team_id != grant.managed_by_id:
        link, who = _url("teams:detail", name=grant.managed_by.name), f"Team {grant.managed_by.name}'s leads extend it"
    else:
        link, who = (
            _url("grants:list") + "?" + urlencode({"pattern": grant.pattern, "state": "expiring"}),
            "An administrator extends it",
        )
    return Due("grant", grant.pk, grant.expires_at, what, _addresses(told), link, who)


def _robot_due(robot: Robot, leads: dict[int, list[str]], admins: Iterable[str]) -> Due:
    if robot.team_id is None:
        return Due(
            "robot",
            robot.pk,
            robot.expires_at,
            f"Robot {robot.login_name}",
            _addresses(admins),
            _url("robots:list"),
            "An administrator replaces it",
        )
    return Due(
        "robot",
        robot.pk,
        robot.expires_at,
        f"Robot {robot.login_name}",
        _addresses(leads.get(robot.team_id, [])),
        _url("teams:detail", name=robot.team.name),
        f"Team {robot.team.name}'s leads replace it",
    )


def _lead_addresses(team_ids: set[int | None]) -> dict[int, list[str]]:
    """Per team, its active leads' addresses (auditors lead nothing)."""
    found: dict[int, list[str]] = defaultdict(list)
    leads = (
        Membership.objects.filter(team_id__in=team_ids - {None}, role=TeamRole.MAINTAINER, user__is_active=True)
        .exclude(user__email="")
        .exclude(user__is_auditor=True, user__is_superuser=False)
        .values_list("team_id", "user__email")
    )
    for team_id, address in leads:
        found[team_id].append(address)
    return found


def _admin_addresses() -> list[str]:
    return list(
        User.objects.filter(is_active=True, is_superuser=True).exclude(email="").values_list("email", flat=True)
    )


def _addresses(raw: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted({address.strip() for address in raw if address and address.strip()}))


def _not_yet_sent(due: list[Due]) -> list[Due]:
    """Drop the reminders already sent for that very expiry (one query per 900 expiry times)."""
    times = sorted({d.expires_at for d in due})
    sent: set[tuple[str, int, datetime]] = set()
    for start in range(0, len(times), IN_CHUNK):  # SQLite binds at most 999 parameters a statement
        found = ExpiryReminder.objects.filter(expires_at__in=times[start : start + IN_CHUNK])
        sent.update(found.values_list("kind", "object_id", "expires_at"))
    return [d for d in due if (d.kind, d.object_id, d.expires_at) not in sent]


def _claim(due: Due, now: datetime) -> ExpiryReminder | None:
    try:
        with transaction.atomic():
            return ExpiryReminder.objects.create(
                kind=due.kind, object_id=due.object_id, expires_at=due.expires_at, sent_at=now
            )
    except IntegrityError:
        return None


def _body(due: Due, now: datetime) -> str:
    days = max((due.expires_at - now).days, 0)
    return (
        f"{due.what} expires on {_when(due.expires_at)} (in {days} day{'s' if days != 1 else ''}).\n"
        "After that it gives nothing.\n\n"
        f"{due.who_extends} here if it is still needed:\n{due.link}\n"
    )


def _when(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def _url(view: str, **kwargs: str) -> str:
    return settings.PUBLIC_URL.rstrip("/") + reverse(view, kwargs=kwargs or None)
