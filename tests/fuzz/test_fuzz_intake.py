"""Fuzzing the notification intake: any envelope, event, media type, secret and size.

A registry resends an envelope until it gets a 2xx, so the property that matters is the one issue 12
broke on PostgreSQL: a well-formed envelope is always a 200 however odd its events, each event is
accounted for exactly once (stored, duplicate, blob, ignored or rejected), and only a body that is
not an envelope at all is a 400.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client
from hypothesis import assume, event, given
from hypothesis import strategies as st

from accounts import services
from accounts.models import Registry
from accounts.services import notification_secret
from audit.intake import MAX_EVENTS, store_events
from audit.models import AuditRecord
from tests.conftest import SYSTEM
from tests.fuzz import FEW, FUZZ, any_text, content_type, header_text, mostly, rolled_back

pytestmark = pytest.mark.django_db
URL = "/registry/registry/events"
V1 = "application/vnd.docker.distribution.events.v1+json"
SMALL_LIMIT = 65_536  # the least MAX_REQUEST_BODY allows: big enough to test, small enough to build fast


@pytest.fixture
def registry(db: None) -> Registry:
    return services.create_registry("registry", context=SYSTEM)


@pytest.fixture
def bearer(registry: Registry) -> str:
    return f"Bearer {notification_secret(registry)}"


# --- strategies ---------------------------------------------------------------------------

json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([2**63 - 1, 2**63, -(2**63), 10**30, 0, -1]),
    st.floats(),
    st.text(max_size=20),  # lone surrogates too: json.dumps escapes them as \ud800
)
json_value = st.recursive(
    json_leaf, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
)


def field(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A field that is usually right, sometimes any JSON at all."""
    return mostly(good, json_value, odds=8)


MEDIA_TYPES = [
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/octet-stream",
    "",
]
target = st.fixed_dictionaries(
    {"mediaType": field(st.sampled_from(MEDIA_TYPES))},
    optional={
        "size": field(st.one_of(st.integers(0, 2**63 - 1), st.sampled_from([True, False, 2**63, -1, 1.5, "512"]))),
        "digest": field(st.just("sha256:" + "a" * 64)),
        "repository": field(st.one_of(st.sampled_from(["web/app", "pub/base", "Web/App", "a" * 300]), any_text)),
        "tag": field(st.one_of(st.sampled_from(["v1", "latest", ""]), any_text)),
        "url": json_value,
    },
)
request_part = st.fixed_dictionaries(
    {},
    optional={
        "id": field(any_text),
        "addr": field(st.sampled_from(["192.0.2.10:51234", "[2001:db8::1]:443", "[fe80::1%eth0]:5000", "junk", ""])),
        "host": field(any_text),
        "method": field(st.sampled_from(["GET", "PUT", "HEAD", "DELETE"])),
        "useragent": field(st.one_of(header_text, st.just("x" * 5000))),
    },
)
registry_event = st.fixed_dictionaries(
    {
        "id": field(st.sampled_from([f"event-{n}" for n in range(6)])),  # a small pool: retries and duplicates
        "action": field(st.sampled_from(["push", "pull", "delete", "mount", "frob"])),
        "target": field(target),
    },
    optional={
        "timestamp": field(st.sampled_from(["2026-11-24T18:00:00.123456789Z", "2024-02-30T00:00:00Z", "yesterday"])),
        "request": field(request_part),
        "actor": field(st.fixed_dictionaries({}, optional={"name": field(any_text)})),
        "source": field(st.fixed_dictionaries({}, optional={"addr": field(any_text)})),
    },
)
events = st.lists(mostly(registry_event, json_value), max_size=8)


# --- properties ---------------------------------------------------------------------------


@FUZZ
@given(batch=events)
def test_every_event_of_an_envelope_is_accounted_for_once(registry: Registry, batch: list[Any]) -> None:
    with rolled_back():
        before = AuditRecord.objects.filter(kind="registry_event").count()
        result = store_events(batch, registry.service)
        counted = result.stored + result.duplicates + result.blobs + result.ignored + result.rejected
        assert counted == len(batch)
        assert AuditRecord.objects.filter(kind="registry_event").count() == before + result.stored
        event(f"rejected {min(result.rejected, 2)}, stored {min(result.stored, 2)}, blobs {min(result.blobs, 2)}")


