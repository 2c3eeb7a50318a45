"""The doctor's HTTP checks (tls, clock, proxy, cors, rate_limit) against small loopback servers.

A fake registry answers ``/v2/`` as a script says (status, headers; 200 for a bearer token in token
mode), a forwarding proxy sits in front of it when a test needs one (dropping ``Authorization``,
shifting ``Date``, answering 429), and TLS servers present certificates made here with
``cryptography``: expired, self-signed, for another name, close to expiry, or from a test CA.
"""

from __future__ import annotations

import http.client
import http.server
import ipaddress
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.utils import timezone

from accounts.models import AuthHold, AuthMode, HoldScope, Registry
from accounts.registry.doctor import Target
from accounts.registry.doctor.checks import clock, cors, proxy, rate_limit, tls
from accounts.registry.doctor.model import Check, State

ORIGIN = "https://ui.example.org"
HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "server", "date"}


# Certificates -------------------------------------------------------------------------------------


@dataclass
class Issued:
    cert: Path
    key: Path
    ca: Path | None = None


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _alt(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _write(directory: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def make_certificate(
    directory: Path,
    *,
    host: str = "127.0.0.1",
    days: float = 90,
    self_signed: bool = False,
    expired: bool = False,
) -> Issued:
    """A server certificate for ``host``: from a fresh test CA, or self-signed; ``expired`` ended yesterday."""
    now = datetime.now(UTC)
    start, end = (
        (now - timedelta(days=30), now - timedelta(days=1))
        if expired
        else (now - timedelta(hours=1), now + timedelta(days=days))
    )
    key = ec.generate_private_key(ec.SECP256R1())
    ca_key = key if self_signed else ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(host) if self_signed else _name("doctor test CA")
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(host))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName([_alt(host)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=self_signed, path_length=None), critical=True)
    )
    cert_path, key_path = _write(directory, "server", builder.sign(ca_key, hashes.SHA256()), key)
    if self_signed:
        return Issued(cert_path, key_path)
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=60))
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, _ = _write(directory, "ca", ca, ca_key)
    return Issued(cert_path, key_path, ca_path)


def _ca(
    name: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name, signer: ec.EllipticCurvePrivateKey
) -> x509.Certificate:
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(signer, hashes.SHA256())
    )


def make_chain(directory: Path, *, send_intermediate: bool, host: str = "127.0.0.1") -> Issued:
    """root -> intermediate -> server; the server's file holds the intermediate too when ``send_intermediate``."""
    root_key, middle_key, key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    root = _ca("doctor test root", root_key, _name("doctor test root"), root_key)
    middle = _ca("doctor test intermediate", middle_key, root.subject, root_key)
    now = datetime.now(UTC)
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name(host))
        .issuer_name(middle.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=90))
        .add_extension(x509.SubjectAlternativeName([_alt(host)]), critical=False)
        .sign(middle_key, hashes.SHA256())
    )
    cert_path, key_path = _write(directory, "server", leaf, key)
    if send_intermediate:
        cert_path.write_bytes(cert_path.read_bytes() + middle.public_bytes(serialization.Encoding.PEM))
    root_path, _ = _write(directory, "root", root, root_key)
    return Issued(cert_path, key_path, root_path)


# Loopback servers ---------------------------------------------------------------------------------


@dataclass
class Script:
    """How the fake registry answers: a status per method, extra headers, 200 for a bearer token."""

    status: dict[str, int] = field(default_factory=lambda: {"GET": 401, "OPTIONS": 401})
    headers: list[tuple[str, str]] = field(default_factory=list)
    accept_bearer: bool = True
    date: Callable[[], str] | None = None
    seen: list[dict[str, str]] = field(default_factory=list)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


@contextmanager
def serve(handler: type[http.server.BaseHTTPRequestHandler], context: ssl.SSLContext | None = None) -> Iterator[str]:
    """Run ``handler`` on a free loopback port (TLS with ``context``); yield its base URL."""
    server = _Server(("127.0.0.1", 0), handler)
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"{'https' if context else 'http'}://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def fake_registry(script: Script) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def date_time_string(self, timestamp: float | None = None) -> str:
            return script.date() if script.date else super().date_time_string(timestamp)

        def _answer(self) -> None:
            script.seen.append({k.lower(): v for k, v in self.headers.items()})
            status = script.status.get(self.command, 405)
            if script.accept_bearer and self.headers.get("Authorization", "").startswith("Bearer "):
                status = 200
            body = b"{}"
            self.send_response(status)
            self.send_header("Docker-Distribution-Api-Version", "registry/2.0")
            for name, value in script.headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_OPTIONS = do_HEAD = _answer

    return Handler


