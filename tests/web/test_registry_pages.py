"""The registry pages: overseers read every registry and its config.yml fragment; only admins change them.

ada is the admin, audrey the auditor, carol an outsider. The fragment on the page must be exactly what
`manage.py registry_config` prints, and looking at it must change nothing.
"""

from __future__ import annotations

import html
import io
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts import services
from accounts.models import NotificationEndpoint, Registry, SigningKey, User
from accounts.registry.signing import libtrust_kid
from accounts.services import notification_secret
from accounts.web.views.registries import SECRET_MASK
from audit.models import AuditRecord
from tests.conftest import SYSTEM

pytestmark = pytest.mark.django_db

PERSONAS = ("anonymous", "carol", "audrey", "ada")
READ_EXPECTED = {"anonymous": 302, "carol": 403, "audrey": 200, "ada": 200}
CHANGE_EXPECTED = {"anonymous": 302, "carol": 403, "audrey": 403, "ada": 302}


@pytest.fixture(autouse=True)
def data_dir(settings, tmp_path: Path) -> Path:
    """Each test writes its bundle and htpasswd files under its own DATA_DIR."""
    settings.DATA_DIR = tmp_path / "data"
    return settings.DATA_DIR


@pytest.fixture
def people(ada: User, audrey: User, carol: User) -> dict[str, User]:
    return {"ada": ada, "audrey": audrey, "carol": carol}


@pytest.fixture
def registry(db: None) -> Registry:
    return services.create_registry("registry", url="https://registry.example.org", context=SYSTEM)


@pytest.fixture
def legacy(db: None) -> Registry:
    return services.create_registry("legacy", url="http://127.0.0.1:9", auth_mode="htpasswd", context=SYSTEM)


def client_for(persona: str, people: dict[str, User]) -> Client:
    client = Client()
    if persona != "anonymous":
        client.force_login(people[persona])
    return client


