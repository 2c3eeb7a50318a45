"""The counters and histograms this process keeps for ``/metrics`` (Prometheus), and where they are read.

Each is created once, here, so the token endpoint, the audit writer and the directory only call
``inc``/``observe`` (no query, no lock beyond the metric's own). Under gunicorn the config
(``registryadmin/gunicorn.py``) sets ``PROMETHEUS_MULTIPROC_DIR`` before any worker imports
prometheus-client: every worker then writes its values to its own file there, and a scrape adds
them up, so it does not matter which worker answers ``/metrics``. Without the variable (tests,
manage.py, Celery) the values stay in this process and ``registry`` reads them.

What the database knows (the sealer's lag, job ages, holds) is computed at scrape time instead, by
``registryadmin.views.StateCollector``: it is the same for every process.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector

# Our own registry, not prometheus-client's global one: nothing else (a library, a test) can add to it.
PROCESS = CollectorRegistry()

# The token endpoint's answer, by its access record's outcome ("error": no record could be written).
# "probe" is a push granted whose cross-repository mount check was refused: alert on partial and
# denied, never on probe (skopeo, docker and containerd ask one before most pushes of a shared layer).
TOKEN_REQUESTS = Counter(
    "registryadmin_token_requests",
    "Token requests answered, by the outcome of their access record and the kind of subject asking.",
    ["outcome", "subject_type"],
    registry=PROCESS,
)
# From 1 ms (a cached grant) to 5 s (a directory bind timing out); a bcrypt check lands near 0.25 s.
TOKEN_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
TOKEN_LATENCY = Histogram(
    "registryadmin_token_request_duration_seconds",
    "Time the token endpoint took to answer, from the view's start to its response.",
    buckets=TOKEN_BUCKETS,
    registry=PROCESS,
)
AUDIT_WRITE_FAILURES = Counter(
    "registryadmin_audit_write_failures",
    "Audit records that could not be written (the database refused or was unreachable), by record kind.",
    ["kind"],
    registry=PROCESS,
)
LDAP_BIND_ERRORS = Counter(
    "registryadmin_ldap_bind_errors",
    "Directory binds that failed because the directory erred or could not be reached (not a wrong password).",
    registry=PROCESS,
)

# The token endpoint's subject types; anything else (the 503 before any record) is "unknown".
UNKNOWN_SUBJECT = "unknown"
ERROR_OUTCOME = "error"


def multiprocess_dir() -> str:
    """The directory the workers share, or "" in a single process (read per call: tests set it)."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")


def add_process_values(registry: CollectorRegistry) -> None:
    """Add this process's metrics to ``registry``: every worker's files, or this process's own values."""
    if multiprocess_dir():
        MultiProcessCollector(registry)
    else:
        registry.register(_ThisProcess())


class _ThisProcess:
    """``PROCESS`` as one collector of a scrape's registry (a registry cannot be registered in another)."""

    def describe(self) -> list[Metric]:
        return []  # no name check at register time; ``PROCESS`` already refused duplicates

    def collect(self) -> Iterable[Metric]:
        return PROCESS.collect()
