"""Operations under /api/: registries, signing keys, scheduled jobs and policy as code.

Admins and auditors read (``Overseers``); only admins change, through the pages' own code: the
registry services, ``rotate_after_preflight`` (the keys page and ``manage.py rotate_signing_key``),
``queue_job`` (the jobs page) and ``accounts.policy.run`` (``manage.py apply_policy``). Every change
here is outside any repository pattern, so a pattern-limited token may change none of it.

The notification secret is an administrator's only (as on the registry page); a signing key's
private half is never shown. ``/api/policy`` speaks YAML: ``GET`` is ``export_policy``'s output and
``POST`` takes a policy file; a dry run (``?dry_run=1``) changes nothing, so auditors and read-only
tokens may ask for one.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Case, Count, IntegerField, Model, OuterRef, Q, QuerySet, Subquery, Value, When
from django.db.models.functions import Coalesce
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import path
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from kombu.exceptions import KombuError
from rest_framework import exceptions, generics, negotiation, parsers, permissions, renderers, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import policy, services
from accounts.api.errors import Conflict, ErrorSerializer, body
from accounts.api.permissions import READ_ONLY_TOKEN, Admins, Overseers, token_of, unlimited_token
from accounts.api.serializers import operations as ser
from accounts.models import AuthMode, Grant, KeyState, NotificationEndpoint, Registry, Repository, SigningKey
from accounts.registry.config import Rotation, rotate_after_preflight
from audit.context import AuditContext
from audit.jobs import queue_job
from audit.models import AuditRecord, Kind
from audit.views.jobs import LOOKBACK, Job, beat_jobs
from registryadmin.guards import is_admin, is_overseer
from registryadmin.keywrap import KeyUnwrapError, unwrap

# The registry page's warnings (accounts/web/views/registries.py), which the API may not import.
ROLES_WARNING = (
    "htpasswd mode checks passwords only: roles are NOT enforced, so any valid user or robot can pull, push and "
    "delete in every repository of this registry."
)
NO_URL_WARNING = "No URL set: the key-rotation preflight cannot check this registry."
GRACE = {"24h": timedelta(hours=24), "1h": timedelta(hours=1), "7d": timedelta(days=7), "0": timedelta(0)}
EXPIRY_WARNING = timedelta(days=30)
KEY_STATE_ORDER = (KeyState.NEXT, KeyState.CURRENT, KeyState.PREVIOUS, KeyState.RETIRED)
REMEDY = (
    "Remedy: on each failed registry, load the current bundle (prepare the configuration on its registry page or "
    "download the bundle there, copy it to the registry's rootcertbundle path) and restart the registry; then "
    'rotate again. If the registry is only unreachable from here but has loaded the bundle, send {"force": true}.'
)
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/plain")
TRUE_WORDS, FALSE_WORDS = {"1", "true", "yes", "on"}, {"0", "false", "no", "off", ""}


def _check_query(serializer_class: type[serializers.Serializer], request: Request) -> dict[str, Any]:
    """The validated query parameters, or a 400 naming each bad one."""
    query = serializer_class(data=request.query_params)
    query.is_valid(raise_exception=True)
    return dict(query.validated_data)


# Registries ---------------------------------------------------------------------------------------


def _count(model: type[Model]) -> Coalesce:
    """A per-registry count as a subquery, so two counts never multiply each other's rows."""
    rows = model.objects.filter(registry=OuterRef("pk")).order_by().values("registry").annotate(n=Count("pk"))
    return Coalesce(Subquery(rows.values("n"), output_field=IntegerField()), 0)


def _registries() -> QuerySet[Registry]:
    """Registries with their counts and endpoint in one query (never the endpoint's secrets)."""
    return (
        Registry.objects.annotate(repository_count=_count(Repository), grant_count=_count(Grant))
        .select_related("notification_endpoint")
        .defer("notification_endpoint__secret", "notification_endpoint__previous_secret")
    )


def _endpoint(registry: Registry) -> NotificationEndpoint | None:
    try:
        return registry.notification_endpoint
    except NotificationEndpoint.DoesNotExist:
        return None


