"""The operations API: registries, signing keys, scheduled jobs and policy as code, per persona.

Admins (ada) change, auditors (audrey) read, everyone else (alice, a team lead; bob; carol) is refused;
no credentials is a 401. Every write goes through the pages' services and leaves their audit record.
The key preflight only ever targets loopback (no URL, or a closed port that refuses at once); jobs
are queued to the filesystem broker under DATA_DIR, and no worker runs.
"""

from __future__ import annotations

import io
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from kombu.exceptions import OperationalError
from rest_framework.test import APIClient

from accounts import services
from accounts.api.views.operations import PayloadTooLarge, YamlParser
from accounts.models import NotificationEndpoint, Registry, SigningKey, User
from audit.jobs import run_job
from audit.models import AuditRecord
from registryadmin.celery import app as celery_app
from tests.conftest import SYSTEM

pytestmark = pytest.mark.django_db

Api = Callable[..., APIClient]
REGISTRIES = "/api/registries/"
KEYS = "/api/keys/"
ROTATE = "/api/keys/rotate"
JOBS = "/api/jobs/"
POLICY = "/api/policy"
NEW_USER_POLICY = "users:\n  - username: zed\n    email: zed@example.org\n"


@pytest.fixture(autouse=True)
def data_dir(settings, tmp_path: Path) -> Path:
    settings.DATA_DIR = tmp_path / "data"
    return settings.DATA_DIR


@pytest.fixture
def people(ada: User, audrey: User, alice: User, bob: User, carol: User, web: object) -> dict[str, User]:
    return {"ada": ada, "audrey": audrey, "alice": alice, "bob": bob, "carol": carol}


@pytest.fixture
def registry(db: None) -> Registry:
    made = services.create_registry("registry.example.org", url="https://registry.example.org", context=SYSTEM)
    services.notification_secret(made, SYSTEM)
    return made


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on: the preflight's connection is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def records(action: str) -> list[AuditRecord]:
    """The records ``action`` left, but for the fixtures' own (recorded as "tests")."""
    return list(AuditRecord.objects.filter(detail__action=action).exclude(actor=SYSTEM.actor).order_by("id"))


def error(response: object) -> dict[str, object]:
    """The one JSON error shape, checked on the way."""
    body = response.json()  # type: ignore[attr-defined]
    assert set(body) == {"status", "error", "detail", "fields"}
    assert body["status"] == response.status_code  # type: ignore[attr-defined]
    return body


def kids() -> dict[str, str]:
    return dict(SigningKey.objects.exclude(state="retired").values_list("state", "kid"))


def test_the_paths_are_where_the_brief_says() -> None:
    assert reverse("api:registries") == REGISTRIES
    assert reverse("api:registry", kwargs={"service": "r"}) == "/api/registries/r/"
    assert reverse("api:registry-rotate-secret", kwargs={"service": "r"}) == "/api/registries/r/rotate-secret"
    assert (reverse("api:keys"), reverse("api:keys-rotate"), reverse("api:jobs")) == (KEYS, ROTATE, JOBS)
    assert reverse("api:job-run", kwargs={"name": "backup"}) == "/api/jobs/backup/run"
    assert reverse("api:policy") == POLICY


# Who may read -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", [REGISTRIES, "/api/registries/registry.example.org/", KEYS, JOBS, POLICY])
@pytest.mark.parametrize(("persona", "expected"), [("ada", 200), ("audrey", 200), ("alice", 403), ("carol", 403)])
def test_only_admins_and_auditors_read_operations(api: Api, people, registry, url: str, persona: str, expected: int):
    response = api(people[persona]).get(url)
    assert response.status_code == expected
    if expected == 403:
        assert error(response)["error"] == "permission_denied"


@pytest.mark.parametrize("url", [REGISTRIES, KEYS, JOBS, POLICY])
def test_without_credentials_every_operation_is_a_401_in_json(db: None, url: str) -> None:
    response = APIClient().get(url)
    assert response.status_code == 401
    assert error(response)["error"] == "not_authenticated"


# Registries ---------------------------------------------------------------------------------------------