@dataclass
class ProxyRules:
    """What the test proxy does to what passes: drop Authorization, shift Date, answer 429, answer preflights."""

    drop_authorization: bool = False
    date_shift: timedelta = timedelta(0)
    too_many: str | None = None  # a Retry-After value: answer 429 to everything
    answer_preflight: bool = False


def forwarding_proxy(upstream: str, rules: ProxyRules) -> type[http.server.BaseHTTPRequestHandler]:
    """A small reverse proxy to ``upstream`` (plain http), with ``rules`` applied."""
    target = urlsplit(upstream)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _forward(self) -> None:
            if rules.too_many is not None:
                self._reply(429, [("Retry-After", rules.too_many)], b"too many requests\n")
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() not in {"connection", "keep-alive"}}
            if rules.drop_authorization:
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
            length = int(self.headers.get("Content-Length") or 0)
            upstream_connection = http.client.HTTPConnection(target.hostname, target.port, timeout=10)
            upstream_connection.request(self.command, self.path, self.rfile.read(length) if length else None, headers)
            response = upstream_connection.getresponse()
            body = response.read()
            upstream_connection.close()
            kept = [(k, v) for k, v in response.getheaders() if k.lower() not in HOP_HEADERS]
            date = parsedate_to_datetime(response.getheader("Date")) + rules.date_shift
            kept.append(("Date", format_datetime(date.astimezone(UTC), usegmt=True)))
            status = response.status
            if rules.answer_preflight and self.command == "OPTIONS":
                status, body = 204, b""
            self._reply(status, kept, body)

        def _reply(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
            self.send_response_only(status)
            for name, value in headers:
                self.send_header(name, value)
            if not any(name.lower() == "date" for name, _ in headers):
                self.send_header("Date", self.date_time_string())
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_OPTIONS = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

    return Handler


def tls_context(issued: Issued) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(issued.cert, issued.key)
    return context


# Targets ------------------------------------------------------------------------------------------


def target_for(url: str, *, direct: str = "", origin: str = "", mode: str = AuthMode.TOKEN) -> Target:
    registry, _ = Registry.objects.update_or_create(
        service="registry", defaults={"url": direct or url, "auth_mode": mode}
    )
    return Target(registry=registry, url=url, direct_url=direct or url, origin=origin)


def run(module: object, target: Target) -> Check:
    found = module.check(target, State())  # type: ignore[attr-defined]
    assert found.id == module.__name__.rsplit(".", 1)[1]  # type: ignore[attr-defined]
    return found


def text(found: Check) -> str:
    return "\n".join([found.summary, *found.evidence, *found.fix])


pytestmark = pytest.mark.django_db


# tls ----------------------------------------------------------------------------------------------


def test_tls_warns_on_plain_http_with_the_insecure_registry_settings() -> None:
    with serve(fake_registry(Script())) as url:
        found = run(tls, target_for(url))
    assert found.status == "warn"
    host = urlsplit(url).netloc
    assert f'"insecure-registries": ["{host}"]' in text(found)
    assert "/etc/docker/daemon.json" in text(found)
    assert "--tls-verify=false" in text(found) and "--plain-http" in text(found)


def test_tls_fails_on_an_expired_certificate(tmp_path: Path) -> None:
    issued = make_certificate(tmp_path, expired=True)
    with serve(fake_registry(Script()), tls_context(issued)) as url:
        found = run(tls, target_for(url))
    assert found.status == "fail"
    assert "expired" in found.summary
    assert "http.tls.certificate" in text(found)


def test_tls_fails_on_a_self_signed_certificate_and_names_the_certs_d_files(tmp_path: Path) -> None:
    issued = make_certificate(tmp_path, self_signed=True)
    with serve(fake_registry(Script()), tls_context(issued)) as url:
        found = run(tls, target_for(url))
    host = urlsplit(url).netloc
    assert found.status == "fail"
    assert "self-signed" in found.summary
    assert f"/etc/docker/certs.d/{host}/ca.crt" in text(found)
    assert f"/etc/containers/certs.d/{host}/ca.crt" in text(found)
    assert f"/etc/containerd/certs.d/{host}/hosts.toml" in text(found)
    assert f'[host."https://{host}"]' in text(found)


def test_tls_fails_on_an_unknown_ca_and_mentions_the_chain(tmp_path: Path) -> None:
    issued = make_certificate(tmp_path)
    with serve(fake_registry(Script()), tls_context(issued)) as url:
        found = run(tls, target_for(url))
    assert found.status == "fail"
    assert "not trusted here" in found.summary and "doctor test CA" in found.summary
    assert "full chain" in text(found)
    assert "certificates the server sends: 1" in found.evidence


def test_tls_fails_on_an_incomplete_chain_and_asks_for_the_intermediates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    issued = make_chain(tmp_path, send_intermediate=False)
    monkeypatch.setenv("SSL_CERT_FILE", str(issued.ca))  # the root is trusted; the intermediate is not sent
    with serve(fake_registry(Script()), tls_context(issued)) as url:
        found = run(tls, target_for(url))
    assert found.status == "fail"
    assert "sends no intermediate" in found.summary and "incomplete chain" in found.summary
    assert "put the full chain (the certificate, then its intermediates)" in text(found)


def test_tls_is_ok_once_the_intermediate_is_served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    issued = make_chain(tmp_path, send_intermediate=True)
    monkeypatch.setenv("SSL_CERT_FILE", str(issued.ca))
    with serve(fake_registry(Script()), tls_context(issued)) as url:
        found = run(tls, target_for(url))
    assert found.status == "ok", text(found)
    assert "certificates the server sends: 2" in found.evidence


def test_tls_fails_on_a_full_chain_from_an_unknown_root(tmp_path: Path) -> None:
    issued = make_chain(tmp_path, send_intermediate=True)
    with serve(fake_registry(Script()), tls_context(issued)) as url:
        found = run(tls, target_for(url))
    assert found.status == "fail"
    assert "ends at CN=doctor test root, which is not trusted here" in found.summary


def test_tls_fails_on_a_certificate_for_another_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    issued = make_certificate(tmp_path, host="registry.example.org")
    monkeypatch.setenv("SSL_CERT_FILE", str(issued.ca))
    with serve(fake_registry(Script()), tls_context(issued)) as url:
        found = run(tls, target_for(url))
    assert found.status == "fail"
    assert "not valid for 127.0.0.1" in found.summary and "DNS:registry.example.org" in found.summary
    assert "IP:127.0.0.1" in text(found)


def test_tls_warns_when_the_certificate_expires_within_30_days(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    issued = make_certificate(tmp_path, days=10)
    monkeypatch.setenv("SSL_CERT_FILE", str(issued.ca))
    with serve(fake_registry(Script()), tls_context(issued)) as url:
        found = run(tls, target_for(url))
    assert found.status == "warn"
    assert "expires in 10 days" in found.summary


def test_tls_is_ok_with_a_trusted_certificate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    issued = make_certificate(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(issued.ca))
    with serve(fake_registry(Script()), tls_context(issued)) as url:
        found = run(tls, target_for(url))
    assert found.status == "ok", text(found)
    assert "verified here: yes" in found.evidence


def test_tls_is_ok_once_the_ca_is_in_certs_d(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    issued = make_certificate(tmp_path / "certs", self_signed=True)
    monkeypatch.setattr(tls, "CERTS_DIRS", (tmp_path / "docker" / "certs.d",))
    with serve(fake_registry(Script()), tls_context(issued)) as url:
        target = target_for(url)
        assert run(tls, target).status == "fail"
        ca_file = tmp_path / "docker" / "certs.d" / urlsplit(url).netloc / "ca.crt"
        ca_file.parent.mkdir(parents=True)
        ca_file.write_bytes(issued.cert.read_bytes())
        found = run(tls, target)
    assert found.status == "ok", text(found)
    assert str(ca_file) in found.summary


def test_tls_fails_when_the_https_port_speaks_plain_http() -> None:
    with serve(fake_registry(Script())) as url:
        found = run(tls, target_for(url.replace("http://", "https://")))
    assert found.status == "fail"
    assert "no TLS handshake" in found.summary


# clock --------------------------------------------------------------------------------------------


def _shifted(seconds: float) -> Callable[[], str]:
    return lambda: format_datetime(datetime.now(UTC) + timedelta(seconds=seconds), usegmt=True)


@pytest.mark.parametrize(
    ("shift", "status"), [(0, "ok"), (45, "warn"), (-45, "warn"), (600, "fail"), (-600, "fail"), (-275, "fail")]
)
def test_clock_compares_our_clock_with_the_registry_date(shift: float, status: str) -> None:
    with serve(fake_registry(Script(date=_shifted(shift)))) as url:
        found = run(clock, target_for(url))
    assert found.status == status, text(found)
    assert any(line.startswith("our clock: ") for line in found.evidence)
    assert any(line.startswith("the registry's Date: ") for line in found.evidence)
    assert any(line.startswith("skew: ") for line in found.evidence)
    assert "expires_in 300 s" in text(found)
    if status != "ok":
        assert "chrony" in text(found) or "NTP" in text(found)


def test_clock_warns_without_a_date_header() -> None:
    with serve(fake_registry(Script(date=lambda: "not a date"))) as url:
        found = run(clock, target_for(url))
    assert found.status == "warn"
    assert "Date" in found.summary


def test_clock_fails_below_60_seconds_of_token_life(settings: object) -> None:
    settings.TOKEN_TTL = 30  # type: ignore[attr-defined]
    with serve(fake_registry(Script())) as url:
        found = run(clock, target_for(url))
    assert found.status == "fail"
    assert "TOKEN_TTL" in text(found)


def test_clock_skips_an_unreachable_registry() -> None:
    with serve(fake_registry(Script())) as url:
        pass
    assert run(clock, target_for(url)).status == "skip"


# proxy --------------------------------------------------------------------------------------------


def test_proxy_without_url_is_ok_when_the_registry_answers() -> None:
    with serve(fake_registry(Script())) as url:
        found = run(proxy, target_for(url))
    assert found.status == "ok"
    assert found.evidence == ["GET /v2/: 401"]


def test_proxy_without_url_fails_naming_an_unreachable_host_and_port() -> None:
    with serve(fake_registry(Script())) as url:
        pass
    found = run(proxy, target_for(url))
    host = urlsplit(url).netloc
    assert found.status == "fail"
    assert host in found.summary
    assert "firewall" in text(found)


def test_proxy_that_drops_authorization_fails_with_the_nginx_lines() -> None:
    script = Script()
    with (
        serve(fake_registry(script)) as registry_url,
        serve(forwarding_proxy(registry_url, ProxyRules(drop_authorization=True))) as proxy_url,
    ):
        found = run(proxy, target_for(proxy_url, direct=registry_url))
    assert found.status == "fail", text(found)
    assert "drops Authorization or rewrites Host" in found.summary
    assert "directly 200, through --url 401" in found.evidence[0]
    for line in proxy.NGINX_LINES:
        assert line in text(found)
    assert "Bearer" not in text(found)  # the probe token is never shown
    assert script.seen[0]["authorization"].startswith("Bearer ")


def test_proxy_that_forwards_authorization_is_ok() -> None:
    with (
        serve(fake_registry(Script())) as registry_url,
        serve(forwarding_proxy(registry_url, ProxyRules())) as proxy_url,
    ):
        found = run(proxy, target_for(proxy_url, direct=registry_url))
    assert found.status == "ok", text(found)
    assert "directly 200, through --url 200" in found.evidence[0]


def test_proxy_fails_naming_an_unreachable_proxy() -> None:
    with serve(fake_registry(Script())) as gone:
        pass
    with serve(fake_registry(Script())) as registry_url:
        found = run(proxy, target_for(gone, direct=registry_url))
    assert found.status == "fail"
    assert urlsplit(gone).netloc in found.summary and "--url" in found.summary


def test_proxy_in_htpasswd_mode_compares_plain_answers_without_a_token() -> None:
    script = Script(accept_bearer=False)
    with (
        serve(fake_registry(script)) as registry_url,
        serve(forwarding_proxy(registry_url, ProxyRules(drop_authorization=True))) as proxy_url,
    ):
        found = run(proxy, target_for(proxy_url, direct=registry_url, mode=AuthMode.HTPASSWD))
    assert found.status == "ok"
    assert "without credentials" in found.evidence[0]
    assert all("authorization" not in seen for seen in script.seen)


# cors ---------------------------------------------------------------------------------------------

CORS_HEADERS = [
    ("Access-Control-Allow-Origin", ORIGIN),
    ("Access-Control-Allow-Methods", "HEAD"),
    ("Access-Control-Allow-Methods", "GET"),
    ("Access-Control-Allow-Headers", "Authorization"),
    ("Access-Control-Allow-Headers", "Accept"),
    ("Access-Control-Expose-Headers", "Docker-Content-Digest"),
]


def test_cors_skips_without_an_origin() -> None:
    with serve(fake_registry(Script())) as url:
        assert run(cors, target_for(url)).status == "skip"


def test_cors_warns_without_headers_and_gives_the_registry_lines() -> None:
    script = Script()
    with serve(fake_registry(script)) as url:
        found = run(cors, target_for(url, origin=ORIGIN))
    assert found.status == "warn"
    assert "no Access-Control-Allow-Origin" in found.summary
    assert f"    Access-Control-Allow-Origin: ['{ORIGIN}']" in found.fix
    assert "    Access-Control-Allow-Headers: ['Authorization', 'Accept', 'Cache-Control']" in found.fix
    assert "    Access-Control-Expose-Headers: ['Docker-Content-Digest']" in found.fix
    preflight = script.seen[0]
    assert preflight["origin"] == ORIGIN
    assert preflight["access-control-request-method"] == "GET"
    assert preflight["access-control-request-headers"] == "Authorization"


def test_cors_warns_when_allow_headers_lacks_authorization() -> None:
    headers = [("Access-Control-Allow-Origin", "*"), ("Access-Control-Allow-Headers", "*")]
    with serve(fake_registry(Script(status={"GET": 401, "OPTIONS": 200}, headers=headers))) as url:
        found = run(cors, target_for(url, origin=ORIGIN))
    assert found.status == "warn"
    assert "lacks Authorization" in found.summary


def test_cors_warns_when_the_preflight_is_refused_with_401_despite_the_headers() -> None:
    with serve(fake_registry(Script(headers=CORS_HEADERS))) as url:
        found = run(cors, target_for(url, origin=ORIGIN))
    assert found.status == "warn"
    assert "preflight is answered 401" in found.summary
    assert "    return 204;" in found.fix


def test_cors_is_ok_with_the_headers_and_a_2xx_preflight() -> None:
    with serve(fake_registry(Script(status={"GET": 401, "OPTIONS": 204}, headers=CORS_HEADERS))) as url:
        found = run(cors, target_for(url, origin=ORIGIN))
    assert found.status == "ok", text(found)


# rate_limit ---------------------------------------------------------------------------------------


def test_rate_limit_is_ok_without_429_and_without_holds() -> None:
    script = Script()
    with serve(fake_registry(script)) as url:
        found = run(rate_limit, target_for(url))
    assert found.status == "ok"
    assert len(script.seen) == 3
    assert "our own limits hold no one right now" in found.evidence


def test_rate_limit_fails_on_a_429_from_a_proxy_with_retry_after() -> None:
    with (
        serve(fake_registry(Script())) as registry_url,
        serve(forwarding_proxy(registry_url, ProxyRules(too_many="120"))) as proxy_url,
    ):
        found = run(rate_limit, target_for(proxy_url, direct=registry_url))
    assert found.status == "fail"
    assert "Retry-After: 120" in found.summary
    assert "a proxy in front of the registry" in found.summary
    assert "limit_req" in text(found)


def test_rate_limit_names_the_registry_when_it_answers_429_itself() -> None:
    script = Script(status={"GET": 429}, headers=[("Retry-After", "7")], accept_bearer=False)
    with serve(fake_registry(script)) as url:
        found = run(rate_limit, target_for(url))
    assert found.status == "fail"
    assert found.summary.startswith("the registry answers 429")


def test_rate_limit_warns_while_our_own_limits_hold_clients() -> None:
    now = timezone.now()
    AuthHold.objects.create(
        key="user:x", scope=HoldScope.USER, username="carol", ip="192.0.2.7", held_until=now + timedelta(minutes=5)
    )
    AuthHold.objects.create(
        key="address:y", scope=HoldScope.ADDRESS, ip="192.0.2.8", held_until=now - timedelta(minutes=5)
    )
    with serve(fake_registry(Script())) as url:
        found = run(rate_limit, target_for(url))
    assert found.status == "warn"
    assert "our own limits hold 1 client" in found.summary
    assert "  carol from 192.0.2.7 until" in "\n".join(found.evidence)
    assert "192.0.2.8" not in text(found)
    assert "lift_limit" in text(found)