def _registry_data(registry: Registry) -> dict[str, Any]:
    endpoint = _endpoint(registry)
    notifications: dict[str, Any] = {
        "configured": endpoint is not None,
        "last_used": endpoint.last_used if endpoint else "",
        "last_used_at": endpoint.last_used_at if endpoint else None,
        "previous_valid_until": endpoint.previous_valid_until if endpoint else None,
    }
    return {
        "service": registry.service,
        "url": registry.url,
        "auth_mode": registry.auth_mode,
        "created_at": registry.created_at,
        "repository_count": registry.repository_count,  # type: ignore[attr-defined]
        "grant_count": registry.grant_count,  # type: ignore[attr-defined]
        "notifications": notifications,
    }


def _registry_detail(registry: Registry, *, reveal: bool) -> dict[str, Any]:
    """The list's fields, the page's warnings, and the notification secret when ``reveal`` (admins)."""
    data = _registry_data(registry)
    warnings = [ROLES_WARNING] if registry.auth_mode == AuthMode.HTPASSWD else []
    if not registry.url:
        warnings.append(NO_URL_WARNING)
    secret = None
    if reveal and data["notifications"]["configured"]:
        stored = NotificationEndpoint.objects.filter(registry=registry).values_list("secret", flat=True).first()
        try:
            secret = unwrap(stored).decode() if stored is not None else None
        except KeyUnwrapError as exc:
            warnings.append(str(exc))
    return {**data, "notification_secret": secret, "warnings": warnings}


def _registry_response(request: Request, service: str, code: int = status.HTTP_200_OK) -> Response:
    """The registry's detail; an administrator's copy holds the secret, so no cache keeps it."""
    registry = get_object_or_404(_registries(), service=service)
    response = Response(ser.RegistryDetailSerializer(_registry_detail(registry, reveal=is_admin(request.user))).data)
    response.status_code = code
    add_never_cache_headers(response)
    return response


REGISTRY_FILTERS = [
    OpenApiParameter("q", str, description="Part of the service name or URL (case-insensitive)."),
    OpenApiParameter("mode", str, enum=AuthMode.values, description="Only registries in this authentication mode."),
    OpenApiParameter(
        "ordering", str, enum=["service", "-service", "created_at", "-created_at"], description="Default: service."
    ),
]


class RegistryListView(generics.ListAPIView):
    """Every registry (admins and auditors); admins add one."""

    permission_classes = [Overseers]
    serializer_class = ser.RegistrySerializer

    def get_queryset(self) -> QuerySet[Registry]:
        query = _check_query(ser.RegistryQuerySerializer, self.request)
        registries = _registries().order_by(query.get("ordering") or "service", "pk")
        if q := query.get("q", "").strip():
            registries = registries.filter(Q(service__icontains=q) | Q(url__icontains=q))
        if mode := query.get("mode"):
            registries = registries.filter(auth_mode=mode)
        return registries

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response([_registry_data(r) for r in page or []])

    @extend_schema(summary="List registries", parameters=REGISTRY_FILTERS)
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        summary="Add a registry (admins)",
        request=ser.RegistryCreateSerializer,
        responses={201: ser.RegistryDetailSerializer},
    )
    def post(self, request: Request) -> Response:
        unlimited_token(request)
        incoming = ser.RegistryCreateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        data = incoming.validated_data
        registry = services.create_registry(
            data["service"], url=data["url"], auth_mode=data["auth_mode"], context=AuditContext.from_request(request)
        )
        return _registry_response(request, registry.service, status.HTTP_201_CREATED)


