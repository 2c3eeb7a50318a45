"""Real registry clients for end-to-end tests: ``skopeo`` and a private ``containerd``.

Both talk plain HTTP to the loopback registry. Every command runs with a timeout
and returns a ``Result`` instead of raising, so tests can assert on refusals too.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from .ociimage import OciImage, write_oci_archive

__all__ = ["Containerd", "ContainerdError", "Creds", "Result", "Skopeo", "run"]

Creds = tuple[str, str]
DEFAULT_TIMEOUT = 60.0
DEFAULT_PLATFORM = "linux/amd64"
# What skopeo (containers/image) and ctr (containerd remotes) print when the
# registry or token server says no: HTTP 401/403 and the registry error codes.
_AUTH_REFUSAL = re.compile(
    r"\b40[13]\b|unauthori[sz]ed|forbidden|denied|authentication required|insufficient_scope",
    re.IGNORECASE,
)
_NOT_FOUND = re.compile(r"manifest unknown|not found|\b404\b|name unknown", re.IGNORECASE)


@dataclass(frozen=True)
class Result:
    """Outcome of one client command."""

    ok: bool
    returncode: int | None
    stdout: str
    stderr: str
    args: tuple[str, ...] = ()
    duration: float = 0.0
    timed_out: bool = False

    @property
    def auth_refused(self) -> bool:
        """Tell whether the command failed because the registry refused the credentials."""
        return not self.ok and bool(_AUTH_REFUSAL.search(self.stderr))

    @property
    def not_found(self) -> bool:
        """Tell whether the command failed because the image or tag does not exist."""
        return not self.ok and bool(_NOT_FOUND.search(self.stderr))

    def json(self) -> Any:
        """Parse stdout as JSON (``skopeo inspect`` output)."""
        return json.loads(self.stdout)

    def check(self) -> Self:
        """Return self if the command succeeded, else raise ``AssertionError`` with details."""
        if not self.ok:
            raise AssertionError(self.describe())
        return self

    def describe(self) -> str:
        """Human-readable account of the command (passwords masked) and its output."""
        status = "timed out" if self.timed_out else f"exit status {self.returncode}"
        return (
            f"$ {' '.join(_masked(self.args))}\n{status} after {self.duration:.2f}s\n"
            f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"
        )


_CREDS_FLAGS = frozenset({"--creds", "--src-creds", "--dest-creds", "--user", "-u"})


def _masked(args: Sequence[str]) -> list[str]:
    """``args`` with the password part of every credential flag's value hidden."""
    masked = list(args)
    for index, arg in enumerate(masked[:-1]):
        if arg in _CREDS_FLAGS:
            user = masked[index + 1].split(":", 1)[0]
            masked[index + 1] = f"{user}:***"
    return masked


def _text(data: str | bytes | None) -> str:
    """Normalise captured output, which is bytes after a timeout."""
    if isinstance(data, bytes):
        return data.decode(errors="replace")
    return data or ""


