"""The doctor's one HTTP client: plain ``http.client`` with short timeouts, TLS verified (or looked at) on purpose.

Every probe goes through ``fetch``; an address that cannot be reached raises ``Unreachable`` naming
host and port (a firewall, a wrong port, a dead proxy), a TLS handshake that does not verify raises
``TLSRefused`` with the reason ``ssl`` gave.
"""

from __future__ import annotations

import http.client
import socket
import ssl
from dataclasses import dataclass, field
from urllib.parse import urlsplit

TIMEOUT = 5.0


class Unreachable(Exception):
    """No answer from host:port."""

    def __init__(self, host: str, port: int, reason: str) -> None:
        super().__init__(f"{host}:{port} cannot be reached: {reason}")
        self.host, self.port, self.reason = host, port, reason


class TLSRefused(Exception):
    """The TLS handshake did not verify (expired, unknown CA, wrong name...)."""

    def __init__(self, host: str, port: int, reason: str, verify_code: int | None = None) -> None:
        super().__init__(f"TLS to {host}:{port} does not verify: {reason}")
        self.host, self.port, self.reason, self.verify_code = host, port, reason, verify_code


@dataclass
class Answer:
    status: int
    headers: dict[str, list[str]] = field(default_factory=dict)  # lower-case names
    body: bytes = b""

    def header(self, name: str) -> str:
        values = self.headers.get(name.lower(), [])
        return values[0] if values else ""


def endpoint(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of ``url``."""
    parts = urlsplit(url)
    scheme = parts.scheme or "http"
    return scheme, parts.hostname or "", parts.port or (443 if scheme == "https" else 80)


def fetch(
    method: str,
    url: str,
    headers: dict[str, str] | None = None,
    *,
    body: bytes | None = None,
    verify: bool = True,
    ca_file: str | None = None,
    timeout: float = TIMEOUT,
) -> Answer:
    """One request; redirects are not followed (a registry that redirects /v2/ is itself a finding)."""
    scheme, host, port = endpoint(url)
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if scheme == "https":
        context = ssl.create_default_context(cafile=ca_file) if verify else ssl._create_unverified_context()  # noqa: S323
        connection: http.client.HTTPConnection = http.client.HTTPSConnection(
            host, port, timeout=timeout, context=context
        )
    else:
        connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        data = response.read(1_000_000)
    except ssl.SSLCertVerificationError as exc:
        raise TLSRefused(host, port, exc.verify_message or str(exc), exc.verify_code) from None
    except ssl.SSLError as exc:
        raise TLSRefused(host, port, str(exc)) from None
    except TimeoutError:
        raise Unreachable(host, port, f"no answer within {timeout:g} s") from None
    except (ConnectionError, OSError, http.client.HTTPException) as exc:
        raise Unreachable(host, port, str(exc) or type(exc).__name__) from None
    finally:
        connection.close()
    found: dict[str, list[str]] = {}
    for name, value in response.getheaders():
        found.setdefault(name.lower(), []).append(value)
    return Answer(response.status, found, data)


def peer_certificate(url: str, timeout: float = TIMEOUT) -> bytes | None:
    """The DER certificate the server at ``url`` presents (without verifying it), or None on plain http."""
    scheme, host, port = endpoint(url)
    if scheme != "https":
        return None
    context = ssl._create_unverified_context()  # noqa: S323 - looked at, not trusted
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=host) as wrapped,
        ):
            return wrapped.getpeercert(binary_form=True)
    except OSError as exc:
        raise Unreachable(host, port, str(exc)) from None


def peer_chain(url: str, timeout: float = TIMEOUT) -> list[bytes]:
    """Every certificate the server sends (leaf first), DER; empty on plain http or an old Python."""
    scheme, host, port = endpoint(url)
    if scheme != "https":
        return []
    context = ssl._create_unverified_context()  # noqa: S323
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=host) as wrapped,
        ):
            getter = getattr(wrapped, "get_unverified_chain", None) or getattr(
                wrapped._sslobj,  # Python 3.10-3.12 have it, unnamed, on the socket object
                "get_unverified_chain",
                None,
            )
            return [_der(c) for c in getter()] if getter else [wrapped.getpeercert(binary_form=True)]
    except OSError as exc:
        raise Unreachable(host, port, str(exc)) from None


def _der(certificate: object) -> bytes:
    """DER bytes of one chain entry: bytes already (3.13), or ``_ssl.Certificate`` (3.10-3.12)."""
    public_bytes = getattr(certificate, "public_bytes", None)
    return public_bytes(ssl._ssl.ENCODING_DER) if public_bytes else bytes(certificate)  # type: ignore[attr-defined]
