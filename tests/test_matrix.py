"""Who can access X: every user and robot with actions and reasons, from the token endpoint's engine."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts import services
from accounts.matrix import who_can_access
from accounts.models import Team, User
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


def test_it_agrees_with_the_token_endpoint_engine(world: None) -> None:
    from accounts.access import subject_for_user
    from accounts.permissions import allowed_actions

    for row in who_can_access("web/app", "registry").rows:
        if row.kind == "user":
            subject = subject_for_user(User.objects.get(username=row.name))
            held = allowed_actions(subject, "web/app", registry="registry", public=False, now=timezone.now())
            assert set(row.actions) == held


def test_the_query_count_does_not_grow_with_the_number_of_users(world: None, django_assert_max_num_queries) -> None:
    web = Team.objects.get(name="web")
    for i in range(30):
        services.set_membership(web, make_user(f"member{i}"), "member", context=SYSTEM)
    with django_assert_max_num_queries(10):
        matrix = who_can_access("web/app", "registry")
    assert len(matrix.rows) == 35
