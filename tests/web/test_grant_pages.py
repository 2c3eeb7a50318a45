"""The grants pages: admins and auditors see every grant; only admins give, change and revoke them.

Team web (alice leads, bob is a member) holds write on web/**; it manages bob's read on web/site
(expiring in three days) and its robot robot$web+ci's read on web/app. carol holds admin on ops/db
in the registry "registry" (expired) and read on web/app until next month; the global robot
robot$deployer reads ops/**.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts import querysets, services
from accounts.models import Grant, Registry, Robot, Team, User
from accounts.web.forms.common import expiry_from_date
from audit.context import AuditContext
from audit.models import AuditRecord, Kind
from tests.conftest import SYSTEM, client_for, make_user

pytestmark = pytest.mark.django_db

LIST = reverse("grants:list")
NEW = reverse("grants:new")
HTMX = {"HX-Request": "true"}


@pytest.fixture
def registry(db: None) -> Registry:
    return services.create_registry("registry", context=SYSTEM)


@pytest.fixture
def world(ada: User, audrey: User, alice: User, bob: User, carol: User, web: Team, registry: Registry) -> dict:
    now = timezone.now()
    by_ada = AuditContext.for_user(ada)
    services.create_grant(web, "web/**", "write", context=SYSTEM)
    robot, _secret = services.create_robot(web, "ci", context=SYSTEM)
    deployer, _secret = services.create_robot(None, "deployer", context=SYSTEM)
    ops = services.create_team("ops", context=SYSTEM)
    return {
        "ada": ada,
        "audrey": audrey,
        "alice": alice,
        "carol": carol,
        "web": web,
        "ops": ops,
        "robot": robot,
        "bob_site": services.create_grant(
            bob, "web/site", "read", managed_by=web, expires_at=now + timedelta(days=3), context=by_ada
        ),
        "robot_app": services.create_grant(robot, "web/app", "read", managed_by=web, context=SYSTEM),
        "carol_db": services.create_grant(
            carol, "ops/db", "admin", registry=registry, expires_at=now - timedelta(hours=1), context=by_ada
        ),
        "carol_app": services.create_grant(
            carol, "web/app", "read", expires_at=now + timedelta(days=30), context=by_ada
        ),
        "deployer_ops": services.create_grant(deployer, "ops/**", "read", context=SYSTEM),
    }


def edit_url(grant: Grant) -> str:
    return reverse("grants:edit", args=[grant.pk])


def revoke_url(grant: Grant) -> str:
    return reverse("grants:revoke", args=[grant.pk])


def shown(response) -> set[tuple[str, str]]:
    """(subject label, pattern) of every row on the page."""
    return {(grant.subject_label, grant.pattern) for grant in response.context["page"].object_list}


def last_change(action: str) -> AuditRecord:
    return AuditRecord.objects.filter(kind=Kind.ADMIN_CHANGE, detail__action=action).latest("id")


def future_day(days: int = 10) -> str:
    return (timezone.now() + timedelta(days=days)).date().isoformat()


TEAM_WEB = ("team web", "web/**")
BOB_SITE = ("user bob", "web/site")
ROBOT_APP = ("robot robot$web+ci", "web/app")
CAROL_DB = ("user carol", "ops/db")
CAROL_APP = ("user carol", "web/app")
DEPLOYER = ("robot robot$deployer", "ops/**")
EVERYTHING = {TEAM_WEB, BOB_SITE, ROBOT_APP, CAROL_DB, CAROL_APP, DEPLOYER}


# --- who may do what -----------------------------------------------------------------------

UrlFor = Callable[[dict], str]
POSTS: dict[str, tuple[UrlFor, dict[str, str]]] = {
    "new": (lambda w: NEW, {"subject_kind": "user", "subject": "carol", "pattern": "web/docs", "role": "read"}),
    "edit": (lambda w: edit_url(w["bob_site"]), {"role": "write"}),
    "revoke": (lambda w: revoke_url(w["bob_site"]), {}),
}
READERS = [("anonymous", 302), ("carol", 403), ("alice", 403), ("audrey", 200), ("ada", 200)]
CHANGERS = [("anonymous", 302), ("carol", 403), ("alice", 403), ("audrey", 403), ("ada", 302)]


@pytest.mark.parametrize(("persona", "status"), READERS)
def test_the_list_is_for_admins_and_auditors(world, persona: str, status: int) -> None:
    response = client_for(persona, world).get(LIST)
    assert response.status_code == status
    if persona == "anonymous":
        assert response["Location"].startswith(reverse("accounts:login"))


@pytest.mark.parametrize(("persona", "status"), [*CHANGERS[:-1], ("ada", 200)])
def test_the_new_grant_form_is_for_admins(world, persona: str, status: int) -> None:
    assert client_for(persona, world).get(NEW).status_code == status


@pytest.mark.parametrize("action", sorted(POSTS))
@pytest.mark.parametrize(("persona", "status"), CHANGERS)
def test_only_admins_change_grants(world, action: str, persona: str, status: int) -> None:
    url_for, data = POSTS[action]
    response = client_for(persona, world).post(url_for(world), data)
    assert response.status_code == status
    if persona == "anonymous":
        assert response["Location"].startswith(reverse("accounts:login"))


def test_a_refused_change_changes_nothing(world) -> None:
    for persona in ("carol", "alice", "audrey"):
        for url_for, data in POSTS.values():
            client_for(persona, world).post(url_for(world), data)
    bob_site = Grant.objects.get(pk=world["bob_site"].pk)
    assert bob_site.role == "read"
    assert not Grant.objects.filter(pattern="web/docs").exists()


@pytest.mark.parametrize("url", [LIST, NEW, f"{NEW}?user=bob"])
def test_a_refused_page_shows_nobodys_grants(world, url: str) -> None:
    response = client_for("alice", world).get(url)
    assert response.status_code == 403
    body = response.content.decode()
    for secret in ("bob", "carol", "web/site", "ops/db", "robot$"):
        assert secret not in body


@pytest.mark.parametrize(
    ("url_for", "method"),
    [
        (lambda w: LIST, "post"),
        (lambda w: NEW, "put"),
        (lambda w: edit_url(w["bob_site"]), "get"),
        (lambda w: revoke_url(w["bob_site"]), "get"),
    ],
)
def test_it_rejects_the_wrong_method(world, url_for: UrlFor, method: str) -> None:
    assert getattr(client_for("ada", world), method)(url_for(world)).status_code == 405


def test_auditors_get_no_buttons_and_admins_do(world) -> None:
    auditor = client_for("audrey", world).get(LIST).content.decode()
    assert NEW not in auditor and "/revoke" not in auditor and "/edit" not in auditor
    admin = client_for("ada", world).get(LIST).content.decode()
    assert NEW in admin and revoke_url(world["bob_site"]) in admin and edit_url(world["bob_site"]) in admin


def test_the_changes_need_a_csrf_token(world) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(world["ada"])
    assert client.post(revoke_url(world["bob_site"])).status_code == 403
    assert Grant.objects.filter(pk=world["bob_site"].pk).exists()


# --- the list ------------------------------------------------------------------------------


def test_the_list_shows_every_grant_with_links_to_its_subject(world) -> None:
    response = client_for("audrey", world).get(LIST)
    assert shown(response) == EVERYTHING
    body = response.content.decode()
    assert reverse("users:detail", kwargs={"username": "bob"}) in body
    assert reverse("teams:detail", kwargs={"name": "web"}) in body
    assert reverse("access:robot", kwargs={"login": "robot$web+ci"}) in body
    assert reverse("access:robot", kwargs={"login": "robot$deployer"}) in body


def row_of(body: str, grant: Grant) -> str:
    return body.split(f'<tr id="grant-{grant.pk}">')[1].split("</tr>")[0]


def test_the_list_flags_grants_expiring_soon_and_expired(world) -> None:
    body = client_for("audrey", world).get(LIST).content.decode()
    flags = {
        name: ("badge warn" in row_of(body, world[name]), "badge bad" in row_of(body, world[name]))
        for name in ("bob_site", "carol_db", "carol_app", "robot_app")
    }
    assert flags == {
        "bob_site": (True, False),
        "carol_db": (False, True),
        "carol_app": (False, False),
        "robot_app": (False, False),
    }
    assert "never" in row_of(body, world["robot_app"])


def test_the_list_shows_who_made_each_grant_and_which_team_manages_it(world) -> None:
    body = client_for("audrey", world).get(LIST).content.decode()
    site_row = row_of(body, world["bob_site"])
    assert "ada" in site_row and reverse("teams:detail", kwargs={"name": "web"}) in site_row
    deployer_row = row_of(body, world["deployer_ops"])
    assert "system" in deployer_row and "admins only" in deployer_row


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"subject": "bob"}, {BOB_SITE}),
        ({"subject": "CAROL"}, {CAROL_DB, CAROL_APP}),
        ({"subject": "web"}, {TEAM_WEB, ROBOT_APP}),
        ({"subject": "robot$"}, {ROBOT_APP, DEPLOYER}),
        ({"subject": "robot$web+ci"}, {ROBOT_APP}),
        ({"subject": "deployer"}, {DEPLOYER}),
        ({"subject": "zed"}, set()),
        ({"pattern": "ops"}, {CAROL_DB, DEPLOYER}),
        ({"pattern": "/app"}, {ROBOT_APP, CAROL_APP}),
        ({"role": "read"}, {BOB_SITE, ROBOT_APP, CAROL_APP, DEPLOYER}),
        ({"role": "admin"}, {CAROL_DB}),
        ({"registry": "registry"}, {CAROL_DB}),
        ({"registry": "*"}, EVERYTHING - {CAROL_DB}),
        ({"managed_by": "web"}, {BOB_SITE, ROBOT_APP}),
        ({"managed_by": "ops"}, set()),
        ({"state": "current"}, EVERYTHING - {CAROL_DB}),
        ({"state": "expiring"}, {BOB_SITE}),
        ({"state": "expired"}, {CAROL_DB}),
        ({"subject": "carol", "state": "current"}, {CAROL_APP}),
    ],
)
def test_each_filter_narrows_the_list(world, query: dict[str, str], expected: set) -> None:
    response = client_for("ada", world).get(LIST, query)
    assert response.status_code == 200
    assert shown(response) == expected


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"managed_by": "nobody"}, "No team is called that."),
        ({"role": "owner"}, "Select a valid choice"),
        ({"registry": "nowhere"}, "Select a valid choice"),
        ({"state": "soon"}, "Select a valid choice"),
        ({"subject": "x" * 256}, "at most 255 characters"),
        ({"pattern": "web\x00"}, "Null characters are not allowed"),
    ],
)
def test_a_bad_filter_is_a_400_with_the_reason_on_the_page(world, query: dict[str, str], message: str) -> None:
    response = client_for("ada", world).get(LIST, query)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not response.context["page"].object_list


def test_htmx_live_search_gets_only_the_results(world) -> None:
    response = client_for("audrey", world).get(LIST, {"subject": "bob"}, headers=HTMX)
    body = response.content.decode()
    assert response.status_code == 200 and "<html" not in body and "<table" in body
    assert shown(response) == {BOB_SITE}


def test_the_list_pages_and_survives_a_bad_page_number(world) -> None:
    for n in range(55):
        services.create_grant(world["carol"], f"many/r{n:02}", "read", context=SYSTEM)
    client = client_for("ada", world)
    second = client.get(LIST, {"pattern": "many/", "page": "2"})
    assert sorted(g.pattern for g in second.context["page"].object_list) == [f"many/r{n:02}" for n in range(50, 55)]
    assert "?pattern=many%2F&amp;page=1" in second.content.decode()
    assert client.get(LIST, {"page": "nope"}).status_code == 200


def _add_mixed_grants(count: int, web: Team, registry: Registry, creator: AuditContext, prefix: str) -> None:
    """``count`` grants spread over users, teams and robots, with and without registry, expiry and manager."""
    for n in range(count):
        expiry = timezone.now() + timedelta(days=n % 9) if n % 2 else None
        extra = {"registry": registry if n % 4 == 0 else None, "expires_at": expiry}
        if n % 3 == 0:
            subject: User | Team | Robot = make_user(f"{prefix}user{n}")
        elif n % 3 == 1:
            subject = services.create_team(f"{prefix}team{n}", context=SYSTEM)
        else:
            subject, _secret = services.create_robot(web, f"{prefix}bot{n}", context=SYSTEM)
            extra["registry"] = None  # the team's grant is for every registry
        context = creator if n % 5 else SYSTEM
        managed_by = web if n % 2 else None
        services.create_grant(subject, f"web/mixed{n}", "read", managed_by=managed_by, context=context, **extra)


def test_the_list_needs_the_same_queries_for_5_or_60_grants(ada: User, audrey: User, web: Team, registry) -> None:
    services.create_grant(web, "web/**", "write", context=SYSTEM)
    by_ada = AuditContext.for_user(ada)
    _add_mixed_grants(4, web, registry, by_ada, "few")
    counts = {}
    for persona, user in (("admin", ada), ("auditor", audrey)):
        client = Client()
        client.force_login(user)
        with CaptureQueriesContext(connection) as few:
            assert len(client.get(LIST).context["page"].object_list) == 5
        counts[persona] = len(few)
    Grant.objects.filter(pattern__startswith="web/mixed").delete()
    _add_mixed_grants(59, web, registry, by_ada, "many")
    for persona, user in (("admin", ada), ("auditor", audrey)):
        client = Client()
        client.force_login(user)
        with CaptureQueriesContext(connection) as many:
            response = client.get(LIST, {"subject": "", "state": "current"})
        assert len(response.context["page"].object_list) == 50
        assert len(many) == counts[persona]


# --- a new grant -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "kind", "name"),
    [
        ("user=carol", "user", "carol"),
        ("team=web", "team", "web"),
        ("robot=robot%24web%2Bci", "robot", "robot$web+ci"),
        ("robot=robot$web+ci", "robot", "robot$web+ci"),
    ],
)
def test_the_subject_is_prefilled_from_the_link(world, query: str, kind: str, name: str) -> None:
    response = client_for("ada", world).get(f"{NEW}?{query}")
    assert response.status_code == 200
    form = response.context["form"]
    assert (form["subject_kind"].value(), form["subject"].value()) == (kind, name)
    body = response.content.decode()
    assert f'value="{name}"' in body and f'<option value="{kind}" selected>' in body


def test_a_prefilled_name_is_escaped(world) -> None:
    body = client_for("ada", world).get(NEW, {"user": '"><script>alert(1)</script>'}).content.decode()
    assert "<script>alert" not in body and "&quot;&gt;&lt;script&gt;" in body


def test_an_admin_grants_a_user_until_a_day(world) -> None:
    day = future_day()
    data = {"subject_kind": "user", "subject": "carol", "pattern": "web/docs", "role": "write", "expires_on": day}
    client = client_for("ada", world)
    response = client.post(NEW, data)
    assert response.status_code == 302 and response["Location"] == f"{LIST}?subject=carol"
    grant = Grant.objects.get(pattern="web/docs")
    assert (grant.user, grant.role, grant.registry, grant.managed_by) == (world["carol"], "write", None, None)
    assert grant.expires_at == expiry_from_date(datetime.fromisoformat(day).date())
    assert grant.created_by == world["ada"]
    record = last_change("grant.create")
    assert record.actor == "ada" and record.detail["after"]["user"] == "carol"
    assert "Granted write on web/docs to carol." in client.get(response["Location"]).content.decode()


def test_an_admin_grants_a_team_for_one_registry_managed_by_another_team(world) -> None:
    data = {
        "subject_kind": "team",
        "subject": "ops",
        "pattern": "ops/**",
        "role": "admin",
        "registry": "registry",
        "managed_by": "web",
    }
    refused = client_for("ada", world).post(NEW, data)
    assert refused.status_code == 400
    assert "lies outside what team web holds" in refused.content.decode()  # a managed grant leans on its team's
    services.create_grant(Team.objects.get(name="web"), "ops/**", "admin", context=SYSTEM)
    assert client_for("ada", world).post(NEW, data).status_code == 302
    grant = Grant.objects.get(team__name="ops")
    assert (grant.registry.service, grant.managed_by.name, grant.expires_at) == ("registry", "web", None)
    assert last_change("grant.create").detail["after"]["managed_by"] == "web"


@pytest.mark.parametrize("login", ["robot$web+ci", "web+ci"])
def test_an_admin_grants_a_team_robot_inside_its_team(world, login: str) -> None:
    data = {"subject_kind": "robot", "subject": login, "pattern": "web/site", "role": "write"}
    assert client_for("ada", world).post(NEW, data).status_code == 302
    assert Grant.objects.get(robot=world["robot"], pattern="web/site").role == "write"
    assert last_change("grant.create").detail["after"]["robot"] == "robot$web+ci"


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"pattern": "web//x"}, "pattern", "it has an empty path component"),
        ({"pattern": "web/**x"}, "pattern", "'**' must be a whole path component"),
        ({"pattern": "Web/App"}, "pattern", "path components may only hold lowercase letters"),
        ({"pattern": ""}, "pattern", "This field is required."),
        ({"pattern": "a" * 256}, "pattern", "at most 255 characters"),
        ({"subject": "zed"}, "subject", "No user is called 'zed'."),
        ({"subject_kind": "team", "subject": "zed"}, "subject", "No team is called 'zed'."),
        ({"subject_kind": "robot", "subject": "robot$ops+ci"}, "subject", "No robot is called 'robot$ops+ci'."),
        ({"subject_kind": "robot", "subject": "robot$web+ci", "pattern": "ops/db"}, "pattern", "lies outside"),
        ({"subject_kind": "robot", "subject": "robot$web+ci", "role": "admin"}, "pattern", "lies outside"),
        ({"subject_kind": "owner"}, "subject_kind", "Select a valid choice"),
        ({"subject": "bob\x00"}, "subject", "Null characters are not allowed"),
        ({"role": "owner"}, "role", "Select a valid choice"),
        ({"expires_on": "2001-01-01"}, "expires_on", "That day is already over (UTC)"),
        ({"expires_on": "9999-12-31"}, "expires_on", "That day is too far away"),
        ({"expires_on": "tomorrow"}, "expires_on", "Enter a valid date."),
        ({"registry": "nowhere"}, "registry", "Select a valid choice"),
        ({"managed_by": "nobody"}, "managed_by", "No team is called that."),
        ({"subject": "carol", "pattern": "web/app"}, "pattern", "user carol already has a grant on 'web/app'"),
    ],
)
def test_a_bad_grant_is_an_inline_error(world, data: dict[str, str], field: str, message: str) -> None:
    before = Grant.objects.count()
    defaults = {"subject_kind": "user", "subject": "bob", "pattern": "web/docs", "role": "read"}
    response = client_for("ada", world).post(NEW, {**defaults, **data})
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert field in errors and message in " ".join(errors[field])
    assert message in response.content.decode().replace("&#x27;", "'")
    assert Grant.objects.count() == before


def test_a_grant_through_the_last_minute_of_today_is_allowed(world) -> None:
    today = datetime.now(UTC).date().isoformat()
    data = {"subject_kind": "user", "subject": "bob", "pattern": "web/docs", "role": "read", "expires_on": today}
    assert client_for("ada", world).post(NEW, data).status_code == 302


# --- changing a grant ---------------------------------------------------------------------------


def test_an_admin_changes_a_role_and_goes_back_to_the_same_list(world) -> None:
    back = f"{LIST}?managed_by=web"
    response = client_for("ada", world).post(edit_url(world["bob_site"]), {"role": "write", "next": back})
    assert response.status_code == 302 and response["Location"] == back
    grant = Grant.objects.get(pk=world["bob_site"].pk)
    assert grant.role == "write" and grant.expires_at == world["bob_site"].expires_at
    record = last_change("grant.update")
    assert (record.actor, record.detail["before"]["role"], record.detail["after"]["role"]) == ("ada", "read", "write")


def test_an_admin_moves_an_expiry_to_another_day(world) -> None:
    day = future_day(40)
    client_for("ada", world).post(edit_url(world["bob_site"]), {"role": "read", "expires_on": day})
    grant = Grant.objects.get(pk=world["bob_site"].pk)
    assert grant.expires_at == expiry_from_date(datetime.fromisoformat(day).date())
    assert last_change("grant.update").detail["after"]["expires_at"] == grant.expires_at.isoformat()


def test_an_admin_clears_an_expiry(world) -> None:
    client_for("ada", world).post(edit_url(world["carol_app"]), {"role": "read", "no_expiry": "on"})
    assert Grant.objects.get(pk=world["carol_app"].pk).expires_at is None
    assert last_change("grant.update").detail["after"]["expires_at"] is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"expires_on": "2001-01-01"}, "That day is already over (UTC)"),
        ({"expires_on": future_day(), "no_expiry": "on"}, "not both"),
        ({"role": "owner"}, "Select a valid choice"),
        ({}, "Choose a new role, a new expiry day"),
    ],
)
def test_a_bad_change_is_shown_again_with_the_error(world, data: dict[str, str], message: str) -> None:
    response = client_for("ada", world).post(edit_url(world["bob_site"]), {"next": f"{LIST}?q=1", **data})
    assert response.status_code == 400
    body = response.content.decode()
    assert message in body and "<code>web/site</code>" in body and f'value="{LIST}?q=1"' in body
    grant = Grant.objects.get(pk=world["bob_site"].pk)
    assert (grant.role, grant.expires_at) == ("read", world["bob_site"].expires_at)
    assert not AuditRecord.objects.filter(detail__action="grant.update").exists()


# --- revoking a grant ---------------------------------------------------------------------------


def test_an_admin_revokes_a_grant_and_goes_back_to_the_same_list(world) -> None:
    back = f"{LIST}?subject=carol"
    response = client_for("ada", world).post(revoke_url(world["carol_app"]), {"next": back}, follow=True)
    assert response.redirect_chain[-1][0] == back
    assert not Grant.objects.filter(pk=world["carol_app"].pk).exists()
    assert "Revoked read on web/app from user carol." in response.content.decode()
    record = last_change("grant.revoke")
    assert (record.actor, record.detail["before"]["pattern"]) == ("ada", "web/app")


def test_an_admin_revokes_a_robots_grant(world) -> None:
    client_for("ada", world).post(revoke_url(world["robot_app"]))
    assert not Grant.objects.filter(pk=world["robot_app"].pk).exists()
    assert last_change("grant.revoke").detail["before"]["robot"] == "robot$web+ci"


def test_with_htmx_a_revoked_row_is_swapped_for_what_was_done(world) -> None:
    response = client_for("ada", world).post(revoke_url(world["bob_site"]), headers=HTMX)
    body = response.content.decode()
    assert response.status_code == 200 and body.startswith('<tr class="done">') and "Revoked read on" in body
    assert not Grant.objects.filter(pk=world["bob_site"].pk).exists()


def test_the_revoke_button_removes_its_row_in_place(world) -> None:
    body = client_for("ada", world).get(LIST).content.decode()
    form = body.split(f'action="{revoke_url(world["bob_site"])}"')[1].split(">")[0]
    assert 'hx-target="closest tr"' in form and 'hx-swap="outerHTML"' in form


@pytest.mark.parametrize("unsafe", ["https://evil.example/", "//evil.example/x", "/ok\r\nSet-Cookie: x=1"])
def test_it_never_redirects_off_the_site(world, unsafe: str) -> None:
    response = client_for("ada", world).post(revoke_url(world["bob_site"]), {"next": unsafe})
    assert response.status_code == 302
    assert "evil" not in response["Location"] and "\n" not in response["Location"]


def test_a_missing_grant_is_not_found(world) -> None:
    client = client_for("ada", world)
    assert client.post(reverse("grants:revoke", args=[999999])).status_code == 404
    assert client.post(reverse("grants:edit", args=[999999]), {"role": "read"}).status_code == 404


# --- the list at scale -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"subject": "CAROL"}, {CAROL_DB, CAROL_APP}),
        ({"subject": "web"}, {TEAM_WEB, ROBOT_APP}),
        ({"subject": "robot$"}, {ROBOT_APP, DEPLOYER}),
        ({"subject": "robot$web+ci"}, {ROBOT_APP}),
        ({"subject": "o"}, EVERYTHING - {TEAM_WEB}),  # bob, carol and every robot$ login
        ({"subject": "zed"}, set()),
    ],
)
def test_a_subject_search_matching_many_names_gives_the_same_rows(
    world, monkeypatch: pytest.MonkeyPatch, query: dict[str, str], expected: set
) -> None:
    """Past ``SUBJECT_IDS`` names the search becomes a subquery; the answer must not change."""
    client = client_for("ada", world)
    assert shown(client.get(LIST, query)) == expected
    monkeypatch.setattr(querysets, "SUBJECT_IDS", 0)
    assert shown(client.get(LIST, query)) == expected


def test_the_pattern_search_ignores_case(world) -> None:
    assert shown(client_for("ada", world).get(LIST, {"pattern": "WEB/APP"})) == {ROBOT_APP, CAROL_APP}


def test_rows_come_in_pattern_order_across_pages(world) -> None:
    for n in reversed(range(55)):
        services.create_grant(world["carol"], f"many/r{n:02}", "read", context=SYSTEM)
    client = client_for("audrey", world)
    pages = [client.get(LIST, {"page": page}).context["page"].object_list for page in ("1", "2")]
    patterns = [grant.pattern for page in pages for grant in page]
    assert len(patterns) == 61 and patterns == sorted(patterns)  # 55 + the world's 6


def test_each_row_folds_a_small_change_form_away(world) -> None:
    row = row_of(client_for("ada", world).get(LIST).content.decode(), world["bob_site"])
    details = row.split("<details>")[1].split("</details>")[0]
    assert "<summary>Change</summary>" in details and f'action="{edit_url(world["bob_site"])}"' in details
    for name in ('name="role"', 'name="expires_on"', 'name="no_expiry"', 'name="next"', "csrfmiddlewaretoken"):
        assert name in details
    assert '<option value="read" selected>' in details