def test_the_registry_list_shows_mode_counts_and_notification_state(api: Api, people, registry) -> None:
    services.create_registry("plain", auth_mode="htpasswd", context=SYSTEM)
    services.create_repository("web/app", registry=registry, context=SYSTEM)
    body = api(people["audrey"]).get(REGISTRIES).json()
    assert body["count"] == 2
    plain, example = body["results"]
    assert (plain["service"], plain["auth_mode"], plain["notifications"]["configured"]) == ("plain", "htpasswd", False)
    assert (example["repository_count"], example["grant_count"]) == (1, 0)
    assert example["notifications"] == {
        "configured": True,
        "last_used": "",
        "last_used_at": None,
        "previous_valid_until": None,
    }
    assert "rgn_" not in str(body)


def test_the_registry_list_filters_and_orders_and_refuses_bad_filters(api: Api, people, registry) -> None:
    services.create_registry("plain", auth_mode="htpasswd", context=SYSTEM)
    client = api(people["ada"])
    assert [r["service"] for r in client.get(REGISTRIES, {"mode": "htpasswd"}).json()["results"]] == ["plain"]
    assert [r["service"] for r in client.get(REGISTRIES, {"q": "EXAMPLE"}).json()["results"]] == [registry.service]
    ordered = client.get(REGISTRIES, {"ordering": "-service"}).json()["results"]
    assert [r["service"] for r in ordered] == ["registry.example.org", "plain"]
    bad = client.get(REGISTRIES, {"mode": "ldap", "ordering": "secret"})
    assert bad.status_code == 400
    assert set(error(bad)["fields"]) == {"mode", "ordering"}


def test_the_registry_list_costs_the_same_queries_for_one_registry_or_many(api: Api, people, registry) -> None:
    client = api(people["ada"])
    client.get(REGISTRIES)  # the token's first use is touched once a minute: not part of the count
    with CaptureQueriesContext(connection) as one:
        client.get(REGISTRIES)
    for n in range(5):
        services.notification_secret(services.create_registry(f"r{n}", context=SYSTEM), SYSTEM)
    with CaptureQueriesContext(connection) as six:
        assert client.get(REGISTRIES).json()["count"] == 6
    assert len(six) == len(one)


def test_an_admin_sees_the_notification_secret_and_an_auditor_never(api: Api, people, registry) -> None:
    secret = services.notification_secret(registry)
    url = f"/api/registries/{registry.service}/"
    admin = api(people["ada"]).get(url)
    assert admin.json()["notification_secret"] == secret
    assert "no-store" in admin["Cache-Control"]
    audited = api(people["audrey"]).get(url)
    assert audited.json()["notification_secret"] is None
    assert secret not in audited.content.decode()


def test_an_unknown_registry_is_a_404_in_json(api: Api, people) -> None:
    response = api(people["ada"]).get("/api/registries/nowhere/")
    assert response.status_code == 404
    assert error(response)["error"] == "not_found"


def test_an_admin_adds_a_registry_and_it_is_recorded(api: Api, people) -> None:
    response = api(people["ada"]).post(
        REGISTRIES,
        {"service": "new.example.org", "url": "https://new.example.org/", "auth_mode": "htpasswd"},
        format="json",
    )
    assert response.status_code == 201
    body = response.json()
    assert (body["service"], body["url"], body["auth_mode"]) == (
        "new.example.org",
        "https://new.example.org",
        "htpasswd",
    )
    assert any("roles are NOT enforced" in w for w in body["warnings"])
    (made,) = records("registry.create")
    assert (made.kind, made.actor, made.detail["target"]) == ("admin_change", "ada", "new.example.org")


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"service": "bad/name"}, "service"),
        ({"service": "ok", "url": "https://r.example.org/v2/"}, "url"),
        ({"service": "ok", "url": "https://user:pw@r.example.org"}, "url"),
        ({"service": "ok", "url": "ftp://r.example.org"}, "url"),
        ({"service": "ok", "auth_mode": "ldap"}, "auth_mode"),
        ({}, "service"),
    ],
)
def test_a_bad_new_registry_is_a_400_naming_the_field(api: Api, people, payload: dict, field: str) -> None:
    response = api(people["ada"]).post(REGISTRIES, payload, format="json")
    assert response.status_code == 400
    assert field in error(response)["fields"]
    assert not records("registry.create")


def test_a_duplicate_registry_is_refused_with_its_field(api: Api, people, registry) -> None:
    response = api(people["ada"]).post(REGISTRIES, {"service": registry.service}, format="json")
    assert response.status_code == 400
    assert "service" in error(response)["fields"]


