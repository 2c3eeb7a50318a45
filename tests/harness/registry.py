"""A throwaway ``docker-registry`` (distribution 2.8) process for end-to-end tests.

The registry listens on a free loopback port, keeps its storage and log in a
temporary directory, and takes extra configuration (``auth:``, ``notifications:``)
merged over a minimal base. It speaks plain HTTP: clients need their
"insecure"/"plain-http" switches.
"""

from __future__ import annotations

import copy
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import bcrypt
import yaml

from .ports import free_port, wait_for_http

__all__ = ["RegistryError", "RegistryServer", "deep_merge", "write_htpasswd"]

LOG_TAIL_LINES = 40


class RegistryError(RuntimeError):
    """The registry process could not be started or exited unexpectedly."""


def deep_merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``base`` updated by ``extra``; nested mappings merge, other values replace."""
    merged = copy.deepcopy(dict(base))
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def write_htpasswd(path: Path, users: Mapping[str, str], rounds: int = 4) -> Path:
    """Write an htpasswd file with ``$2y$`` bcrypt entries, mode 0640.

    A low bcrypt cost keeps tests fast; the registry accepts any cost. The file is
    replaced atomically, as the registry may be reading it.
    """
    path = Path(path)
    lines = [f"{user}:{_bcrypt_2y(password, rounds)}\n" for user, password in users.items()]
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(lines))
    os.chmod(tmp, 0o640)
    os.replace(tmp, path)
    return path


def _bcrypt_2y(password: str, rounds: int) -> str:
    """bcrypt hash in the ``$2y$`` form htpasswd tools write."""
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=rounds)).decode()
    return "$2y$" + hashed[4:]


def base_config(port: int, root: Path) -> dict[str, Any]:
    """Minimal registry configuration: filesystem storage, deletes on, no auth."""
    return {
        "version": 0.1,
        "log": {"level": "info", "formatter": "text"},
        "storage": {
            "filesystem": {"rootdirectory": str(root)},
            "delete": {"enabled": True},
        },
        "http": {"addr": f"127.0.0.1:{port}", "secret": secrets.token_hex(16)},
        "health": {"storagedriver": {"enabled": False}},
    }


def _registry_env() -> dict[str, str]:
    """The environment without ``REGISTRY_*`` variables.

    distribution lets ``REGISTRY_HTTP_ADDR`` and friends override ``config.yml``;
    a variable meant for the project must not silently reconfigure the test registry.
    """
    return {key: value for key, value in os.environ.items() if not key.startswith("REGISTRY_")}


class RegistryServer:
    """``docker-registry serve`` on 127.0.0.1 with storage in a temporary directory.

    Use as a context manager, or call ``start()``/``stop()`` and ``close()``.
    ``config`` may be changed between ``stop()`` and ``start()``: each start
    rewrites ``config.yml`` from it.
    """

    def __init__(
        self,
        extra_config: Mapping[str, Any] | None = None,
        *,
        binary: str = "docker-registry",
        workdir: Path | None = None,
        start_timeout: float = 15.0,
    ) -> None:
        self.binary = binary
        self.start_timeout = start_timeout
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="registry-"))
        self.port = free_port()
        base = base_config(self.port, self.workdir / "storage")
        self.config: dict[str, Any] = deep_merge(base, extra_config or {})
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``, the registry part of an image reference."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """Base URL, ``http://127.0.0.1:PORT``."""
        return f"http://{self.host}"

    @property
    def config_path(self) -> Path:
        """The ``config.yml`` the registry is started with."""
        return self.workdir / "config.yml"

    @property
    def log_path(self) -> Path:
        """File receiving the registry's stdout and stderr (appended across restarts)."""
        return self.workdir / "registry.log"

    @property
    def storage_dir(self) -> Path:
        """Root directory of the filesystem storage driver."""
        return Path(self.config["storage"]["filesystem"]["rootdirectory"])

    @property
    def running(self) -> bool:
        """Tell whether the registry process is alive."""
        return self._process is not None and self._process.poll() is None

    def write_config(self) -> Path:
        """Render ``config`` to ``config.yml`` and return its path."""
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        return self.config_path

    def start(self) -> Self:
        """Start the registry and wait until ``/v2/`` answers (any status)."""
        if self.running:
            raise RegistryError("registry is already running")
        self.write_config()
        self._process = self._spawn()
        try:
            wait_for_http(f"{self.url}/v2/", self.start_timeout, check=self._check_alive)
        except TimeoutError as error:
            self.stop()
            raise RegistryError(f"{error}\n--- registry log ---\n{self.log_tail()}") from error
        return self

    def _spawn(self) -> subprocess.Popen[bytes]:
        """Launch ``docker-registry serve`` with output appended to the log file."""
        with open(self.log_path, "ab") as log:
            log.write(f"--- harness: starting at {time.strftime('%H:%M:%S')} ---\n".encode())
            log.flush()
            return subprocess.Popen(
                [self.binary, "serve", str(self.config_path)],
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=_registry_env(),
            )

    def _check_alive(self) -> None:
        """Raise with the log tail if the process has exited."""
        if self._process is not None and self._process.poll() is not None:
            code = self._process.returncode
            self._process = None
            raise RegistryError(
                f"docker-registry exited early with status {code}\n--- registry log ---\n{self.log_tail()}"
            )

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the registry and wait for it; kill it if it does not exit."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)

    def restart(self) -> Self:
        """Stop and start again on the same port, config and storage."""
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop the registry and delete its directory if the harness created it."""
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def log_text(self) -> str:
        """Everything the registry has logged so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last ``lines`` lines of the log, for error messages."""
        return "\n".join(self.log_text().splitlines()[-lines:])

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
