"""Registry notification intake: authenticated, deduplicated, stored during the request."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from accounts import services
from accounts.models import Registry, Repository
from accounts.services import notification_secret
from audit.models import AuditRecord, BlobEventCount
from tests.conftest import SYSTEM

pytestmark = pytest.mark.django_db
URL = "/registry/registry/events"
V1 = "application/vnd.docker.distribution.events.v1+json"
V2 = "application/vnd.docker.distribution.events.v2+json"


@pytest.fixture
def registry(db: None) -> Registry:
    return services.create_registry("registry", context=SYSTEM)


@pytest.fixture
def bearer(registry: Registry) -> str:
    return f"Bearer {notification_secret(registry)}"


def event(
    event_id: str,
    action: str = "push",
    media_type: str = "application/vnd.oci.image.manifest.v1+json",
    repository: str = "web/app",
    tag: str = "v1",
) -> dict:
    return {
        "id": event_id,
        "timestamp": "2026-11-24T18:00:00.123456789Z",
        "action": action,
        "target": {
            "mediaType": media_type,
            "size": 512,
            "digest": "sha256:" + "a" * 64,
            "repository": repository,
            "tag": tag,
        },
        "request": {
            "id": "req-1",
            "addr": "192.0.2.10:51234",
            "host": "127.0.0.1:5000",
            "method": "PUT",
            "useragent": "skopeo/1.9.3",
        },
        "actor": {"name": "alice"},
        "source": {"addr": "registry-host:5000"},
    }


def post(client: Client, events: list[dict], auth: str | None, content_type: str = V1):
    headers = {"HTTP_AUTHORIZATION": auth} if auth else {}
    return client.post(URL, json.dumps({"events": events}), content_type=content_type, **headers)


def test_a_manifest_push_becomes_a_registry_event_record(client: Client, bearer: str) -> None:
    response = post(client, [event("e1")], bearer)
    assert response.status_code == 200
    assert response.json()["stored"] == 1
    record = AuditRecord.objects.get(kind="registry_event")
    assert (record.outcome, record.actor, record.repository, record.ip) == ("push", "alice", "web/app", "192.0.2.10")
    assert record.detail["tag"] == "v1"
    assert record.detail["media_type"].endswith("manifest.v1+json")
    assert record.user_agent == "skopeo/1.9.3"
    assert Repository.objects.filter(name="web/app").exists()


def test_both_media_types_of_the_envelope_are_accepted(client: Client, bearer: str) -> None:
    assert post(client, [event("e1")], bearer, V2).status_code == 200
    assert post(client, [event("e2")], bearer, "application/json").status_code == 200
    assert AuditRecord.objects.filter(kind="registry_event").count() == 2


def test_a_retried_event_is_stored_once(client: Client, bearer: str) -> None:
    post(client, [event("e1")], bearer)
    response = post(client, [event("e1"), event("e2", action="pull")], bearer)
    assert response.json() == {"stored": 1, "duplicates": 1, "blobs": 0, "ignored": 0}
    assert AuditRecord.objects.filter(kind="registry_event").count() == 2


def test_blob_events_are_counted_not_stored(client: Client, bearer: str) -> None:
    blobs = [event(f"b{i}", media_type="application/octet-stream", tag="") for i in range(5)]
    assert post(client, blobs, bearer).json()["blobs"] == 5
    assert not AuditRecord.objects.filter(kind="registry_event").exists()
    count = BlobEventCount.objects.get()
    assert (count.count, count.bytes, count.action) == (5, 2560, "push")


def test_a_delete_by_tag_without_media_type_is_kept(client: Client, bearer: str) -> None:
    deleted = event("d1", action="delete", media_type="", tag="v1")
    deleted["target"]["digest"] = ""
    post(client, [deleted], bearer)
    assert AuditRecord.objects.get(kind="registry_event").outcome == "delete"


@pytest.mark.parametrize("auth", [None, "Bearer wrong", "Basic abc", "Bearer "])
def test_a_wrong_or_missing_secret_is_401(client: Client, bearer: str, auth: str | None) -> None:
    assert post(client, [event("e1")], auth).status_code == 401
    assert not AuditRecord.objects.filter(kind="registry_event").exists()


def test_an_unknown_registry_is_401(client: Client, bearer: str) -> None:
    response = client.post("/registry/other/events", "{}", content_type=V1, HTTP_AUTHORIZATION=bearer)
    assert response.status_code == 401


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"events": 5}', b"\xff\xfe"])
def test_a_malformed_envelope_is_400(client: Client, bearer: str, body: bytes) -> None:
    response = client.post(URL, body, content_type=V1, HTTP_AUTHORIZATION=bearer)
    assert response.status_code == 400


def test_junk_events_are_ignored_not_fatal(client: Client, bearer: str) -> None:
    response = post(client, [{"id": "x"}, "nonsense", {"id": "y", "action": "frob", "target": {}}, event("ok")], bearer)
    assert response.json() == {"stored": 1, "duplicates": 0, "blobs": 0, "ignored": 3}


def test_only_post_is_accepted(client: Client, bearer: str) -> None:
    assert client.get(URL, HTTP_AUTHORIZATION=bearer).status_code == 405


@pytest.mark.parametrize(
    "bad",
    [
        {"action": ["push"]},
        {"request": "x"},
        {"actor": "alice"},
        {"timestamp": "2024-02-30T00:00:00Z"},
        {
            "target": {
                "repository": "web/app",
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "size": 10**30,
            }
        },
    ],
)
def test_odd_events_are_ignored_and_the_rest_of_the_batch_is_kept(client: Client, bearer: str, bad: dict) -> None:
    odd = event("odd") | bad
    response = post(client, [odd, event("fine")], bearer)
    assert response.status_code == 200
    assert AuditRecord.objects.filter(kind="registry_event", detail__event_id="fine").exists()


@pytest.mark.parametrize("body", [b"[" * 100_000, b'{"events": [' + b"9" * 5000 + b"]}"])
def test_pathological_json_is_a_400_not_a_500(client: Client, bearer: str, body: bytes) -> None:
    assert client.post(URL, body, content_type=V1, HTTP_AUTHORIZATION=bearer).status_code == 400


def test_a_bad_content_length_is_refused(client: Client, bearer: str) -> None:
    response = client.generic("POST", URL, b"{}", content_type=V1, HTTP_AUTHORIZATION=bearer, CONTENT_LENGTH="abc")
    assert response.status_code in (400, 413)
