"""The audit log over the API: search with the page's filters, keyset pages, one record, streamed exports.

Admins (ada) and auditors (audrey) read it; a team lead (alice), a member (bob) and an outsider (carol)
get 403, nobody without credentials gets 401. Reading is not recorded (the page does not record it);
every export is, with its filter, format and the token it came with.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import PersonalAccessToken, Team, User
from audit import chain
from audit.context import AuditContext
from audit.formats import FIELDS
from audit.models import AuditRecord, Kind
from audit.services import record
from tests.conftest import SYSTEM

pytestmark = pytest.mark.django_db

Api = Callable[..., APIClient]
RECORDS = reverse("api:audit-records")
EXPORT = reverse("api:audit-export")


def detail_url(pk: int) -> str:
    return reverse("api:audit-record", args=[pk])


@pytest.fixture
def log(web: Team, carol: User) -> dict[str, AuditRecord]:
    """A partial pull+push by bob from 192.0.2.7, a denied push by carol, a team change (after the personas')."""
    bob = AuditContext(actor="bob", actor_id=2, ip="192.0.2.7", user_agent="skopeo/1.9", request_id="abc")
    scope = {"type": "repository", "name": "web/app", "requested": ["pull", "push"], "granted": ["pull"]}
    carol_ctx = AuditContext.for_user(carol, ip="198.51.100.4")
    denied = {"type": "repository", "name": "web/app", "requested": ["push"], "granted": [], "denied": ["push"]}
    return {
        "bob": record("access", "partial", bob, registry="registry", repository="web/app", actions=[scope]),
        "carol": record("access", "denied", carol_ctx, registry="registry", repository="web/app", actions=[denied]),
        "change": record("admin_change", "success", SYSTEM, detail={"action": "team.update", "target": "web"}),
    }


def ids(response: object) -> list[int]:
    return [row["id"] for row in response.json()["results"]]  # type: ignore[attr-defined]


# --- who may read ------------------------------------------------------------------------


@pytest.mark.parametrize("persona", ["ada", "audrey"])
def test_admins_and_auditors_search_the_log_newest_first(
    api: Api, log: dict[str, AuditRecord], persona: str, request: pytest.FixtureRequest
) -> None:
    response = api(request.getfixturevalue(persona)).get(RECORDS)
    assert response.status_code == 200
    found = ids(response)
    assert found == sorted(found, reverse=True)
    assert {log["bob"].pk, log["carol"].pk, log["change"].pk} <= set(found)
    assert response.json()["next"] is None


@pytest.mark.parametrize("url", [RECORDS, detail_url(1), EXPORT + "?type=csv"])
def test_nobody_reads_the_log_without_credentials(log: dict[str, AuditRecord], url: str) -> None:
    response = APIClient().get(url)
    assert response.status_code == 401
    assert response.json()["error"] == "not_authenticated"


@pytest.mark.parametrize("persona", ["alice", "bob", "carol"])
@pytest.mark.parametrize("url", [RECORDS, EXPORT + "?type=jsonl"])
def test_team_leads_members_and_outsiders_may_not_read_it(
    api: Api, log: dict[str, AuditRecord], persona: str, url: str, request: pytest.FixtureRequest
) -> None:
    response = api(request.getfixturevalue(persona)).get(url)
    assert response.status_code == 403
    assert response.json()["error"] == "permission_denied"


def test_a_plain_user_may_not_read_one_record_either(api: Api, log: dict[str, AuditRecord], carol: User) -> None:
    assert api(carol).get(detail_url(log["carol"].pk)).status_code == 403


def test_an_auditors_read_only_token_and_session_read_it(
    api: Api, session_api: Callable[[User], APIClient], log: dict[str, AuditRecord], audrey: User
) -> None:
    assert api(audrey, read_only=True).get(RECORDS).status_code == 200
    assert api(audrey, patterns=["web/*"]).get(detail_url(log["bob"].pk)).status_code == 200
    assert session_api(audrey).get(RECORDS).status_code == 200


def test_reading_the_log_writes_no_record(api: Api, log: dict[str, AuditRecord], audrey: User) -> None:
    client = api(audrey)
    before = AuditRecord.objects.count()
    client.get(RECORDS)
    client.get(detail_url(log["bob"].pk))
    assert AuditRecord.objects.count() == before


# --- the page's filters --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"kind": "access"}, ["carol", "bob"]),
        ({"user": "bob"}, ["bob"]),
        ({"repository": "web/"}, ["carol", "bob"]),
        ({"repository": "web/*", "outcome": "denied"}, ["carol"]),
        ({"action": "pull"}, ["bob"]),
        ({"ip": "192.0.2.0/24"}, ["bob"]),
        ({"text": "team.update"}, ["change"]),
        ({"kind": "access", "registry": "registry", "user": "carol"}, ["carol"]),
    ],
)
def test_the_pages_filters_narrow_the_records(
    api: Api, log: dict[str, AuditRecord], ada: User, query: dict[str, str], expected: list[str]
) -> None:
    response = api(ada).get(RECORDS, query)
    assert response.status_code == 200
    assert ids(response) == [log[name].pk for name in expected]


