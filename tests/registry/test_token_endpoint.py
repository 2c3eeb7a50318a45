"""The token endpoint in-process: who gets what, every attempt recorded, bad input refused cleanly."""

from __future__ import annotations

import base64
from datetime import timedelta

import jwt
import pytest
from cryptography import x509
from django.db import DatabaseError
from django.test import Client
from django.utils import timezone

from accounts import services
from accounts.models import Registry, SigningKey, Team, User
from accounts.services import ensure_keys
from audit.alerts import failed_login_bursts
from audit.models import AuditRecord
from tests.conftest import PASSWORD, SYSTEM

pytestmark = pytest.mark.django_db
URL = "/auth/token"


@pytest.fixture
def registry(db: None) -> Registry:
    registry = services.create_registry("registry", context=SYSTEM)
    ensure_keys()
    return registry


@pytest.fixture
def grants(registry: Registry, web: Team, carol: User) -> None:
    services.create_grant(web, "web/**", "write", context=SYSTEM)
    services.create_grant(carol, "web/app", "read", context=SYSTEM)
    services.create_repository("pub/base", public=True, context=SYSTEM)


def basic(username: str, password: str = PASSWORD) -> dict[str, str]:
    raw = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"HTTP_AUTHORIZATION": f"Basic {raw}"}


def ask(client: Client, *scopes: str, user: str | None = None, password: str = PASSWORD, **params: str):
    query = {"service": "registry", **params}
    if scopes:
        query["scope"] = list(scopes)
    headers = basic(user, password) if user else {}
    return client.get(URL, query, **headers, HTTP_USER_AGENT="docker/27.0")


def claims(response) -> dict:
    token = response.json()["token"]
    header = jwt.get_unverified_header(token)
    cert = x509.load_der_x509_certificate(base64.b64decode(header["x5c"][0]))
    return jwt.decode(token, cert.public_key(), algorithms=["ES256"], audience="registry")


def access_of(response) -> dict[str, list[str]]:
    return {f"{a['type']}:{a['name']}": a["actions"] for a in claims(response)["access"]}


def last_access() -> AuditRecord:
    return AuditRecord.objects.filter(kind="access").latest("id")


def test_docker_login_without_scope_is_200_for_good_credentials(client: Client, grants: None) -> None:
    response = ask(client, user="carol")
    assert response.status_code == 200
    assert claims(response)["sub"] == "carol"
    assert last_access().outcome == "granted"


def test_docker_login_with_a_wrong_password_is_401_and_recorded(client: Client, grants: None) -> None:
    response = ask(client, user="carol", password="wrong")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Basic")
    record = last_access()
    assert (record.outcome, record.actor, record.user_agent) == ("auth_failed", "carol", "docker/27.0")
    assert "wrong" not in str(record.detail)


def test_an_unknown_user_gets_the_same_answer_as_a_wrong_password(client: Client, grants: None) -> None:
    unknown = ask(client, user="mallory", password="x")
    wrong = ask(client, user="carol", password="x")
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json() == wrong.json()


def test_the_team_maintainer_may_push_and_pull_but_not_delete(client: Client, grants: None) -> None:
    response = ask(client, "repository:web/app:pull,push,delete", user="alice")
    assert access_of(response) == {"repository:web/app": ["pull", "push"]}
    record = last_access()
    assert record.outcome == "partial"
    assert record.actions == [
        {
            "type": "repository",
            "name": "web/app",
            "requested": ["pull", "push", "delete"],
            "granted": ["pull", "push"],
            "denied": ["delete"],
        }
    ]


def test_carol_may_only_pull_web_app(client: Client, grants: None) -> None:
    assert access_of(ask(client, "repository:web/app:pull,push", user="carol")) == {"repository:web/app": ["pull"]}
    assert access_of(ask(client, "repository:web/other:pull", user="carol")) == {"repository:web/other": []}
    assert last_access().outcome == "denied"


