"""Django's PostgreSQL backend with a health check that costs no round trip on a busy connection.

``CONN_HEALTH_CHECKS`` makes Django send ``SELECT 1`` before the first query of every request: on
the token endpoint that is a second round trip beside the only one it needs (the access record's
INSERT). Here the check is skipped when the connection answered within ``FRESH_SECONDS`` and its
socket has nothing to read: an idle healthy connection never has, while a server that ended it
(restart, ``pg_terminate_backend``, a setting that needs a new session) has sent its goodbye or
closed the socket, which makes it readable. That look is one ``select`` call, no round trip; a
connection idle for longer is checked with ``SELECT 1`` as Django does.
"""

from __future__ import annotations

import select
import time

from django.db.backends.postgresql import base

FRESH_SECONDS = 10.0


class DatabaseWrapper(base.DatabaseWrapper):
    last_used = 0.0

    def create_cursor(self, name=None):
        self.last_used = time.monotonic()
        return super().create_cursor(name)

    def close_if_health_check_failed(self):
        if self.connection is not None and time.monotonic() - self.last_used < FRESH_SECONDS and self._quiet():
            self.health_check_done = True
            return
        super().close_if_health_check_failed()

    def _quiet(self) -> bool:
        try:
            readable, _, _ = select.select([self.connection.fileno()], [], [], 0)
        except Exception:  # a closed or broken connection has no usable descriptor
            return False
        return not readable
