"""Django's PostgreSQL backend with a health check that costs no round trip on a busy connection.

``CONN_HEALTH_CHECKS`` makes Django send ``SELECT 1`` before the first query of every request: on
the token endpoint that is a second round trip beside the only one it needs (the access record's
INSERT). Here the check is skipped when the connection answered within ``FRESH_SECONDS``: a
connection that just worked is trusted, an idle one is still checked before it is used. A server
restart inside that window costs at most the one request that finds the connection dead (answered
503 by the fault middleware); Django then closes it and the next request connects afresh.
"""

from __future__ import annotations

import time

from django.db.backends.postgresql import base

FRESH_SECONDS = 10.0


class DatabaseWrapper(base.DatabaseWrapper):
    last_used = 0.0

    def create_cursor(self, name=None):
        self.last_used = time.monotonic()
        return super().create_cursor(name)

    def close_if_health_check_failed(self):
        if self.connection is not None and time.monotonic() - self.last_used < FRESH_SECONDS:
            self.health_check_done = True
            return
        super().close_if_health_check_failed()