def test_star_is_answered_with_the_concrete_actions_held(client: Client, grants: None, ada: User) -> None:
    assert access_of(ask(client, "repository:web/app:*", user="alice")) == {"repository:web/app": ["pull", "push"]}
    assert access_of(ask(client, "repository:web/app:*", user="ada")) == {
        "repository:web/app": ["pull", "push", "delete", "*"]
    }


def test_several_scopes_in_one_request(client: Client, grants: None) -> None:
    response = ask(client, "repository:web/app:pull,push", "repository:pub/base:pull", user="bob")
    assert access_of(response) == {"repository:web/app": ["pull", "push"], "repository:pub/base": ["pull"]}


def test_anonymous_may_pull_public_repositories_only(client: Client, grants: None) -> None:
    assert access_of(ask(client, "repository:pub/base:pull,push")) == {"repository:pub/base": ["pull"]}
    assert access_of(ask(client, "repository:web/app:pull")) == {"repository:web/app": []}
    record = last_access()
    assert (record.subject_type, record.actor, claims(ask(client))["sub"]) == ("anonymous", "", "")


def test_an_inactive_user_is_refused_even_for_public_repositories(client: Client, grants: None, dave: User) -> None:
    response = ask(client, "repository:pub/base:pull", user="dave")
    assert response.status_code == 401
    assert last_access().detail["reason"] == "user is inactive"


def test_only_admins_get_the_catalog(client: Client, grants: None, ada: User) -> None:
    assert access_of(ask(client, "registry:catalog:*", user="alice")) == {"registry:catalog": []}
    assert access_of(ask(client, "registry:catalog:*", user="ada")) == {"registry:catalog": ["*"]}


def test_the_account_parameter_never_decides_the_subject(client: Client, grants: None) -> None:
    response = ask(client, "repository:web/app:push", user="carol", account="alice")
    assert claims(response)["sub"] == "carol"
    assert access_of(response) == {"repository:web/app": []}
    assert last_access().detail["account_hint_ignored"] == "alice"


def test_an_unknown_service_is_a_400(client: Client, grants: None) -> None:
    response = client.get(URL, {"service": "elsewhere", "scope": "repository:web/app:pull"}, **basic("carol"))
    assert response.status_code == 400
    assert last_access().outcome == "invalid"


@pytest.mark.parametrize(
    "scope",
    [
        "repository:Web/App:pull",
        "nonsense",
        "repository::pull",
        "repository:web/app:pu ll",
        "x" * 5000,
        "repository:web/app:" + "\x00",
        "repository:web/app:pull\u00e9",
    ],
)
def test_malformed_scopes_get_a_400_and_an_invalid_record(client: Client, grants: None, scope: str) -> None:
    response = ask(client, scope, user="carol")
    assert response.status_code == 400
    assert "errors" in response.json()
    assert last_access().outcome == "invalid"


@pytest.mark.parametrize(
    "header",
    [
        "Basic !!!",
        "Basic " + base64.b64encode(b"nocolon").decode(),
        "Bearer abc",
        "Basic " + base64.b64encode(b"\xff\xfe:x").decode(),
    ],
)
def test_bad_authorization_headers_get_a_400(client: Client, grants: None, header: str) -> None:
    response = client.get(URL, {"service": "registry"}, HTTP_AUTHORIZATION=header)
    assert response.status_code == 400
    assert last_access().outcome == "invalid"


def test_unknown_scope_types_and_actions_are_simply_not_granted(client: Client, grants: None) -> None:
    response = ask(client, "repository(plugin):web/app:pull,frob", "blob:x:pull", user="alice")
    assert access_of(response) == {"repository:web/app": ["pull"], "blob:x": []}


def test_tokens_carry_the_registry_2_8_headers_and_claims(client: Client, grants: None, settings) -> None:
    response = ask(client, "repository:web/app:pull", user="carol")
    token = response.json()["token"]
    header = jwt.get_unverified_header(token)
    current = SigningKey.objects.get(state="current")
    assert header["alg"] == "ES256"
    assert header["kid"] == current.kid
    assert len(header["kid"].split(":")) == 12
    decoded = claims(response)
    assert decoded["iss"] == settings.TOKEN_ISSUER
    assert decoded["exp"] - decoded["iat"] == settings.TOKEN_TTL
    assert decoded["nbf"] < decoded["iat"]
    assert response.json()["expires_in"] == settings.TOKEN_TTL
    assert response.json()["access_token"] == token
    assert response["Cache-Control"] == "no-store"


