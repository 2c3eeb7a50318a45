"""The unused-access page: who sees which part, who may act, and what bad input gets.

alice leads web (which holds write on web/**) and gave bob write on web/app 120 days ago; carol reads
web/app with no team; nobody used anything. ada the admin and audrey the auditor see everything.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts import services
from accounts.models import Grant, Team, User
from audit.models import AuditRecord, Kind
from tests.conftest import SYSTEM, client_for

pytestmark = pytest.mark.django_db

PAGE = reverse("access:unused")
APPLY = reverse("access:unused_apply")
DISMISS = reverse("access:unused_dismiss")


@pytest.fixture
def world(ada: User, audrey: User, alice: User, bob: User, carol: User, web: Team) -> dict:
    services.create_grant(web, "web/**", "write", context=SYSTEM)
    bobs = services.lead_grant(web, bob, "web/app", "write", acting_user=alice, context=SYSTEM)
    carols = services.create_grant(carol, "web/app", "read", context=SYSTEM)
    old = timezone.now() - timedelta(days=120)
    Grant.objects.update(created_at=old)
    User.objects.filter(username__in=["bob", "carol"]).update(date_joined=old)
    User.objects.filter(username="bob").update(last_login=timezone.now())  # bob is around; his grant is unused
    return {"ada": ada, "audrey": audrey, "alice": alice, "bob": bob, "carol": carol, "bobs": bobs, "carols": carols}


def key_for(subject: str, pattern: str = "") -> str:
    report = services.unused.report(90)
    return next(p.key for p in report.proposals if p.subject == subject and p.pattern == pattern)


def test_an_admin_sees_every_proposal_with_its_buttons(world: dict) -> None:
    body = client_for("ada", world).get(PAGE).content.decode()
    assert "Deactivate" in body and "carol" in body and "bob" in body
    assert "Dismiss for 90 days" in body


def test_an_auditor_sees_everything_and_may_act_on_nothing(world: dict) -> None:
    client = client_for("audrey", world)
    body = client.get(PAGE).content.decode()
    assert "carol" in body and "Dismiss for" not in body
    assert client.post(APPLY, {"key": key_for("bob", "web/app"), "days": "90"}).status_code == 403
    assert Grant.objects.get(pk=world["bobs"].pk).role == "write"


def test_a_lead_sees_the_teams_part_only(world: dict) -> None:
    response = client_for("alice", world).get(PAGE)
    body = response.content.decode()
    assert response.status_code == 200
    assert "web/app" in body and "bob" in body
    assert "carol" not in body  # a person with no team: admins only


@pytest.mark.parametrize("persona", ["bob", "carol"])
def test_people_who_lead_nothing_are_refused(world: dict, persona: str) -> None:
    assert client_for(persona, world).get(PAGE).status_code == 403
    assert client_for(persona, world).post(APPLY, {"key": "0" * 32, "days": "90"}).status_code == 403


def test_anonymous_visitors_go_to_sign_in(world: dict) -> None:
    response = Client().get(PAGE)
    assert response.status_code == 302 and "/login/" in response["Location"]


@pytest.mark.parametrize("days", ["0", "91", "abc", "9" * 12])
def test_a_bad_period_is_a_400_with_the_reason(world: dict, days: str) -> None:
    response = client_for("ada", world).get(PAGE, {"days": days})
    assert response.status_code == 400
    assert "days must be" in response.content.decode()


def test_the_json_view_has_the_contract_shape(world: dict) -> None:
    data = client_for("ada", world).get(PAGE, {"days": "30", "format": "json"}).json()
    assert data["days"] == 30
    assert {p["subject"] for p in data["proposals"]} == {"bob", "carol"}
    assert client_for("ada", world).get(PAGE, {"days": "0", "format": "json"}).status_code == 400


def test_a_lead_revokes_bobs_unused_grant_in_one_click(world: dict) -> None:
    response = client_for("alice", world).post(APPLY, {"key": key_for("bob", "web/app"), "days": "90"})
    assert response.status_code == 302
    assert not Grant.objects.filter(pk=world["bobs"].pk).exists()  # no pull, push or delete: revoked
    assert AuditRecord.objects.filter(kind=Kind.ADMIN_CHANGE, detail__action="unused.apply", actor="alice").exists()


def test_a_dismissal_with_a_reason_hides_the_proposal(world: dict) -> None:
    client = client_for("ada", world)
    response = client.post(DISMISS, {"key": key_for("carol"), "days": "90", "reason": "on leave until March"})
    assert response.status_code == 302
    body = client.get(PAGE).content.decode()
    assert "dismissed within the period" in body


def test_a_dismissal_without_a_reason_is_a_400(world: dict) -> None:
    response = client_for("ada", world).post(DISMISS, {"key": key_for("carol"), "days": "90", "reason": ""})
    assert response.status_code == 400 and "Say why" in response.content.decode()


@pytest.mark.parametrize(
    "data", [{}, {"key": "nothex", "days": "90"}, {"key": "0" * 32, "days": "x"}, {"key": "0" * 32, "days": "90"}]
)
def test_a_bad_or_stale_key_is_a_400_and_changes_nothing(world: dict, data: dict) -> None:
    response = client_for("ada", world).post(APPLY, data)
    assert response.status_code == 400
    assert Grant.objects.count() == 3


@pytest.mark.parametrize(("url", "method"), [(PAGE, "post"), (APPLY, "get"), (DISMISS, "get")])
def test_it_rejects_the_wrong_method(world: dict, url: str, method: str) -> None:
    assert getattr(client_for("ada", world), method)(url).status_code == 405


def test_actions_need_a_csrf_token(world: dict) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(world["ada"])
    assert client.post(APPLY, {"key": key_for("carol"), "days": "90"}).status_code == 403
    assert User.objects.get(username="carol").is_active


def test_filters_narrow_the_list_by_kind_name_and_team(world: dict) -> None:
    client = client_for("ada", world)
    body = client.get(PAGE, {"kind": "deactivate"}).content.decode()
    assert "carol" in body and "web/app</code>" not in body
    body = client.get(PAGE, {"team": "web"}).content.decode()
    assert "web/app</code>" in body and ">carol<" not in body
    assert client.get(PAGE, {"kind": "nonsense"}).status_code == 400


def test_a_page_changes_as_soon_as_a_grant_does(world: dict) -> None:
    client = client_for("ada", world)
    assert "web/app</code>" in client.get(PAGE, {"team": "web"}).content.decode()
    services.revoke_grant(world["bobs"], context=SYSTEM)
    assert "web/app</code>" not in client.get(PAGE, {"team": "web"}).content.decode()
