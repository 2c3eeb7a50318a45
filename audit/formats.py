"""Audit export formats: JSONL and CSV, one record per line, streamed.

Was ``audit/export.py`` before the layout split.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from django.db.models import QuerySet

FIELDS = (
    "id",
    "time",
    "kind",
    "outcome",
    "actor",
    "actor_id",
    "subject_type",
    "ip",
    "user_agent",
    "request_id",
    "registry",
    "repository",
    "actions",
    "detail",
)
FORMATS = ("jsonl", "csv")


def rfc3339(value: datetime) -> str:
    """UTC with a ``Z`` suffix and microseconds, e.g. ``2026-11-24T18:00:00.123456Z``."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def rows(queryset: QuerySet, chunk_size: int = 2000) -> Iterator[dict[str, Any]]:
    """Records as plain dicts in a stable order, without loading them all."""
    for values in queryset.order_by("time", "id").values_list(*FIELDS).iterator(chunk_size=chunk_size):
        row = dict(zip(FIELDS, values, strict=True))
        row["time"] = rfc3339(row["time"])
        yield row


def jsonl_lines(records: Iterable[dict[str, Any]]) -> Iterator[str]:
    for row in records:
        yield json.dumps(row, separators=(",", ":"), ensure_ascii=False, sort_keys=False) + "\n"


# A cell starting with one of these is a formula to a spreadsheet: usernames, user agents and repository
# names come from clients, so an export opened in a spreadsheet must show them as text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """A CSV cell a spreadsheet shows as text: one that would start a formula gets a leading quote."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return "" if value is None else value


def csv_table(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> Iterator[str]:
    """The header, then one CSV line per row, every cell through ``safe_cell``; streamed."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")

    def line(values: Iterable[Any]) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(values)
        return buffer.getvalue()

    yield line(header)
    for values in rows:
        yield line(safe_cell(value) for value in values)


def csv_lines(records: Iterable[dict[str, Any]]) -> Iterator[str]:
    """A fixed header, then one line per record; ``actions`` and ``detail`` as JSON text."""

    def values(row: dict[str, Any]) -> list[Any]:
        row["actions"] = json.dumps(row["actions"], separators=(",", ":"))
        row["detail"] = json.dumps(row["detail"], separators=(",", ":"))
        return [row[f] for f in FIELDS]

    return csv_table(FIELDS, (values(row) for row in records))


def render(records: Iterable[dict[str, Any]], fmt: str) -> Iterator[str]:
    if fmt == "jsonl":
        return jsonl_lines(records)
    if fmt == "csv":
        return csv_lines(records)
    raise ValueError(f"unknown export format {fmt!r}; use jsonl or csv")
