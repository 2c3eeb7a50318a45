"""The token endpoint under the failure limits: 429 with Retry-After, recorded as `limited`."""

from __future__ import annotations

import base64

import pytest
from django.test import Client

from accounts import services
from accounts.models import AuthHold, HoldScope, Registry, Team, User
from accounts.services import ensure_keys
from audit.models import AuditRecord, Kind
from tests.conftest import PASSWORD, SYSTEM

pytestmark = pytest.mark.django_db
URL = "/auth/token"
ATTACKER = "203.0.113.7"
HOME = "198.51.100.20"


@pytest.fixture
def registry(db: None, web: Team, carol: User) -> Registry:
    registry = services.create_registry("registry", context=SYSTEM)
    ensure_keys()
    services.create_grant(web, "web/**", "write", context=SYSTEM)
    return registry


def ask(username: str | None, password: str = PASSWORD, ip: str = ATTACKER, **extra: str):
    headers = {}
    if username is not None:
        raw = base64.b64encode(f"{username}:{password}".encode()).decode()
        headers["HTTP_AUTHORIZATION"] = f"Basic {raw}"
    query = {"service": "registry", "scope": "repository:web/app:pull"}
    return Client().get(URL, query, REMOTE_ADDR=ip, **headers, **extra)


def last_access() -> AuditRecord:
    return AuditRecord.objects.filter(kind=Kind.ACCESS).latest("id")


def test_ten_wrong_passwords_hold_the_pair_even_against_the_right_password(registry: Registry) -> None:
    for _ in range(10):
        assert ask("bob", "wrong").status_code == 401
    response = ask("bob")
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 60
    assert response.json()["errors"][0]["code"] == "TOOMANYREQUESTS"
    assert "token" not in response.json()
    record = last_access()
    assert (record.outcome, record.actor, record.ip) == ("limited", "bob", ATTACKER)
    assert record.detail["hold"] == "user" and record.detail["retry_after"] == int(response["Retry-After"])
    assert "10 failed sign-ins for bob" in record.detail["reason"]
    assert record.actions[0]["requested"] == ["pull"]


def test_the_real_user_from_another_address_is_not_held(registry: Registry) -> None:
    for _ in range(12):
        ask("bob", "wrong")
    assert ask("bob").status_code == 429
    response = ask("bob", ip=HOME)
    assert response.status_code == 200 and response.json()["token"]


def test_fifty_failures_from_an_address_hold_it_for_everyone_there(registry: Registry) -> None:
    for n in range(50):
        ask(f"guess{n}", "wrong")
    response = ask("alice")
    assert response.status_code == 429
    assert last_access().detail["hold"] == "address"
    assert ask("alice", ip=HOME).status_code == 200


def test_a_success_resets_the_pair(registry: Registry) -> None:
    for _ in range(9):
        ask("bob", "wrong")
    assert ask("bob").status_code == 200
    for _ in range(9):
        assert ask("bob", "wrong").status_code == 401
    assert ask("bob").status_code == 200


def test_robot_secrets_are_counted_too(registry: Registry, web: Team) -> None:
    robot, secret = services.create_robot(web, "ci", grants=[("web/app", "write")], context=SYSTEM)
    for _ in range(10):
        assert ask(robot.login_name, "rgb_" + "x" * 40).status_code == 401
    assert ask(robot.login_name, secret).status_code == 429


def test_personal_access_tokens_are_counted_too(registry: Registry, alice: User) -> None:
    _, secret = services.create_access_token(alice, "laptop", context=SYSTEM)
    for _ in range(10):
        assert ask("alice", secret[:-2] + "xx").status_code == 401
    assert ask("alice", secret).status_code == 429


def test_refresh_tokens_are_counted_per_address(registry: Registry) -> None:
    def refresh(token: str, ip: str = ATTACKER):
        form = {"grant_type": "refresh_token", "refresh_token": token, "service": "registry"}
        return Client().post(URL, form, REMOTE_ADDR=ip)

    for _ in range(10):
        assert refresh("rgr_nonsense").status_code == 401
    assert refresh("rgr_other").status_code == 429
    assert AuthHold.objects.get().username == ""
    assert refresh("rgr_nonsense", ip=HOME).status_code == 401


def test_anonymous_and_malformed_requests_are_not_counted(registry: Registry) -> None:
    for _ in range(60):
        assert ask(None).status_code == 200  # anonymous: nothing guessed
        Client().get(URL, {"service": "registry"}, REMOTE_ADDR=ATTACKER, HTTP_AUTHORIZATION="Basic !!!")
    assert not AuthHold.objects.exists()
    assert ask("bob").status_code == 200


def test_unknown_users_wrong_passwords_and_dead_credentials_get_one_answer(registry: Registry, dave: User) -> None:
    answers = {
        (r.status_code, r.content, r["WWW-Authenticate"])
        for r in (
            ask("nobody-here", "wrong", ip="192.0.2.1"),
            ask("bob", "wrong", ip="192.0.2.2"),
            ask("dave", PASSWORD, ip="192.0.2.3"),  # inactive, right password
        )
    }
    assert len(answers) == 1
    assert next(iter(answers))[0] == 401


def test_the_hold_is_listed_and_lifting_it_lets_the_pair_in(registry: Registry) -> None:
    for _ in range(10):
        ask("bob", "wrong")
    hold = AuthHold.objects.get()
    assert (hold.scope, hold.username, hold.ip, hold.failures) == (HoldScope.USER, "bob", ATTACKER, 10)
    services.limits.lift(SYSTEM, ip=ATTACKER, username="bob")
    assert ask("bob").status_code == 200


@pytest.mark.parametrize("charset", ["base64", "hex", "zlib", "rot13"])
def test_a_charset_that_is_not_a_text_encoding_is_an_invalid_request(registry: Registry, charset: str) -> None:
    response = Client().get(
        URL, {"service": "registry"}, CONTENT_TYPE=f"text/plain; charset={charset}", REMOTE_ADDR=ATTACKER
    )
    assert response.status_code == 400
    record = last_access()
    assert record.outcome == "invalid" and charset in record.detail["reason"]
