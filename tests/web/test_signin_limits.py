"""The sign-in form under the failure limits; the admin home page lists holds and lifts them."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.models import AuthHold, User
from audit.models import AuditRecord, Kind
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db
ATTACKER = "203.0.113.7"
HOME = "198.51.100.20"


def sign_in(username: str, password: str = PASSWORD, ip: str = ATTACKER, client: Client | None = None):
    return (client or Client()).post("/login/", {"username": username, "password": password}, REMOTE_ADDR=ip)


def hold_carol() -> None:
    for attempt in range(10):
        assert sign_in("carol", f"wrong-{attempt}").status_code == 200


def test_ten_failures_hold_the_form_with_a_page_saying_when_to_try_again(carol: User) -> None:
    hold_carol()
    response = sign_in("carol")
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 60
    assert "Too many failed sign-ins from here. Try again in" in response.content.decode()
    assert "_auth_user_id" not in response.wsgi_request.session
    record = AuditRecord.objects.filter(kind=Kind.SIGNIN).latest("id")
    assert (record.outcome, record.actor, record.ip) == ("limited", "carol", ATTACKER)
    assert record.detail["hold"] == "user"


def test_the_real_user_signs_in_from_another_address(carol: User) -> None:
    hold_carol()
    response = sign_in("carol", ip=HOME)
    assert response.status_code == 302


def test_the_form_and_the_token_endpoint_share_the_counts(carol: User) -> None:
    for attempt in range(5):
        sign_in("carol", f"wrong-{attempt}")
    for _ in range(5):
        Client().get("/auth/token", {"service": "x"}, REMOTE_ADDR=ATTACKER)  # 400s: not counted
    for attempt in range(5):
        sign_in("Carol", f"wrong-again-{attempt}")
    assert sign_in("carol").status_code == 429


def test_a_success_resets_the_count(carol: User) -> None:
    for attempt in range(9):
        sign_in("carol", f"wrong-{attempt}")
    assert sign_in("carol").status_code == 302
    for attempt in range(9):
        sign_in("carol", f"wrong-{attempt}")
    assert sign_in("carol").status_code == 302


def test_the_admin_home_page_lists_holds_and_lifts_one(carol: User, ada: User) -> None:
    hold_carol()
    admin = Client()
    admin.force_login(ada)
    page = admin.get("/").content.decode()
    assert "Held after failed sign-ins" in page and "carol from <code>203.0.113.7</code>" in page
    hold = AuthHold.objects.get()
    response = admin.post(f"/holds/{hold.pk}/lift")
    assert response.status_code == 302
    assert not AuthHold.objects.exists()
    assert "Lifted the hold on carol from 203.0.113.7" in admin.get("/").content.decode()
    change = AuditRecord.objects.get(kind=Kind.ADMIN_CHANGE, detail__action="limit.lift")
    assert change.actor == "ada" and change.detail["before"]["failures"] == 10
    assert sign_in("carol").status_code == 302


@pytest.mark.parametrize("persona", ["audrey", "alice", "carol"])
def test_only_admins_may_lift(persona: str, request: pytest.FixtureRequest, carol: User) -> None:
    hold_carol()
    client = Client()
    client.force_login(request.getfixturevalue(persona))
    assert client.post(f"/holds/{AuthHold.objects.get().pk}/lift").status_code == 403
    assert AuthHold.objects.exists()


def test_lifting_needs_a_post_and_a_sign_in(ada: User, carol: User) -> None:
    hold_carol()
    pk = AuthHold.objects.get().pk
    admin = Client()
    admin.force_login(ada)
    assert admin.get(f"/holds/{pk}/lift").status_code == 405
    assert Client().post(f"/holds/{pk}/lift").status_code == 302  # to the sign-in page
    assert admin.post("/holds/999999/lift").status_code == 404


def test_auditors_see_holds_without_a_lift_button(audrey: User, carol: User) -> None:
    hold_carol()
    client = Client()
    client.force_login(audrey)
    page = client.get("/").content.decode()
    assert "carol from <code>203.0.113.7</code>" in page and ">Lift<" not in page


def test_the_admin_site_signs_in_through_the_limited_form() -> None:
    response = Client().get("/admin/login/?next=/admin/")
    assert response.status_code == 302 and response["Location"] == "/login/?next=/admin/"
