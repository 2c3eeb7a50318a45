"""The signing-key pages: overseers see every key and its expiry; admins rotate, after the preflight.

The preflight only ever targets loopback: a registry without a URL (a warning) and a closed port on
127.0.0.1 (a failure that comes back at once).
"""

from __future__ import annotations

import socket
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts import services
from accounts.models import SigningKey, User
from accounts.registry import keys
from audit.models import AuditRecord
from tests.conftest import SYSTEM

pytestmark = pytest.mark.django_db

LIST = "/manage/keys/"
ROTATE = "/manage/keys/rotate"


@pytest.fixture(autouse=True)
def data_dir(settings, tmp_path: Path) -> Path:
    settings.DATA_DIR = tmp_path / "data"
    return settings.DATA_DIR


@pytest.fixture
def people(ada: User, audrey: User, carol: User) -> dict[str, User]:
    services.ensure_keys(SYSTEM)
    return {"ada": ada, "audrey": audrey, "carol": carol}


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on: the preflight's connection is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def client_for(persona: str, people: dict[str, User]) -> Client:
    client = Client()
    if persona != "anonymous":
        client.force_login(people[persona])
    return client


def kids() -> dict[str, str]:
    return dict(SigningKey.objects.exclude(state="retired").values_list("state", "kid"))


def test_the_urls_are_where_the_brief_says() -> None:
    assert (reverse("keys:list"), reverse("keys:rotate")) == (LIST, ROTATE)


@pytest.mark.parametrize(("persona", "expected"), [("anonymous", 302), ("carol", 403), ("audrey", 200), ("ada", 200)])
def test_overseers_see_the_keys(people, persona: str, expected: int) -> None:
    response = client_for(persona, people).get(LIST)
    assert response.status_code == expected
    if persona == "anonymous":
        assert response["Location"].startswith(reverse("accounts:login"))


@pytest.mark.parametrize(("persona", "expected"), [("anonymous", 302), ("carol", 403), ("audrey", 403), ("ada", 302)])
def test_only_admins_rotate(people, persona: str, expected: int) -> None:
    before = kids()
    response = client_for(persona, people).post(ROTATE)
    assert response.status_code == expected
    assert (kids() != before) == (persona == "ada")


def test_a_refused_page_shows_no_key(people) -> None:
    body = client_for("carol", people).get(LIST).content.decode()
    assert kids()["current"] not in body


@pytest.mark.parametrize(("url", "method"), [(LIST, "post"), (ROTATE, "get")])
def test_it_rejects_the_wrong_method(people, url: str, method: str) -> None:
    assert getattr(client_for("ada", people), method)(url).status_code == 405


def test_the_list_shows_every_key_with_its_state_and_expiry(people) -> None:
    services.rotate_signing_key(SYSTEM)
    services.rotate_signing_key(SYSTEM)
    retired = SigningKey.objects.get(state="retired")
    SigningKey.objects.filter(state="previous").update(not_after=timezone.now() + timedelta(days=10))
    SigningKey.objects.filter(pk=retired.pk).update(not_after=timezone.now() - timedelta(days=1))
    body = client_for("audrey", people).get(LIST).content.decode()
    for state, kid in [*kids().items(), ("retired", retired.kid)]:
        assert kid in body and f'<span class="pill">{state}</span>' in body
    assert "expires within 30 days" in body and ">expired<" in body
    assert body.index(kids()["next"]) < body.index(kids()["current"]) < body.index(retired.kid)
    assert 'action="/manage/keys/rotate"' not in body


def test_the_list_filters_by_state_and_refuses_an_unknown_one(people) -> None:
    services.rotate_signing_key(SYSTEM)
    client = client_for("ada", people)
    body = client.get(LIST, {"state": "previous"}).content.decode()
    assert kids()["previous"] in body and kids()["current"] not in body
    response = client.get(LIST, {"state": "lost"})
    assert response.status_code == 400 and "Select a valid choice" in response.content.decode()


