"""Reusable helpers that start real registry components for end-to-end tests.

Modules:
    ports: free loopback ports and waiting for an HTTP service.
    ociimage: writing a tiny, valid OCI image layout (and archive) to disk.
    registry: a throwaway ``docker-registry`` (distribution 2.8) process.
    clients: ``skopeo`` and a private ``containerd`` driven through ``ctr``.

Nothing here imports Django, so the harness can run before settings exist.
"""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest

__all__ = ["in_ci", "require_binary", "require_root"]

# Debian package that provides each binary the harness drives.
_PACKAGES = {
    "docker-registry": "docker-registry",
    "skopeo": "skopeo",
    "containerd": "containerd",
    "ctr": "containerd",
}


def in_ci() -> bool:
    """Tell whether we run in CI, where missing tools are an error, not a skip."""
    return os.environ.get("CI", "").strip().lower() == "true"


def require_binary(name: str) -> str:
    """Return the absolute path of executable ``name``, or skip/fail the test.

    Outside CI a missing binary skips the calling test with a message naming the
    Debian package to install. With ``CI=true`` it fails instead: CI installs every
    tool, so a missing one means the pipeline is broken, not that the test is optional.
    """
    path = shutil.which(name)
    if path is not None:
        return path
    package = _PACKAGES.get(name, name)
    _skip_or_fail(f"required binary {name!r} is not on PATH (Debian package {package!r})")


def require_root() -> None:
    """Skip (or fail under ``CI=true``) unless running as root, as containerd needs."""
    if os.geteuid() != 0:
        _skip_or_fail("this test starts a private containerd daemon, which needs root")


def _skip_or_fail(message: str) -> NoReturn:
    """Skip the current test, or fail it when running in CI."""
    if in_ci():
        pytest.fail(f"{message}; CI=true, so this is a failure, not a skip", pytrace=False)
    pytest.skip(message)
