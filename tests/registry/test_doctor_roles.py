"""The doctor's ``roles`` check: the engine's decision, its reasons (the "why denied" text) and who can change it.

alice leads team web (write on web/**), bob is a member, carol is an outsider, dave is inactive,
ada is the admin. No registry is probed: the check only asks the engine.
"""

from __future__ import annotations

import html

import pytest
from django.conf import settings
from django.test import Client

from accounts import services
from accounts.models import AuthMode, Registry, Team, User
from accounts.registry.doctor import State, Target
from accounts.registry.doctor.checks import roles
from tests.conftest import SYSTEM

pytestmark = pytest.mark.django_db


@pytest.fixture
def registry(web: Team, ada: User, carol: User) -> Registry:
    services.create_grant(web, "web/**", "write", context=SYSTEM)
    return services.create_registry("registry", url="http://127.0.0.1:5000", context=SYSTEM)


def ask(registry: Registry, user: str = "", repository: str = "", action: str = "pull") -> roles.Check:
    target = Target(registry, registry.url, registry.url, user=user, repository=repository, action=action)
    return roles.check(target, State())


def test_it_skips_without_a_question(registry: Registry) -> None:
    assert ask(registry).status == "skip"
    assert ask(registry, user="bob").status == "skip"


def test_it_is_ok_when_the_engine_allows_it_and_says_why(registry: Registry) -> None:
    found = ask(registry, "bob", "web/app", "push")
    assert found.status == "ok"
    assert found.summary == "bob push web/app on registry: allowed"
    assert "reason: write on web/** through team web grants pull, push" in found.evidence
    assert not found.fix


def test_it_fails_for_a_user_without_the_role_and_names_who_can_change_it(registry: Registry) -> None:
    found = ask(registry, "carol", "web/app", "push")
    assert found.status == "fail" and found.summary.endswith("denied")
    assert "push needs write" in found.evidence[1]
    assert "reason: carol holds no grant matching web/app" in found.evidence
    assert "who can change it: team leads of web are alice (team web holds write on web/**)" in found.evidence
    assert "who can change it: administrators: ada" in found.evidence
    assert found.fix[0] == f"a lead of team web (alice) adds carol to team web at {settings.PUBLIC_URL}/teams/web/"
    assert found.fix[1] == (
        f"or an administrator grants it at {settings.PUBLIC_URL}/manage/grants/new: give to carol, "
        "pattern web/app, role write, registry registry"
    )
    assert found.fix[2].startswith(f"the same answer, explained: {settings.PUBLIC_URL}/access/why?user=carol")


def test_a_team_whose_role_is_too_weak_is_not_offered(registry: Registry, web: Team) -> None:
    found = ask(registry, "carol", "web/app", "delete")
    assert found.status == "fail"
    assert not any("adds carol to team web" in line for line in found.fix)
    assert "role admin" in found.fix[0]


def test_its_reasons_are_the_why_denied_pages_text(registry: Registry, ada: User) -> None:
    client = Client()
    client.force_login(ada)
    page = html.unescape(
        client.get("/access/why", {"user": "carol", "scope": "web/app", "action": "push"}).content.decode()
    )
    found = ask(registry, "carol", "web/app", "push")
    reasons = [line.removeprefix("reason: ") for line in found.evidence if line.startswith("reason: ")]
    assert reasons and all(reason in page for reason in reasons)
    assert found.evidence[1] in page  # "push needs write; ..."


def test_an_unknown_user_fails_naming_it(registry: Registry) -> None:
    found = ask(registry, "zed", "web/app", "pull")
    assert found.status == "fail"
    assert "'zed'" in found.summary
    assert "zed" in found.fix[0]


def test_an_invalid_repository_name_fails(registry: Registry) -> None:
    found = ask(registry, "bob", "Web//App", "pull")
    assert found.status == "fail" and "repository" in found.fix[0]


def test_an_inactive_user_fails_even_in_htpasswd_mode(registry: Registry, dave: User) -> None:
    services.update_registry(registry, auth_mode=AuthMode.HTPASSWD, context=SYSTEM)
    registry.refresh_from_db()
    found = ask(registry, "dave", "web/app", "pull")
    assert found.status == "fail"
    assert "inactive" in found.evidence[1]


def test_in_htpasswd_mode_a_missing_role_is_a_warning(registry: Registry, carol: User) -> None:
    services.update_registry(registry, auth_mode=AuthMode.HTPASSWD, context=SYSTEM)
    registry.refresh_from_db()
    found = ask(registry, "carol", "web/app", "push")
    assert found.status == "warn" and "does not enforce roles" in found.summary
    assert found.fix[0] == "switch registry registry to token mode to enforce grants"


def test_a_robot_that_cannot_sign_in_fails_with_its_refusal(registry: Registry, web: Team) -> None:
    robot = services.create_robot(web, "ci", context=SYSTEM)[0]
    services.revoke_robot(robot, context=SYSTEM)
    found = ask(registry, "robot$web+ci", "web/app", "pull")
    assert found.status == "fail" and "cannot sign in" in found.summary
