"""``/api/audit/``: search the audit log, read one record in full, export a filter as CSV or JSONL.

Admins and auditors only, as the /audit/ pages. The filters are the pages' own (``audit.filters``):
the same names, values and messages, a bad one a 400 naming the field. The log is too large to count
or OFFSET through, so it pages by keyset (``?cursor=``, opaque; follow ``next``). Reading is not
recorded (the pages do not record it either); every export is, before any data leaves, by the same
``audit.exporting`` the page's download uses, with the same size limit.
"""

from __future__ import annotations

from typing import Any

from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.urls import path
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param
from rest_framework.views import APIView

from accounts.access.explain import ScopeExplanation, refused_scopes, subject_for_actor
from accounts.api.errors import Conflict, ErrorSerializer
from accounts.api.permissions import Overseers, token_of
from accounts.api.serializers.audit import AuditPageSerializer, AuditRecordDetailSerializer
from accounts.constants import ACTIONS
from audit import exporting
from audit.context import AuditContext
from audit.filters import (
    JOBS_VALUES,
    OUTCOMES,
    AuditFilter,
    Cursor,
    FilterError,
    keyset_page,
    parse_cursor,
    parse_filter,
)
from audit.formats import FORMATS
from audit.models import AuditRecord, AuditSeal, Kind

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
# Access outcomes with a refused scope to explain (a probe's: the pull its mount check was refused).
EXPLAINED_OUTCOMES = ("denied", "partial", "probe")
MAX_ID = 2**63 - 1  # a cursor's id beyond a bigint is damaged, not a query for the database to refuse
MEDIA_TYPES = {"csv": "text/csv", "jsonl": "application/x-ndjson"}
TOO_LARGE = (
    "More than {limit} records match this filter: too many to stream. Run the export as a background job "
    "instead (the audit log's Exports page, /audit/exports/), follow its progress and download the file when "
    "it is ready; or narrow the filter."
)


def _text(name: str, description: str, **extra: Any) -> OpenApiParameter:
    return OpenApiParameter(name, OpenApiTypes.STR, OpenApiParameter.QUERY, description=description, **extra)


FILTERS = [
    _text("since", "From this time on (ISO 8601; a date alone is midnight UTC; no zone means UTC)."),
    _text("until", "Before this time (ISO 8601); must be later than since."),
    _text("kind", "The kind of record.", enum=list(Kind.values)),
    _text(
        "outcome",
        "An outcome records hold, or refused (denied, partial, auth_failed or limited; never probe).",
        enum=list(OUTCOMES),
    ),
    _text("jobs", "0: no scheduled-job records unless kind asks for them; 1 or unset: all.", enum=list(JOBS_VALUES)),
    _text("user", "Exact actor (a username, or a robot's login name)."),
    _text("repository", "Exact name; a prefix when it ends with / (web/); a grant pattern with * (web/*, web/**)."),
    _text("robot", "* for every robot, a robot's name (web+ci or robot$web+ci), or a prefix ending in * (web+*)."),
    _text("team", "The records of the team's current members (the team must exist)."),
    _text("action", "Access attempts that requested it, and registry events of it.", enum=list(ACTIONS)),
    _text("ip", "An address or a CIDR range (192.0.2.7, 192.0.2.0/24, 2001:db8::/32)."),
    _text("registry", "Exact registry service name."),
    _text("text", "Case-insensitive substring of the record's detail (at most 200 characters)."),
]
PAGING = [
    _text("cursor", "Where the previous page ended: take it from that page's next link, never build it."),
    OpenApiParameter(
        "page_size", OpenApiTypes.INT, OpenApiParameter.QUERY, description=f"1 to {MAX_PAGE_SIZE} (default 50)."
    ),
]
EXPORT_TYPE = _text(
    "type", "The export format: csv or jsonl (one JSON object a line).", enum=list(FORMATS), required=True
)


class IgnoreAccept(BaseContentNegotiation):
    """The export's format is its ``type`` parameter, not the Accept header; errors are always JSON."""

    def select_parser(self, request: Request, parsers: list[Any]) -> Any:
        return parsers[0] if parsers else None

    def select_renderer(self, request: Request, renderers: list[Any], format_suffix: str | None = None) -> Any:
        return renderers[0], renderers[0].media_type


def read_filter(request: Request) -> AuditFilter:
    """The pages' filter from the query string; every bad field in one 400."""
    try:
        return parse_filter(request.query_params)
    except FilterError as exc:
        raise exceptions.ValidationError({name: [message] for name, message in exc.errors.items()}) from None


def read_cursor(request: Request) -> Cursor | None:
    try:
        cursor = parse_cursor(request.query_params.get("cursor", "").strip())
    except FilterError as exc:
        raise exceptions.ValidationError({name: [message] for name, message in exc.errors.items()}) from None
    if cursor is not None and not 0 <= cursor.id <= MAX_ID:
        raise exceptions.ValidationError({"cursor": ["this page link is damaged; start again from the newest."]})
    return cursor