def test_containerd_post_password_grant_works(client: Client, grants: None) -> None:
    response = client.post(
        URL,
        {
            "grant_type": "password",
            "username": "bob",
            "password": PASSWORD,
            "service": "registry",
            "client_id": "containerd-client",
            "scope": "repository:web/app:pull,push repository:pub/base:pull",
        },
    )
    assert response.status_code == 200
    assert access_of(response) == {"repository:web/app": ["pull", "push"], "repository:pub/base": ["pull"]}
    assert "refresh_token" not in response.json()
    assert last_access().detail["method"] == "POST"


def test_a_post_with_bad_credentials_then_its_get_retry_count_as_one_attempt(client: Client, grants: None) -> None:
    client.post(
        URL,
        {
            "grant_type": "password",
            "username": "carol",
            "password": "bad",
            "service": "registry",
            "scope": "repository:web/app:pull",
        },
        HTTP_USER_AGENT="containerd/1.6",
    )
    response = client.get(
        URL,
        {"service": "registry", "scope": "repository:web/app:pull"},
        HTTP_USER_AGENT="containerd/1.6",
        **basic("carol", "bad"),
    )
    assert response.status_code == 401
    post, get = AuditRecord.objects.filter(kind="access", outcome="auth_failed").order_by("id")
    assert get.detail["retry_of"] == post.id


def test_repeated_guesses_cannot_hide_behind_one_post(client: Client, grants: None) -> None:
    client.post(
        URL,
        {"grant_type": "password", "username": "carol", "password": "bad", "service": "registry"},
        HTTP_USER_AGENT="containerd/1.6",
    )
    for guess in range(5):
        client.get(URL, {"service": "registry"}, HTTP_USER_AGENT="containerd/1.6", **basic("carol", f"g{guess}"))
    failures = AuditRecord.objects.filter(kind="access", outcome="auth_failed")
    assert failures.count() == 6
    assert failures.filter(detail__has_key="retry_of").count() == 1

    assert [b.failures for b in failed_login_bursts() if b.by == "user"] == [5]


def test_a_post_with_an_unknown_grant_type_is_a_400(client: Client, grants: None) -> None:
    assert client.post(URL, {"grant_type": "client_credentials", "service": "registry"}).status_code == 400
    assert client.post(URL, b"\x00\x01", content_type="application/octet-stream").status_code == 400


def test_refresh_tokens_are_issued_reused_and_revoked_on_password_change(client: Client, grants: None) -> None:
    login = ask(client, user="carol", offline_token="true", client_id="docker")
    refresh = login.json()["refresh_token"]
    assert refresh.startswith("rgr_")
    again = client.post(
        URL,
        {
            "grant_type": "refresh_token",
            "refresh_token": refresh,
            "service": "registry",
            "scope": "repository:web/app:pull",
        },
    )
    assert again.status_code == 200
    assert access_of(again) == {"repository:web/app": ["pull"]}
    assert again.json()["refresh_token"] == refresh  # docker ignores a rotated one (moby 39718)
    services.set_password(User.objects.get(username="carol"), "a-new-passphrase-x", context=SYSTEM)
    refused = client.post(URL, {"grant_type": "refresh_token", "refresh_token": refresh, "service": "registry"})
    assert refused.status_code == 401


def test_refresh_tokens_die_with_deactivation(client: Client, grants: None) -> None:
    refresh = ask(client, user="carol", offline_token="true").json()["refresh_token"]
    services.update_user(User.objects.get(username="carol"), is_active=False, context=SYSTEM)
    response = client.post(URL, {"grant_type": "refresh_token", "refresh_token": refresh, "service": "registry"})
    assert response.status_code == 401


