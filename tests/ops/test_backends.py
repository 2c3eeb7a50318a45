"""The database backends: SQLite writers queue on the file lock; PostgreSQL checks health without a round trip."""

from __future__ import annotations

import fcntl
import os
import stat
import threading
import time
from pathlib import Path

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext

from registryadmin.backends.postgresql.base import DatabaseWrapper as PostgresWrapper
from registryadmin.backends.sqlite3.base import DatabaseWrapper as SqliteWrapper
from registryadmin.env import database_config


@pytest.fixture
def own_connections(django_db_blocker):
    """These tests open their own connections to their own files, not the test database."""
    with django_db_blocker.unblock():
        yield


def sqlite_wrapper(path: Path) -> SqliteWrapper:
    config = database_config(f"sqlite:///{path}")
    config.update(TIME_ZONE=None, AUTOCOMMIT=True, ATOMIC_REQUESTS=False, CONN_HEALTH_CHECKS=False)
    return SqliteWrapper(config, alias=f"test-{path.name}")


def test_a_sqlite_writer_waits_for_the_lock_holder_and_goes_the_moment_it_is_free(
    tmp_path: Path, own_connections: None
) -> None:
    path = tmp_path / "db.sqlite3"
    first = sqlite_wrapper(path)
    with first.cursor() as cursor:
        cursor.execute("CREATE TABLE t (n INTEGER)")
    first.set_autocommit(False, force_begin_transaction_with_broken_autocommit=True)
    first.cursor().execute("INSERT INTO t VALUES (1)")
    probe = os.open(f"{path}.lock", os.O_RDWR)
    with pytest.raises(BlockingIOError):  # the transaction holds the file lock itself
        fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finished: list[float] = []

    def write() -> None:
        second = sqlite_wrapper(path)  # a connection belongs to its thread
        second.cursor().execute("INSERT INTO t VALUES (2)")  # autocommit: takes the lock for the statement
        finished.append(time.monotonic())
        second.close()

    writer = threading.Thread(target=write)
    writer.start()
    time.sleep(0.3)
    assert not finished, "the second writer did not wait for the transaction holding the lock"
    released = time.monotonic()
    first.commit()
    writer.join(5)
    assert finished and finished[0] - released < 0.05  # woken by the kernel, not by a busy-timeout poll
    fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free again after the commit and the write
    os.close(probe)
    assert stat.S_IMODE(os.stat(f"{path}.lock").st_mode) == 0o600
    with first.cursor() as cursor:
        cursor.execute("SELECT n FROM t ORDER BY n")
        assert cursor.fetchall() == [(1,), (2,)]
    first.close()


def test_sqlite_reads_never_take_the_lock(tmp_path: Path, own_connections: None) -> None:
    path = tmp_path / "db.sqlite3"
    first, second = sqlite_wrapper(path), sqlite_wrapper(path)
    first.cursor().execute("CREATE TABLE t (n INTEGER)")
    first.set_autocommit(False, force_begin_transaction_with_broken_autocommit=True)
    first.cursor().execute("INSERT INTO t VALUES (1)")
    started = time.monotonic()
    second.cursor().execute("SELECT count(*) FROM t")
    assert time.monotonic() - started < 0.2
    first.rollback()
    first.close()
    second.close()


@pytest.mark.django_db
def test_postgresql_skips_select_1_on_a_connection_that_just_answered() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("runs in the PostgreSQL pass (TEST_DATABASE_URL)")
    assert isinstance(connections["default"], PostgresWrapper)
    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 2")
    connection.health_check_done = False
    with CaptureQueriesContext(connection) as queries:
        connection.close_if_health_check_failed()
    assert connection.health_check_done and len(queries) == 0
    connection.last_used -= 60  # idle for a minute: Django's own check runs
    connection.health_check_done = False
    connection.close_if_health_check_failed()
    assert connection.connection is not None and connection.health_check_done
