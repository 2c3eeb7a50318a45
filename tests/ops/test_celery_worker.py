"""A real Celery worker on the real Redis runs a real task against the test database."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from django.utils import timezone
from kombu import Connection

from accounts import services
from accounts.models import Grant
from accounts.tasks import purge_expired_grants
from audit.models import AuditRecord
from registryadmin.celery import app
from tests.conftest import REPO_ROOT, SYSTEM, make_user
from tests.harness import in_ci

pytestmark = pytest.mark.e2e
REDIS_URL = "redis://127.0.0.1:6379/0"


def redis_or_skip() -> None:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        if in_ci():
            pytest.fail(f"Redis at {REDIS_URL} is not reachable: {exc}")
        pytest.skip(f"Redis at {REDIS_URL} is not reachable: {exc}")


def wait_for(predicate, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}; worker log:\n{log.read_text()[-3000:]}")


def test_a_worker_on_redis_purges_expired_grants_into_the_audit_log(
    subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    redis_or_skip()
    carol = make_user("carol")
    services.create_grant(carol, "web/app", "read", expires_at=timezone.now() - timedelta(seconds=1), context=SYSTEM)
    queue = f"test-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "worker.log"
    env = subprocess_env | {"CELERY_BROKER_URL": REDIS_URL}
    with log.open("w") as out:
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "registryadmin",
                "worker",
                "-Q",
                queue,
                "--pool",
                "solo",
                "--loglevel",
                "INFO",
                "--hostname",
                f"{queue}@%h",
                "--without-gossip",
                "--without-mingle",
            ],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        with Connection(REDIS_URL) as connection:
            purge_expired_grants.apply_async(queue=queue, connection=connection)
        wait_for(lambda: AuditRecord.objects.filter(kind="job").exists(), 60, "the job record", log)
    finally:
        worker.terminate()
        worker.wait(timeout=20)
    job = AuditRecord.objects.get(kind="job")
    assert job.outcome == "success"
    assert job.detail["job"] == "purge_expired_grants" and job.detail["result"]["purged"] == 1
    assert not Grant.objects.exists()
    expired = AuditRecord.objects.filter(detail__action="grant.expire")
    assert list(expired.values_list("detail__target", flat=True)) == ["read on web/app to user carol"]


def test_the_celery_app_speaks_json_only() -> None:
    assert app.conf.task_serializer == "json"
    assert app.conf.accept_content == ["json"]
    assert "purge-expired-grants" in app.conf.beat_schedule
    assert app.conf.beat_schedule["purge-expired-grants"]["options"]["expires"] < 300
