"""The htpasswd warning once per page (issue 20, item 9).

A registry in htpasswd mode checks passwords only: the pages that say so say it once, even when the
message an admin's change leaves behind says it too (creating an htpasswd registry, switching one to
htpasswd) and however many registries are in that mode. ada is the admin, carol signs in as herself.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.urls import reverse

from accounts import services
from accounts.models import User
from accounts.web.views.registries import DIRECTORY_WARNING, ROLES_WARNING
from tests.conftest import SYSTEM, client_for

pytestmark = pytest.mark.django_db

BANNER = 'id="htpasswd-warning"'
SETUP_WARNING = "What does not work there:"


@pytest.fixture(autouse=True)
def data_dir(settings, tmp_path: Path) -> Path:
    settings.DATA_DIR = tmp_path / "data"
    return settings.DATA_DIR


@pytest.fixture
def people(ada: User, carol: User) -> dict[str, User]:
    return {"ada": ada, "carol": carol}


def detail(service: str) -> str:
    return reverse("registries:detail", kwargs={"service": service})


def test_an_htpasswd_registry_page_warns_once(people) -> None:
    services.create_registry("legacy", auth_mode="htpasswd", context=SYSTEM)
    body = client_for("ada", people).get(detail("legacy")).content.decode()
    assert body.count(BANNER) == 1 and body.count(ROLES_WARNING) == 1
    assert body.count("htpasswd mode checks passwords only") == 1  # the banner's, not the mode field's help too


def test_creating_an_htpasswd_registry_lands_on_one_warning_not_the_message_and_the_banner(people) -> None:
    data = {"service": "legacy", "url": "https://legacy.example.org", "auth_mode": "htpasswd"}
    response = client_for("ada", people).post(reverse("registries:new"), data, follow=True)
    body = response.content.decode()
    assert response.redirect_chain[-1][0] == detail("legacy")
    assert body.count(ROLES_WARNING) == 1 and body.count(BANNER) == 1
    assert "Added registry legacy" in body  # the other messages still show


def test_switching_to_htpasswd_lands_on_one_warning(people) -> None:
    services.create_registry("registry", url="https://registry.example.org", context=SYSTEM)
    data = {"url": "https://registry.example.org", "auth_mode": "htpasswd"}
    edit = reverse("registries:edit", kwargs={"service": "registry"})
    response = client_for("ada", people).post(edit, data, follow=True)
    body = response.content.decode()
    assert response.redirect_chain[-1][0] == detail("registry")
    assert body.count(ROLES_WARNING) == 1 and body.count(BANNER) == 1
    assert "The registry&#x27;s config.yml must change" in body


def test_a_token_registry_page_says_what_htpasswd_mode_does_once_in_the_form(people) -> None:
    services.create_registry("registry", context=SYSTEM)
    body = client_for("ada", people).get(detail("registry")).content.decode()
    assert BANNER not in body and body.count(ROLES_WARNING) == 1
    assert body.count("htpasswd mode checks passwords only") == 1  # the mode field's help, not the form's too


@pytest.mark.parametrize("data", [{}, {"service": "Bad Name", "auth_mode": "htpasswd"}])
def test_the_new_registry_form_warns_once(people, data: dict[str, str]) -> None:
    client = client_for("ada", people)
    response = client.post(reverse("registries:new"), data) if data else client.get(reverse("registries:new"))
    body = response.content.decode()
    assert response.status_code == (400 if data else 200)
    assert body.count(ROLES_WARNING) == 1 and body.count("htpasswd mode checks passwords only") == 1


def test_with_the_directory_on_the_registry_page_still_warns_once(people, settings) -> None:
    settings.LDAP_SERVER_URI = "ldap://127.0.0.1:1"
    services.create_registry("legacy", auth_mode="htpasswd", context=SYSTEM)
    body = client_for("ada", people).get(detail("legacy")).content.decode()
    assert body.count(BANNER) == 1 and body.count(ROLES_WARNING) == 1 and body.count(DIRECTORY_WARNING) == 1
    assert body.count("Personal access tokens") == 1  # said by the directory warning, not twice


def test_client_setup_warns_once_for_several_htpasswd_registries(people) -> None:
    for service in ("legacy", "old"):
        services.create_registry(service, auth_mode="htpasswd", context=SYSTEM)
    services.create_registry("registry", context=SYSTEM)
    body = client_for("carol", people).get(reverse("setup:index")).content.decode()
    assert body.count(SETUP_WARNING) == 1 and body.count(BANNER) == 1
    assert body.count('<a href="#htpasswd-warning">what does not work here</a>') == 2  # one per such registry


def test_client_setup_has_no_warning_without_an_htpasswd_registry(people) -> None:
    services.create_registry("registry", context=SYSTEM)
    body = client_for("carol", people).get(reverse("setup:index")).content.decode()
    assert SETUP_WARNING not in body and BANNER not in body


@pytest.mark.parametrize(
    ("url", "warning"),
    [
        ("tokens:list", "registries in htpasswd mode"),
        ("accounts:my_access", "not enforced in this mode"),
        ("accounts:home", "not enforced in this mode"),
    ],
)
def test_the_other_pages_that_warn_do_it_once(people, url: str, warning: str) -> None:
    for service in ("legacy", "old"):
        services.create_registry(service, auth_mode="htpasswd", context=SYSTEM)
    body = client_for("carol", people).get(reverse(url)).content.decode()
    assert body.count(warning) == 1
