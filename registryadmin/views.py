"""Cross-cutting endpoints."""

from __future__ import annotations

import logging

from django.db import DatabaseError, connection, transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

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