def test_the_team_filter_selects_its_members_records(api: Api, log: dict[str, AuditRecord], ada: User) -> None:
    found = ids(api(ada).get(RECORDS, {"team": "web", "kind": "access"}))
    assert found == [log["bob"].pk]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"since": "yesterday"}, "since"),
        ({"kind": "nonsense"}, "kind"),
        ({"action": "fly"}, "action"),
        ({"ip": "not-an-ip"}, "ip"),
        ({"team": "nosuchteam"}, "team"),
        ({"repository": "web/[*"}, "repository"),
        ({"user": "a\x00b"}, "user"),
        ({"since": "2026-02-01", "until": "2026-01-01"}, "until"),
        ({"cursor": "garbage"}, "cursor"),
        ({"cursor": f"2026-01-01T00:00:00Z~{2**70}"}, "cursor"),
        ({"page_size": "0"}, "page_size"),
        ({"page_size": "501"}, "page_size"),
        ({"page_size": "many"}, "page_size"),
    ],
)
def test_a_bad_filter_is_a_400_naming_the_field(
    api: Api, log: dict[str, AuditRecord], audrey: User, query: dict[str, str], field: str
) -> None:
    response = api(audrey).get(RECORDS, query)
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid"
    assert field in body["fields"]


def test_every_bad_field_is_named_at_once(api: Api, log: dict[str, AuditRecord], audrey: User) -> None:
    response = api(audrey).get(RECORDS, {"kind": "nonsense", "ip": "x"})
    assert set(response.json()["fields"]) == {"kind", "ip"}


# --- keyset pages ---------------------------------------------------------------------------


def test_pages_follow_next_with_the_same_filters_until_it_is_null(api: Api, ada: User) -> None:
    made = [record("access", "denied", AuditContext(actor=f"u{n}"), repository="web/app").pk for n in range(7)]
    client, seen = api(ada), []
    response = client.get(RECORDS, {"repository": "web/app", "page_size": 3})
    while True:
        assert response.status_code == 200
        seen += ids(response)
        following = response.json()["next"]
        if following is None:
            break
        assert "repository=web%2Fapp" in following and "page_size=3" in following
        response = client.get(following)
    assert seen == sorted(made, reverse=True)


def test_a_page_size_bounds_the_page(api: Api, log: dict[str, AuditRecord], ada: User) -> None:
    response = api(ada).get(RECORDS, {"page_size": 1})
    assert len(response.json()["results"]) == 1
    assert "cursor=" in response.json()["next"]


# --- one record --------------------------------------------------------------------------------


def test_one_record_shows_every_field_and_its_seal_once_sealed(
    api: Api, log: dict[str, AuditRecord], audrey: User
) -> None:
    client, pk = api(audrey), log["bob"].pk
    unsealed = client.get(detail_url(pk)).json()
    assert unsealed["seal"] is None
    assert unsealed["actor"] == "bob" and unsealed["ip"] == "192.0.2.7" and unsealed["user_agent"] == "skopeo/1.9"
    assert unsealed["request_id"] == "abc" and unsealed["registry"] == "registry"
    assert unsealed["actions"][0]["requested"] == ["pull", "push"] and unsealed["actions"][0]["granted"] == ["pull"]
    assert unsealed["segment"].startswith("access:") and len(unsealed["mac"]) == 64
    chain.seal(now=timezone.now() + timedelta(minutes=5))
    sealed = client.get(detail_url(pk)).json()["seal"]
    assert sealed["seq"] >= 1 and len(sealed["chain"]) == 64


