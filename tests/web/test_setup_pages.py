"""The client setup page: every signed-in user gets commands with their own name and each registry's host."""

from __future__ import annotations

import html

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts import services
from accounts.models import User
from accounts.registry.client_setup import PLACEHOLDER_HOST
from tests.conftest import SYSTEM

pytestmark = pytest.mark.django_db

SETUP = "/setup/"


@pytest.fixture
def people(ada: User, audrey: User, alice: User, bob: User, carol: User, dave: User) -> dict[str, User]:
    return {"ada": ada, "audrey": audrey, "alice": alice, "bob": bob, "carol": carol, "dave": dave}


@pytest.fixture
def secure(db: None) -> None:
    services.create_registry("registry", url="https://registry.example.org:5000", context=SYSTEM)


def client_for(persona: str, people: dict[str, User]) -> Client:
    client = Client()
    if persona != "anonymous":
        client.force_login(people[persona])
    return client


def page(persona: str, people: dict[str, User], **params: str) -> str:
    response = client_for(persona, people).get(SETUP, params)
    assert response.status_code == 200
    return response.content.decode()


def test_the_url_is_where_the_brief_says() -> None:
    assert reverse("setup:index") == SETUP


@pytest.mark.parametrize(
    ("persona", "expected"),
    [("anonymous", 302), ("dave", 302), ("carol", 200), ("bob", 200), ("alice", 200), ("audrey", 200), ("ada", 200)],
)
def test_every_signed_in_user_gets_the_page(people, secure, persona: str, expected: int) -> None:
    response = client_for(persona, people).get(SETUP)
    assert response.status_code == expected
    if expected == 302:
        assert response["Location"].startswith(reverse("accounts:login"))


def test_it_rejects_the_wrong_method(people) -> None:
    assert client_for("carol", people).post(SETUP).status_code == 405


def test_the_commands_carry_the_users_name_and_the_registrys_host(people, secure) -> None:
    body = page("carol", people)
    assert "docker login -u carol registry.example.org:5000" in body
    assert "docker pull registry.example.org:5000/web/app:1.0" in body
    assert "skopeo login --username carol registry.example.org:5000" in body
    assert "ctr images pull --user carol registry.example.org:5000/web/app:1.0" in body
    assert "--docker-server=registry.example.org:5000" in body and "imagePullSecrets" in body
    assert "docker login -u bob" in page("bob", people)


def test_token_mode_recommends_a_personal_access_token(people, secure) -> None:
    body = page("carol", people)
    assert "personal access token" in body and f'href="{reverse("tokens:list")}"' in body
    assert "--password-stdin registry.example.org:5000" in body


def test_robot_names_are_single_quoted_for_shells(people, secure) -> None:
    body = page("carol", people)
    assert "docker login -u &#x27;robot$web+ci&#x27; --password-stdin" in body
    assert "--docker-username=&#x27;robot$web+ci&#x27;" in body
    assert "<code>$$</code>" in body and '"$REGISTRY_USER"' in body


def test_https_registries_get_the_private_ca_notes(people, secure) -> None:
    body = page("carol", people)
    assert "/etc/docker/certs.d/registry.example.org:5000/ca.crt" in body
    assert "insecure-registries" not in body and "--plain-http" not in body


def test_plain_http_registries_get_the_insecure_registry_notes(people) -> None:
    services.create_registry("lab", url="http://10.0.0.5:5000", context=SYSTEM)
    body = page("carol", people)
    assert '{"insecure-registries": ["10.0.0.5:5000"]}' in html.unescape(body)  # escaped inside <pre>
    assert "ctr images pull --plain-http --user carol 10.0.0.5:5000/web/app:1.0" in body
    assert "skopeo login --username carol --tls-verify=false 10.0.0.5:5000" in body
    assert "/etc/containerd/certs.d/10.0.0.5:5000/hosts.toml" in body


def test_htpasswd_registries_say_what_does_not_work(people) -> None:
    services.create_registry("legacy", url="https://legacy.example.org", auth_mode="htpasswd", context=SYSTEM)
    body = page("carol", people)
    assert "checks passwords only (htpasswd mode)" in body
    assert "personal access tokens" in body and "directory (LDAP) logins" in body
    assert "roles: any valid login may pull, push and delete everywhere" in body
    assert "paste a <strong>personal access token</strong>" not in body


def test_a_registry_without_url_gets_a_placeholder_and_a_note_for_admins(people) -> None:
    services.create_registry("registry", context=SYSTEM)
    body = page("carol", people)
    assert f"docker login -u carol {PLACEHOLDER_HOST}" in body
    assert "has no URL yet" in body and "Ask an administrator" in body
    admin = page("ada", people)
    assert reverse("registries:detail", kwargs={"service": "registry"}) in admin


def test_no_registry_at_all_is_said_plainly(people) -> None:
    assert "No registry is configured yet" in page("carol", people)
    assert reverse("registries:new") in page("ada", people)


def test_the_page_can_show_one_registry(people, secure) -> None:
    services.create_registry("other", url="https://other.example.org", context=SYSTEM)
    body = page("carol", people, registry="other")
    assert "other.example.org" in body and "docker login -u carol registry.example.org" not in body
    assert "No registry is called nope" in page("carol", people, registry="nope")


def test_an_overlong_filter_is_refused_with_the_message(people) -> None:
    response = client_for("carol", people).get(SETUP, {"registry": "x" * 300})
    assert response.status_code == 400
    assert "at most 255 characters" in response.content.decode()


def test_the_page_takes_as_many_queries_for_many_registries_as_for_one(people, secure) -> None:
    client = client_for("carol", people)
    with CaptureQueriesContext(connection) as few:
        client.get(SETUP)
    for n in range(15):
        services.create_registry(f"r{n:02d}", url=f"https://r{n:02d}.example.org", context=SYSTEM)
    with CaptureQueriesContext(connection) as many:
        response = client.get(SETUP)
    assert len(many) == len(few)
    assert "Page 1 of 2" in response.content.decode()
