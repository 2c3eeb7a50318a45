"""gunicorn's config for every way the app is served (``bin/serve``, the Docker image): ``--config`` this file.

It sets up prometheus-client's multiprocess mode, so ``/metrics`` adds up every worker's counters
whichever worker answers:

- ``PROMETHEUS_MULTIPROC_DIR`` (default ``$DATA_DIR/prometheus``) is set here, in the master, before
  anything imports prometheus-client: the library picks its value store at import time, and the
  workers, forked from the master, inherit both the variable and that choice.
- At start the directory is emptied: files left by an earlier run would be added to this one's.
- When a worker exits its live-gauge files go (``mark_process_dead``); its counter and histogram
  files stay, so a restarted worker loses nothing that was counted.

Loaded by file path, not as ``registryadmin.gunicorn``: importing the package would start Django
and Celery in the master. It imports nothing of the project.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

DATA_DIR = Path(os.environ.get("DATA_DIR") or Path(__file__).resolve().parent.parent / "data")
METRICS_DIR = Path(os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(DATA_DIR.resolve() / "prometheus")))

# After the variable on purpose: the workers inherit this import, and with it the multiprocess value store.
from prometheus_client import multiprocess  # noqa: E402


def on_starting(server: Any) -> None:
    """Before the first worker: an empty directory (only prometheus-client's own ``*.db`` files are removed)."""
    METRICS_DIR.mkdir(parents=True, exist_ok=True)
    for stale in METRICS_DIR.glob("*.db"):
        stale.unlink()


def child_exit(server: Any, worker: Any) -> None:
    """A worker is gone: drop its live gauges (its counters stay in the sum, as the library documents)."""
    multiprocess.mark_process_dead(worker.pid, str(METRICS_DIR))
