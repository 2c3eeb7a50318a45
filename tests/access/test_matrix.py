"""Who can access X: every user and robot with actions and reasons, from the token endpoint's engine."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts import services
from accounts.access.engine import allowed_actions, decide
from accounts.access.matrix import who_can_access
from accounts.access.patterns import pattern_matches
from accounts.access.subjects import subject_for_robot, subject_for_user
from accounts.constants import ACTIONS
from accounts.models import Grant, Robot, Team, User
from tests.conftest import SYSTEM, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(web: Team, carol: User, ada: User, dave: User) -> None:
    services.create_grant(web, "web/**", "write", context=SYSTEM)
    services.create_grant(carol, "web/app", "read", context=SYSTEM)
    services.create_grant(dave, "web/app", "admin", context=SYSTEM)  # inactive: nothing
    erin = make_user("erin")
    services.create_grant(erin, "web/app", "admin", expires_at=timezone.now() - timedelta(seconds=1), context=SYSTEM)
    services.create_robot(web, "ci", grants=[("web/app", "write")], context=SYSTEM)


def test_it_lists_every_subject_with_actions_and_reasons(world: None) -> None:
    matrix = who_can_access("web/app", "registry")
    rows = {(row.kind, row.name): row for row in matrix.rows}
    assert {name: rows[name].actions for name in rows} == {
        ("user", "ada"): ("pull", "push", "delete"),
        ("user", "alice"): ("pull", "push"),
        ("user", "bob"): ("pull", "push"),
        ("user", "carol"): ("pull",),
        ("robot", "robot$web+ci"): ("pull", "push"),
    }
    assert any("team web" in text for text in rows[("user", "bob")].reasons)


def test_it_agrees_with_the_token_endpoint_engine(world: None, carol: User) -> None:
    services.create_grant(carol, "api/**", "admin", context=SYSTEM)  # selects nothing here: no reason either
    services.create_grant(
        carol, "web/*", "write", registry=services.create_registry("mirror", context=SYSTEM), context=SYSTEM
    )
    now = timezone.now()
    rows = [row for row in who_can_access("web/app", "registry", now=now).rows if row.kind == "user"]
    assert len(rows) == 4
    for row in rows:
        subject = subject_for_user(User.objects.get(username=row.name))
        held = allowed_actions(subject, "web/app", registry="registry", public=False, now=now)
        assert set(row.actions) == held
        decision = decide(subject, "web/app", registry="registry", public=False, now=now)
        assert sorted(row.reasons) == sorted(reason.text for reason in decision.reasons)
    carol_reasons = next(row.reasons for row in rows if row.name == "carol")
    assert any("mirror" in text for text in carol_reasons)


def test_the_query_count_does_not_grow_with_the_number_of_users(world: None, django_assert_max_num_queries) -> None:
    web = Team.objects.get(name="web")
    for i in range(30):
        services.set_membership(web, make_user(f"member{i}"), "member", context=SYSTEM)
    with django_assert_max_num_queries(10):
        matrix = who_can_access("web/app", "registry")
    assert len(matrix.rows) == 35


PATTERNS = ["**", "**/app", "*/app", "w*/app", "web/*", "web/a*", "web/*p", "web/app", "web/a*p", "web/**"]
MISSES = ["webx/*", "web/a*p/**", "web/app/**", "web", "we*", "api/**", "*", "web/b*", "*/*/app", "web/app*/x"]


def test_every_pattern_that_selects_the_repository_counts_and_no_other(carol: User) -> None:
    for n, pattern in enumerate(PATTERNS + MISSES):
        services.create_grant(make_user(f"holder{n}"), pattern, "read", context=SYSTEM)
    names = {row.name for row in who_can_access("web/app", "registry").rows}
    expected = {f"holder{n}" for n, pattern in enumerate(PATTERNS + MISSES) if pattern_matches(pattern, "web/app")}
    assert expected == {f"holder{n}" for n in range(len(PATTERNS))}  # the lists above say what the engine says
    assert names == expected


def _add_robots(start: int, stop: int) -> None:
    """Robots ``bot<start>``..``bot<stop-1>`` with admin on web/app, spread over five teams.

    The teams held admin on web/** when the robots were made; since then crew0 kept only
    read and crew1 write (their robots' ceilings), and each team has an expired grant that
    must not count as a ceiling.
    """
    Grant.objects.filter(team__name__startswith="crew", pattern="web/**").update(role="admin")
    for n in range(start, stop):
        team, created = Team.objects.get_or_create(name=f"crew{n % 5}")
        if created:
            services.create_grant(team, "web/**", "admin", context=SYSTEM)
            Grant.objects.create(team=team, pattern="web/app", role="admin", expires_at=timezone.now() - timedelta(1))
        services.create_robot(team, f"bot{n}", grants=[("web/app", "admin")], context=SYSTEM)
    for name, role in (("crew0", "read"), ("crew1", "write")):
        Grant.objects.filter(team__name=name, pattern="web/**").update(role=role)


def _query_count(repository: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        who_can_access(repository, "registry")
    return len(queries)


def test_robot_rows_agree_with_the_token_endpoint_engine(world: None) -> None:
    _add_robots(0, 10)
    services.create_robot(None, "global", grants=[("web/*", "write")], context=SYSTEM)
    old, _ = services.create_robot(None, "old", grants=[("web/app", "read")], context=SYSTEM)
    Robot.objects.filter(pk=old.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    now = timezone.now()
    rows = {row.name: row for row in who_can_access("web/app", "registry", now=now).rows if row.kind == "robot"}
    expected = {}
    for robot in Robot.objects.select_related("team"):
        decision = decide(subject_for_robot(robot), "web/app", registry="registry", public=False, now=now)
        if decision.actions and not robot.refusal(now):
            actions = tuple(a for a in ACTIONS if a in decision.actions)
            expected[robot.login_name] = (actions, tuple(reason.text for reason in decision.reasons))
    assert {name: (row.actions, row.reasons) for name, row in rows.items()} == expected
    assert rows["robot$crew0+bot0"].actions == ("pull",)  # capped by crew0's read
    assert rows["robot$crew1+bot1"].actions == ("pull", "push")
    assert rows["robot$crew2+bot2"].actions == ("pull", "push", "delete")
    assert "robot$global" in rows and "robot$old" not in rows


def test_the_query_count_does_not_grow_with_the_number_of_robots(world: None) -> None:
    Robot.objects.all().delete()
    _add_robots(0, 1)
    with_one = _query_count("web/app")
    _add_robots(1, 30)
    with_thirty = _query_count("web/app")
    robots = [row for row in who_can_access("web/app", "registry").rows if row.kind == "robot"]
    assert len(robots) == 30
    assert with_thirty == with_one


def test_it_answers_for_the_longest_repository_name(carol: User) -> None:
    name = "a/" * 127 + "a"  # 255 characters: a candidate condition per prefix, 257 in all
    services.create_grant(carol, "a/**", "read", context=SYSTEM)
    assert [row.name for row in who_can_access(name, "registry").rows] == ["carol"]


def test_a_corrupt_stored_pattern_selects_nothing_instead_of_breaking_the_answer(carol: User) -> None:
    Grant.objects.create(user=carol, pattern="web/a*A", role="admin")  # bypasses the validators on purpose
    services.create_grant(carol, "web/*", "read", context=SYSTEM)
    assert [(row.name, row.actions) for row in who_can_access("web/app", "registry").rows] == [("carol", ("pull",))]


def test_a_member_of_several_teams_gets_the_engines_answer_from_the_matching_ones(world: None, carol: User) -> None:
    """Subjects here name only the teams holding a matching grant; the engine must not notice."""
    ops = services.create_team("ops", context=SYSTEM)
    services.create_grant(ops, "ops/**", "admin", context=SYSTEM)
    services.create_grant(ops, "web/app", "read", expires_at=timezone.now() - timedelta(days=1), context=SYSTEM)
    for team in (ops, Team.objects.get(name="web")):
        services.set_membership(team, carol, "member", context=SYSTEM)
    now = timezone.now()
    row = next(row for row in who_can_access("web/app", "registry", now=now).rows if row.name == "carol")
    decision = decide(subject_for_user(carol), "web/app", registry="registry", public=False, now=now)
    assert row.actions == tuple(a for a in ACTIONS if a in decision.actions) == ("pull", "push")
    assert sorted(row.reasons) == sorted(reason.text for reason in decision.reasons)
    assert any("expired" in text for text in row.reasons)  # ops's expired grant is still explained
