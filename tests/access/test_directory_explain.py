"""Access that comes through a directory group says so: "who can access", "why denied", a user's access.

Team web holds write on web/*; it takes members from cn=web-devs (member). dora is in web only through
the group; bob is a local member who is also in the group; alice leads web locally and is in the group
too (member). carol has no team. ada is the admin, audrey the auditor.
"""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts import services
from accounts.access.explain import answer, refused_scopes, teams_granting
from accounts.access.matrix import membership_text, who_can_access
from accounts.access.subjects import subject_for_user
from accounts.models import Registry, Team, User
from accounts.services.directory import apply_groups, load_mappings
from tests.conftest import SYSTEM

pytestmark = pytest.mark.django_db

WEB_DEVS = "cn=web-devs,ou=groups,dc=example,dc=org"
VIA_GROUP = f"through team web (member via directory group {WEB_DEVS})"


def join_groups(user: User, *groups: str) -> None:
    apply_groups(user, set(groups), SYSTEM, mappings=load_mappings())


def directory_user(username: str) -> User:
    user = services.create_user(username, context=SYSTEM)
    User.objects.filter(pk=user.pk).update(directory_dn=f"uid={username},ou=people,dc=example,dc=org")
    return User.objects.get(pk=user.pk)


@pytest.fixture
def world(web: Team, alice: User, bob: User, carol: User, ada: User, audrey: User) -> Registry:
    registry = services.create_registry("registry", context=SYSTEM)
    services.create_grant(web, "web/*", "write", context=SYSTEM)
    services.directory.set_directory_groups(web, [(WEB_DEVS, "member")], context=SYSTEM)
    for user in (directory_user("dora"), bob, alice):
        join_groups(user, WEB_DEVS)
    return registry


def reasons_of(name: str) -> tuple[str, ...]:
    return next(row.reasons for row in who_can_access("web/app", "registry").rows if row.name == name)


# --- the words ----------------------------------------------------------------------------------


def test_the_text_names_the_group_and_only_the_roles_that_differ() -> None:
    assert membership_text("member", "", [(WEB_DEVS, "member")]) == f"member via directory group {WEB_DEVS}"
    assert membership_text("maintainer", "maintainer", [(WEB_DEVS, "member")]) == (
        f"maintainer locally and via directory group {WEB_DEVS} (member)"
    )
    assert membership_text("maintainer", "", [("cn=a", "maintainer"), ("cn=b", "member")]) == (
        "maintainer via directory group cn=a and via directory group cn=b (member)"
    )


# --- who can access --------------------------------------------------------------------------------


def test_who_can_access_says_a_member_gets_it_through_the_directory_group(world) -> None:
    assert any(VIA_GROUP in reason for reason in reasons_of("dora"))


def test_who_can_access_names_every_source_of_a_local_and_directory_member(world) -> None:
    assert any(
        f"through team web (maintainer locally and via directory group {WEB_DEVS} (member))" in reason
        for reason in reasons_of("alice")
    )
    assert any(f"through team web (member locally and via directory group {WEB_DEVS})" in r for r in reasons_of("bob"))


def test_a_plain_local_membership_keeps_the_engines_words(world, carol: User, web: Team) -> None:
    services.set_membership(web, carol, "member", context=SYSTEM)
    assert reasons_of("carol") == ("write on web/* through team web grants pull, push",)


def test_the_query_count_does_not_grow_with_directory_members(world, django_assert_max_num_queries) -> None:
    for n in range(30):
        join_groups(directory_user(f"dir{n}"), WEB_DEVS)
    with django_assert_max_num_queries(10):
        matrix = who_can_access("web/app", "registry")
    assert sum(1 for row in matrix.rows if VIA_GROUP in " ".join(row.reasons)) == 31


def test_the_teams_that_grant_list_their_directory_groups(world) -> None:
    (web,) = teams_granting("web/app", "registry")
    assert web.groups == (f"{WEB_DEVS} (member)",)
    assert web.groups_text == f"members of directory group {WEB_DEVS} (member) join the team"


# --- why denied ------------------------------------------------------------------------------------


def test_why_says_the_access_comes_through_the_directory_group(world) -> None:
    result = answer("dora", "repository:web/app:delete", "pull", "registry", {})
    assert result is not None and result.denied == ("delete",)
    assert any(VIA_GROUP in reason for reason in result.reasons)


def test_a_refused_attempt_explained_later_names_the_group(world) -> None:
    subject = subject_for_user(User.objects.get(username="dora"))
    scope = {"type": "repository", "name": "web/app", "requested": ["delete"], "granted": [], "denied": ["delete"]}
    (explained,) = refused_scopes(subject, [scope], "registry", timezone.now())
    assert any(VIA_GROUP in reason for reason in explained.reasons)


# --- the pages --------------------------------------------------------------------------------------


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_who_page_shows_the_group_behind_the_access(world, audrey: User) -> None:
    response = signed_in(audrey).get(reverse("access:who"), {"repository": "web/app", "registry": "registry"})
    body = response.content.decode()
    assert response.status_code == 200
    assert VIA_GROUP in body
    assert f"<code>{WEB_DEVS} (member)</code>" in body


def test_the_why_page_shows_the_group_and_that_joining_it_is_a_way_in(world, carol: User) -> None:
    response = signed_in(carol).get(reverse("access:why"), {"scope": "repository:web/app:push", "registry": "registry"})
    assert response.status_code == 200
    assert f"members of directory group {WEB_DEVS} (member) join the team" in response.content.decode()


def test_a_directory_members_own_why_page_says_so(world) -> None:
    dora = User.objects.get(username="dora")
    response = signed_in(dora).get(reverse("access:why"), {"scope": "repository:web/app:push"})
    assert response.status_code == 200
    assert VIA_GROUP in response.content.decode()


def test_a_users_access_page_says_how_they_are_in_each_team(world, ada: User) -> None:
    body = signed_in(ada).get(reverse("access:user", args=["dora"])).content.decode()
    assert f"Teams: web (member via directory group {WEB_DEVS})." in body
    body = signed_in(ada).get(reverse("access:user", args=["carol"])).content.decode()
    assert "Teams:" not in body