def test_a_password_change_drops_the_verified_cache_at_once(client: Client, grants: None) -> None:
    assert ask(client, user="carol").status_code == 200
    services.set_password(User.objects.get(username="carol"), "a-new-passphrase-x", context=SYSTEM)
    assert ask(client, user="carol").status_code == 401
    assert ask(client, user="carol", password="a-new-passphrase-x").status_code == 200


def test_deactivation_is_refused_at_once_despite_the_cache(client: Client, grants: None) -> None:
    assert ask(client, user="carol").status_code == 200
    services.update_user(User.objects.get(username="carol"), is_active=False, context=SYSTEM)
    assert ask(client, user="carol").status_code == 401


def test_expired_grants_count_for_nothing(client: Client, registry: Registry, carol: User) -> None:
    services.create_grant(carol, "old/app", "read", expires_at=timezone.now() - timedelta(seconds=1), context=SYSTEM)
    assert access_of(ask(client, "repository:old/app:pull", user="carol")) == {"repository:old/app": []}


def test_if_the_access_record_cannot_be_written_no_token_is_given(
    client: Client, grants: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args, **kwargs):
        raise DatabaseError("disk full")

    monkeypatch.setattr("accounts.registry.tokens.insert", broken)
    response = ask(client, "repository:web/app:pull", user="carol")
    assert response.status_code == 503
    assert "token" not in response.json()


def test_a_repeat_request_makes_one_query_the_guarded_access_record(
    client: Client, grants: None, django_assert_num_queries
) -> None:
    ask(client, "repository:web/app:pull", user="bob")  # verifies the password (fresh path)
    ask(client, "repository:web/app:pull", user="bob")  # fills this process's cache, checks the pair once
    with django_assert_num_queries(1) as queries:
        response = ask(client, "repository:web/app:pull", user="bob")
    assert response.status_code == 200
    assert queries.captured_queries[0]["sql"].startswith("INSERT INTO")


def test_other_methods_are_refused(client: Client, grants: None) -> None:
    assert client.put(URL).status_code == 405


def test_a_password_form_without_a_username_is_refused_not_answered_anonymously(client: Client, grants: None) -> None:
    response = client.post(
        URL, {"grant_type": "password", "password": "x", "service": "registry", "scope": "repository:pub/base:pull"}
    )
    assert response.status_code == 400


@pytest.mark.parametrize("params", [{"service": "reg\x00istry"}, {"account": "\x00"}, {"client_id": "a\x00"}])
def test_nul_characters_are_refused_and_still_recorded(client: Client, grants: None, params: dict) -> None:
    response = client.get(URL, {"service": "registry", **params}, **basic("carol"))
    assert response.status_code == 400
    assert last_access().outcome == "invalid"


def test_a_nul_in_the_username_is_refused(client: Client, grants: None) -> None:
    assert ask(client, user="car\x00ol").status_code == 400


def test_issuing_a_refresh_token_is_recorded(client: Client, grants: None) -> None:
    ask(client, user="carol", offline_token="true")
    assert last_access().detail["refresh_token"] == "issued"
    assert "rgr_" not in str(last_access().detail)


def test_a_user_without_a_password_costs_a_hash_like_everyone(client: Client, grants: None, monkeypatch) -> None:
    services.create_user("nopass", context=SYSTEM)
    calls = []
    monkeypatch.setattr("accounts.registry.passwords.make_password", lambda pw: calls.append(pw))
    assert ask(client, user="nopass", password="guess").status_code == 401
    assert calls == ["guess"]


def test_a_limited_token_of_an_admin_cannot_list_the_catalog(client: Client, grants: None, ada: User) -> None:
    _, secret = services.create_access_token(ada, "ci", patterns=["web/**"], context=SYSTEM)
    assert access_of(ask(client, "registry:catalog:*", user="ada", password=secret)) == {"registry:catalog": []}
    _, full = services.create_access_token(ada, "all", context=SYSTEM)
    assert access_of(ask(client, "registry:catalog:*", user="ada", password=full)) == {"registry:catalog": ["*"]}
