"""Loopback ports and readiness polling for services started by tests."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable

__all__ = ["free_port", "wait_for_http"]


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago.

    The kernel picks the port; another process could take it before the caller
    binds it, which is acceptable for tests on a quiet machine.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Loopback services must never be reached through an HTTP(S)_PROXY from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _answers(url: str) -> bool:
    """Tell whether ``url`` gives any HTTP answer (an error status counts)."""
    try:
        with _OPENER.open(url, timeout=1):
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False


def wait_for_http(
    url: str,
    timeout: float = 10.0,
    interval: float = 0.05,
    check: Callable[[], None] | None = None,
) -> None:
    """Poll ``url`` until it answers with any HTTP status, or raise ``TimeoutError``.

    ``check`` runs before every attempt and may raise to give up early, e.g. when
    the server process being waited for has already exited.
    """
    deadline = time.monotonic() + timeout
    while True:
        if check is not None:
            check()
        if _answers(url):
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"no HTTP answer from {url} within {timeout:.1f}s")
        time.sleep(interval)