@FUZZ
@given(batch=events, media=st.one_of(st.sampled_from([V1, V1.replace("v1", "v2"), "application/json"]), content_type))
def test_a_well_formed_envelope_is_always_a_200(client: Client, bearer: str, batch: list[Any], media: str) -> None:
    body = json.dumps({"events": batch}).encode()
    with rolled_back():
        response = client.generic("POST", URL, body, content_type=media, HTTP_AUTHORIZATION=bearer)
        if "charset=" in media.lower() and response.status_code == 400:
            return  # an unusable charset is refused before the view (test_fuzz_filters pins which)
        assert response.status_code == 200, response.content
        answer = response.json()
        counted = sum(answer.get(key, 0) for key in ("stored", "duplicates", "blobs", "ignored", "rejected"))
        assert counted == len(batch)


@FUZZ
@given(
    body=st.one_of(
        st.binary(max_size=200),
        events.map(lambda batch: json.dumps({"events": batch}).encode()),
        json_value.map(lambda value: json.dumps(value).encode()),
        st.dictionaries(st.sampled_from(["events", "Events", "x"]), json_value, max_size=2).map(
            lambda value: json.dumps(value).encode()
        ),
    ),
    media=content_type,
    query=st.sampled_from(["", "?x=1", "?events=%00"]),
)
def test_any_body_is_a_200_or_a_400(client: Client, bearer: str, body: bytes, media: str, query: str) -> None:
    with rolled_back():
        response = client.generic("POST", URL + query, body, content_type=media, HTTP_AUTHORIZATION=bearer)
        event(f"status {response.status_code}")
        assert response.status_code in {200, 400}


@FUZZ
@given(authorization=st.one_of(header_text, header_text.map(lambda value: f"Bearer {value}")))
def test_a_wrong_secret_is_always_a_401(client: Client, bearer: str, authorization: str) -> None:
    assume(authorization.strip() != bearer)
    with rolled_back():
        response = client.post(URL, b'{"events": []}', content_type=V1, HTTP_AUTHORIZATION=authorization)
        assert response.status_code == 401


@FUZZ
@given(service=any_text, method=st.sampled_from(["GET", "PUT", "DELETE", "PATCH"]))
def test_other_registries_and_methods_are_refused(client: Client, bearer: str, service: str, method: str) -> None:
    with rolled_back():
        answer = client.generic(method, URL, b"{}", content_type=V1, HTTP_AUTHORIZATION=bearer)
        assert answer.status_code == 405
        other = client.post(f"/registry/{service}x/events", b"{}", content_type=V1, HTTP_AUTHORIZATION=bearer)
        assert other.status_code in {400, 401, 404}  # 400: a NUL in the path; 404: a "/" in the service


@FEW
@given(length=st.integers(0, 2 * SMALL_LIMIT), events_count=st.integers(0, 3))
def test_a_body_over_the_limit_is_413_and_one_under_it_is_read(
    client: Client, bearer: str, settings: Any, length: int, events_count: int
) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = SMALL_LIMIT
    envelope = json.dumps({"events": [{"id": f"e{n}", "action": "frob"} for n in range(events_count)]}).encode()
    body = envelope + b" " * max(0, length - len(envelope))  # JSON allows trailing whitespace
    with rolled_back():
        response = client.post(URL, body, content_type=V1, HTTP_AUTHORIZATION=bearer)
        assert response.status_code == (413 if len(body) > SMALL_LIMIT else 200)


def test_more_events_than_allowed_are_a_400(client: Client, bearer: str) -> None:
    body = json.dumps({"events": [{}] * (MAX_EVENTS + 1)}).encode()
    assert client.post(URL, body, content_type=V1, HTTP_AUTHORIZATION=bearer).status_code == 400