def test_a_denied_attempt_is_explained_as_the_rules_stand_now(api: Api, log: dict[str, AuditRecord], ada: User) -> None:
    body = api(ada).get(detail_url(log["carol"].pk)).json()
    scopes = body["why_refused"]["scopes"]
    assert [(s["name"], s["denied"], s["allowed_now"]) for s in scopes] == [("web/app", ["push"], [])]
    assert scopes[0]["missing"]


def test_other_records_carry_no_refusal(api: Api, log: dict[str, AuditRecord], ada: User) -> None:
    assert api(ada).get(detail_url(log["change"].pk)).json()["why_refused"] is None


@pytest.mark.parametrize("pk", [999_999, 2**70])
def test_an_unknown_record_is_a_404(api: Api, log: dict[str, AuditRecord], ada: User, pk: int) -> None:
    response = api(ada).get(detail_url(pk))
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


# --- exports --------------------------------------------------------------------------------------


def export_records(actor: str) -> list[AuditRecord]:
    return list(AuditRecord.objects.filter(kind=Kind.ADMIN_CHANGE, actor=actor, detail__action="audit.export"))


def test_a_csv_export_streams_the_filter_and_is_recorded_first(
    api: Api, log: dict[str, AuditRecord], audrey: User
) -> None:
    client = api(audrey)
    response = client.get(EXPORT, {"type": "csv", "kind": "access"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert tuple(rows[0]) == FIELDS
    assert [int(row[0]) for row in rows[1:]] == [log["bob"].pk, log["carol"].pk]  # oldest first
    [recorded] = export_records("audrey")
    token = PersonalAccessToken.objects.get(user=audrey)
    assert recorded.detail == {
        "action": "audit.export",
        "filters": {"kind": "access"},
        "format": "csv",
        "delivery": "download",
        "rows": 2,
        "token": token.name,
    }
    assert recorded.actor_id == audrey.pk


def test_a_jsonl_export_leaves_out_its_own_record(api: Api, log: dict[str, AuditRecord], ada: User) -> None:
    response = api(ada).get(EXPORT, {"type": "jsonl"})
    assert response["Content-Type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]
    [own] = export_records("ada")
    assert own.pk not in {line["id"] for line in lines}
    assert {log["bob"].pk, log["carol"].pk, log["change"].pk} <= {line["id"] for line in lines}


def test_an_export_through_the_session_names_no_token(
    session_api: Callable[[User], APIClient], log: dict[str, AuditRecord], ada: User
) -> None:
    response = session_api(ada).get(EXPORT, {"type": "jsonl", "user": "bob"})
    assert len(b"".join(response.streaming_content).decode().splitlines()) == 1
    [own] = export_records("ada")
    assert "token" not in own.detail and own.detail["filters"] == {"user": "bob"}


@pytest.mark.parametrize(
    ("query", "field"), [({}, "type"), ({"type": "xml"}, "type"), ({"type": "csv", "ip": "x"}, "ip")]
)
def test_a_bad_export_request_is_a_json_400_and_records_nothing(
    api: Api, log: dict[str, AuditRecord], ada: User, query: dict[str, str], field: str
) -> None:
    response = api(ada).get(EXPORT, query, HTTP_ACCEPT="text/csv")
    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/json")
    assert field in response.json()["fields"]
    assert export_records("ada") == []


def test_too_many_records_for_a_download_is_a_409_pointing_at_a_background_export(
    api: Api, log: dict[str, AuditRecord], ada: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("audit.exporting.STREAM_LIMIT", 1)
    response = api(ada).get(EXPORT, {"type": "csv"})
    assert response.status_code == 409
    assert "background" in response.json()["detail"]
    assert export_records("ada") == []


def test_a_page_costs_the_same_few_queries_however_many_records(
    api: Api, log: dict[str, AuditRecord], ada: User, django_assert_max_num_queries: Any
) -> None:
    client = api(ada)
    with django_assert_max_num_queries(10) as few:
        client.get(RECORDS, {"page_size": 500})
    for number in range(40):
        record("access", "denied", AuditContext(actor=f"u{number}"), repository="web/app")
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert len(client.get(RECORDS, {"page_size": 500}).json()["results"]) > 40