@pytest.mark.parametrize(
    ("persona", "limits", "expected"),
    [
        ("audrey", {}, 403),
        ("alice", {}, 403),
        ("ada", {"read_only": True}, 403),
        ("ada", {"patterns": ["web/*"]}, 403),
    ],
)
def test_registry_writes_are_refused_to_the_wrong_role_or_token(
    api: Api, people, registry, persona: str, limits: dict, expected: int
) -> None:
    client = api(people[persona], **limits)
    url = f"/api/registries/{registry.service}/"
    answers = [
        client.post(REGISTRIES, {"service": "other"}, format="json"),
        client.patch(url, {"url": ""}, format="json"),
        client.delete(url),
        client.post(f"{url}rotate-secret", {}, format="json"),
    ]
    assert [a.status_code for a in answers] == [expected] * 4
    assert all(error(a)["error"] == "permission_denied" for a in answers)
    assert Registry.objects.count() == 1 and Registry.objects.get().url == "https://registry.example.org"
    assert not records("registry.create") + records("registry.update") + records("notification_secret.rotate")


def test_a_session_write_needs_the_csrf_token(session_api: Callable[[User], APIClient], people) -> None:
    response = session_api(people["ada"]).post(REGISTRIES, {"service": "new"}, format="json")
    assert response.status_code == 403
    assert "CSRF" in error(response)["detail"]


def test_an_admin_changes_a_registrys_url_and_mode(api: Api, people, registry) -> None:
    url = f"/api/registries/{registry.service}/"
    response = api(people["ada"]).patch(url, {"url": "http://10.0.0.5:5000", "auth_mode": "htpasswd"}, format="json")
    assert response.status_code == 200
    assert (response.json()["url"], response.json()["auth_mode"]) == ("http://10.0.0.5:5000", "htpasswd")
    (changed,) = records("registry.update")
    assert changed.detail["after"]["auth_mode"] == "htpasswd" and changed.actor == "ada"
    bad = api(people["ada"]).patch(url, {"url": "not a url"}, format="json")
    assert bad.status_code == 400 and "url" in error(bad)["fields"]


def test_an_admin_deletes_an_empty_registry(api: Api, people, registry) -> None:
    response = api(people["ada"]).delete(f"/api/registries/{registry.service}/")
    assert response.status_code == 204
    assert not Registry.objects.exists()
    (deleted,) = records("registry.delete")
    assert deleted.detail["target"] == registry.service


def test_a_registry_with_repositories_is_not_deleted_behind_their_back(api: Api, people, registry) -> None:
    services.create_repository("web/app", registry=registry, context=SYSTEM)
    response = api(people["ada"]).delete(f"/api/registries/{registry.service}/")
    assert response.status_code == 409
    assert "1 repositories" in error(response)["detail"]
    assert Registry.objects.exists() and not records("registry.delete")


