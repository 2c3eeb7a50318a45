"""The registry page on the admin's first day: the whole config.yml, the last token and notification, a test button.

ada is the admin, audrey the auditor. The page's config is the README's complete config.yml: storage and
http around exactly what ``manage.py registry_config`` prints.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts import services
from accounts.models import DoctorRun, NotificationEndpoint, Registry, User
from accounts.web.views.registries import TOKEN_LOOKBACK, last_token_issued
from audit.context import AuditContext
from audit.models import AuditRecord, Kind
from audit.services import record
from tests.conftest import SYSTEM

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def data_dir(settings, tmp_path: Path) -> Path:
    settings.DATA_DIR = tmp_path / "data"
    return settings.DATA_DIR


@pytest.fixture
def registry(db: None) -> Registry:
    return services.create_registry("registry", url="https://registry.example.org", context=SYSTEM)


def page_for(user: User, service: str = "registry") -> str:
    client = Client()
    client.force_login(user)
    response = client.get(reverse("registries:detail", kwargs={"service": service}))
    assert response.status_code == 200
    return response.content.decode()


def shown_config(page: str) -> dict:
    start = page.index('id="fragment">') + len('id="fragment">')
    text = page[start : page.index("</pre>", start)].replace("&#x27;", "'").replace("&quot;", '"')
    return yaml.safe_load(text)


def test_the_page_shows_the_whole_config_yml_with_storage_and_http(ada: User, registry: Registry) -> None:
    config = shown_config(page_for(ada))
    assert list(config) == ["version", "log", "storage", "http", "auth", "notifications"]
    assert config["storage"]["delete"] == {"enabled": True}
    assert config["http"]["addr"] == ":5000"
    assert config["auth"]["token"]["service"] == "registry"


def test_htpasswd_mode_gets_the_whole_config_too(ada: User) -> None:
    services.create_registry("legacy", url="http://127.0.0.1:9", auth_mode="htpasswd", context=SYSTEM)
    config = shown_config(page_for(ada, "legacy"))
    assert "storage" in config and "http" in config and "htpasswd" in config["auth"]


def test_the_copy_script_is_loaded_from_a_static_file(ada: User, registry: Registry) -> None:
    page = page_for(ada)
    assert "js/copy.js" in page
    assert "onclick" not in page


def test_it_names_the_last_token_issued_to_the_registry(ada: User, registry: Registry) -> None:
    record(Kind.ACCESS, "granted", AuditContext(actor="bob"), registry="registry", repository="web/app")
    record(Kind.ACCESS, "denied", AuditContext(actor="carol"), registry="registry", repository="web/app")
    record(Kind.ACCESS, "granted", AuditContext(actor="dora"), registry="other", repository="web/app")
    page = page_for(ada)
    issued = AuditRecord.objects.get(actor="bob")
    assert reverse("audit:record", kwargs={"pk": issued.pk}) in page
    assert "to bob" in page and "to carol" not in page and "to dora" not in page


def test_a_token_older_than_the_lookback_is_not_searched_for(registry: Registry) -> None:
    record(Kind.ACCESS, "granted", AuditContext(actor="bob"), registry="registry", repository="web/app")
    later = timezone.now() + TOKEN_LOOKBACK + timedelta(days=1)
    assert last_token_issued(registry, timezone.now()) is not None
    assert last_token_issued(registry, later) is None


def test_it_shows_the_last_notification_received(ada: User, registry: Registry) -> None:
    services.rotate_notification_secret(registry, SYSTEM)
    assert 'Last notification received</dt><dd><span class="lead">none yet' in page_for(ada)
    when = timezone.now().replace(year=2026, month=3, day=4, hour=5, minute=6)
    NotificationEndpoint.objects.filter(registry=registry).update(last_used="current", last_used_at=when)
    assert "2026-03-04 05:06 UTC" in page_for(ada)


def test_admins_get_a_test_connection_button_that_runs_the_doctor(ada: User, audrey: User, registry: Registry) -> None:
    doctor = reverse("registries:doctor", kwargs={"service": "registry"})
    admin_page = page_for(ada)
    assert f'method="post" action="{doctor}"' in admin_page and "Test connection" in admin_page
    assert f'method="post" action="{doctor}"' not in page_for(audrey)


def test_a_registry_without_a_url_asks_for_one_before_testing(ada: User) -> None:
    services.create_registry("nowhere", url="", context=SYSTEM)
    page = page_for(ada, "nowhere")
    assert "Set the registry's URL below to test the connection" in page


def test_the_last_connection_test_is_shown(ada: User, registry: Registry) -> None:
    DoctorRun.objects.create(registry=registry, url=registry.url, worst="fail", results={})
    assert "Last connection test</dt><dd><a" in page_for(ada)
