"""Cross-cutting endpoints: ``/healthz`` for load balancers, ``/metrics`` for Prometheus."""

from __future__ import annotations

import hmac
import ipaddress
import logging
import math
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import Max
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_GET
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from accounts.models import Backup, BackupState, HoldScope
from accounts.services import limits
from audit import chain
from audit.models import AuditRecord, Kind
from registryadmin import metrics
from registryadmin.faults import logged, one_line

logger = logging.getLogger(__name__)

# A write that changes nothing, on a table every installation has. PostgreSQL refuses it in a read-only
# transaction (a standby, default_transaction_read_only) even when no row matches, SQLite on a read-only
# file; it is rolled back either way. A TEMP table would not do: PostgreSQL allows writes to temporary
# tables in a read-only transaction, and SQLite keeps them in a separate database.
WRITE_CHECK = "UPDATE django_migrations SET app = app WHERE id = (SELECT MIN(id) FROM django_migrations)"


def _broken(database: str, exc: DatabaseError) -> JsonResponse:
    logger.error("healthz: database %s: %s", database, one_line(exc))
    return logged(JsonResponse({"status": "error", "database": database}, status=503))


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """200 when the database answers and takes a write, 503 otherwise (for load balancers and orchestrators)."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as exc:
        return _broken("unreachable", exc)
    try:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(WRITE_CHECK)
            transaction.set_rollback(True)
    except DatabaseError as exc:
        return _broken("read-only", exc)
    return JsonResponse({"status": "ok", "database": "ok"})


# Metrics -----------------------------------------------------------------------------------------

# Jobs whose last success an operator alerts on; the backup's comes from its own table (manage.py backup too).
JOB_RECORDS = ("rotate_signing_key", "verify_audit")
BACKUP_JOB = "backup"
# How far back a scrape looks for a job's success: a job that never ran must not cost a walk over every
# job record ever kept (two a minute: the sealer and htpasswd) at each scrape. Older counts as never.
JOB_LOOKBACK = timedelta(days=35)


class StateCollector:
    """What the database says, read at scrape time (the same whichever worker answers, so never per process).

    The sealer's lag, the age of the last successful backup, key rotation and audit verification
    (+Inf when there was none in ``JOB_LOOKBACK``), and the clients the failure limits hold. A database that cannot
    answer makes ``registryadmin_state_up`` 0 instead of failing the whole scrape.
    """

    def describe(self) -> list[Metric]:
        return []  # nothing is read when the scrape's registry takes this collector

    def collect(self) -> Iterator[Metric]:
        now = timezone.now()
        up = GaugeMetricFamily("registryadmin_state_up", "1 when the database answered the scrape-time queries.")
        try:
            families = [_seal_lag(now), _job_ages(now), _holds(now)]
        except DatabaseError as exc:
            logger.error("metrics: the database did not answer: %s", one_line(exc))
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families


def _seal_lag(now: datetime) -> Metric:
    lag = chain.seal_lag(now)
    family = GaugeMetricFamily(
        "registryadmin_audit_seal_lag_seconds", "Age of the oldest audit record not sealed yet (0 when all are)."
    )
    family.add_metric([], lag.total_seconds() if lag is not None else 0.0)
    return family


def _age(now: datetime, then: datetime | None) -> float:
    return math.inf if then is None else max((now - then).total_seconds(), 0.0)


def _job_ages(now: datetime) -> Metric:
    family = GaugeMetricFamily(
        "registryadmin_job_last_success_age_seconds",
        "Seconds since the job last succeeded (+Inf: not in the last 35 days).",
        labels=["job"],
    )
    backup = Backup.objects.filter(state=BackupState.VERIFIED).aggregate(last=Max("finished_at"))["last"]
    family.add_metric([BACKUP_JOB], _age(now, backup))
    for job in JOB_RECORDS:
        # Newest first on the (kind, time) index: stops at the latest success, a short walk for a daily job.
        runs = AuditRecord.objects.filter(
            kind=Kind.JOB, outcome="success", detail__job=job, time__gte=now - JOB_LOOKBACK
        ).order_by("-time")
        family.add_metric([job], _age(now, runs.values_list("time", flat=True).first()))
    return family


def _holds(now: datetime) -> Metric:
    family = GaugeMetricFamily(
        "registryadmin_limit_holds", "Clients the failure limits hold now, by what is held.", labels=["scope"]
    )
    held = Counter(str(hold.scope) for hold in limits.active_holds(now))
    for scope in HoldScope:
        family.add_metric([scope.value], held[scope.value])
    return family


def _metrics_denial(request: HttpRequest) -> HttpResponse | None:
    """None when the scraper may read: its bearer token matches, or it comes from an allowed network."""
    token, networks = settings.METRICS_TOKEN, settings.METRICS_ALLOWED_CIDRS
    if not token and not networks:
        message = (
            "/metrics is closed: set METRICS_TOKEN (a bearer token) or METRICS_ALLOWED_CIDRS (scrapers' networks)."
        )
        return _plain(403, message)
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    if token and scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), token.encode()):
        return None
    address = ipaddress.ip_address(request.client_ip) if request.client_ip else None
    if address is not None and any(address in network for network in networks):
        return None
    if token:
        response = _plain(401, "/metrics needs the METRICS_TOKEN bearer token.")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return _plain(403, f"{request.client_ip or 'this address'} is not in METRICS_ALLOWED_CIDRS.")


def _plain(status: int, message: str) -> HttpResponse:
    return HttpResponse(message + "\n", status=status, content_type="text/plain; charset=utf-8")


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """The Prometheus text format: every worker's counters (multiprocess mode) plus the database's state."""
    denial = _metrics_denial(request)
    if denial is not None:
        return denial
    registry = CollectorRegistry()
    metrics.add_process_values(registry)
    registry.register(StateCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
