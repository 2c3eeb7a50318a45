"""`make run` (bin/serve) verifies the audit log once soon after start (issue 20, item 5).

The scheduled verify_audit runs once a night: without this, a fresh install's audit page would say
"not verified yet" until 03:30. bin/serve queues one run through the broker; the worker runs it
when it is up, and its result is what the audit page shows.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.harness.ports import free_port, wait_for_http

pytestmark = pytest.mark.e2e
SERVE = REPO_ROOT / "bin" / "serve"
VERIFIED = (
    "import django; django.setup(); from audit.models import AuditVerification, AuditRecord; "
    "v = AuditVerification.objects.order_by('-started_at').first(); "
    "runs = AuditRecord.objects.filter(kind='job', detail__job='verify_audit').count(); "
    "print(v.outcome if v else '', runs)"
)


def test_bin_serve_runs_one_audit_verification_within_two_minutes_of_start(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DJANGO_SETTINGS_MODULE", "DATABASE_URL", "TEST_DATABASE_URL", "SECRET_KEY", "CELERY_BROKER_URL"}
    }
    port = free_port()
    env.update(
        DATA_DIR=str(tmp_path / "data"),
        PORT=str(port),
        BOOTSTRAP_ON_MIGRATE="true",
        STATIC_ROOT=str(tmp_path / "static"),
        FIRST_VERIFY_DELAY="1",
    )
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"], cwd=REPO_ROOT, env=env, check=True, capture_output=True
    )
    probe_env = env | {"DJANGO_SETTINGS_MODULE": "registryadmin.settings"}

    def state() -> tuple[str, int]:
        out = subprocess.run(
            [sys.executable, "-c", VERIFIED], cwd=REPO_ROOT, env=probe_env, capture_output=True, text=True
        ).stdout.split()
        return (out[0], int(out[1])) if len(out) == 2 else ("", int(out[0]) if out else 0)

    assert state() == ("", 0)  # migrated, never verified
    log = (tmp_path / "serve.log").open("w")
    serve = subprocess.Popen(
        [str(SERVE)], cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", timeout=60)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and state()[0] == "":
            time.sleep(2)
        outcome, runs = state()
        assert outcome == "intact", (tmp_path / "serve.log").read_text()[-3000:]
        assert runs == 1  # run by the worker, as the nightly job, once
    finally:
        os.killpg(serve.pid, signal.SIGINT)
        serve.wait(timeout=60)
        log.close()
