"""What every API call shares: who it authenticates, what a token limits, and the one error shape."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts import services
from accounts.models import PersonalAccessToken, Team, User
from tests.api.conftest import token_client
from tests.conftest import SYSTEM

pytestmark = pytest.mark.django_db
SHAPE = {"status", "error", "detail", "fields"}


def bearer(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def test_it_names_the_token_owner_and_the_tokens_limits_on_me(ada: User) -> None:
    client = token_client(ada, read_only=True, patterns=["web/**"])
    answer = client.get("/api/me").json()
    assert answer["username"] == "ada" and answer["is_admin"] is True
    assert answer["token"] == {"name": answer["token"]["name"], "read_only": True, "patterns": ["web/**"]}


def test_it_answers_401_in_the_error_shape_without_credentials_and_says_how_to_authenticate() -> None:
    response = APIClient().get("/api/me")
    assert response.status_code == 401 and set(response.json()) == SHAPE
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        ("rga_" + "x" * 40, "Unknown personal access token."),
        ("rgb_" + "x" * 40, "Robots do not use the API"),
        ("hunter2", "Expected a personal access token"),
    ],
)
def test_it_refuses_a_bearer_that_is_not_a_live_personal_access_token(db: None, secret: str, message: str) -> None:
    response = bearer(secret).get("/api/me")
    assert response.status_code == 401 and message in response.json()["detail"]


def test_it_refuses_a_revoked_an_expired_and_a_deactivated_users_token(ada: User, carol: User) -> None:
    revoked, revoked_secret = services.create_access_token(ada, "old", context=SYSTEM)
    services.revoke_access_token(revoked, context=SYSTEM)
    expiring, expired_secret = services.create_access_token(
        ada, "soon", context=SYSTEM, expires_at=timezone.now() + timedelta(minutes=1)
    )
    PersonalAccessToken.objects.filter(pk=expiring.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    _, carols = services.create_access_token(carol, "laptop", context=SYSTEM)
    services.update_user(carol, is_active=False, context=SYSTEM)
    assert "revoked" in bearer(revoked_secret).get("/api/me").json()["detail"]
    assert "expired" in bearer(expired_secret).get("/api/me").json()["detail"]
    assert bearer(carols).get("/api/me").status_code == 401


def test_it_keeps_the_tokens_last_use_and_address(ada: User) -> None:
    client = token_client(ada, name="tracked")
    client.get("/api/me", REMOTE_ADDR="192.0.2.9")
    token = PersonalAccessToken.objects.get(name="tracked")
    assert token.last_used_at is not None and token.last_used_ip == "192.0.2.9"


def test_a_read_only_token_cannot_write_anything(ada: User) -> None:
    response = token_client(ada, read_only=True).post("/api/teams/", {"name": "ro"}, format="json")
    assert response.status_code == 403 and "read-only" in response.json()["detail"]
    assert not Team.objects.filter(name="ro").exists()


def test_a_session_write_needs_the_csrf_token(ada: User) -> None:
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(ada)
    response = client.post("/api/teams/", {"name": "nocsrf"}, format="json")
    assert response.status_code == 403 and "CSRF" in response.json()["detail"]


def test_unknown_api_paths_wrong_methods_and_bad_bodies_answer_in_the_error_shape(ada: User) -> None:
    client = token_client(ada)
    missing = client.get("/api/no-such-thing")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    wrong_method = client.put("/api/me")
    assert wrong_method.status_code == 405 and set(wrong_method.json()) == SHAPE
    broken = client.generic("POST", "/api/teams/", "{not json", content_type="application/json")
    assert broken.status_code == 400 and set(broken.json()) == SHAPE
    unsupported = client.generic("POST", "/api/teams/", "name=x", content_type="application/x-www-form-urlencoded")
    assert unsupported.status_code == 415 and set(unsupported.json()) == SHAPE


def test_a_field_error_names_the_field(ada: User) -> None:
    response = token_client(ada).post("/api/teams/", {"name": "Not A Slug!"}, format="json")
    assert response.status_code == 400 and "name" in response.json()["fields"]


def test_the_request_guards_answer_in_the_error_shape_under_api(ada: User, settings) -> None:
    client = token_client(ada)
    too_big = client.generic("POST", "/api/teams/", "x", content_type="application/json", CONTENT_LENGTH=str(10**9))
    assert too_big.status_code == 413 and too_big.json()["error"] == "too_large"
    nul = client.get("/api/users/a%00b/")
    assert nul.status_code == 400 and nul.json()["error"] == "bad_request"
    page = APIClient().get("/no-such-page%00")
    assert page["Content-Type"].startswith("text/plain")


def test_the_schema_needs_credentials_and_refuses_in_json(ada: User) -> None:
    refused = APIClient().get("/api/schema/")
    assert refused.status_code == 401 and refused.json()["error"] == "not_authenticated"
    schema = token_client(ada).get("/api/schema/?format=json").json()
    assert schema["openapi"].startswith("3.")
    every = [op for path in schema["paths"].values() for op in path.values()]
    assert every and all({"401", "403"} <= set(op["responses"]) for op in every)


def test_every_operation_documents_its_refusals_and_the_schema_validates(ada: User) -> None:
    schema = token_client(ada).get("/api/schema/?format=json").json()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            codes = set(operation["responses"])
            assert {"400", "401", "403"} <= codes, (method, path)
            if "{" in path:
                assert "404" in codes, (method, path)


def test_a_nul_byte_in_a_query_parameter_is_a_400_before_any_lookup(ada: User) -> None:
    client = token_client(ada)
    for url in ("/api/access/why?user=a%00b&repository=web/app", "/api/grants/?user=%00", "/api/users/?q%00=x"):
        response = client.get(url)
        assert response.status_code == 400 and "NUL" in response.json()["detail"], url
        assert response.json()["error"] == "invalid" and len(response.json()["fields"]) == 1, url


def test_applying_a_policy_never_removes_the_appliers_admin_flag_or_deactivates_them(ada: User) -> None:
    client = token_client(ada)
    for entry, message in (("admin: false", "admin flag"), ("active: false", "deactivate yourself")):
        policy = f"users:\n  - username: ada\n    {entry}\nteams: []\ngrants: []\nrepositories: []\n"
        response = client.generic("POST", "/api/policy", policy, content_type="application/yaml")
        assert response.status_code == 400 and message in str(response.json()["fields"]), response.json()
    ada.refresh_from_db()
    assert ada.is_superuser and ada.is_active
    dry = client.generic(
        "POST",
        "/api/policy?dry_run=1",
        "users:\n  - username: ada\n    admin: false\n",
        content_type="application/yaml",
    )
    assert dry.status_code == 400
