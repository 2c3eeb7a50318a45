"""Registry notification intake: authenticated, deduplicated, stored during the request."""

from __future__ import annotations

import json
import logging

import pytest
from django.test import Client

from accounts import services
from accounts.models import Registry, Repository
from accounts.services import notification_secret
from audit.intake import store_events
from audit.models import AuditRecord, BlobEventCount, SeenEvent
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
    assert response.json() == {"stored": 1, "duplicates": 1, "blobs": 0, "ignored": 0, "rejected": 0}
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
    assert response.json() == {"stored": 1, "duplicates": 0, "blobs": 0, "ignored": 3, "rejected": 0}


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


# Issue 12: one bad event must not make the whole envelope fail (and be resent) for ever. -------------

BLOB = "application/octet-stream"
BIGINT_MAX = 2**63 - 1


def blob(event_id: str, size: object) -> dict:
    odd = event(event_id, media_type=BLOB, tag="")
    odd["target"]["size"] = size
    return odd


@pytest.mark.parametrize("size", [True, False, 2**63, 2**64, -1, 1.5, "512", [512], {"n": 1}])
def test_a_blob_event_with_an_impossible_size_is_rejected_and_the_manifest_event_is_stored(
    client: Client, bearer: str, size: object
) -> None:
    response = post(client, [blob("bad-blob", size), event("manifest")], bearer)
    assert response.status_code == 200
    assert response.json()["stored"] == 1
    assert AuditRecord.objects.filter(kind="registry_event", detail__event_id="manifest").exists()
    assert not BlobEventCount.objects.exists()


@pytest.mark.parametrize("size", [True, 2**63, -5, 0.5])
def test_a_manifest_event_with_an_impossible_size_is_rejected_not_fatal(
    client: Client, bearer: str, size: object
) -> None:
    odd = event("odd-manifest")
    odd["target"]["size"] = size
    response = post(client, [odd, event("fine")], bearer)
    assert response.status_code == 200
    stored = AuditRecord.objects.filter(kind="registry_event")
    assert list(stored.values_list("detail__event_id", flat=True)) == ["fine"]


def test_the_result_counts_rejected_events_beside_the_stored_ones(registry: Registry) -> None:
    events = [blob("b-true", True), blob("b-huge", 2**63), event("m1"), blob("b-ok", 100)]
    result = store_events(events, registry.service)
    assert (result.stored, result.blobs, result.rejected, result.ignored, result.duplicates) == (1, 1, 2, 0, 0)
    assert BlobEventCount.objects.get().bytes == 100


def test_a_rejected_event_is_logged_with_its_cause(registry: Registry, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="audit.intake"):
        store_events([blob("b-true", True), event("m1")], registry.service)
    assert "b-true" in caplog.text and "size" in caplog.text
    assert "m1" not in caplog.text


def test_a_rejected_event_is_not_marked_seen(registry: Registry) -> None:
    store_events([blob("b1", True)], registry.service)
    assert not SeenEvent.objects.exists()


def test_the_largest_bigint_size_is_accepted_and_the_daily_bytes_saturate(registry: Registry) -> None:
    result = store_events([blob("b1", BIGINT_MAX), blob("b2", BIGINT_MAX), blob("b3", 0)], registry.service)
    assert (result.blobs, result.rejected) == (3, 0)
    count = BlobEventCount.objects.get()
    assert (count.count, count.bytes) == (3, BIGINT_MAX)


def test_a_missing_or_null_size_counts_no_bytes(registry: Registry) -> None:
    unsized = blob("b2", 1)
    del unsized["target"]["size"]
    assert store_events([blob("b1", None), unsized], registry.service).blobs == 2
    assert BlobEventCount.objects.get().bytes == 0


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("id",), 12345),
        (("id",), "x" * 101),
        (("id",), "\ud800"),
        (("target",), None),
        (("target", "repository"), 5),
        (("target", "repository"), "a/" * 200),
        (("target", "digest"), {"sha256": "x"}),
        (("target", "tag"), ["v1"]),
        (("target", "mediaType"), 7),
        (("target", "repository"), "web/\udcff"),
        (("timestamp",), 1700000000),
        (("request", "addr"), 3232235777),
        (("request", "useragent"), ["skopeo"]),
        (("request", "method"), 1),
        (("actor", "name"), {"first": "alice"}),
        (("source", "addr"), False),
        (("request",), "x"),
        (("actor",), ["alice"]),
    ],
)
def test_an_event_with_a_wrongly_typed_or_oversized_field_is_rejected(
    registry: Registry, path: tuple[str, ...], value: object
) -> None:
    odd = event("odd")
    holder = odd
    for key in path[:-1]:
        holder = holder[key]
    holder[path[-1]] = value
    result = store_events([odd, event("fine")], registry.service)
    assert (result.stored, result.rejected) == (1, 1)
    assert AuditRecord.objects.filter(kind="registry_event").count() == 1


def test_a_long_user_agent_is_cut_not_rejected(registry: Registry) -> None:
    chatty = event("e1")
    chatty["request"]["useragent"] = "docker/27.0 " + "x" * 1000
    assert store_events([chatty], registry.service).stored == 1
    assert len(AuditRecord.objects.get(kind="registry_event").user_agent) == 512


def test_an_ipv6_source_with_a_zone_is_stored_without_the_zone(registry: Registry) -> None:
    zoned = event("e1")
    zoned["request"]["addr"] = "[fe80::1%eth0]:5000"
    assert store_events([zoned], registry.service).stored == 1
    assert AuditRecord.objects.get(kind="registry_event").ip == "fe80::1"


@pytest.mark.parametrize("charset", ["base64", "hex", "zlib", "rot13"])
def test_a_query_string_with_a_non_text_charset_is_400_at_the_intake(client: Client, bearer: str, charset: str) -> None:
    body = json.dumps({"events": [event("e1")]}).encode()
    # generic(): post() would encode the body with that "charset" itself, and fail in the test.
    response = client.generic(
        "POST", URL + "?x=1", body, content_type=f"text/plain; charset={charset}", HTTP_AUTHORIZATION=bearer
    )
    assert response.status_code == 400
    assert not AuditRecord.objects.filter(kind="registry_event").exists()


def test_an_envelope_over_the_body_limit_is_413_before_it_is_read(
    client: Client, bearer: str, settings: object
) -> None:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE  # type: ignore[attr-defined]
    body = json.dumps({"events": [event("e1")], "pad": "x" * limit})
    assert post_raw(client, body.encode(), bearer).status_code == 413
    assert not SeenEvent.objects.exists()


def test_an_envelope_just_under_the_body_limit_is_read(client: Client, bearer: str, settings: object) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 65_536  # type: ignore[attr-defined]
    envelope = {"events": [event("e1")], "pad": ""}
    envelope["pad"] = "x" * (65_536 - len(json.dumps(envelope)))
    body = json.dumps(envelope).encode()
    assert len(body) == 65_536
    assert post_raw(client, body, bearer).status_code == 200


def post_raw(client: Client, body: bytes, auth: str):
    return client.post(URL, body, content_type=V1, HTTP_AUTHORIZATION=auth)