class RegistryDetailView(APIView):
    """One registry by its service name: read (admins and auditors), change or delete (admins)."""

    permission_classes = [Overseers]

    @extend_schema(summary="Show a registry", responses=ser.RegistryDetailSerializer)
    def get(self, request: Request, service: str) -> Response:
        return _registry_response(request, service)

    @extend_schema(
        summary="Change a registry's URL or authentication mode (admins)",
        request=ser.RegistryUpdateSerializer,
        responses=ser.RegistryDetailSerializer,
    )
    def patch(self, request: Request, service: str) -> Response:
        registry = get_object_or_404(Registry, service=service)
        unlimited_token(request)
        incoming = ser.RegistryUpdateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        services.update_registry(registry, context=AuditContext.from_request(request), **incoming.validated_data)
        return _registry_response(request, service)

    @extend_schema(summary="Delete a registry without repositories or grants (admins)", responses={204: None})
    def delete(self, request: Request, service: str) -> Response:
        registry = get_object_or_404(_registries(), service=service)
        unlimited_token(request)
        repositories, grants = registry.repository_count, registry.grant_count  # type: ignore[attr-defined]
        if repositories or grants:
            # The database would take them along unrecorded: each must go through its own audited service.
            raise Conflict(
                f"Registry {service} still has {repositories} repositories and {grants} grants limited to it; "
                "delete those first (each is recorded), then the registry."
            )
        services.delete_registry(registry, context=AuditContext.from_request(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class RotateSecretView(APIView):
    """A new notification secret, shown once; the old one is accepted for the grace chosen."""

    permission_classes = [Admins]

    @extend_schema(
        summary="Rotate a registry's notification secret (admins)",
        request=ser.RotateSecretSerializer,
        responses=ser.RotatedSecretSerializer,
    )
    def post(self, request: Request, service: str) -> Response:
        registry = get_object_or_404(Registry, service=service)
        unlimited_token(request)
        incoming = ser.RotateSecretSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        grace = GRACE[incoming.validated_data["grace"]]
        had_one = NotificationEndpoint.objects.filter(registry=registry).exists()
        secret = services.rotate_notification_secret(registry, AuditContext.from_request(request), grace=grace)
        until = timezone.now() + grace if grace and had_one else None
        kept = f"until {until:%Y-%m-%d %H:%M} UTC" if until else "no longer (there was none, or it stopped now)"
        data = {
            "service": registry.service,
            "notification_secret": secret,
            "previous_valid_until": until,
            "detail": f"Merge the new secret into the registry's config.yml and restart the registry; the old "
            f"secret is accepted {kept}.",
        }
        response = Response(ser.RotatedSecretSerializer(data).data)
        add_never_cache_headers(response)
        return response


# Signing keys ---------------------------------------------------------------------------------------


def _key_data(key: SigningKey, now: Any) -> dict[str, Any]:
    return {
        "kid": key.kid,
        "state": key.state,
        "not_after": key.not_after,
        "created_at": key.created_at,
        "activated_at": key.activated_at,
        "retired_at": key.retired_at,
        "age_days": services.key_age(key, now).days,
        "expires_soon": key.not_after <= now + EXPIRY_WARNING,
    }


class KeyListView(generics.ListAPIView):
    """Every signing key with its state and certificate expiry (admins and auditors)."""

    permission_classes = [Overseers]
    serializer_class = ser.SigningKeySerializer

    def get_queryset(self) -> QuerySet[SigningKey]:
        query = _check_query(ser.KeyQuerySerializer, self.request)
        found = SigningKey.objects.defer("private_key", "certificate")
        if state := query.get("state"):
            found = found.filter(state=state)
        ordering = query.get("ordering") or "state"
        if ordering == "state":
            order = Case(
                *(When(state=s, then=Value(i)) for i, s in enumerate(KEY_STATE_ORDER)), output_field=IntegerField()
            )
            return found.order_by(order, "-created_at", "-id")
        return found.order_by(ordering, "-id")

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        now = timezone.now()
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response([_key_data(key, now) for key in page or []])

    @extend_schema(
        summary="List signing keys",
        parameters=[
            OpenApiParameter("state", str, enum=KeyState.values, description="Only keys in this state."),
            OpenApiParameter(
                "ordering",
                str,
                enum=["state", "created_at", "-created_at", "not_after", "-not_after"],
                description="Default: state (next, current, previous, retired), newest first within one.",
            ),
        ],
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


def _preflight(rotation: Rotation) -> list[dict[str, Any]]:
    return [{"registry": r.registry, "ok": r.ok, "message": r.message} for r in rotation.preflight]


class KeyRotateView(APIView):
    """Rotate the signing keys after asking each token-mode registry to accept the next key (the keys page)."""

    permission_classes = [Admins]

    @extend_schema(
        summary="Rotate the signing keys after the preflight (admins)",
        description="Each token-mode registry with a URL is asked to accept a token signed with the next key; a "
        "failure refuses the rotation (409, with each registry's answer) unless force is true. Each preflight is "
        "kept in the audit log. ROTATE_WITHOUT_PREFLIGHT concerns the scheduled rotation only, as on the page.",
        request=ser.RotateKeysSerializer,
        responses={200: ser.RotationSerializer, 409: ser.RotationRefusedSerializer},
    )
    def post(self, request: Request) -> Response:
        unlimited_token(request)
        incoming = ser.RotateKeysSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        rotation = rotate_after_preflight(AuditContext.from_request(request), force=incoming.validated_data["force"])
        if rotation.promoted is None:
            failed = "; ".join(r.message.rstrip(".") for r in rotation.failed)
            refused = body(409, "preflight_failed", f"Not rotated: {failed}. {REMEDY}")
            return Response({**refused, "preflight": _preflight(rotation)}, status=status.HTTP_409_CONFLICT)
        warnings = [r.message for r in rotation.preflight if r.ok is not True]
        warnings += [
            f"Rewrote {bundle}: copy it to {svc} if needed and restart it." for svc, bundle in rotation.rewritten
        ]
        warnings.append("Restart every registry with the new bundle before the next rotation.")
        data = {
            "current": rotation.promoted.kid,
            "preflight": _preflight(rotation),
            "rewritten": [{"registry": svc, "bundle": str(bundle)} for svc, bundle in rotation.rewritten],
            "warnings": warnings,
        }
        return Response(ser.RotationSerializer(data).data)


# Scheduled jobs ---------------------------------------------------------------------------------------


def _run(record: AuditRecord | None) -> dict[str, Any] | None:
    if record is None:
        return None
    detail = record.detail if isinstance(record.detail, dict) else {}
    return {
        "record": record.pk,
        "time": record.time,
        "outcome": record.outcome,
        "seconds": detail.get("seconds"),
        "error": str(detail.get("error") or ""),
    }


def _job_data(job: Job, recent: QuerySet[AuditRecord]) -> dict[str, Any]:
    """The job with its last run and last failure: two bounded queries a job, as the jobs page."""
    runs = recent.filter(detail__job=job.record_name)
    return {
        "name": job.name,
        "task": job.task,
        "schedule": job.schedule,
        "last_run": _run(runs.first()),
        "last_error": _run(runs.filter(outcome="error").first()),
    }


class JobListView(generics.ListAPIView):
    """Each scheduled job (the beat schedule, in its own order) with its last run (admins and auditors)."""

    permission_classes = [Overseers]
    serializer_class = ser.JobSerializer

    def get_queryset(self) -> list[Job]:
        return beat_jobs()

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        recent = AuditRecord.objects.filter(kind=Kind.JOB, time__gte=timezone.now() - LOOKBACK).order_by("-time", "-id")
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response([_job_data(job, recent) for job in page or []])

    @extend_schema(summary="List scheduled jobs and their last runs")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class BrokerUnavailable(exceptions.APIException):
    """The broker refused the job (down, unreachable): nothing was queued and nothing recorded."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The broker is unavailable: nothing was queued."
    default_code = "broker_unavailable"


class JobRunView(APIView):
    """Queue a scheduled job now, for a worker to run (the jobs page's "run now")."""

    permission_classes = [Admins]

    @extend_schema(
        summary="Run a scheduled job now (admins)",
        description="Sends the job's task to the broker and records who asked (job.run); the run's own record "
        "appears in GET /api/jobs/ once a worker has done it. A broker that refuses answers 503 and records nothing.",
        request=None,
        responses={
            202: ser.JobQueuedSerializer,
            503: OpenApiResponse(ErrorSerializer, description="The broker refused: nothing was queued."),
        },
    )
    def post(self, request: Request, name: str) -> Response:
        job = next((job for job in beat_jobs() if job.name == name), None)
        if job is None:
            raise exceptions.NotFound(f"No scheduled job is called {name!r}.")
        unlimited_token(request)
        try:
            queue_job(job.name, AuditContext.from_request(request))
        except (KombuError, OSError) as exc:
            raise BrokerUnavailable(f"Could not queue {job.name}: the broker refused ({exc}).") from None
        detail = f"Queued {job.name} ({job.task}); its run appears in GET /api/jobs/ once a worker has done it."
        data = {"name": job.name, "task": job.task, "detail": detail}
        return Response(ser.JobQueuedSerializer(data).data, status=status.HTTP_202_ACCEPTED)


# Policy as code ---------------------------------------------------------------------------------------


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "too_large"


class YamlParser(parsers.BaseParser):
    """A policy file as text: UTF-8, at most DATA_UPLOAD_MAX_MEMORY_SIZE bytes (as every request body)."""

    media_type = "application/yaml"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: dict | None = None) -> str:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise PayloadTooLarge(f"The request body is larger than {limit} bytes.")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise exceptions.ParseError("The policy must be UTF-8 text.") from None


class XYamlParser(YamlParser):
    media_type = "application/x-yaml"


class TextYamlParser(YamlParser):
    media_type = "text/yaml"


class PlainTextParser(YamlParser):
    media_type = "text/plain"


class JsonAnswers(negotiation.DefaultContentNegotiation):
    """Answers are JSON whatever the client accepts (the export is YAML by itself, see ``PolicyView.get``).

    A client that sends ``Accept: application/yaml`` for the export, or a stray ``?format=``, still gets
    its answer, and an error keeps the one JSON shape.
    """

    def select_renderer(
        self, request: Request, renderers: list[Any], format_suffix: str | None = None
    ) -> tuple[Any, str]:
        return renderers[0], renderers[0].media_type


def dry_run_asked(request: Request) -> bool:
    """``?dry_run=1`` (or true/yes/on); absent or 0/false/no/off is a real apply; anything else is a 400."""
    value = request.query_params.get("dry_run", "").strip().lower()
    if value in TRUE_WORDS:
        return True
    if value in FALSE_WORDS:
        return False
    raise exceptions.ValidationError({"dry_run": ["Use dry_run=1 (or true) for a dry run, 0 (or false) to apply."]})


class PolicyAccess(permissions.BasePermission):
    """Overseers export and dry-run (a dry run changes nothing: read-only tokens too); admins apply."""

    message = "Only administrators and auditors may read or dry-run the policy; only administrators may apply it."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if not (user and user.is_authenticated and user.is_active):
            return False
        if request.method in permissions.SAFE_METHODS or dry_run_asked(request):
            return is_overseer(user)
        token = token_of(request)
        if token is not None and token.read_only:
            raise exceptions.PermissionDenied(READ_ONLY_TOKEN)
        return is_admin(user)


def _messages(error: DjangoValidationError) -> list[str]:
    """A service's refusal as lines, each naming its field ("email: Enter a valid email address.")."""
    if hasattr(error, "error_dict"):
        return [f"{field}: {message}" for field, messages in error.message_dict.items() for message in messages]
    return list(error.messages)


def _policy_text(data: Any) -> str:
    """The body as the parser left it; an empty body (DRF's ``{}``) is a mistake, not an empty policy."""
    if not isinstance(data, str) or not data.strip():
        raise exceptions.ValidationError({"policy": ["Send the policy file as the body (YAML, UTF-8)."]})
    return data


POLICY_BODY = {media: OpenApiTypes.STR for media in YAML_TYPES}


def _entries(about: str, /, **properties: str) -> dict[str, Any]:
    items = {"type": "object", "properties": {name: {"type": kind} for name, kind in properties.items()}}
    return {"type": "array", "items": items, "description": about}


# The export's shape, as a YAML reader sees it (the file format of apply_policy; keys as accounts.policy).
POLICY_FILE = {
    "type": "object",
    "properties": {
        "users": _entries(
            "Users, without passwords.",
            username="string",
            email="string",
            active="boolean",
            admin="boolean",
            auditor="boolean",
            catalog="boolean",
        ),
        "teams": _entries(
            "Teams with their local members, directory groups and grants.",
            name="string",
            description="string",
            members="array",
            directory_groups="array",
            grants="array",
        ),
        "grants": _entries(
            "Grants to users.", user="string", repository="string", role="string", expires="string", registry="string"
        ),
        "repositories": _entries("Repositories.", name="string", public="boolean", registry="string"),
    },
    "required": ["users", "teams", "grants", "repositories"],
}


class PolicyView(APIView):
    """``export_policy`` and ``apply_policy [--dry-run]`` over HTTP, in one transaction, with their errors."""

    permission_classes = [PolicyAccess]
    parser_classes = [YamlParser, XYamlParser, TextYamlParser, PlainTextParser]
    renderer_classes = [renderers.JSONRenderer]
    content_negotiation_class = JsonAnswers

    @extend_schema(
        summary="Export the policy (what manage.py export_policy prints)",
        description="Users, teams, grants and repositories as a policy file (no passwords). Admins and auditors.",
        responses={(200, "application/yaml"): OpenApiResponse(POLICY_FILE, description="The policy file (YAML).")},
    )
    def get(self, request: Request) -> HttpResponse:
        text = policy.dump(policy.export())
        return HttpResponse(text, content_type="application/yaml; charset=utf-8")

    @extend_schema(
        summary="Apply a policy file, or dry-run it (?dry_run=1)",
        description="The body is a policy file (YAML, UTF-8, as apply_policy reads). It is planned and applied in "
        "one transaction, each change audited; a dry run is the same run rolled back and answers the same lines "
        "with applied false. Admins apply (not with a read-only or pattern-limited token); admins and auditors "
        "may dry-run, with any token. A bad file is a 400 naming each error in fields.policy; nothing changes.",
        parameters=[
            OpenApiParameter(
                "dry_run", str, enum=["1", "0", "true", "false"], description="1: show the changes, change nothing."
            )
        ],
        request=POLICY_BODY,
        responses={
            200: ser.PolicyOutcomeSerializer,
            413: OpenApiResponse(ErrorSerializer, description="The body is larger than the server accepts."),
            415: OpenApiResponse(ErrorSerializer, description="Send the body as application/yaml or text/plain."),
        },
    )
    def post(self, request: Request) -> Response:
        dry_run = dry_run_asked(request)
        if not dry_run:
            unlimited_token(request)
        text = _policy_text(request.data)
        try:
            outcome = policy.run(text, AuditContext.from_request(request), dry_run=dry_run)
        except DjangoValidationError as exc:
            # As the command: the file is fine but a change refused; the transaction left nothing behind.
            raise policy.PolicyError(_messages(exc)) from None
        data = {"changes": outcome.changes, "consequences": outcome.consequences, "applied": outcome.applied}
        return Response(ser.PolicyOutcomeSerializer(data).data)


urlpatterns = [
    path("registries/", RegistryListView.as_view(), name="registries"),
    path("registries/<str:service>/", RegistryDetailView.as_view(), name="registry"),
    path("registries/<str:service>/rotate-secret", RotateSecretView.as_view(), name="registry-rotate-secret"),
    path("keys/", KeyListView.as_view(), name="keys"),
    path("keys/rotate", KeyRotateView.as_view(), name="keys-rotate"),
    path("jobs/", JobListView.as_view(), name="jobs"),
    path("jobs/<str:name>/run", JobRunView.as_view(), name="job-run"),
    path("policy", PolicyView.as_view(), name="policy"),
]
