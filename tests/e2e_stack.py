"""A whole stack for end-to-end tests: our app under gunicorn and a real registry pointed at it."""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import redis
import yaml
from celery.beat import PersistentScheduler

from registryadmin.celery import app as celery_app
from tests.conftest import REPO_ROOT
from tests.harness.ports import free_port, wait_for_http
from tests.harness.registry import RegistryServer, deep_merge


class AppServer:
    """gunicorn serving registryadmin on a free loopback port (or ``port``), on the test database.

    ``port``: another server's, once that one is stopped, so a registry whose realm names it reaches
    this one instead (a restored host taking the old one's place).
    """

    def __init__(self, env: dict[str, str], workdir: Path, workers: int = 2, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = env | {"PUBLIC_URL": self.url, "PORT": str(self.port), "STATIC_ROOT": str(workdir / "static")}
        self.log = workdir / "gunicorn.log"
        self.workers = workers
        self.process: subprocess.Popen[bytes] | None = None

    def manage(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=REPO_ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def start(self) -> AppServer:
        # The manifest storage needs collectstatic, exactly as in the documented production start.
        self.manage("collectstatic", "--noinput", "--verbosity", "0")
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "registryadmin.wsgi:application",
                    "--bind",
                    f"127.0.0.1:{self.port}",
                    "--workers",
                    str(self.workers),
                    "--access-logfile",
                    "-",
                ],
                cwd=REPO_ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_for_http(self.url + "/healthz", timeout=30, check=self._alive)
        return self

    def _alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"gunicorn exited:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=20)
            self.process = None


def registry_for(app: AppServer, workdir: Path, service: str = "registry") -> RegistryServer:
    """A registry configured from `registry_config`'s output, exactly as an operator would."""
    (workdir / "registry").mkdir(parents=True, exist_ok=True)
    registry = RegistryServer(workdir=workdir / "registry")
    return apply_fragment(app, registry, service)


def apply_fragment(app: AppServer, registry: RegistryServer, service: str = "registry") -> RegistryServer:
    """Merge what `registry_config` prints now into the registry's config (it takes effect at its next start)."""
    fragment = yaml.safe_load(app.manage("registry_config", "--registry", service).stdout)
    assert set(fragment) == {"auth", "notifications"}
    registry.config = deep_merge(registry.config, fragment)
    return registry


def eventually(predicate: Callable[[], bool], timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@contextmanager
def celery_process(command: str, env: Mapping[str, str], log: Path, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    """``celery -A registryadmin COMMAND ARGS`` (``worker``, ``beat``), output appended to ``log``; stopped on exit."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "registryadmin", command, *args],
            cwd=REPO_ROOT,
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def once_now() -> str:
    """A crontab that beat sends at once (with ``overdue``) and not again for about half a year.

    "* * * * *" would send it again at the next minute boundary, and a slow run then has two.
    """
    month = (celery_app.now().month + 5) % 12 + 1
    return f"0 0 1 {month} *"


def overdue(schedule_file: Path, entry: str) -> None:
    """Beat's own schedule file, in which ``entry`` last ran over a year ago: beat sends it as it starts.

    Without it an entry waits for its next time (up to a minute of every run for "* * * * *", half a
    year for ``once_now()``). Written by Celery's PersistentScheduler itself, so the file is what beat
    reads and keeps.
    """
    scheduler = PersistentScheduler(app=celery_app, schedule_filename=str(schedule_file), lazy=False)
    scheduler.schedule[entry].last_run_at = celery_app.now() - timedelta(days=400)
    scheduler.sync()
    scheduler.close()


# Redis databases no other test uses (7: limits, 8: directory, 11: the limits bench).
SPARE_REDIS_DBS = (12, 13, 14, 15)


@contextmanager
def private_redis_db(
    server: str = "redis://127.0.0.1:6379", candidates: Sequence[int] = SPARE_REDIS_DBS, wait: float = 120.0
) -> Iterator[str]:
    """The URL of a Redis database this test alone uses, emptied before and after.

    Celery beat sends to the default queue ``celery``: on a shared database another test's worker could
    take its tasks. The claim is an expiring key in database 0, so a crashed run frees it by itself.
    """
    claims = redis.Redis.from_url(f"{server}/0", socket_connect_timeout=2)
    token = secrets.token_hex(8)
    deadline = time.monotonic() + wait
    while True:
        index = next((i for i in candidates if claims.set(_claim_key(i), token, nx=True, ex=900)), None)
        if index is not None:
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"no spare Redis database among {list(candidates)} within {wait:.0f}s")
        time.sleep(0.5)
    database = redis.Redis.from_url(f"{server}/{index}", socket_connect_timeout=2)
    database.flushdb()
    try:
        yield f"{server}/{index}"
    finally:
        database.flushdb()
        if claims.get(_claim_key(index)) == token.encode():
            claims.delete(_claim_key(index))


def _claim_key(index: int) -> str:
    return f"registryadmin-tests:redis-db:{index}"
