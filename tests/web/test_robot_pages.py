"""The robots pages: admins and auditors see every robot; admins make them (secret shown once) and revoke.

Team web (alice leads, bob is a member) holds write on web/**, team ops holds admin on ops/**.
robot$web+ci writes web/app and was last used from 192.0.2.9; robot$ops+deploy is revoked;
robot$mirror is a global robot that has expired.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.http import HttpResponse
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts import services
from accounts.models import Grant, Robot, Team, User
from accounts.services import ensure_keys
from audit.models import AuditRecord
from tests.conftest import SYSTEM, ask_registry, client_for, granted
from tests.conftest import shown_secret as _shown

pytestmark = pytest.mark.django_db

LIST = reverse("robots:list")
NEW = reverse("robots:new")
PERSONAS = ("anonymous", "carol", "bob", "alice", "audrey", "ada")


@pytest.fixture
def world(ada: User, audrey: User, alice: User, bob: User, carol: User, web: Team) -> dict[str, object]:
    services.create_registry("registry", url="https://registry.example.org", context=SYSTEM)
    ensure_keys()
    services.create_grant(web, "web/**", "write", context=SYSTEM)
    ops = services.create_team("ops", context=SYSTEM)
    services.create_grant(ops, "ops/**", "admin", context=SYSTEM)
    ci, _ = services.create_robot(
        web, "ci", description="builds the site", grants=[("web/app", "write")], context=SYSTEM
    )
    Robot.objects.filter(pk=ci.pk).update(last_used_at=timezone.now(), last_used_ip="192.0.2.9")
    deploy, _ = services.create_robot(ops, "deploy", grants=[("ops/db", "read")], context=SYSTEM)
    services.revoke_robot(deploy, context=SYSTEM)
    mirror, _ = services.create_robot(None, "mirror", grants=[("pub/**", "read")], context=SYSTEM)
    Robot.objects.filter(pk=mirror.pk).update(expires_at=timezone.now() - timedelta(days=1))
    people = {"ada": ada, "audrey": audrey, "alice": alice, "bob": bob, "carol": carol}
    return {**people, "web": web, "ops": ops, "ci": ci, "deploy": deploy, "mirror": mirror}


def revoke_url(robot: object) -> str:
    return reverse("robots:revoke", kwargs={"pk": robot.pk})  # type: ignore[attr-defined]


def rows(response: HttpResponse) -> list[str]:
    """The login names the list shows, in order."""
    return re.findall(r"<code>(robot\$[^<]+)</code></a>", response.content.decode())


# --- who may use the pages --------------------------------------------------------------

LIST_EXPECTED = {"anonymous": 302, "carol": 403, "bob": 403, "alice": 403, "audrey": 200, "ada": 200}
NEW_EXPECTED = {"anonymous": 302, "carol": 403, "bob": 403, "alice": 403, "audrey": 403, "ada": 200}


@pytest.mark.parametrize("persona", PERSONAS)
def test_the_robot_list_is_for_admins_and_auditors(world, persona: str) -> None:
    response = client_for(persona, world).get(LIST)
    assert response.status_code == LIST_EXPECTED[persona]
    if persona == "anonymous":
        assert response["Location"].startswith(reverse("accounts:login"))
    if response.status_code == 403:
        body = response.content.decode()
        for secret in ("robot$web+ci", "builds the site", "192.0.2.9", "web/app"):
            assert secret not in body


@pytest.mark.parametrize("persona", PERSONAS)
def test_the_new_robot_form_is_for_admins_only(world, persona: str) -> None:
    response = client_for(persona, world).get(NEW)
    assert response.status_code == NEW_EXPECTED[persona]
    posted = client_for(persona, world).post(NEW, {"name": "sneaky", "team": "web"})
    if persona != "ada":
        assert posted.status_code == (302 if persona == "anonymous" else 403)
        assert not Robot.objects.filter(name="sneaky").exists()


@pytest.mark.parametrize(("url", "method"), [(LIST, "post"), ("/manage/robots/1/revoke", "get"), (NEW, "put")])
def test_it_rejects_the_wrong_method(world, url: str, method: str) -> None:
    assert getattr(client_for("ada", world), method)(url).status_code == 405


# --- the list ----------------------------------------------------------------------------


def test_the_list_shows_every_robot_with_its_grants_state_and_last_use(world) -> None:
    response = client_for("audrey", world).get(LIST)
    body = response.content.decode()
    assert rows(response) == ["robot$mirror", "robot$ops+deploy", "robot$web+ci"]
    assert reverse("access:robot", kwargs={"login": "robot$web+ci"}) in body
    assert reverse("teams:detail", kwargs={"name": "web"}) in body
    for expected in ("builds the site", '<code>web/app</code> <span class="pill">write', "192.0.2.9", "global"):
        assert expected in body
    for badge in ('badge ok">active', 'badge bad">revoked', 'badge warn">expired'):
        assert badge in body


def test_auditors_get_no_buttons_and_admins_do(world) -> None:
    audit_body = client_for("audrey", world).get(LIST).content.decode()
    assert NEW not in audit_body and 'method="post" action="/manage/robots/' not in audit_body
    admin_body = client_for("ada", world).get(LIST).content.decode()
    assert f'href="{NEW}"' in admin_body
    assert revoke_url(world["ci"]) in admin_body
    assert revoke_url(world["deploy"]) not in admin_body  # already revoked


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("?team=web", ["robot$web+ci"]),
        ("?team=$global", ["robot$mirror"]),
        ("?state=revoked", ["robot$ops+deploy"]),
        ("?state=expired", ["robot$mirror"]),
        ("?state=active", ["robot$web+ci"]),
        ("?q=robot$web%2Bci", ["robot$web+ci"]),
        ("?q=builds", ["robot$web+ci"]),
        ("?q=ops", ["robot$ops+deploy"]),
        ("?q=nothing-like-it", []),
        ("?page=abc", ["robot$mirror", "robot$ops+deploy", "robot$web+ci"]),
    ],
)
def test_the_list_filters_by_search_team_and_state(world, query: str, expected: list[str]) -> None:
    response = client_for("ada", world).get(LIST + query)
    assert response.status_code == 200
    assert rows(response) == expected


@pytest.mark.parametrize("query", ["?state=sideways", "?team=nosuchteam", "?q=" + "x" * 201])
def test_a_bad_filter_is_a_400_with_the_message(world, query: str) -> None:
    response = client_for("ada", world).get(LIST + query)
    assert response.status_code == 400
    body = response.content.decode()
    assert "Select a valid choice" in body or "at most 200 characters" in body
    assert rows(response) == []


def test_live_search_answers_htmx_with_just_the_rows(world) -> None:
    response = client_for("audrey", world).get(LIST + "?q=ci", HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and "<html" not in response.content.decode()
    assert rows(response) == ["robot$web+ci"]


def test_the_list_needs_the_same_queries_however_many_robots(world) -> None:
    client = client_for("ada", world)
    with CaptureQueriesContext(connection) as few:
        client.get(LIST)
    for n in range(8):
        team = world["web"] if n % 2 else None
        services.create_robot(team, f"bot{n}", grants=[(f"web/b{n}", "read"), ("web/x", "read")], context=SYSTEM)  # type: ignore[arg-type]
    with CaptureQueriesContext(connection) as many:
        response = client.get(LIST)
    assert "robot$web+bot7" in rows(response)
    assert len(many) == len(few)


# --- making a robot ----------------------------------------------------------------------


def test_an_admin_makes_a_team_robot_whose_secret_is_shown_once_and_signs_in(world) -> None:
    client = client_for("ada", world)
    data = {"team": "web", "name": "deployer", "description": "ships", "grants": "web/app:write\nweb/base:read"}
    response = client.post(NEW, data)
    assert response.status_code == 201
    secret = shown_secret(response)
    body = response.content.decode()
    assert "docker login -u 'robot$web+deployer' --password-stdin registry.example.org" in body
    assert reverse("setup:index") in body and "no-store" in response["Cache-Control"]
    assert secret not in client.get(LIST).content.decode()
    robot = Robot.objects.get(name="deployer")
    assert {(g.pattern, g.role, g.managed_by) for g in robot.grants.all()} == {
        ("web/app", "write", world["web"]),
        ("web/base", "read", world["web"]),
    }
    answer = granted(ask_registry("robot$web+deployer", secret, "repository:web/app:pull,push"))
    assert answer == {"web/app": ["pull", "push"]}


def test_making_a_robot_writes_credential_and_grant_records_without_the_secret(world) -> None:
    response = client_for("ada", world).post(NEW, {"team": "", "name": "backup", "grants": "pub/**:read"})
    secret = shown_secret(response)
    made = AuditRecord.objects.filter(kind="credential", detail__action="robot.create").latest("id")
    assert (made.actor, made.detail["credential"], made.detail["grants"]) == ("ada", "robot$backup", ["pub/**:read"])
    assert AuditRecord.objects.filter(kind="admin_change", detail__action="grant.create", actor="ada").exists()
    assert not any(secret in str(record.detail) for record in AuditRecord.objects.all())


def test_a_global_robot_gets_what_it_is_granted(world) -> None:
    response = client_for("ada", world).post(NEW, {"name": "scanner", "grants": "pub/**:read"})
    secret = shown_secret(response)
    assert Robot.objects.get(name="scanner").team is None
    assert granted(ask_registry("robot$scanner", secret, "repository:pub/base:pull")) == {"pub/base": ["pull"]}


def test_the_form_can_be_prefilled_with_a_team(world) -> None:
    body = client_for("ada", world).get(NEW + "?team=ops").content.decode()
    assert '<option value="ops" selected>' in body


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"team": "web", "name": "x", "grants": "ops/db:read"}, "grants", "lies outside what team web holds"),
        ({"team": "web", "name": "x", "grants": "web/app:admin"}, "grants", "lies outside what team web holds"),
        ({"team": "web", "name": "x", "grants": "web/app"}, "grants", "Line 1: write pattern:role"),
        ({"team": "web", "name": "x", "grants": "web/a:read\nweb/a:write"}, "grants", "Line 2: 'web/a' is given twice"),
        ({"team": "web", "name": "x", "grants": "web//a:read"}, "grants", "Line 1: pattern 'web//a' is invalid"),
        ({"team": "web", "name": "ci"}, "name", "robot$web+ci already exists."),
        ({"team": "web", "name": "Not A Slug"}, "name", "must be lowercase letters, digits, - or _"),
        ({"team": "web", "name": "x\x00"}, "name", "Null characters are not allowed."),
        ({"team": "nosuch", "name": "x"}, "team", "No team is called that."),
        ({"team": "web", "name": "x", "expires_on": "2001-01-01"}, "expires_on", "already over"),
        ({"team": "web", "name": "x", "description": "d" * 256}, "description", "at most 255 characters"),
    ],
)
def test_bad_input_is_a_400_with_the_message_on_the_page(world, data, field: str, message: str) -> None:
    before = (Robot.objects.count(), Grant.objects.count())
    response = client_for("ada", world).post(NEW, data)
    assert response.status_code == 400
    assert message in " ".join(response.context["form"].errors[field])
    assert message in response.content.decode().replace("&#x27;", "'")
    assert "rgb_" not in response.content.decode()
    assert (Robot.objects.count(), Grant.objects.count()) == before


# --- revoking ------------------------------------------------------------------------------


def test_an_admin_revokes_a_robot_and_it_stops_signing_in(world) -> None:
    client = client_for("ada", world)
    secret = shown_secret(client.post(NEW, {"team": "web", "name": "temp", "grants": "web/app:read"}))
    robot = Robot.objects.get(name="temp")
    response = client.post(revoke_url(robot), follow=True)
    assert response.redirect_chain == [(LIST, 302)]
    assert "Revoked robot$web+temp" in response.content.decode()
    assert ask_registry("robot$web+temp", secret, "repository:web/app:pull").status_code == 401
    record = AuditRecord.objects.filter(kind="credential", detail__action="robot.revoke").latest("id")
    assert (record.actor, record.detail["credential"]) == ("ada", "robot$web+temp")


def test_a_team_lead_revokes_their_teams_robot_here_and_goes_back_to_the_team(world) -> None:
    response = client_for("alice", world).post(revoke_url(world["ci"]))
    assert response.status_code == 302
    assert response["Location"] == reverse("teams:detail", kwargs={"name": "web"})
    assert Robot.objects.get(pk=world["ci"].pk).revoked_at is not None  # type: ignore[attr-defined]
    assert AuditRecord.objects.filter(detail__action="robot.revoke", actor="alice").exists()


@pytest.mark.parametrize(("persona", "robot"), [("alice", "mirror"), ("bob", "ci"), ("carol", "ci"), ("audrey", "ci")])
def test_no_one_else_may_revoke_a_robot(world, persona: str, robot: str) -> None:
    response = client_for(persona, world).post(revoke_url(world[robot]))
    assert response.status_code == 403
    assert "robot$" not in response.content.decode()
    assert Robot.objects.get(pk=world[robot].pk).revoked_at is None  # type: ignore[attr-defined]


def test_a_lead_of_web_cannot_revoke_a_robot_of_ops(world) -> None:
    live, _ = services.create_robot(world["ops"], "live", context=SYSTEM)  # type: ignore[arg-type]
    assert client_for("alice", world).post(revoke_url(live)).status_code == 403
    live.refresh_from_db()
    assert live.revoked_at is None
    assert not AuditRecord.objects.filter(detail__action="robot.revoke", actor="alice").exists()


def test_revoking_an_unknown_robot_is_not_found(world) -> None:
    assert client_for("ada", world).post(reverse("robots:revoke", kwargs={"pk": 99999})).status_code == 404


def test_revoking_honours_a_safe_next_only(world) -> None:
    client = client_for("ada", world)
    back = reverse("teams:detail", kwargs={"name": "web"})
    assert client.post(revoke_url(world["ci"]), {"next": back})["Location"] == back
    assert client.post(revoke_url(world["mirror"]), {"next": "https://evil.example/"})["Location"] == LIST


def test_the_changes_need_a_csrf_token(world) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(world["ada"])  # type: ignore[arg-type]
    assert client.post(NEW, {"name": "sneaky"}).status_code == 403
    assert client.post(revoke_url(world["ci"])).status_code == 403
    assert Robot.objects.get(pk=world["ci"].pk).revoked_at is None  # type: ignore[attr-defined]


def test_the_team_filter_is_typed_not_a_list_of_every_team(world) -> None:
    Team.objects.bulk_create(Team(name=f"crew{n:02}") for n in range(30))
    response = client_for("audrey", world).get(LIST + "?team=crew07")
    body = response.content.decode()
    assert response.status_code == 200 and rows(response) == []
    assert '<input type="search" id="id_team" name="team" value="crew07"' in body
    assert '<option value="crew08"' not in body  # no <select> of a thousand teams
    assert '<option value="$global">' in body  # the one value nobody could guess


def shown_secret(response: HttpResponse) -> str:
    return _shown(response, "rgb_")