def read_page_size(request: Request) -> int:
    text = request.query_params.get("page_size", "").strip()
    if not text:
        return DEFAULT_PAGE_SIZE
    if not text.isdigit() or not 1 <= int(text) <= MAX_PAGE_SIZE:
        raise exceptions.ValidationError({"page_size": [f"a whole number from 1 to {MAX_PAGE_SIZE}."]})
    return int(text)


class RecordList(APIView):
    """The audit log, newest first, filtered like the /audit/ page, a keyset page at a time."""

    permission_classes = [Overseers]

    @extend_schema(
        summary="Search the audit log",
        parameters=[*FILTERS, *PAGING],
        responses=AuditPageSerializer,
        operation_id="audit_records_list",
    )
    def get(self, request: Request) -> Response:
        audit_filter, cursor, size = read_filter(request), read_cursor(request), read_page_size(request)
        records, next_cursor = keyset_page(audit_filter.apply(), cursor, size)
        following = None
        if next_cursor is not None:
            following = replace_query_param(request.build_absolute_uri(), "cursor", next_cursor.encode())
        return Response(AuditPageSerializer({"next": following, "results": records}).data)


class RecordDetail(APIView):
    """One record in full: scopes requested and granted, who, from where, detail, its MAC and seal."""

    permission_classes = [Overseers]

    @extend_schema(summary="One audit record", responses=AuditRecordDetailSerializer)
    def get(self, request: Request, pk: int) -> Response:
        if pk > MAX_ID:
            raise exceptions.NotFound()
        entry = get_object_or_404(AuditRecord, pk=pk)
        entry.seal = AuditSeal.objects.filter(record_id=entry.pk).first()
        entry.why_refused = why_refused(entry)
        return Response(AuditRecordDetailSerializer(entry).data)


def why_refused(entry: AuditRecord) -> dict[str, Any] | None:
    """As the record page's "why denied": the engine's answer today, for a refused access attempt.

    The page's rule (``audit.views.records.explain_refusal``), kept here so the API imports no view.
    """
    if entry.kind != Kind.ACCESS or entry.outcome not in EXPLAINED_OUTCOMES:
        return None
    detail = entry.detail if isinstance(entry.detail, dict) else {}
    credential = str(detail.get("credential", ""))
    subject, note = subject_for_actor(entry.subject_type, entry.actor, entry.actor_id, credential)
    scopes: list[ScopeExplanation] = []
    if subject is not None:
        requested = entry.actions if isinstance(entry.actions, list) else []
        scopes = refused_scopes(subject, requested, entry.registry, timezone.now())
    return {"note": note, "scopes": scopes}


class Export(APIView):
    """The filter's records, oldest first, streamed as CSV or JSONL; recorded as an export first."""

    permission_classes = [Overseers]
    content_negotiation_class = IgnoreAccept

    @extend_schema(
        summary="Export the audit log (streamed)",
        parameters=[EXPORT_TYPE, *FILTERS],
        responses={
            (200, MEDIA_TYPES["csv"]): OpenApiResponse(
                OpenApiTypes.STR, description="type=csv: a header line, then one record a line."
            ),
            (200, MEDIA_TYPES["jsonl"]): OpenApiResponse(
                OpenApiTypes.STR, description="type=jsonl: one JSON object a line."
            ),
            409: OpenApiResponse(ErrorSerializer, description="Too many records to stream: use a background export."),
        },
    )
    def get(self, request: Request) -> StreamingHttpResponse:
        fmt = request.query_params.get("type", "").strip()
        if fmt not in FORMATS:
            raise exceptions.ValidationError({"type": [f"{fmt!r} is not an export format; use csv or jsonl."]})
        audit_filter = read_filter(request)
        count = exporting.streamable_count(audit_filter.apply())
        if count is None:
            raise Conflict(TOO_LARGE.format(limit=exporting.STREAM_LIMIT))
        lines = exporting.stream(audit_filter, fmt, AuditContext.from_request(request), rows=count, **_token(request))
        response = StreamingHttpResponse(lines, content_type=exporting.CONTENT_TYPES[fmt])
        response["Content-Disposition"] = f'attachment; filename="audit-{timezone.now():%Y%m%dT%H%M%SZ}.{fmt}"'
        return response


def _token(request: Request) -> dict[str, str]:
    """The token an export came with, named in its record (the session needs no note)."""
    token = token_of(request)
    return {} if token is None else {"token": token.name}


urlpatterns = [
    path("audit/records/", RecordList.as_view(), name="audit-records"),
    path("audit/records/<int:pk>/", RecordDetail.as_view(), name="audit-record"),
    path("audit/export", Export.as_view(), name="audit-export"),
]
