"""A whole stack for end-to-end tests: our app under gunicorn and a real registry pointed at it."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from tests.conftest import REPO_ROOT
from tests.harness.ports import free_port, wait_for_http
from tests.harness.registry import RegistryServer, deep_merge


class AppServer:
    """gunicorn serving registryadmin on a free loopback port, on the test database."""

    def __init__(self, env: dict[str, str], workdir: Path, workers: int = 2) -> None:
        self.port = free_port()
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
