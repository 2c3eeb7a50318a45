"""Django's SQLite backend with writers queued on an ``flock`` instead of sleeping on busy.

SQLite lets one writer in at a time; a second one that finds the database busy sleeps (1, 2, 5,
10 ... 100 ms) and polls, which is what gave the token endpoint its p99 under two workers. Here
every write takes an exclusive ``flock`` on ``<database>.lock`` first: the kernel queues the
writers and wakes the next one the moment the lock is free. Readers never take it (WAL).

- a transaction (``BEGIN IMMEDIATE``) holds it from its start to its commit or rollback;
- a write in autocommit (the access record's INSERT) holds it for that one statement;
- the lock file is opened per connection (each has its own open file description, so threads of
  one process queue too) and again after a fork; in-memory databases have no file and no lock.

SQLite's own busy timeout stays as the backstop for writers that do not use this backend.
"""

from __future__ import annotations

import fcntl
import os

from django.db.backends.sqlite3 import base

_READS = ("SELECT", "PRAGMA", "EXPLAIN", "WITH", "BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "END")


def _writes(sql: str) -> bool:
    return not sql.lstrip(" \t\r\n(").upper().startswith(_READS)


class _WriterLock:
    """A reentrant exclusive flock on one file, reopened in a forked child."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd: int | None = None
        self.pid = 0
        self.depth = 0

    def acquire(self) -> None:
        if self.pid != os.getpid():  # a fork inherited the parent's descriptor: never share its lock
            self.fd, self.depth, self.pid = None, 0, os.getpid()
        if self.depth == 0:
            if self.fd is None:
                self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        self.depth += 1

    def release(self, *, all_levels: bool = False) -> None:
        if self.pid != os.getpid() or self.depth == 0:
            return
        self.depth = 0 if all_levels else self.depth - 1
        if self.depth == 0 and self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)

    def close(self) -> None:
        self.release(all_levels=True)
        if self.fd is not None and self.pid == os.getpid():
            os.close(self.fd)
        self.fd = None


class LockingCursor(base.SQLiteCursorWrapper):
    lock: _WriterLock | None = None
    wrapper: DatabaseWrapper

    def _locked(self, sql: str) -> bool:
        if self.lock is None or not self.wrapper.get_autocommit() or not _writes(sql):
            return False
        self.lock.acquire()
        return True

    def execute(self, query, params=None):
        locked = self._locked(query)
        try:
            return super().execute(query, params)
        finally:
            if locked:
                self.lock.release()

    def executemany(self, query, param_list):
        locked = self._locked(query)
        try:
            return super().executemany(query, param_list)
        finally:
            if locked:
                self.lock.release()


class DatabaseWrapper(base.DatabaseWrapper):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.writer_lock: _WriterLock | None = None
        self._set_lock_path()

    def _set_lock_path(self) -> None:
        # The test runner renames the database after __init__ (test-<worker>.sqlite3): follow it.
        name = str(self.settings_dict.get("NAME") or "")
        if not name or self.is_in_memory_db():
            self.writer_lock = None
        elif self.writer_lock is None or self.writer_lock.path != f"{name}.lock":
            if self.writer_lock is not None:
                self.writer_lock.close()
            self.writer_lock = _WriterLock(f"{name}.lock")

    def get_new_connection(self, conn_params):
        self._set_lock_path()
        return super().get_new_connection(conn_params)

    def create_cursor(self, name=None):
        cursor = self.connection.cursor(factory=LockingCursor)
        cursor.lock = self.writer_lock
        cursor.wrapper = self
        return cursor

    def _start_transaction_under_autocommit(self):
        if self.writer_lock is not None:
            self.writer_lock.acquire()
        try:
            super()._start_transaction_under_autocommit()
        except BaseException:
            if self.writer_lock is not None:
                self.writer_lock.release()
            raise

    def _commit(self):
        try:
            return super()._commit()
        finally:
            self._end_transaction()

    def _rollback(self):
        try:
            return super()._rollback()
        finally:
            self._end_transaction()

    def _end_transaction(self) -> None:
        if self.writer_lock is not None and self.connection is not None and not self.connection.in_transaction:
            self.writer_lock.release(all_levels=True)

    def _close(self):
        try:
            return super()._close()
        finally:
            if self.writer_lock is not None:
                self.writer_lock.close()