def run(args: Sequence[str], timeout: float = DEFAULT_TIMEOUT) -> Result:
    """Run ``args`` without a shell and capture the outcome; never raises on failure."""
    argv = tuple(str(arg) for arg in args)
    start = time.monotonic()
    try:
        proc = subprocess.run(
            argv,
            check=False,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as error:
        elapsed = time.monotonic() - start
        out, err = _text(error.stdout), _text(error.stderr)
        return Result(False, None, out, err, argv, elapsed, timed_out=True)
    elapsed = time.monotonic() - start
    return Result(proc.returncode == 0, proc.returncode, proc.stdout, proc.stderr, argv, elapsed)


def _reference(repo: str, tag: str) -> str:
    """``repo:tag``, or ``repo@digest`` when ``tag`` is a digest."""
    separator = "@" if tag.startswith("sha256:") else ":"
    return f"{repo}{separator}{tag}"


def _creds_flags(creds: Creds | None, prefix: str = "") -> list[str]:
    """skopeo credential flags; ``None`` means anonymous (``--no-creds``)."""
    if creds is None:
        return [f"--{prefix}no-creds"]
    user, password = creds
    return [f"--{prefix}creds", f"{user}:{password}"]


class Skopeo:
    """``skopeo`` against one plain-HTTP registry, without retries.

    ``creds=None`` is anonymous: skopeo is told ``--no-creds`` so it never falls
    back to credentials stored on the machine.
    """

    def __init__(
        self,
        registry_host: str,
        *,
        binary: str = "skopeo",
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.registry_host = registry_host
        self.binary = binary
        self.timeout = timeout

    def docker_ref(self, repo: str, tag: str) -> str:
        """``docker://HOST/repo:tag`` transport reference."""
        return f"docker://{self.registry_host}/{_reference(repo, tag)}"

    def _run(self, *args: str) -> Result:
        """Run a skopeo subcommand with the policy check and retries off."""
        timeout = f"{int(self.timeout)}s"
        argv = [self.binary, "--insecure-policy", "--command-timeout", timeout, *args]
        return run(argv, self.timeout + 5)

    def copy_to(
        self,
        oci_dir: Path | OciImage,
        repo: str,
        tag: str = "latest",
        creds: Creds | None = None,
    ) -> Result:
        """Push the OCI layout ``oci_dir`` (its single image) to ``repo:tag``."""
        source = oci_dir.dir if isinstance(oci_dir, OciImage) else Path(oci_dir)
        return self._run(
            "copy",
            "--retry-times",
            "0",
            "--dest-tls-verify=false",
            *_creds_flags(creds, "dest-"),
            f"oci:{source}",
            self.docker_ref(repo, tag),
        )

    def copy_from(self, repo: str, tag: str, dest_dir: Path, creds: Creds | None = None) -> Result:
        """Pull ``repo:tag`` into the OCI layout ``dest_dir`` under the same tag."""
        local_tag = "latest" if tag.startswith("sha256:") else tag
        return self._run(
            "copy",
            "--retry-times",
            "0",
            "--src-tls-verify=false",
            *_creds_flags(creds, "src-"),
            self.docker_ref(repo, tag),
            f"oci:{Path(dest_dir)}:{local_tag}",
        )

    def inspect(
        self,
        repo: str,
        tag: str = "latest",
        creds: Creds | None = None,
        *,
        raw: bool = False,
    ) -> Result:
        """``skopeo inspect`` (``--raw`` gives the manifest bytes as stored)."""
        extra = ["--raw"] if raw else []
        return self._run(
            "inspect",
            "--retry-times",
            "0",
            "--tls-verify=false",
            *_creds_flags(creds),
            *extra,
            self.docker_ref(repo, tag),
        )

    def delete(self, repo: str, tag: str = "latest", creds: Creds | None = None) -> Result:
        """Delete the manifest ``repo:tag`` points to (the registry needs deletes enabled)."""
        return self._run(
            "delete",
            "--retry-times",
            "0",
            "--tls-verify=false",
            *_creds_flags(creds),
            self.docker_ref(repo, tag),
        )


class ContainerdError(RuntimeError):
    """The private containerd daemon could not be started."""


# Plugins that only log noise or touch paths outside the temp dir (``opt`` creates
# /opt/containerd; ``cri`` wants CNI and a sandbox image).
_DISABLED_PLUGINS = (
    "io.containerd.grpc.v1.cri",
    "io.containerd.internal.v1.opt",
    "io.containerd.snapshotter.v1.aufs",
    "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.devmapper",
    "io.containerd.snapshotter.v1.zfs",
)


def containerd_config(workdir: Path) -> str:
    """``config.toml`` keeping every socket and directory under ``workdir``."""
    disabled = ", ".join(f'"{name}"' for name in _DISABLED_PLUGINS)
    return (
        "version = 2\n"
        f'root = "{workdir}/root"\n'
        f'state = "{workdir}/state"\n'
        f'temp = "{workdir}/tmp"\n'
        f"disabled_plugins = [{disabled}]\n\n"
        f'[grpc]\n  address = "{workdir}/containerd.sock"\n\n'
        f'[ttrpc]\n  address = "{workdir}/containerd.sock.ttrpc"\n\n'
        f'[debug]\n  address = "{workdir}/debug.sock"\n  level = "info"\n\n'
        '[metrics]\n  address = ""\n'
    )


def _mounts_under(directory: Path) -> list[str]:
    """Mount points below ``directory``, deepest first."""
    prefix = str(directory) + "/"
    points = []
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            point = line.split()[4].encode().decode("unicode_escape")
            if point.startswith(prefix):
                points.append(point)
    return sorted(points, key=len, reverse=True)


class Containerd:
    """A private containerd daemon (needs root) driven with ``ctr``.

    Everything lives in a short temp dir (``/tmp/ctd-XXXX``: unix socket paths are
    limited to ~108 bytes) and one namespace of its own. Pulls unpack with the
    ``native`` snapshotter by default, which works on any filesystem, including
    overlayfs roots in CI containers where the overlayfs snapshotter fails.
    """

    def __init__(
        self,
        namespace: str | None = None,
        *,
        containerd_binary: str = "containerd",
        ctr_binary: str = "ctr",
        snapshotter: str = "native",
        platform: str = DEFAULT_PLATFORM,
        timeout: float = DEFAULT_TIMEOUT,
        start_timeout: float = 20.0,
    ) -> None:
        self.namespace = namespace or f"harness-{secrets.token_hex(4)}"
        self.containerd_binary = containerd_binary
        self.ctr_binary = ctr_binary
        self.snapshotter = snapshotter
        self.platform = platform
        self.timeout = timeout
        self.start_timeout = start_timeout
        self.workdir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def _dir(self) -> Path:
        """The temp dir; only valid while started."""
        if self.workdir is None:
            raise ContainerdError("containerd is not started")
        return self.workdir

    @property
    def socket(self) -> Path:
        """The daemon's gRPC socket."""
        return self._dir / "containerd.sock"

    @property
    def log_path(self) -> Path:
        """File receiving the daemon's output."""
        return self._dir / "containerd.log"

    def log_text(self) -> str:
        """Everything the daemon has logged so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except (FileNotFoundError, ContainerdError):
            return ""

    def start(self) -> Self:
        """Write the config, start the daemon and wait until ``ctr`` can talk to it."""
        if os.geteuid() != 0:
            raise ContainerdError("a private containerd daemon needs root")
        self.workdir = Path(tempfile.mkdtemp(prefix="ctd-", dir="/tmp"))
        config = self.workdir / "config.toml"
        config.write_text(containerd_config(self.workdir))
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                [self.containerd_binary, "--config", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        """Poll until the socket exists and ``ctr version`` succeeds."""
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            self._check_alive()
            if self.socket.exists() and self.ctr("version", timeout=5).ok:
                return
            time.sleep(0.02)
        raise ContainerdError(f"containerd not ready after {self.start_timeout}s\n{self._tail()}")

    def _check_alive(self) -> None:
        """Raise with the log tail if the daemon has exited."""
        if self._process is not None and self._process.poll() is not None:
            code = self._process.returncode
            raise ContainerdError(f"containerd exited early with status {code}\n{self._tail()}")

    def _tail(self, lines: int = 40) -> str:
        """The end of the daemon log, for error messages."""
        tail = "\n".join(self.log_text().splitlines()[-lines:])
        return f"--- containerd log ---\n{tail}"

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the daemon, unmount leftovers and delete the temp dir."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)
        if self.workdir is not None:
            for point in _mounts_under(self.workdir):
                subprocess.run(["umount", "-l", point], check=False, capture_output=True)
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def ctr(self, *args: str, timeout: float | None = None) -> Result:
        """Run ``ctr -a SOCKET -n NAMESPACE args...``."""
        argv = [self.ctr_binary, "-a", str(self.socket), "-n", self.namespace, *args]
        return run(argv, timeout or self.timeout)

    def _remote_flags(self, creds: Creds | None) -> list[str]:
        """Flags shared by pull, push and fetch against the plain-HTTP registry."""
        flags = ["--plain-http"]
        if creds is not None:
            flags += ["--user", f"{creds[0]}:{creds[1]}"]
        return flags

    def pull(self, ref: str, creds: Creds | None = None) -> Result:
        """``ctr images pull`` of ``HOST/repo:tag`` for this platform, unpacking it."""
        return self.ctr(
            "images",
            "pull",
            *self._remote_flags(creds),
            "--platform",
            self.platform,
            "--snapshotter",
            self.snapshotter,
            ref,
        )

    def fetch(self, ref: str, creds: Creds | None = None) -> Result:
        """``ctr content fetch``: download without unpacking (no snapshotter, no mounts)."""
        return self.ctr(
            "content",
            "fetch",
            *self._remote_flags(creds),
            "--platform",
            self.platform,
            ref,
        )

    def push(self, ref: str, creds: Creds | None = None, local_ref: str | None = None) -> Result:
        """``ctr images push`` of the local image ``local_ref`` (default ``ref``) to ``ref``."""
        local = [local_ref] if local_ref else []
        return self.ctr("images", "push", *self._remote_flags(creds), ref, *local)

    def tag(self, src: str, dst: str) -> Result:
        """Give the local image ``src`` the additional name ``dst`` (replacing it)."""
        return self.ctr("images", "tag", "--force", src, dst)

    def remove(self, *refs: str) -> Result:
        """Delete local image names (content is garbage-collected by the daemon)."""
        return self.ctr("images", "rm", *refs)

    def images(self) -> list[str]:
        """Names of the local images in this namespace."""
        result = self.ctr("images", "ls", "--quiet").check()
        return result.stdout.split()

    def import_oci(self, archive: Path, base_name: str) -> Result:
        """Import an OCI archive tar; its tag ``T`` becomes the local name ``base_name:T``.

        Without ``--base-name`` ctr would name it ``import-YYYY-MM-DD:T``. The image
        is not unpacked: pushing needs only its content.
        """
        return self.ctr(
            "images",
            "import",
            "--base-name",
            base_name,
            "--platform",
            self.platform,
            "--no-unpack",
            str(archive),
        )

    def load_image(self, image: OciImage, ref: str) -> Result:
        """Make ``image`` available locally under the name ``ref`` (``name:tag``)."""
        archive = write_oci_archive(image.dir, self._dir / f"{secrets.token_hex(4)}.tar")
        base_name = f"harness.local/import-{secrets.token_hex(4)}"
        try:
            self.import_oci(archive, base_name).check()
        finally:
            archive.unlink(missing_ok=True)
        imported = f"{base_name}:{image.tag}"
        result = self.tag(imported, ref)
        self.remove(imported)
        return result

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