def command_output(*args: str) -> str:
    out = io.StringIO()
    call_command("registry_config", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def detail(service: str = "registry") -> str:
    return reverse("registries:detail", kwargs={"service": service})


UrlFor = Callable[[], str]
READS: dict[str, UrlFor] = {
    "list": lambda: reverse("registries:list"),
    "detail": detail,
    "bundle": lambda: reverse("registries:bundle", kwargs={"service": "registry"}),
}
CHANGES: dict[str, tuple[UrlFor, dict[str, str]]] = {
    "new": (lambda: reverse("registries:new"), {"service": "other", "url": "", "auth_mode": "token"}),
    "edit": (
        lambda: reverse("registries:edit", kwargs={"service": "registry"}),
        {"url": "https://r2.example.org", "auth_mode": "token"},
    ),
    "prepare": (lambda: reverse("registries:prepare", kwargs={"service": "registry"}), {}),
}


# Who may do what ------------------------------------------------------------


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("page", sorted(READS))
def test_overseers_read_every_registry_page_and_others_are_refused(people, registry, page: str, persona: str) -> None:
    if page == "bundle":
        services.ensure_keys(SYSTEM)
    response = client_for(persona, people).get(READS[page]())
    assert response.status_code == READ_EXPECTED[persona]
    if persona == "anonymous":
        assert response["Location"].startswith(reverse("accounts:login"))


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("action", sorted(CHANGES))
def test_only_admins_change_registries(people, registry, action: str, persona: str) -> None:
    url_for, data = CHANGES[action]
    response = client_for(persona, people).post(url_for(), data)
    assert response.status_code == CHANGE_EXPECTED[persona]
    if persona == "anonymous":
        assert response["Location"].startswith(reverse("accounts:login"))


@pytest.mark.parametrize("persona", ["carol", "audrey"])
def test_the_new_registry_form_is_for_admins_only(people, persona: str) -> None:
    assert client_for(persona, people).get(reverse("registries:new")).status_code == 403
    assert client_for("ada", people).get(reverse("registries:new")).status_code == 200


def test_a_refused_page_shows_none_of_the_registries(people, registry) -> None:
    for url in (READS["list"](), detail()):
        response = client_for("carol", people).get(url)
        assert response.status_code == 403
        body = response.content.decode()
        assert "registry.example.org" not in body and "rgn_" not in body


def test_refused_changes_change_nothing(people, registry) -> None:
    for persona in ("carol", "audrey"):
        for url_for, data in CHANGES.values():
            client_for(persona, people).post(url_for(), data)
    assert list(Registry.objects.values_list("service", "url")) == [("registry", "https://registry.example.org")]
    assert not NotificationEndpoint.objects.exists() and not SigningKey.objects.exists()


@pytest.mark.parametrize(
    ("url_for", "method"),
    [
        (READS["list"], "post"),
        (READS["detail"], "post"),
        (READS["bundle"], "post"),
        (CHANGES["new"][0], "put"),
        (CHANGES["edit"][0], "get"),
        (CHANGES["prepare"][0], "get"),
    ],
)
def test_it_rejects_the_wrong_method(people, registry, url_for: UrlFor, method: str) -> None:
    assert getattr(client_for("ada", people), method)(url_for()).status_code == 405


@pytest.mark.parametrize("name", ["detail", "edit", "prepare", "bundle"])
def test_an_unknown_registry_is_not_found(people, name: str) -> None:
    url = reverse(f"registries:{name}", kwargs={"service": "nope"})
    client = client_for("ada", people)
    response = client.get(url) if name in {"detail", "bundle"} else client.post(url, CHANGES["edit"][1])
    assert response.status_code == 404


# The list -------------------------------------------------------------------


def test_the_list_shows_each_registry_with_its_mode_and_counts(people, registry, legacy) -> None:
    services.create_repository("web/app", registry=registry, context=SYSTEM)
    services.create_grant(people["carol"], "web/*", "read", registry=registry, context=SYSTEM)
    body = client_for("audrey", people).get(READS["list"]()).content.decode()
    assert detail() in body and detail("legacy") in body
    assert "roles enforced" in body and "authentication only" in body
    row = body.split(detail())[1].split("</tr>")[0]
    assert [cell.split("<")[0] for cell in row.split("<td>")[3:5]] == ["1", "1"]
    assert "New registry" not in body
    assert reverse("registries:new") in client_for("ada", people).get(READS["list"]()).content.decode()


def test_the_list_searches_and_filters_by_mode(people, registry, legacy) -> None:
    client = client_for("ada", people)
    assert detail("legacy") not in client.get(READS["list"](), {"q": "example"}).content.decode()
    body = client.get(READS["list"](), {"mode": "htpasswd"}).content.decode()
    assert detail("legacy") in body and detail() not in body
    partial = client.get(READS["list"](), {"q": "leg"}, headers={"HX-Request": "true"}).content.decode()
    assert detail("legacy") in partial and "<html" not in partial


def test_a_bad_filter_is_refused_with_the_message(people, registry) -> None:
    response = client_for("ada", people).get(READS["list"](), {"mode": "ldap"})
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()


def test_the_list_takes_as_many_queries_for_many_registries_as_for_one(people, registry) -> None:
    client = client_for("ada", people)
    with CaptureQueriesContext(connection) as few:
        client.get(READS["list"]())
    for n in range(6):
        created = services.create_registry(f"more{n}", context=SYSTEM)
        services.create_repository(f"r{n}/app", registry=created, context=SYSTEM)
    with CaptureQueriesContext(connection) as many:
        response = client.get(READS["list"]())
    assert len(many) == len(few)
    assert detail("more5") in response.content.decode()


# The fragment ---------------------------------------------------------------


def test_looking_at_an_unprepared_registry_changes_nothing_and_says_what_is_missing(people, registry, data_dir) -> None:
    client = client_for("ada", people)
    before = AuditRecord.objects.count()
    body = client.get(detail()).content.decode()
    assert "Not prepared yet" in body
    assert "the notification secret" in body and "the signing keys" in body and "token-bundle.pem" in body
    assert reverse("registries:prepare", kwargs={"service": "registry"}) in body
    assert not SigningKey.objects.exists() and not NotificationEndpoint.objects.exists()
    assert not (data_dir / "registry").exists()
    assert AuditRecord.objects.count() == before


def test_the_token_fragment_is_exactly_what_the_command_prints(people, registry) -> None:
    printed = command_output("--registry", "registry")
    response = client_for("ada", people).get(detail())
    body = response.content.decode()
    assert html.escape(printed) in body
    assert "Not prepared yet" not in body
    assert "restart the registry after each key rotation" in body
    assert "no-store" in response["Cache-Control"]


def test_auditors_see_the_fragment_with_the_secret_masked(people, registry) -> None:
    printed = command_output("--registry", "registry")
    secret = notification_secret(registry)
    body = client_for("audrey", people).get(detail()).content.decode()
    assert secret not in body
    assert html.escape(printed.replace(secret, SECRET_MASK)) in body
    assert "only administrators see it" in body
    assert reverse("registries:prepare", kwargs={"service": "registry"}) not in body
    assert reverse("registries:edit", kwargs={"service": "registry"}) not in body


def test_the_htpasswd_fragment_is_exactly_what_the_command_prints_and_warns_about_roles(people, legacy) -> None:
    services.create_user("frank", context=SYSTEM)  # no password: htpasswd mode does not know him
    printed = command_output("--registry", "legacy")
    body = client_for("ada", people).get(detail("legacy")).content.decode()
    assert html.escape(printed) in body
    assert "Roles are NOT enforced" in body
    assert "Personal access tokens and directory (LDAP) logins do not work" in body  # once, in the banner
    assert "WARNING: htpasswd mode" not in body  # the command's warnings say the same: not repeated on the page
    assert "must set their password again" in body and "frank" in body
    assert "bundle.pem" not in body


def test_a_rotation_since_the_bundle_was_written_shows_it_out_of_date(people, registry) -> None:
    command_output("--registry", "registry")
    services.rotate_signing_key(SYSTEM)
    body = client_for("audrey", people).get(detail()).content.decode()
    assert "the keys changed since it was written" in body


def test_prepare_writes_what_the_command_writes_and_is_recorded(people, registry, data_dir) -> None:
    response = client_for("ada", people).post(CHANGES["prepare"][0](), follow=True)
    bundle = (data_dir / "registry" / "registry" / "token-bundle.pem").resolve()
    assert bundle.is_file()
    assert f"Wrote {bundle}" in response.content.decode()
    assert html.escape(command_output("--registry", "registry")) in response.content.decode()
    record = AuditRecord.objects.filter(detail__action="registry.prepare").earliest("id")
    assert (record.kind, record.actor, record.registry) == ("admin_change", "ada", "registry")
    assert AuditRecord.objects.filter(kind="credential", detail__action="notification_secret.create", actor="ada")


def test_prepare_in_htpasswd_mode_writes_the_file(people, legacy, data_dir) -> None:
    client_for("ada", people).post(reverse("registries:prepare", kwargs={"service": "legacy"}))
    assert (data_dir / "registry" / "legacy" / "htpasswd").is_file()
    assert "Not prepared yet" not in client_for("ada", people).get(detail("legacy")).content.decode()


# The bundle -----------------------------------------------------------------


def test_the_bundle_downloads_as_pem_with_current_and_next(people, registry) -> None:
    services.ensure_keys(SYSTEM)
    response = client_for("audrey", people).get(READS["bundle"]())
    assert response["Content-Type"] == "application/x-pem-file"
    assert response["Content-Disposition"] == 'attachment; filename="registry-token-bundle.pem"'
    certificates = x509.load_pem_x509_certificates(response.content)
    kids = {libtrust_kid(cert.public_key()) for cert in certificates}
    assert kids == set(SigningKey.objects.filter(state__in=["current", "next"]).values_list("kid", flat=True))
    assert b"PRIVATE KEY" not in response.content


def test_the_bundle_is_not_invented_by_a_download(people, registry) -> None:
    response = client_for("ada", people).get(READS["bundle"]())
    assert response.status_code == 409
    assert not SigningKey.objects.exists()


# Creating and editing -------------------------------------------------------


def test_an_admin_adds_a_registry_and_it_is_recorded(people) -> None:
    data = {"service": "registry.example.org", "url": "https://registry.example.org/", "auth_mode": "token"}
    response = client_for("ada", people).post(reverse("registries:new"), data, follow=True)
    assert response.redirect_chain[-1][0] == detail("registry.example.org")
    assert Registry.objects.get().url == "https://registry.example.org"
    assert "Added registry registry.example.org" in response.content.decode()
    record = AuditRecord.objects.filter(detail__action="registry.create").latest("id")
    assert (record.kind, record.actor) == ("admin_change", "ada")


def test_adding_an_htpasswd_registry_warns_that_roles_are_not_enforced(people) -> None:
    data = {"service": "legacy", "url": "", "auth_mode": "htpasswd"}
    response = client_for("ada", people).post(reverse("registries:new"), data, follow=True)
    assert "roles are NOT enforced" in response.content.decode()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"service": "registry", "auth_mode": "token"}, "Registry with this Service already exists."),
        ({"service": "new", "url": "not a url", "auth_mode": "token"}, "Enter a valid URL."),
        ({"service": "new", "url": "ftp://files.example.org", "auth_mode": "token"}, "Enter a valid URL."),
        ({"service": "new", "url": "https://r.example.org/v2", "auth_mode": "token"}, "without a path"),
        ({"service": "a/b", "auth_mode": "token"}, "Use letters, digits"),
        ({"service": "bad\x00name", "auth_mode": "token"}, "Null characters are not allowed."),
        ({"service": "x" * 256, "auth_mode": "token"}, "at most 255 characters"),
        ({"service": "new", "auth_mode": "ldap"}, "Select a valid choice"),
    ],
)
def test_bad_input_for_a_new_registry_is_shown_inline(people, registry, data: dict[str, str], message: str) -> None:
    response = client_for("ada", people).post(reverse("registries:new"), data)
    assert response.status_code == 400
    assert html.escape(message) in response.content.decode()
    assert Registry.objects.count() == 1


def test_switching_to_htpasswd_warns_and_is_recorded(people, registry) -> None:
    data = {"url": "https://registry.example.org", "auth_mode": "htpasswd"}
    response = client_for("ada", people).post(CHANGES["edit"][0](), data, follow=True)
    body = response.content.decode()
    assert response.redirect_chain[-1][0] == detail()
    assert "roles are NOT enforced" in body and "Roles are NOT enforced" in body
    assert Registry.objects.get().auth_mode == "htpasswd"
    record = AuditRecord.objects.filter(detail__action="registry.update").latest("id")
    assert record.actor == "ada"
    assert (record.detail["before"]["auth_mode"], record.detail["after"]["auth_mode"]) == ("token", "htpasswd")


def test_an_edit_with_a_bad_url_is_refused_inline(people, registry) -> None:
    response = client_for("ada", people).post(
        CHANGES["edit"][0](), {"url": "javascript:alert(1)", "auth_mode": "token"}
    )
    assert response.status_code == 400
    assert "Enter a valid URL." in response.content.decode()
    assert Registry.objects.get().url == "https://registry.example.org"
    assert not AuditRecord.objects.filter(detail__action="registry.update").exists()
