"""One process at a time for rare, racy maintenance work (key rotation, sealing, retention)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection, transaction

# Advisory lock ids: any distinct 64-bit numbers.
SIGNING_KEYS = 0x7265_6769_6B65_7931  # "regikey1"


@contextmanager
def exclusive(lock_id: int) -> Iterator[None]:
    """A transaction that holds ``lock_id`` exclusively until it ends.

    PostgreSQL: a transaction-scoped advisory lock. SQLite: the settings open every
    transaction with BEGIN IMMEDIATE, which already takes the database's single write lock.
    """
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [lock_id])
        yield
