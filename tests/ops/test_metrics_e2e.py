"""/metrics through two real gunicorn workers: prometheus-client's multiprocess mode adds them up.

gunicorn starts as ``bin/serve`` and the Docker image start it (``--config registryadmin/gunicorn.py``,
2 workers) on the test database; carol asks for tokens until both workers have answered some (the
access log names the worker's pid), then /metrics is scraped several times: whichever worker answers,
the counters' sum and the histogram's count are the number of requests made. Killing a worker keeps
its counts: prometheus-client documents that a dead process's counter and histogram files stay in
the directory (``mark_process_dead`` removes only live gauges), so the sum never goes back.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from accounts import services
from accounts.services import ensure_keys
from tests.conftest import PASSWORD, REPO_ROOT, SYSTEM, make_user
from tests.harness.ports import free_port, wait_for_http

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
METRICS_TOKEN = "e2e-scraper-token-0123456789"
ACCESS_LOG_FORMAT = "%(p)s %(U)s %(s)s"  # "<pid>" of the worker that answered, first
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, never through a proxy
MAX_ROUNDS = 20  # rounds of 8 concurrent requests to see both workers; one round nearly always does


class Server:
    """gunicorn as production starts it, with its access log in a file to tell the workers apart."""

    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = env | {"PUBLIC_URL": self.url, "METRICS_TOKEN": METRICS_TOKEN}
        self.env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # the config's default, under DATA_DIR
        self.metrics_dir = Path(env["DATA_DIR"]) / "prometheus"
        self.access_log = workdir / "access.log"
        self.log = workdir / "gunicorn.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "registryadmin.wsgi:application",
            "--config",
            "registryadmin/gunicorn.py",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            "2",
            "--access-logfile",
            str(self.access_log),
            "--access-logformat",
            ACCESS_LOG_FORMAT,
        ]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(command, cwd=REPO_ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        wait_for_http(self.url + "/healthz", timeout=30, check=self._alive)

    def _alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"gunicorn exited:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=20)

    def token_pids(self) -> list[int]:
        """The pid of the worker that answered each token request so far, in order."""
        if not self.access_log.exists():
            return []
        lines = self.access_log.read_text().splitlines()
        return [int(line.split()[0].strip("<>")) for line in lines if " /auth/token " in line]


@pytest.fixture
def server(subprocess_env: dict[str, str], tmp_path: Path) -> Iterator[Server]:
    services.create_registry("registry", context=SYSTEM)
    ensure_keys()
    carol = make_user("carol")
    services.create_grant(carol, "web/app", "read", context=SYSTEM)
    server = Server(subprocess_env, tmp_path)
    server.metrics_dir.mkdir(parents=True)
    (server.metrics_dir / "counter_1.db").write_bytes(b"left by an earlier run")  # the start must wipe it
    server.start()
    try:
        yield server
    finally:
        server.stop()


def ask_token(server: Server) -> int:
    raw = base64.b64encode(f"carol:{PASSWORD}".encode()).decode()
    request = urllib.request.Request(
        f"{server.url}/auth/token?service=registry&scope=repository:web/app:pull",
        headers={"Authorization": f"Basic {raw}", "Connection": "close"},
    )
    with OPENER.open(request, timeout=30) as response:
        return response.status


def ask_tokens(server: Server, count: int) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(lambda _: ask_token(server), range(count))) == [200] * count


def scrape(server: Server) -> dict[str, float]:
    """The token endpoint's counters summed over their labels, and the histogram's count."""
    request = urllib.request.Request(f"{server.url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    with OPENER.open(request, timeout=30) as response:
        text = response.read().decode()
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    return totals


def wait_for_pids(server: Server, count: int) -> list[int]:
    """The access log is written after the answer: wait until it has a line for each request."""
    deadline = time.monotonic() + 10
    while len(pids := server.token_pids()) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(pids) == count, f"{len(pids)} access-log lines for {count} token requests"
    return pids


def test_two_workers_report_together_and_a_dead_workers_counts_stay(server: Server) -> None:
    made = 0
    for _ in range(MAX_ROUNDS):
        ask_tokens(server, 8)
        made += 8
        if len(set(wait_for_pids(server, made))) == 2:
            break
    pids = set(wait_for_pids(server, made))
    assert len(pids) == 2, f"all {made} requests went to one worker"
    assert not (server.metrics_dir / "counter_1.db").exists(), "files of an earlier run were not wiped"
    assert {f"counter_{pid}.db" for pid in pids} <= {p.name for p in server.metrics_dir.iterdir()}

    # Whichever worker answers the scrape, it reports both workers' requests.
    for totals in [scrape(server) for _ in range(6)]:
        assert totals["registryadmin_token_requests_total"] == made
        assert totals["registryadmin_token_request_duration_seconds_count"] == made
        assert totals["registryadmin_state_up"] == 1

    # A worker killed outright: gunicorn starts another; what the dead one counted is still in the sum.
    victim = sorted(pids)[0]
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        alive = {int(line) for line in _children(server)} - {victim}
        if len(alive) == 2:
            break
        time.sleep(0.1)
    assert len(alive) == 2, "gunicorn did not replace the killed worker"
    assert (server.metrics_dir / f"counter_{victim}.db").exists()
    assert scrape(server)["registryadmin_token_requests_total"] == made
    ask_tokens(server, 8)
    made += 8
    totals = scrape(server)
    assert totals["registryadmin_token_requests_total"] == made
    assert totals["registryadmin_token_request_duration_seconds_count"] == made


def _children(server: Server) -> list[str]:
    assert server.process is not None
    path = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children")
    return path.read_text().split()