def test_the_list_takes_as_many_queries_for_many_keys_as_for_few(people) -> None:
    client = client_for("ada", people)
    with CaptureQueriesContext(connection) as few:
        client.get(LIST)
    for _ in range(5):
        services.rotate_signing_key(SYSTEM)
    with CaptureQueriesContext(connection) as many:
        client.get(LIST)
    assert len(many) == len(few)


def test_admins_get_the_rotate_form_naming_the_registries_it_asks(people) -> None:
    services.create_registry("registry", context=SYSTEM)
    body = client_for("ada", people).get(LIST).content.decode()
    assert 'action="/manage/keys/rotate"' in body and 'name="force"' in body
    assert "no URL, cannot be checked" in body


def test_rotating_with_a_registry_without_url_warns_rotates_and_is_recorded(people) -> None:
    services.create_registry("registry", context=SYSTEM)
    before = kids()
    response = client_for("ada", people).post(ROTATE, follow=True)
    assert response.redirect_chain[-1] == (LIST, 302)
    body = response.content.decode()
    assert f"the current signing key is now {before['next']}" in body
    assert "registry: no URL known, cannot check" in body
    assert kids()["current"] == before["next"] and kids()["previous"] == before["current"]
    rotated = AuditRecord.objects.get(detail__action="signing_key.rotate")
    assert (rotated.kind, rotated.actor) == ("credential", "ada")
    preflight = AuditRecord.objects.get(detail__action="signing_key.preflight")
    assert (preflight.outcome, preflight.detail["rotated"]) == ("success", True)


def test_a_failed_preflight_refuses_the_rotation_and_shows_the_remedy(people, closed_port: int) -> None:
    services.create_registry("registry", url=f"http://127.0.0.1:{closed_port}", context=SYSTEM)
    before = kids()
    response = client_for("ada", people).post(ROTATE)
    assert response.status_code == 409
    body = response.content.decode()
    assert "Not rotated" in body and f"127.0.0.1:{closed_port} unreachable" in body
    assert "Remedy" in body and "restart the registry" in body
    assert kids() == before
    assert not AuditRecord.objects.filter(detail__action="signing_key.rotate").exists()
    refused = AuditRecord.objects.get(detail__action="signing_key.preflight")
    assert (refused.outcome, refused.actor, refused.detail["rotated"]) == ("failure", "ada", False)


def test_rotate_anyway_is_force(people, closed_port: int) -> None:
    services.create_registry("registry", url=f"http://127.0.0.1:{closed_port}", context=SYSTEM)
    before = kids()
    response = client_for("ada", people).post(ROTATE, {"force": "on"}, follow=True)
    assert response.redirect_chain[-1] == (LIST, 302)
    assert kids()["current"] == before["next"]
    assert "unreachable" in response.content.decode()
    assert AuditRecord.objects.filter(detail__action="signing_key.rotate", actor="ada").exists()


def test_the_list_shows_the_last_preflight(people, closed_port: int) -> None:
    services.create_registry("registry", url=f"http://127.0.0.1:{closed_port}", context=SYSTEM)
    client_for("ada", people).post(ROTATE)
    body = client_for("audrey", people).get(LIST).content.decode()
    section = body.split("Last preflight")[1]
    assert "failed" in section and "not rotated" in section and "unreachable" in section


def test_a_rotation_rewrites_the_bundles_already_written(people, data_dir: Path) -> None:
    registry = services.create_registry("registry", context=SYSTEM)
    client_for("ada", people).post(reverse("registries:prepare", kwargs={"service": registry.service}))
    bundle = data_dir / "registry" / "registry" / "token-bundle.pem"
    written = bundle.read_text()
    response = client_for("ada", people).post(ROTATE, follow=True)
    assert bundle.read_text() != written and bundle.read_text() == keys.published_bundle_pem()
    assert f"Rewrote {bundle.resolve()}" in response.content.decode()
