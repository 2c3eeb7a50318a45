"""Where an audit record's "who" links to: the dashboard page of the person or robot, if it still exists.

A user (or a personal access token, by its owner) links to the person's page, a robot to its
access page; a name whose account is gone (or a system actor) stays plain text. Records freeze
the name, so the lookup is by name: one query (a UNION of users and robots) for every actor on a
page, however many records it shows.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Q, Value
from django.db.models.functions import Coalesce
from django.urls import reverse

from accounts.constants import ROBOT_LOGIN_PREFIX
from accounts.models import Robot, User
from audit.models import AuditRecord, SubjectType

# Subjects whose actor names a person: the user themselves, or the owner of the token used.
PERSON_SUBJECTS = frozenset({SubjectType.USER, SubjectType.TOKEN})


def is_robot(record: AuditRecord) -> bool:
    # Registry events name the token's subject without saying it was a robot: the prefix does.
    return record.subject_type == SubjectType.ROBOT or record.actor.startswith(ROBOT_LOGIN_PREFIX)


def actor_links(records: Iterable[AuditRecord]) -> dict[int, str]:
    """Record id -> the dashboard URL of its actor, for the records whose actor still exists."""
    records = [record for record in records if record.actor]
    robots = {record.actor for record in records if is_robot(record)}
    people = {record.actor for record in records if not is_robot(record) and record.subject_type in PERSON_SUBJECTS}
    found_people, found_robots = _existing(people, robots)
    links: dict[int, str] = {}
    for record in records:
        if is_robot(record) and record.actor in found_robots:
            links[record.pk] = reverse("access:robot", args=[record.actor])
        elif not is_robot(record) and record.actor in found_people:
            links[record.pk] = reverse("users:detail", args=[record.actor])
    return links


def _existing(people: set[str], robots: set[str]) -> tuple[set[str], set[str]]:
    """Which of these usernames and robot logins exist today: one query (a UNION) for both."""
    parts = []
    if people:
        parts.append(
            User.objects.filter(username__in=people)
            .order_by()
            .annotate(team_name=Value(""), what=Value("user"))
            .values_list("username", "team_name", "what")
        )
    if robots:
        parts.append(
            Robot.objects.filter(_robot_condition(robots))
            .order_by()
            .annotate(team_name=Coalesce("team__name", Value("")), what=Value("robot"))
            .values_list("name", "team_name", "what")
        )
    if not parts:
        return set(), set()
    rows = parts[0].union(*parts[1:], all=True) if len(parts) > 1 else parts[0]
    found_people, found_robots = set(), set()
    for name, team, what in rows:
        if what == "user":
            found_people.add(name)
        else:
            found_robots.add(f"{ROBOT_LOGIN_PREFIX}{team}+{name}" if team else f"{ROBOT_LOGIN_PREFIX}{name}")
    return found_people, found_robots


def _robot_condition(logins: set[str]) -> Q:
    """Robots by login: ``robot$web+ci`` (team web) or ``robot$ci`` (global)."""
    condition = Q()
    for login in logins:
        team, plus, name = login.removeprefix(ROBOT_LOGIN_PREFIX).rpartition("+")
        condition |= Q(name=name, team__name=team) if plus else Q(name=name, team__isnull=True)
    return condition
