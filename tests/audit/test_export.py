"""manage.py export_audit streams records as JSONL or CSV with filters."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from audit.context import AuditContext
from audit.formats import FIELDS, csv_lines
from audit.models import AuditRecord
from audit.services import record

pytestmark = pytest.mark.django_db


@pytest.fixture
def records() -> None:
    bob = AuditContext(actor="bob", actor_id=2, ip="192.0.2.7", user_agent="skopeo/1.9", request_id="abc")
    scope = {
        "type": "repository",
        "name": "web/app",
        "requested": ["pull", "push"],
        "granted": ["pull"],
        "denied": ["push"],
    }
    record("access", "partial", bob, registry="registry", repository="web/app", actions=[scope])
    record("access", "denied", AuditContext(actor="carol"), repository="web/secret", registry="registry")
    record("admin_change", "success", AuditContext.system(), detail={"action": "team.create", "target": "web"})


def export(*args: str) -> str:
    out = io.StringIO()
    call_command("export_audit", *args, stdout=out)
    return out.getvalue()


def test_jsonl_has_one_record_per_line_with_the_field_names(records: None) -> None:
    lines = export("--format", "jsonl").splitlines()
    assert len(lines) == 3
    first = json.loads(lines[0])
    assert tuple(first) == FIELDS
    assert first["actions"][0]["denied"] == ["push"]
    assert first["ip"] == "192.0.2.7" and first["subject_type"] == "user"
    assert first["time"].endswith("Z")
    assert datetime.strptime(first["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def test_csv_has_a_fixed_header_and_json_columns(records: None) -> None:
    reader = list(csv.reader(io.StringIO(export("--format", "csv"))))
    assert tuple(reader[0]) == FIELDS
    assert len(reader) == 4
    assert json.loads(reader[1][FIELDS.index("actions")])[0]["granted"] == ["pull"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--kind", "access"], 2),
        (["--outcome", "denied"], 1),
        (["--user", "bob"], 1),
        (["--repository", "web/app"], 1),
        (["--since", "2000-01-01"], 3),
        (["--until", "2000-01-01T00:00:00Z"], 0),
        (["--kind", "access", "--outcome", "partial", "--user", "bob"], 1),
    ],
)
def test_filters_combine(records: None, args: list[str], expected: int) -> None:
    assert len(export(*args).splitlines()) == expected


def test_a_bad_time_is_a_clear_error(records: None) -> None:
    with pytest.raises(CommandError, match="not an ISO 8601 time"):
        export("--since", "yesterday")


def test_an_empty_log_exports_only_the_csv_header() -> None:
    assert export("--format", "csv").strip() == ",".join(FIELDS)


@pytest.fixture
def more_records(records: None) -> None:
    """Beyond ``records``: a registry event, an IPv6 source and a robot on another registry."""
    alice = AuditContext(actor="alice", ip="192.0.2.130")
    record("registry_event", "push", alice, registry="registry", repository="web/app", detail={"tag": "v1.2"})
    robot = AuditContext(actor="robot$web+ci", ip="2001:db8::7")
    pull = {"type": "repository", "name": "web/api", "requested": ["pull"], "granted": ["pull"], "denied": []}
    record("access", "granted", robot, subject_type="robot", registry="mirror", repository="web/api", actions=[pull])


def exported_actors(*args: str) -> list[str]:
    return [json.loads(line)["actor"] for line in export(*args).splitlines()]


@pytest.mark.parametrize(
    ("args", "actors"),
    [
        (["--ip", "192.0.2.7"], ["bob"]),
        (["--ip", "192.0.2.0/24"], ["bob", "alice"]),
        (["--ip", "192.0.2.128/25"], ["alice"]),
        (["--ip", "2001:db8::/48"], ["robot$web+ci"]),
        (["--registry", "mirror"], ["robot$web+ci"]),
        (["--registry", "registry"], ["bob", "carol", "alice"]),
        (["--action", "push"], ["bob", "alice"]),
        (["--action", "pull"], ["bob", "robot$web+ci"]),
        (["--action", "delete"], []),
        (["--robot", "*"], ["robot$web+ci"]),
        (["--repository", "web/a*"], ["bob", "alice", "robot$web+ci"]),
        (["--text", "V1.2"], ["alice"]),
        (["--action", "push", "--ip", "192.0.2.0/25"], ["bob"]),
    ],
)
def test_the_new_flags_mean_what_they_mean_on_the_audit_page(
    more_records: None, args: list[str], actors: list[str]
) -> None:
    assert exported_actors(*args) == actors


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ip", "192.0.2.300"], "--ip: '192.0.2.300' is neither an IP address nor a CIDR range"),
        (["--repository", "web/a**"], "--repository: 'web/a**' is not a valid pattern"),
        (["--team", "nobody"], "--team: there is no team named 'nobody'"),
    ],
)
def test_bad_flag_values_are_clear_errors(records: None, args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message.replace("*", r"\*").replace("(", r"\(")):
        export(*args)


def test_the_export_itself_is_recorded_and_left_out_of_its_own_output(records: None) -> None:
    lines = [json.loads(line) for line in export("--kind", "admin_change", "--format", "jsonl").splitlines()]
    exported = AuditRecord.objects.filter(detail__action="audit.export").get()
    assert exported.kind == "admin_change" and exported.actor == "manage.py export_audit"
    assert exported.subject_type == "system"
    assert exported.detail == {
        "action": "audit.export",
        "filters": {"kind": "admin_change"},
        "format": "jsonl",
        "delivery": "command",
    }
    assert exported.pk not in {line["id"] for line in lines}
    assert [line["detail"].get("action") for line in lines] == ["team.create"]


def test_a_csv_export_shows_client_supplied_text_that_looks_like_a_formula_as_text() -> None:
    rows = [
        {
            "id": 1,
            "time": "2026-12-07T00:00:00.000000Z",
            "kind": "access",
            "outcome": "auth_failed",
            "actor": '=HYPERLINK("http://evil.example","click")',
            "actor_id": None,
            "subject_type": "user",
            "ip": "192.0.2.1",
            "user_agent": "@SUM(1+1)",
            "request_id": "",
            "registry": "registry",
            "repository": "web/app",
            "actions": [],
            "detail": {},
        }
    ]
    line = list(csv_lines(rows))[1]
    assert "'=HYPERLINK" in line and "'@SUM(1+1)" in line
    assert ",=" not in line and ",@" not in line
