"""The audit pages: search, one record (and why it was denied), exports.

Auditors and administrators may read every page; nobody else may see any.
Nothing here changes state except creating an export job, and every export
(streamed or a job's file) is itself recorded.

Was ``audit/views.py`` before the layout split.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from accounts.access.explain import ScopeExplanation, refused_scopes, subject_for_actor
from audit import alerts, chain, exporting, tasks
from audit.actors import actor_links
from audit.changes import PROBE_NOTE, describe, diff, other_details
from audit.charts import attempts_chart
from audit.context import AuditContext
from audit.filters import (
    ACTIONS,
    OUTCOME_CHOICES,
    AuditFilter,
    FilterError,
    keyset_page,
    parse_cursor,
    parse_filter,
)
from audit.models import AuditExport, AuditRecord, AuditVerification, Kind
from audit.panels import side_panels
from registryadmin.guards import overseer_required

PAGE_SIZE = 50
BROKER_DOWN_MESSAGE = (
    "The job queue (broker) is unavailable; the export was marked failed — try again when the broker is back."
)
# A fresh install shows "not verified yet" as information this long (the first verify runs minutes after start).
FIRST_VERIFY_GRACE = timedelta(days=1)


# --- pages -------------------------------------------------------------------------


@require_GET
@overseer_required
def search(request: HttpRequest) -> HttpResponse:
    """Filtered records, newest first, 50 a page by keyset; a chart and top lists for the same range."""
    try:
        audit_filter = page_filter(parse_filter(request.GET))
        cursor = parse_cursor(request.GET.get("cursor"))
    except FilterError as exc:
        return _invalid_filter(request, exc)
    now = timezone.now()
    records, next_cursor = keyset_page(audit_filter.apply(), cursor, PAGE_SIZE)
    # The chart counts one kind (access unless the filter names one): hiding jobs changes nothing there.
    chart = attempts_chart(replace(audit_filter, jobs=None), now)
    described = audit_filter.describe()
    query = urlencode(described)
    context = {
        **_header(request, now),
        "records": records,
        "rows": rows_of(records),
        "chart": chart,
        "panels": side_panels(audit_filter.kind, chart.window),
        "query": query,
        "described": described,
        "jobs_hidden": audit_filter.hides_jobs,
        "show_jobs": urlencode({**described, "jobs": "1"}),
        "older": f"?{query}&cursor={next_cursor.encode()}" if next_cursor else None,
        "paged": cursor is not None,
    }
    return render(request, "audit/search.html", context)


@require_GET
@overseer_required
def record_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One record in full, in words and as a before/after table; for a refused access attempt, why."""
    entry = get_object_or_404(AuditRecord, pk=pk)
    now = timezone.now()
    note, scopes = explain_refusal(entry, now)
    context = {
        "record": entry,
        "who_url": actor_links([entry]).get(entry.pk),
        "summary": describe(entry),
        "changes": diff(entry),
        "details": other_details(entry),
        "probe_note": PROBE_NOTE if entry.outcome == "probe" else "",
        "detail_json": json.dumps(entry.detail, indent=2, sort_keys=True, ensure_ascii=False),
        "explained": entry.kind == Kind.ACCESS and entry.outcome in ("denied", "partial", "probe"),
        "explain_note": note,
        "scopes": scopes,
        "now": now,
    }
    return render(request, "audit/record.html", context)


@require_GET
@overseer_required
def export_download(request: HttpRequest, fmt: str) -> HttpResponse:
    """The current filter as CSV or JSONL, streamed; too many records for that: offer a job instead."""
    try:
        audit_filter = parse_filter(request.GET)
    except FilterError as exc:
        return _invalid_filter(request, exc)
    count = exporting.streamable_count(audit_filter.apply())
    if count is None:
        described = audit_filter.describe()
        context = {"query": urlencode(described), "described": described, "fmt": fmt, "limit": exporting.STREAM_LIMIT}
        return render(request, "audit/export_too_large.html", context, status=409)
    lines = exporting.stream(audit_filter, fmt, AuditContext.from_request(request), rows=count)
    response = StreamingHttpResponse(lines, content_type=exporting.CONTENT_TYPES[fmt])
    response["Content-Disposition"] = f'attachment; filename="audit-{timezone.now():%Y%m%dT%H%M%SZ}.{fmt}"'
    return response


