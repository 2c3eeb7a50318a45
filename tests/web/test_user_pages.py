"""The user pages: auditors read every person; only admins create, change, reset and sign people out."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.contrib.sessions.models import Session
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts import services
from accounts.models import Grant, RefreshToken, Team, User
from accounts.services import new_refresh_token
from audit.context import AuditContext
from audit.models import AuditRecord, Kind
from audit.services import record
from tests.conftest import PASSWORD, SYSTEM, client_for, make_user

pytestmark = pytest.mark.django_db

PERSONAS = ("anonymous", "carol", "alice", "audrey", "ada")
STRONG = "plum-orbit-glacier-7"


@pytest.fixture
def world(ada: User, audrey: User, alice: User, bob: User, carol: User, dave: User, web: Team) -> dict[str, User]:
    """zoe has a name and email nobody outside the overseers may see, a grant, a token and a docker login."""
    zoe = make_user("zoe", email="zoe@hidden.example")
    zoe = services.update_user(zoe, first_name="Zoe", last_name="Quasar", context=SYSTEM)
    services.set_membership(web, zoe, "member", context=SYSTEM)
    services.create_grant(zoe, "zoe/private", "write", context=SYSTEM)
    services.create_grant(web, "web/**", "read", expires_at=timezone.now() + timedelta(days=2), context=SYSTEM)
    services.create_access_token(zoe, "laptop", read_only=True, patterns=["zoe/*"], context=SYSTEM)
    new_refresh_token(zoe, "registry", "docker")
    return {"ada": ada, "audrey": audrey, "alice": alice, "bob": bob, "carol": carol, "dave": dave, "zoe": zoe}


def url(name: str, username: str = "zoe") -> str:
    return reverse(f"users:{name}", kwargs={"username": username})


def edit_data(**changes: object) -> dict[str, object]:
    """What the edit form posts for zoe (unchecked boxes are simply absent)."""
    data: dict[str, object] = {"email": "zoe@hidden.example", "first_name": "Zoe", "last_name": "Quasar"}
    data.update({"is_active": "on", **changes})
    return {key: value for key, value in data.items() if value is not None}


GETS: dict[str, Callable[[], str]] = {
    "list": lambda: reverse("users:list"),
    "new": lambda: reverse("users:new"),
    "detail": lambda: url("detail"),
}
POSTS: dict[str, tuple[Callable[[], str], dict[str, object]]] = {
    "new": (lambda: reverse("users:new"), {"username": "newbie", "is_active": "on", "password": STRONG}),
    "edit": (lambda: url("edit"), edit_data(catalog_access="on")),
    "password": (lambda: url("password"), {"password": STRONG}),
    "revoke_refresh": (lambda: url("revoke_refresh"), {}),
}
GET_EXPECTED = {
    "list": {"anonymous": 302, "carol": 403, "alice": 403, "audrey": 200, "ada": 200},
    "new": {"anonymous": 302, "carol": 403, "alice": 403, "audrey": 403, "ada": 200},
    "detail": {"anonymous": 302, "carol": 403, "alice": 403, "audrey": 200, "ada": 200},
}
POST_EXPECTED = {"anonymous": 302, "carol": 403, "alice": 403, "audrey": 403, "ada": 302}


# --- who may do what ----------------------------------------------------------------


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("page", sorted(GETS))
def test_each_page_answers_each_persona_as_the_matrix_says(world, page: str, persona: str) -> None:
    response = client_for(persona, world).get(GETS[page]())
    assert response.status_code == GET_EXPECTED[page][persona]
    if persona == "anonymous":
        assert response["Location"].startswith(reverse("accounts:login"))


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("action", sorted(POSTS))
def test_each_change_answers_each_persona_as_the_matrix_says(world, action: str, persona: str) -> None:
    url_for, data = POSTS[action]
    before = AuditRecord.objects.filter(kind=Kind.ADMIN_CHANGE).count()
    response = client_for(persona, world).post(url_for(), data)
    assert response.status_code == POST_EXPECTED[persona]
    if persona == "anonymous":
        assert response["Location"].startswith(reverse("accounts:login"))
    if response.status_code != 302 or persona == "anonymous":
        assert AuditRecord.objects.filter(kind=Kind.ADMIN_CHANGE).count() == before


@pytest.mark.parametrize(
    ("url_for", "method"),
    [
        (GETS["list"], "post"),
        (GETS["detail"], "post"),
        (GETS["new"], "put"),
        *((url_for, "get") for name, (url_for, _data) in POSTS.items() if name != "new"),
    ],
)
def test_it_rejects_the_wrong_method(world, url_for: Callable[[], str], method: str) -> None:
    assert getattr(client_for("ada", world), method)(url_for()).status_code == 405


@pytest.mark.parametrize("page", ["list", "detail"])
def test_a_refused_page_shows_none_of_the_peoples_data(world, page: str) -> None:
    response = client_for("carol", world).get(GETS[page]())
    assert response.status_code == 403
    body = response.content.decode()
    for secret in ("zoe@hidden.example", "Quasar", "zoe/private", "laptop", "audrey"):
        assert secret not in body


def test_an_unknown_person_is_not_found_for_overseers_and_refused_for_others(world) -> None:
    assert client_for("audrey", world).get(url("detail", "nobody")).status_code == 404
    assert client_for("carol", world).get(url("detail", "nobody")).status_code == 403
    assert client_for("ada", world).post(url("edit", "nobody"), edit_data()).status_code == 404


def test_the_changes_need_a_csrf_token(world) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(world["ada"])
    assert client.post(url("revoke_refresh")).status_code == 403
    assert RefreshToken.objects.filter(user=world["zoe"], revoked_at__isnull=True).exists()


# --- the list -----------------------------------------------------------------------------


def usernames(response) -> list[str]:
    return [person.username for person in response.context["page"].object_list]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"q": "zoe"}, ["zoe"]),
        ({"q": "HIDDEN.example"}, ["zoe"]),
        ({"q": "zoe quasar"}, ["zoe"]),
        ({"q": "quasar nobody"}, []),
        ({"q": "alice@"}, ["alice"]),
        ({"role": "admin"}, ["ada"]),
        ({"role": "auditor"}, ["audrey"]),
        ({"role": "lead"}, ["alice"]),
        ({"role": "other"}, ["bob", "carol", "dave", "zoe"]),
        ({"active": "inactive"}, ["dave"]),
        ({"active": "active", "role": "other"}, ["bob", "carol", "zoe"]),
        ({}, ["ada", "alice", "audrey", "bob", "carol", "dave", "zoe"]),
    ],
)
def test_search_and_filters_narrow_the_list(world, query: dict[str, str], expected: list[str]) -> None:
    response = client_for("audrey", world).get(reverse("users:list"), query)
    assert response.status_code == 200
    assert usernames(response) == expected


@pytest.mark.parametrize("page", ["abc", "0", "-1", "9999", "1.5", ""])
def test_bad_page_numbers_give_a_page_not_an_error(world, page: str) -> None:
    response = client_for("ada", world).get(reverse("users:list"), {"page": page})
    assert response.status_code == 200
    assert "zoe" in usernames(response)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"role": "root"}, "Select a valid choice"),
        ({"active": "maybe"}, "Select a valid choice"),
        ({"q": "a\x00b"}, "Null characters are not allowed."),
        ({"q": "x" * 151}, "at most 150 characters"),
    ],
)
def test_a_bad_filter_is_a_400_that_says_why(world, query: dict[str, str], message: str) -> None:
    response = client_for("ada", world).get(reverse("users:list"), query)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert 'class="message error"' in response.content.decode()


def test_the_list_shows_roles_teams_sign_in_and_last_registry_use(world) -> None:
    zoe = world["zoe"]
    record(Kind.ACCESS, "granted", AuditContext.for_user(zoe), repository="zoe/private")
    used = AuditRecord.objects.latest("id").time
    record(Kind.ACCESS, "auth_failed", AuditContext(actor="zoe"))  # a guess at her name is not her use
    response = client_for("ada", world).get(reverse("users:list"))
    people = {person.username: person for person in response.context["page"].object_list}
    assert people["zoe"].last_request == used
    assert people["zoe"].team_count == 1 and people["alice"].is_lead and not people["bob"].is_lead
    assert people["carol"].last_request is None
    body = response.content.decode()
    assert 'href="/manage/users/zoe/"' in body and "zoe@hidden.example" in body and "Zoe Quasar" in body
    dave_row = body.split('href="/manage/users/dave/"')[1].split("</tr>")[0]
    assert "inactive" in dave_row
    ada_row = body.split('href="/manage/users/ada/"')[1].split("</tr>")[0]
    assert "admin" in ada_row


def test_only_admins_see_the_new_user_button(world) -> None:
    new = f'href="{reverse("users:new")}"'
    assert new in client_for("ada", world).get(reverse("users:list")).content.decode()
    assert new not in client_for("audrey", world).get(reverse("users:list")).content.decode()


def test_live_search_returns_only_the_results(world) -> None:
    response = client_for("ada", world).get(reverse("users:list"), {"q": "zoe"}, headers={"HX-Request": "true"})
    body = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in body and "zoe@hidden.example" in body and "carol" not in body
    assert "HX-Request" in response["Vary"]
    full = client_for("ada", world).get(reverse("users:list"), {"q": "zoe"}).content.decode()
    assert "<html" in full and 'id="results"' in full and 'hx-get="/manage/users/"' in full


def _add_people(count: int, start: int, web: Team) -> None:
    for n in range(start, start + count):
        person = make_user(f"p{n:03d}", email=f"p{n}@example.org")
        services.set_membership(web, person, "maintainer" if n % 2 else "member", context=SYSTEM)
        record(Kind.ACCESS, "granted", AuditContext.for_user(person))


def test_the_list_needs_the_same_queries_for_5_or_50_people(world) -> None:
    web = Team.objects.get(name="web")
    client = client_for("ada", world)
    _add_people(5, 0, web)
    with CaptureQueriesContext(connection) as few:
        assert len(usernames(client.get(reverse("users:list")))) == 12
    _add_people(45, 5, web)
    with CaptureQueriesContext(connection) as many:
        response = client.get(reverse("users:list"))
    assert len(usernames(response)) == 50  # a full page
    assert len(many) == len(few)


# --- creating people -------------------------------------------------------------------------


def test_an_admin_creates_a_user_with_a_typed_password(world) -> None:
    data = {
        "username": "newbie",
        "email": "newbie@example.org",
        "first_name": "New",
        "last_name": "Bie",
        "is_auditor": "on",
        "is_active": "on",
        "password": STRONG,
    }
    response = client_for("ada", world).post(reverse("users:new"), data, follow=True)
    assert response.redirect_chain[-1][0] == url("detail", "newbie")
    assert "Created user newbie." in response.content.decode()
    newbie = User.objects.get(username="newbie")
    assert (newbie.get_full_name(), newbie.is_auditor, newbie.is_superuser) == ("New Bie", True, False)
    assert newbie.check_password(STRONG)
    created = AuditRecord.objects.get(kind=Kind.ADMIN_CHANGE, detail__action="user.create", detail__target="newbie")
    assert created.actor == "ada" and STRONG not in str(created.detail)
    assert created.detail["after"]["first_name"] == "New"  # one record holds the whole new user
    assert not AuditRecord.objects.filter(detail__action="user.update", detail__target="newbie").exists()


def test_an_empty_password_is_generated_and_shown_exactly_once(world) -> None:
    client = client_for("ada", world)
    response = client.post(reverse("users:new"), {"username": "newbie", "is_active": "on"})
    assert response.status_code == 200
    password = response.context["password"]
    body = response.content.decode()
    assert f"<code data-secret>{password}</code>" in body and "shown only this once" in body and "safely" in body
    assert "no-store" in response["Cache-Control"]
    assert User.objects.get(username="newbie").check_password(password)
    assert len(password) >= 20
    _assert_nowhere_but_that_response(client, response, password)
    assert password not in client.get(url("detail", "newbie")).content.decode()


def _assert_nowhere_but_that_response(client: Client, response, secret: str) -> None:
    """Once in the page; not in a message, the session, a cookie or the audit log."""
    assert response.content.decode().count(secret) == 1
    assert all(secret not in str(message) for message in response.context["messages"])
    for session in Session.objects.all():
        assert secret not in str(session.get_decoded())
    assert all(secret not in morsel.value for morsel in client.cookies.values())
    assert not AuditRecord.objects.filter(detail__icontains=secret).exists()
    assert secret not in client.get(reverse("users:list")).content.decode()


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"username": "newbie", "password": "password"}, "password", "This password is too common."),
        ({"username": "newbie", "password": "short7"}, "password", "too short"),
        ({"username": "newbie", "password": "é" * 40}, "password", "at most 72 bytes"),
        ({"username": "zoe", "password": STRONG}, "username", "A user with that username already exists."),
        ({"username": "no spaces", "password": STRONG}, "username", "Enter a valid username"),
        ({"username": "nul\x00", "password": STRONG}, "username", "Null characters are not allowed."),
        ({"username": "x" * 151, "password": STRONG}, "username", "at most 150 characters"),
        ({"username": "newbie", "email": "not-an-email", "password": STRONG}, "email", "valid email"),
    ],
)
def test_bad_input_for_a_new_user_is_a_400_with_the_message_inline(world, data, field: str, message: str) -> None:
    before = User.objects.count()
    response = client_for("ada", world).post(reverse("users:new"), {"is_active": "on", **data})
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert field in errors and message in " ".join(errors[field])
    assert message in response.content.decode().replace("&#x27;", "'")
    assert User.objects.count() == before


def test_a_refused_password_leaves_no_half_made_user(world) -> None:
    data = {"username": "newbie", "first_name": "New", "password": "password", "is_active": "on"}
    assert client_for("ada", world).post(reverse("users:new"), data).status_code == 400
    assert not User.objects.filter(username="newbie").exists()
    assert not AuditRecord.objects.filter(detail__target="newbie").exists()


# --- one person ---------------------------------------------------------------------------------


@pytest.mark.parametrize("persona", ["audrey", "ada"])
def test_the_detail_shows_teams_grants_credentials_and_activity(world, persona: str) -> None:
    services.create_grant(world["carol"], "carol/only", "read", context=SYSTEM)
    record(Kind.ACCESS, "denied", AuditContext.for_user(world["zoe"]), repository="ops/db")
    body = client_for(persona, world).get(url("detail")).content.decode()
    for expected in (
        "zoe@hidden.example",
        "Zoe Quasar",
        reverse("teams:detail", kwargs={"name": "web"}),
        "zoe/private",
        "own grant",
        "web/**",
        'class="soon"',  # web/** expires in two days
        "laptop",
        "read only",
        "zoe/*",
        "1 active refresh token",
        "ops/db",
        reverse("access:user", kwargs={"username": "zoe"}),
        f"{reverse('audit:search')}?user=zoe",
    ):
        assert expected in body, expected
    assert "carol/only" not in body


def test_auditors_get_no_forms_on_the_detail(world) -> None:
    body = client_for("audrey", world).get(url("detail")).content.decode()
    assert 'method="post" action="/manage/users/' not in body
    assert 'method="post" action="/me/tokens/' not in body


def test_admins_get_every_form_on_the_detail(world) -> None:
    body = client_for("ada", world).get(url("detail")).content.decode()
    for name in ("edit", "password", "revoke_refresh"):
        assert f'action="{url(name)}"' in body
    assert "Sign out of docker login everywhere" in body


def test_admins_get_a_revoke_button_for_each_live_token(world) -> None:
    laptop = world["zoe"].access_tokens.get()
    revoke = reverse("tokens:revoke", args=[laptop.pk])
    assert f'action="{revoke}"' in client_for("ada", world).get(url("detail")).content.decode()
    response = client_for("ada", world).post(revoke, {"next": url("detail")}, follow=True)
    assert response.redirect_chain[-1][0] == url("detail")
    laptop.refresh_from_db()
    assert laptop.revoked_at is not None
    assert f'action="{revoke}"' not in response.content.decode()


def test_the_detail_lists_at_most_ten_recent_records(world) -> None:
    for n in range(12):
        record(Kind.ACCESS, "granted", AuditContext.for_user(world["zoe"]), repository=f"zoe/r{n:02d}")
    response = client_for("audrey", world).get(url("detail"))
    recent = list(response.context["recent"])
    assert len(recent) == 10 and recent[0].repository == "zoe/r11"


def test_the_detail_needs_the_same_queries_however_much_a_person_has(world) -> None:
    client = client_for("ada", world)
    zoe = world["zoe"]
    with CaptureQueriesContext(connection) as small:
        client.get(url("detail"))
    for n in range(5):
        team = services.create_team(f"t{n}", context=SYSTEM)
        services.set_membership(team, zoe, "maintainer", context=SYSTEM)
        services.create_grant(team, f"t{n}/**", "read", managed_by=team, context=SYSTEM)
        services.create_grant(zoe, f"t{n}/zoe", "read", managed_by=team, context=SYSTEM)  # inside the team's
        services.create_access_token(zoe, f"token{n}", context=SYSTEM)
    with CaptureQueriesContext(connection) as large:
        body = client.get(url("detail")).content.decode()
    assert "t4/**" in body and "t4/zoe" in body and "token4" in body
    assert len(large) == len(small)


# --- changing a person -----------------------------------------------------------------------------


def test_an_admin_changes_profile_and_flags(world) -> None:
    data = edit_data(email="z@new.example", last_name="Nova", is_auditor="on", catalog_access="on")
    response = client_for("ada", world).post(url("edit"), data, follow=True)
    assert "Saved zoe." in response.content.decode()
    zoe = User.objects.get(username="zoe")
    assert (zoe.email, zoe.last_name, zoe.is_auditor, zoe.catalog_access) == ("z@new.example", "Nova", True, True)
    change = AuditRecord.objects.filter(detail__action="user.update", detail__target="zoe").latest("id")
    assert change.actor == "ada" and change.detail["before"]["is_auditor"] is False
    assert change.detail["after"]["is_auditor"] is True


def test_deactivating_someone_ends_their_docker_logins(world) -> None:
    client_for("ada", world).post(url("edit"), edit_data(is_active=None))
    zoe = User.objects.get(username="zoe")
    assert not zoe.is_active
    assert not RefreshToken.objects.filter(user=zoe, revoked_at__isnull=True).exists()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"is_superuser": None}, "You cannot remove your own administrator flag"),
        ({"is_active": None}, "You cannot deactivate yourself"),
    ],
)
def test_an_admin_cannot_lock_themselves_out(world, changes: dict[str, object], message: str) -> None:
    data = {"email": "", "first_name": "", "last_name": "", "is_active": "on", "is_superuser": "on", **changes}
    data = {key: value for key, value in data.items() if value is not None}
    response = client_for("ada", world).post(url("edit", "ada"), data)
    assert response.status_code == 400
    assert message in response.content.decode()
    ada = User.objects.get(username="ada")
    assert ada.is_superuser and ada.is_active
    assert not AuditRecord.objects.filter(detail__action="user.update", detail__target="ada").exists()


def test_an_admin_may_change_their_own_profile_and_demote_another_admin(world) -> None:
    other = make_user("grace", is_superuser=True)
    own = {"email": "ada@example.org", "is_active": "on", "is_superuser": "on"}
    assert client_for("ada", world).post(url("edit", "ada"), own).status_code == 302
    assert User.objects.get(username="ada").email == "ada@example.org"
    assert client_for("ada", world).post(url("edit", "grace"), {"is_active": "on"}).status_code == 302
    other.refresh_from_db()
    assert not other.is_superuser


def test_a_bad_edit_is_a_400_with_the_message_inline(world) -> None:
    response = client_for("ada", world).post(url("edit"), edit_data(email="nope", first_name="x" * 151))
    assert response.status_code == 400
    body = response.content.decode()
    assert "Enter a valid email address." in body and "at most 150 characters" in body
    assert User.objects.get(username="zoe").email == "zoe@hidden.example"


def test_the_edit_form_warns_an_admin_about_themselves(world) -> None:
    body = client_for("ada", world).get(url("detail", "ada")).content.decode()
    assert "you cannot remove your own administrator flag" in body


# --- passwords and docker logins --------------------------------------------------------------------


def test_an_admin_sets_a_typed_password_and_their_docker_logins_end(world) -> None:
    response = client_for("ada", world).post(url("password"), {"password": STRONG}, follow=True)
    assert "docker logins were ended" in response.content.decode()
    zoe = User.objects.get(username="zoe")
    assert zoe.check_password(STRONG) and not zoe.check_password(PASSWORD)
    assert not RefreshToken.objects.filter(user=zoe, revoked_at__isnull=True).exists()
    change = AuditRecord.objects.get(detail__action="user.set_password", detail__target="zoe")
    assert change.actor == "ada" and change.detail["after"] == {"refresh_tokens_revoked": 1}


def test_a_generated_password_is_shown_once_and_says_docker_logins_ended(world) -> None:
    client = client_for("ada", world)
    response = client.post(url("password"), {"password": ""})
    assert response.status_code == 200
    password = response.context["password"]
    body = response.content.decode()
    assert f"<code data-secret>{password}</code>" in body and "revoked their refresh tokens" in body
    assert "no-store" in response["Cache-Control"]
    assert User.objects.get(username="zoe").check_password(password)
    assert AuditRecord.objects.filter(detail__action="user.set_password", actor="ada").exists()
    _assert_nowhere_but_that_response(client, response, password)
    assert password not in client.get(url("detail")).content.decode()


def test_a_weak_typed_password_is_refused_inline(world) -> None:
    response = client_for("ada", world).post(url("password"), {"password": "zoequasar"})
    assert response.status_code == 400
    assert "too similar" in response.content.decode() or "too short" in response.content.decode()
    assert User.objects.get(username="zoe").check_password(PASSWORD)
    assert RefreshToken.objects.filter(user=world["zoe"], revoked_at__isnull=True).exists()


def test_an_admin_signs_someone_out_of_docker_login_everywhere(world) -> None:
    new_refresh_token(world["zoe"], "registry", "docker")
    response = client_for("ada", world).post(url("revoke_refresh"), follow=True)
    assert "Revoked 2 refresh tokens of zoe." in response.content.decode()
    assert not RefreshToken.objects.filter(user=world["zoe"], revoked_at__isnull=True).exists()
    change = AuditRecord.objects.get(detail__action="user.revoke_refresh_tokens", detail__target="zoe")
    assert change.actor == "ada" and change.detail["after"] == {"refresh_tokens_revoked": 2}
    assert "0 active refresh tokens" in response.content.decode()


def test_a_persons_page_shows_the_changes_they_made(world) -> None:
    """Admin changes carry a target and no credential: the activity list must still render."""
    client = client_for("ada", world)
    client.post(reverse("users:new"), {"username": "dora", "is_active": "on", "password": ""})
    services.create_access_token(world["ada"], "ci", context=AuditContext.for_user(world["ada"]))
    response = client.get(url("detail", "ada"))
    body = response.content.decode()
    assert response.status_code == 200
    assert "user.create</code> dora" in body and "token.create</code> ada/ci" in body


def test_a_persons_page_shows_the_first_hundred_of_each_list_and_counts_the_rest(world) -> None:
    bob = world["bob"]
    for i in range(103):
        services.create_grant(bob, f"big/r{i:03d}", "read", context=SYSTEM)
    body = client_for("audrey", world).get(url("detail", "bob")).content.decode()
    shown = sorted([f"big/r{i:03d}" for i in range(103)])
    assert shown[99] in body and shown[100] not in body  # ordered by pattern
    total = Grant.objects.filter(user=bob).count() + Grant.objects.filter(team__memberships__user=bob).count()
    assert f"and {total - 100} more" in body


def test_an_admin_deactivates_and_reactivates_someone_in_one_click(world) -> None:
    client = client_for("ada", world)
    page = client.get(url("detail", "bob")).content.decode()
    assert 'action="/manage/users/bob/active"' in page and "Deactivate" in page
    response = client.post(url("active", "bob"), {"active": "0"}, follow=True)
    assert "bob is deactivated" in response.content.decode()
    assert not User.objects.get(username="bob").is_active
    assert AuditRecord.objects.filter(detail__action="user.update", detail__target="bob", actor="ada").exists()
    client.post(url("active", "bob"), {"active": "1"})
    assert User.objects.get(username="bob").is_active


def test_an_admin_cannot_deactivate_themselves_in_one_click_either(world) -> None:
    client = client_for("ada", world)
    assert "Deactivate" not in client.get(url("detail", "ada")).content.decode()
    response = client.post(url("active", "ada"), {"active": "0"})
    assert response.status_code == 400 and "You cannot deactivate yourself" in response.content.decode()
    assert User.objects.get(username="ada").is_active


@pytest.mark.parametrize("value", ["", "yes", "\x00"])
def test_a_bad_active_value_is_a_400(world, value: str) -> None:
    response = client_for("ada", world).post(url("active", "bob"), {"active": value})
    assert response.status_code == 400 and User.objects.get(username="bob").is_active
