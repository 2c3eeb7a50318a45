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
from audit.export import FIELDS
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