@require_http_methods(["GET", "POST"])
@overseer_required
def exports(request: HttpRequest) -> HttpResponse:
    """GET: recent export jobs. POST: start one for the posted filter and format."""
    if request.method == "GET":
        return render(request, "audit/exports.html", {"exports": AuditExport.objects.all()[:50]})
    try:
        audit_filter = parse_filter(request.POST)
        fmt = exporting.parse_format(request.POST.get("format", ""))
    except FilterError as exc:
        return _invalid_filter(request, exc)
    except ValueError as exc:
        return _invalid_filter(request, FilterError({"format": str(exc)}))
    export = tasks.start_export(audit_filter, fmt, AuditContext.from_request(request))
    if export.status == "failed":
        messages.error(request, BROKER_DOWN_MESSAGE)
    return redirect("audit:export", pk=export.pk)


@require_GET
@overseer_required
def export_status(request: HttpRequest, pk: int) -> HttpResponse:
    """A job's status and progress; the page refreshes itself until the job ends."""
    export = get_object_or_404(AuditExport, pk=pk)
    context = {
        "export": export,
        "percent": exporting.progress_percent(export),
        "active": export.status in ("queued", "running"),
        "query": urlencode(export.filters),
    }
    response = render(request, "audit/export.html", context)
    if context["active"]:
        # The Refresh header (in the HTML standard) reloads the page without any script.
        response["Refresh"] = "3"
    return response


@require_GET
@overseer_required
def export_file(request: HttpRequest, pk: int) -> HttpResponse:
    """A finished job's file; fetching it is recorded like any other export."""
    export = get_object_or_404(AuditExport, pk=pk, status="done")
    path = exporting.file_path(export)
    if not path.is_file():
        raise Http404("the export file is gone")
    exporting.record_export(AuditContext.from_request(request), export.filters, export.format, "file", export_id=pk)
    response = FileResponse(path.open("rb"), as_attachment=True, filename=f"audit-export-{pk}.{export.format}")
    response["Content-Type"] = exporting.CONTENT_TYPES[export.format]
    return response


# --- helpers -------------------------------------------------------------------------


def _header(request: HttpRequest, now: datetime) -> dict[str, Any]:
    """What every search page shows on top: the last verification, alerts and the filter form."""
    verification = AuditVerification.objects.order_by("-started_at").first()
    return {
        "verification": verification,
        "unverified": unverified_status(now) if verification is None else None,
        "seal_lag": chain.seal_lag(now),
        "bursts": alerts.failed_login_bursts(now=now),
        "burst_minutes": int(alerts.WINDOW.total_seconds() // 60),
        "form": request.GET,
        "kinds": Kind.choices,
        "action_choices": [(action, action) for action in ACTIONS],
        "outcomes": OUTCOME_CHOICES,
    }


def page_filter(audit_filter: AuditFilter) -> AuditFilter:
    """The page hides scheduled-job records unless asked (``jobs=1``) or ``kind`` names one."""
    return audit_filter if audit_filter.jobs is not None else replace(audit_filter, jobs="0")


@dataclass(frozen=True)
class Row:
    """One line of the records table: the record, what it says in words, and where its "who" links to."""

    record: AuditRecord
    summary: str
    who_url: str | None


def rows_of(records: list[AuditRecord]) -> list[Row]:
    links = actor_links(records)  # one query for the page's people, one for its robots
    return [Row(record, describe(record), links.get(record.pk)) for record in records]


def unverified_status(now: datetime) -> tuple[str, str]:
    """With no verification yet: information while the install is young, a warning once a day has passed."""
    first = AuditRecord.objects.order_by("time").values_list("time", flat=True).first()
    if first is None or now - first < FIRST_VERIFY_GRACE:
        return "info", "Not verified yet: the first check runs within a few minutes of start."
    return "warning", (
        "Never verified: the scheduled verify_audit job has not reported a result since the first record "
        f"({first:%Y-%m-%d %H:%M} UTC); check that the Celery worker and beat are running."
    )


def _invalid_filter(request: HttpRequest, error: FilterError) -> HttpResponse:
    """The search page with the form's errors, and a 400: never a 500 for a bad value."""
    context = {**_header(request, timezone.now()), "errors": error.errors, "form": request.GET or request.POST}
    return render(request, "audit/search.html", context, status=400)


def explain_refusal(entry: AuditRecord, now: datetime) -> tuple[str, list[ScopeExplanation]]:
    """A note (e.g. "the user no longer exists") and one explanation per refused repository scope."""
    if entry.kind != Kind.ACCESS or entry.outcome not in ("denied", "partial", "probe"):
        return "", []
    detail = entry.detail if isinstance(entry.detail, dict) else {}
    subject, note = subject_for_actor(
        entry.subject_type, entry.actor, entry.actor_id, str(detail.get("credential", ""))
    )
    if subject is None:
        return note, []
    scopes = entry.actions if isinstance(entry.actions, list) else []
    return note, refused_scopes(subject, scopes, entry.registry, now)