def test_rotating_the_notification_secret_shows_the_new_one_once(api: Api, people, registry) -> None:
    old = services.notification_secret(registry)
    url = f"/api/registries/{registry.service}/rotate-secret"
    response = api(people["ada"]).post(url, {"grace": "1h"}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["notification_secret"].startswith("rgn_") and body["notification_secret"] != old
    assert body["previous_valid_until"] is not None
    assert services.notification_secret(registry) == body["notification_secret"]
    assert NotificationEndpoint.objects.get(registry=registry).previous_valid_until is not None
    (rotated,) = records("notification_secret.rotate")
    assert (rotated.kind, rotated.actor) == ("credential", "ada")
    bad = api(people["ada"]).post(url, {"grace": "forever"}, format="json")
    assert bad.status_code == 400 and "grace" in error(bad)["fields"]


# Signing keys ---------------------------------------------------------------------------------------------


def test_overseers_see_every_key_but_never_a_private_key(api: Api, people) -> None:
    services.ensure_keys(SYSTEM)
    response = api(people["audrey"]).get(KEYS)
    results = response.json()["results"]
    assert [k["state"] for k in results] == ["next", "current"]
    assert {k["kid"] for k in results} == set(kids().values())
    assert set(results[0]) == {
        "kid",
        "state",
        "not_after",
        "created_at",
        "activated_at",
        "retired_at",
        "age_days",
        "expires_soon",
    }
    assert "PRIVATE KEY" not in response.content.decode()
    assert [k["state"] for k in api(people["ada"]).get(KEYS, {"state": "current"}).json()["results"]] == ["current"]
    bad = api(people["ada"]).get(KEYS, {"state": "stolen"})
    assert bad.status_code == 400 and "state" in error(bad)["fields"]


def test_an_admin_rotates_when_no_registry_can_refuse(api: Api, people) -> None:
    services.ensure_keys(SYSTEM)
    services.create_registry("registry", context=SYSTEM)  # no URL: a warning, not a refusal
    before = kids()
    response = api(people["ada"]).post(ROTATE)
    assert response.status_code == 200
    body = response.json()
    assert body["current"] == before["next"] == kids()["current"]
    assert body["preflight"] == [{"registry": "registry", "ok": None, "message": body["preflight"][0]["message"]}]
    assert any("no URL known" in w for w in body["warnings"])
    (rotated,) = records("signing_key.rotate")
    assert (rotated.kind, rotated.actor) == ("credential", "ada")
    assert records("signing_key.preflight")[0].detail["rotated"] is True


def test_a_failed_preflight_refuses_the_rotation_with_what_it_found(api: Api, people, closed_port: int) -> None:
    services.ensure_keys(SYSTEM)
    services.create_registry("registry", url=f"http://127.0.0.1:{closed_port}", context=SYSTEM)
    before = kids()
    response = api(people["ada"]).post(ROTATE, {"force": False}, format="json")
    assert response.status_code == 409
    body = response.json()
    assert (body["status"], body["error"]) == (409, "preflight_failed")
    assert "unreachable" in body["detail"] and "Remedy" in body["detail"]
    assert [(p["registry"], p["ok"]) for p in body["preflight"]] == [("registry", False)]
    assert kids() == before and not records("signing_key.rotate")
    (preflight,) = records("signing_key.preflight")
    assert (preflight.outcome, preflight.actor, preflight.detail["rotated"]) == ("failure", "ada", False)


def test_force_rotates_despite_a_failed_preflight(api: Api, people, closed_port: int) -> None:
    services.ensure_keys(SYSTEM)
    services.create_registry("registry", url=f"http://127.0.0.1:{closed_port}", context=SYSTEM)
    before = kids()
    response = api(people["ada"]).post(ROTATE, {"force": True}, format="json")
    assert response.status_code == 200
    assert kids()["current"] == before["next"]
    assert any("unreachable" in w for w in response.json()["warnings"])


@pytest.mark.parametrize(
    ("persona", "limits"), [("audrey", {}), ("bob", {}), ("ada", {"read_only": True}), ("ada", {"patterns": ["a/*"]})]
)
def test_rotation_is_refused_to_the_wrong_role_or_token(api: Api, people, persona: str, limits: dict) -> None:
    services.ensure_keys(SYSTEM)
    before = kids()
    response = api(people[persona], **limits).post(ROTATE)
    assert response.status_code == 403
    assert error(response)["error"] == "permission_denied"
    assert kids() == before and not records("signing_key.preflight")


def test_a_bad_force_is_a_400(api: Api, people) -> None:
    response = api(people["ada"]).post(ROTATE, {"force": "perhaps"}, format="json")
    assert response.status_code == 400 and "force" in error(response)["fields"]


# Jobs -------------------------------------------------------------------------------------------------------


def test_the_job_list_shows_each_beat_entry_with_its_last_run_and_failure(api: Api, people, settings) -> None:
    run_job("seal_audit", lambda: {"sealed": 7})

    def broken() -> dict[str, object]:
        raise RuntimeError("the disk is full")

    with pytest.raises(RuntimeError):
        run_job("verify_audit", broken)
    body = api(people["audrey"]).get(JOBS, {"page_size": 100}).json()
    jobs = {job["name"]: job for job in body["results"]}
    assert list(jobs) == list(settings.CELERY_BEAT_SCHEDULE)
    seal = jobs["seal-audit"]
    assert (seal["task"], seal["schedule"]) == ("audit.tasks.seal_audit", "every minute UTC (* * * * *)")
    assert (seal["last_run"]["outcome"], seal["last_error"]) == ("success", None)
    verify = jobs["verify-audit"]
    assert verify["last_error"]["error"].endswith("the disk is full")
    assert verify["last_run"]["record"] == verify["last_error"]["record"]
    assert jobs["backup"]["last_run"] is None


def test_an_admin_queues_a_job_now_and_it_is_recorded(api: Api, people, settings) -> None:
    response = api(people["ada"]).post("/api/jobs/verify-audit/run")
    assert response.status_code == 202
    assert response.json()["task"] == "audit.tasks.verify_audit"
    (asked,) = records("job.run")
    assert (asked.kind, asked.actor, asked.detail["target"]) == ("admin_change", "ada", "verify-audit")
    queued = Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"])
    assert any(b"audit.tasks.verify_audit" in message.read_bytes() for message in queued.iterdir())


def test_an_unknown_job_is_a_404(api: Api, people) -> None:
    response = api(people["ada"]).post("/api/jobs/mine-bitcoin/run")
    assert response.status_code == 404
    assert "mine-bitcoin" in error(response)["detail"] and not records("job.run")


def test_a_broker_that_refuses_is_a_503_and_leaves_no_record(api: Api, people, monkeypatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise OperationalError("connection refused")

    monkeypatch.setattr(celery_app, "send_task", refuse)
    response = api(people["ada"]).post("/api/jobs/seal-audit/run")
    assert response.status_code == 503
    body = error(response)
    assert body["error"] == "broker_unavailable" and "connection refused" in body["detail"]
    assert not records("job.run")


@pytest.mark.parametrize(
    ("persona", "limits"), [("audrey", {}), ("alice", {}), ("ada", {"read_only": True}), ("ada", {"patterns": ["a/*"]})]
)
def test_running_a_job_is_refused_to_the_wrong_role_or_token(api: Api, people, persona: str, limits: dict) -> None:
    response = api(people[persona], **limits).post("/api/jobs/seal-audit/run")
    assert response.status_code == 403 and not records("job.run")


# Policy as code --------------------------------------------------------------------------------------------------


def test_the_policy_is_exactly_what_export_policy_prints(api: Api, people, registry) -> None:
    services.create_grant(people["bob"], "web/*", "read", context=SYSTEM)
    printed = io.StringIO()
    call_command("export_policy", stdout=printed)
    response = api(people["audrey"]).get(POLICY)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/yaml")
    assert response.content.decode() == printed.getvalue()
    assert "password" not in response.content.decode()


def test_a_dry_run_answers_the_changes_and_changes_nothing(api: Api, people) -> None:
    response = api(people["ada"]).post(f"{POLICY}?dry_run=1", NEW_USER_POLICY, content_type="application/yaml")
    assert response.status_code == 200
    assert response.json() == {"changes": ["+ user zed"], "consequences": [], "applied": False}
    assert not User.objects.filter(username="zed").exists() and not records("user.create")


def test_auditors_read_only_and_pattern_limited_tokens_may_dry_run(api: Api, people) -> None:
    clients = (
        api(people["audrey"]),
        api(people["audrey"], read_only=True),
        api(people["ada"], read_only=True),
        api(people["ada"], patterns=["web/*"]),
    )
    for client in clients:
        response = client.post(f"{POLICY}?dry_run=true", NEW_USER_POLICY, content_type="text/yaml")
        assert response.status_code == 200 and response.json()["applied"] is False
    assert not User.objects.filter(username="zed").exists()


def test_an_admin_applies_a_policy_in_one_audited_run(api: Api, people) -> None:
    text = NEW_USER_POLICY + "teams:\n  - name: ops\n    members:\n      - user: zed\n        role: maintainer\n"
    response = api(people["ada"]).post(POLICY, text, content_type="application/yaml")
    assert response.status_code == 200
    assert response.json() == {
        "changes": ["+ user zed", "+ team ops", "+ member zed of team ops (maintainer)"],
        "consequences": [],
        "applied": True,
    }
    assert User.objects.get(username="zed").email == "zed@example.org"
    (made,) = records("user.create")
    assert (made.kind, made.actor) == ("admin_change", "ada")
    again = api(people["ada"]).post(POLICY, text, content_type="application/yaml")
    assert again.json()["changes"] == []


@pytest.mark.parametrize(
    "content_type",
    ["application/yaml", "application/x-yaml", "text/yaml", "text/plain", "application/yaml; charset=utf-8"],
)
def test_the_policy_body_may_come_as_any_yaml_type(api: Api, people, content_type: str) -> None:
    response = api(people["ada"]).post(f"{POLICY}?dry_run=1", NEW_USER_POLICY, content_type=content_type)
    assert response.status_code == 200 and response.json()["changes"] == ["+ user zed"]


@pytest.mark.parametrize(
    ("persona", "limits"),
    [("audrey", {}), ("alice", {}), ("ada", {"read_only": True}), ("ada", {"patterns": ["web/*"]})],
)
def test_applying_is_refused_to_the_wrong_role_or_token(api: Api, people, persona: str, limits: dict) -> None:
    response = api(people[persona], **limits).post(POLICY, NEW_USER_POLICY, content_type="application/yaml")
    assert response.status_code == 403
    assert error(response)["error"] == "permission_denied"
    assert not User.objects.filter(username="zed").exists()


def test_plain_users_may_not_even_dry_run(api: Api, people) -> None:
    response = api(people["bob"]).post(f"{POLICY}?dry_run=1", NEW_USER_POLICY, content_type="application/yaml")
    assert response.status_code == 403


def test_a_bad_policy_is_a_400_naming_each_error_and_changes_nothing(api: Api, people) -> None:
    text = NEW_USER_POLICY + "grants:\n  - user: ghost\n    repository: web/*\n    role: owner\n"
    response = api(people["ada"]).post(POLICY, text, content_type="application/yaml")
    assert response.status_code == 400
    errors = error(response)["fields"]["policy"]
    assert any("role must be read, write or admin" in e for e in errors)
    assert not User.objects.filter(username="zed").exists()


def test_a_change_the_services_refuse_undoes_the_whole_run(api: Api, people) -> None:
    text = NEW_USER_POLICY + "  - username: yan\n    email: not-an-address\n"
    response = api(people["ada"]).post(POLICY, text, content_type="application/yaml")
    assert response.status_code == 400
    assert error(response)["fields"]["policy"] == ["email: Enter a valid email address."]
    assert not User.objects.filter(username__in=["zed", "yan"]).exists() and not records("user.create")


def test_an_unknown_reference_is_a_400(api: Api, people) -> None:
    text = "repositories:\n  - name: web/app\n    registry: nowhere\n"
    response = api(people["ada"]).post(POLICY, text, content_type="application/yaml")
    assert response.status_code == 400
    assert any("unknown registry 'nowhere'" in e for e in error(response)["fields"]["policy"])


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"users: [\n", "not valid YAML"),
        (b"- just\n- a list\n", "must be a mapping"),
        (b"users:\n  - username: caf\xe9\n", "UTF-8"),
        (b"   \n", "Send the policy file"),
    ],
)
def test_a_body_that_is_not_a_utf8_yaml_policy_is_a_400(api: Api, people, body: bytes, expected: str) -> None:
    response = api(people["ada"]).post(f"{POLICY}?dry_run=1", body, content_type="application/yaml")
    assert response.status_code == 400
    found = error(response)
    assert expected in found["detail"] or any(expected in e for e in found["fields"].get("policy", []))


