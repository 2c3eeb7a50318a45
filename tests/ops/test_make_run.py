"""What `make run` serves: gunicorn, a Celery worker and beat on the embedded broker, stopped together."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.harness.ports import free_port, wait_for_http

pytestmark = pytest.mark.e2e
SERVE = REPO_ROOT / "bin" / "serve"


def test_bin_serve_runs_app_worker_and_beat_and_stops_them_together(tmp_path: Path) -> None:
    if not (REPO_ROOT / ".venv" / "bin" / "celery").exists():
        pytest.fail("bin/serve needs the project's .venv (make install)")
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
        SCHEDULE_PURGE_EXPIRED_GRANTS="* * * * *",
        STATIC_ROOT=str(tmp_path / "static"),
    )
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=REPO_ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    log = (tmp_path / "serve.log").open("w")
    serve = subprocess.Popen(
        [str(SERVE)], cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", timeout=60)
        # The worker executes a task sent through the filesystem broker.
        send = (
            "import django; django.setup(); from accounts.tasks import purge_expired_grants; "
            "purge_expired_grants.delay()"
        )
        subprocess.run(
            [sys.executable, "-c", send],
            cwd=REPO_ROOT,
            env=env | {"DJANGO_SETTINGS_MODULE": "registryadmin.settings"},
            check=True,
            timeout=60,
        )
        deadline = time.monotonic() + 60
        probe = (
            "import django; django.setup(); from audit.models import AuditRecord; "
            "print(AuditRecord.objects.filter(kind='job', detail__job='purge_expired_grants').count())"
        )
        while time.monotonic() < deadline:
            count = subprocess.run(
                [sys.executable, "-c", probe],
                cwd=REPO_ROOT,
                capture_output=True,
                text=True,
                env=env | {"DJANGO_SETTINGS_MODULE": "registryadmin.settings"},
            ).stdout.strip()
            if count not in ("", "0"):
                break
            time.sleep(1)
        else:
            pytest.fail("the worker never ran the task:\n" + (tmp_path / "serve.log").read_text()[-3000:])
        assert "initial password is in" in (tmp_path / "serve.log").read_text()
    finally:
        os.killpg(serve.pid, signal.SIGINT)
        serve.wait(timeout=60)
        log.close()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and _group_alive(serve.pid):
        time.sleep(0.5)
    assert not _group_alive(serve.pid), "gunicorn or celery still running after Ctrl-C"
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)


def _group_alive(pgid: int) -> bool:
    return bool(subprocess.run(["pgrep", "-g", str(pgid)], capture_output=True, text=True).stdout.strip())