def test_an_empty_body_and_a_json_body_are_refused(api: Api, people) -> None:
    client = api(people["ada"])
    empty = client.post(POLICY)
    assert empty.status_code == 400 and "policy" in error(empty)["fields"]
    as_json = client.post(POLICY, {"users": []}, format="json")
    assert as_json.status_code == 415 and error(as_json)["error"] == "unsupported_media_type"


def test_a_bad_dry_run_value_is_a_400(api: Api, people) -> None:
    response = api(people["ada"]).post(f"{POLICY}?dry_run=maybe", NEW_USER_POLICY, content_type="text/plain")
    assert response.status_code == 400 and "dry_run" in error(response)["fields"]


def test_errors_stay_json_when_the_client_asks_for_yaml(db: None) -> None:
    response = APIClient().get(POLICY, HTTP_ACCEPT="application/yaml")
    assert response.status_code == 401
    assert response["Content-Type"].startswith("application/json") and error(response)


def test_a_body_past_the_request_limit_is_refused_by_the_parser(settings) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10
    with pytest.raises(PayloadTooLarge):
        YamlParser().parse(io.BytesIO(b"users: []\n# padding"))
    assert YamlParser().parse(io.BytesIO(b"users: []")) == "users: []"


def test_the_export_applies_back_as_nothing_to_change(api: Api, people, registry) -> None:
    services.create_grant(people["bob"], "web/*", "read", context=SYSTEM)
    exported = api(people["ada"]).get(POLICY).content.decode()
    assert yaml.safe_load(exported)["users"]
    response = api(people["ada"]).post(f"{POLICY}?dry_run=0", exported, content_type="application/yaml")
    assert response.json() == {"changes": [], "consequences": [], "applied": True}
