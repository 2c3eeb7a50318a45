"""The doctor's HTTP checks against Debian's real docker-registry, each failure reproduced and its fix applied.

A token-mode registry trusts our signing keys (the bundle we publish); in front of it, the test's
forwarding proxy drops ``Authorization``, shifts ``Date`` by ten minutes or answers 429. TLS is the
registry's own (``http.tls``) with certificates made here: expired, self-signed, then renewed or
trusted through ``certs.d``. CORS is the registry's ``http.headers``, and Chromium, calling from a
page at the origin, agrees with each cors verdict. A healthy registry gives no fail, and
``manage.py doctor --format json`` says the same as the checks called directly.
"""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.conf import settings

from accounts import services
from accounts.models import Registry
from accounts.registry import keys
from accounts.registry.doctor import Target
from accounts.registry.doctor.checks import clock, cors, proxy, rate_limit, tls
from accounts.registry.doctor.model import Check, State
from tests.conftest import REPO_ROOT
from tests.harness import require_binary
from tests.harness.registry import RegistryServer
from tests.ops.test_browser import browser  # noqa: F401 - the Chromium fixture
from tests.registry.test_doctor_http_checks import (
    ORIGIN,
    ProxyRules,
    forwarding_proxy,
    make_certificate,
    serve,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
MINE = (tls, clock, proxy, cors, rate_limit)
SERVICE = "registry"


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    """Our published certificate bundle, as the registry's rootcertbundle."""
    services.ensure_keys()
    path = tmp_path / "bundle.pem"
    path.write_text(keys.bundle_pem())
    return path


def token_auth(bundle: Path) -> dict[str, Any]:
    realm = "http://127.0.0.1:9/auth/token"  # never asked: the probes carry their token already
    return {
        "auth": {
            "token": {
                "realm": realm,
                "service": SERVICE,
                "issuer": settings.TOKEN_ISSUER,
                "rootcertbundle": str(bundle),
            }
        }
    }


@pytest.fixture
def registry(bundle: Path) -> Iterator[RegistryServer]:
    require_binary("docker-registry")
    with RegistryServer(token_auth(bundle)) as server:
        yield server


def target(url: str, direct: str = "", origin: str = "") -> Target:
    row, _ = Registry.objects.update_or_create(service=SERVICE, defaults={"url": direct or url})
    return Target(registry=row, url=url, direct_url=direct or url, origin=origin)


def statuses(found: Target) -> dict[str, Check]:
    return {module.__name__.rsplit(".", 1)[1]: module.check(found, State()) for module in MINE}


def test_a_healthy_registry_gives_no_fail(registry: RegistryServer) -> None:
    found = statuses(target(registry.url, origin=""))
    assert {name: check.status for name, check in found.items()} == {
        "tls": "warn",  # plain http: the insecure-registries advice
        "clock": "ok",
        "proxy": "ok",
        "cors": "skip",
        "rate_limit": "ok",
    }, {name: check.summary for name, check in found.items()}


def test_a_proxy_that_drops_authorization_fails_and_one_that_forwards_it_is_ok(registry: RegistryServer) -> None:
    with serve(forwarding_proxy(registry.url, ProxyRules(drop_authorization=True))) as dropping:
        broken = proxy.check(target(dropping, direct=registry.url), State())
    assert broken.status == "fail", broken
    assert broken.evidence == ["GET /v2/ with a probe token: directly 200, through --url 401"]
    assert "proxy_set_header Authorization $http_authorization;" in "\n".join(broken.fix)
    with serve(forwarding_proxy(registry.url, ProxyRules())) as forwarding:
        fixed = proxy.check(target(forwarding, direct=registry.url), State())
    assert fixed.status == "ok", fixed
    assert fixed.evidence == ["GET /v2/ with a probe token: directly 200, through --url 200"]


def test_a_date_ten_minutes_off_fails_the_clock(registry: RegistryServer) -> None:
    with serve(forwarding_proxy(registry.url, ProxyRules(date_shift=timedelta(minutes=10)))) as shifted:
        broken = clock.check(target(shifted, direct=registry.url), State())
    assert broken.status == "fail", broken
    assert "skew: +600 s" in "\n".join(broken.evidence) or "skew: +599 s" in "\n".join(broken.evidence)
    assert "chrony" in "\n".join(broken.fix)
    assert clock.check(target(registry.url), State()).status == "ok"


def test_a_429_in_front_of_the_registry_fails_rate_limit_with_retry_after(registry: RegistryServer) -> None:
    with serve(forwarding_proxy(registry.url, ProxyRules(too_many="30"))) as limiting:
        broken = rate_limit.check(target(limiting, direct=registry.url), State())
        through = proxy.check(target(limiting, direct=registry.url), State())
    assert broken.status == "fail", broken
    assert "Retry-After: 30" in broken.summary and "a proxy in front of the registry" in broken.summary
    assert through.status == "warn"  # not blamed on Authorization: the 429 is rate_limit's finding


def test_cors_warns_without_headers_and_the_fix_applied_is_ok(bundle: Path) -> None:
    require_binary("docker-registry")
    with RegistryServer(token_auth(bundle)) as bare:
        missing = cors.check(target(bare.url, origin=ORIGIN), State())
    assert missing.status == "warn", missing
    assert "no Access-Control-Allow-Origin" in missing.summary
    headers = _headers_from_fix(missing.fix)
    assert headers["Access-Control-Allow-Origin"] == [ORIGIN]
    with RegistryServer(token_auth(bundle) | {"http": {"headers": headers}}) as fixed:
        preflight_refused = cors.check(target(fixed.url, origin=ORIGIN), State())
        # Seen here: registry 2.8 answers the preflight 401 (auth comes first), headers or not.
        assert preflight_refused.status == "warn", preflight_refused
        assert "preflight is answered 401" in preflight_refused.summary
        with serve(forwarding_proxy(fixed.url, ProxyRules(answer_preflight=True))) as answering:
            ok = cors.check(target(answering, direct=fixed.url, origin=ORIGIN), State())
    assert ok.status == "ok", ok


class UiPage(http.server.BaseHTTPRequestHandler):
    """The browser UI's origin: one empty page, from which the test's script calls the registry."""

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        body = b"<!doctype html><title>registry ui</title>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


CALL_WITH_AUTHORIZATION = """async (url) => {
  try {
    const answer = await fetch(url, {headers: {Authorization: "Basic dWk6dWk="}});
    return `answered ${answer.status}`;
  } catch (error) {
    return `refused: ${error}`;
  }
}"""


def test_cors_verdicts_are_what_chromium_does(bundle: Path, browser: Any) -> None:  # noqa: F811 - the fixture
    """warn: Chromium refuses the call (no headers; headers but a 401 preflight); ok: the call goes through."""
    require_binary("docker-registry")
    with serve(UiPage) as origin:
        page = browser.new_page()
        page.goto(f"{origin}/")
        with RegistryServer(token_auth(bundle)) as bare:
            doctor_says = cors.check(target(bare.url, origin=origin), State())
            browser_says = page.evaluate(CALL_WITH_AUTHORIZATION, f"{bare.url}/v2/")
        assert (doctor_says.status, browser_says) == ("warn", "refused: TypeError: Failed to fetch")
        headers = _headers_from_fix(doctor_says.fix)
        with RegistryServer(token_auth(bundle) | {"http": {"headers": headers}}) as fixed:
            doctor_says = cors.check(target(fixed.url, origin=origin), State())
            browser_says = page.evaluate(CALL_WITH_AUTHORIZATION, f"{fixed.url}/v2/")
            assert (doctor_says.status, browser_says) == ("warn", "refused: TypeError: Failed to fetch")
            with serve(forwarding_proxy(fixed.url, ProxyRules(answer_preflight=True))) as answering:
                doctor_says = cors.check(target(answering, direct=fixed.url, origin=origin), State())
                browser_says = page.evaluate(CALL_WITH_AUTHORIZATION, f"{answering}/v2/")
        assert (doctor_says.status, browser_says) == ("ok", "answered 401")


def _headers_from_fix(fix: list[str]) -> dict[str, list[str]]:
    """The ``http: headers:`` lines of the fix, read back as YAML, exactly as an operator would paste them."""
    start = fix.index("http:")
    block = "\n".join(line for line in fix[start:] if line.startswith(("http:", "  ")))
    return yaml.safe_load(block)["http"]["headers"]


def _tls_registry(bundle: Path, cert: Path, key: Path) -> RegistryServer:
    return RegistryServer(token_auth(bundle) | {"http": {"tls": {"certificate": str(cert), "key": str(key)}}})


def _tls_check(server: RegistryServer) -> Check:
    # The harness waited for any answer on http://: Go answers plain HTTP on a TLS port with a 400.
    return tls.check(target(f"https://{server.host}"), State())


def test_tls_expired_fails_and_a_renewed_certificate_is_ok(
    bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_binary("docker-registry")
    expired = make_certificate(tmp_path / "expired", expired=True)
    with _tls_registry(bundle, expired.cert, expired.key) as server:
        broken = _tls_check(server)
    assert broken.status == "fail", broken
    assert "expired" in broken.summary
    renewed = make_certificate(tmp_path / "renewed")
    monkeypatch.setenv("SSL_CERT_FILE", str(renewed.ca))  # the renewed one comes from a CA this host trusts
    with _tls_registry(bundle, renewed.cert, renewed.key) as server:
        fixed = _tls_check(server)
    assert fixed.status == "ok", fixed


def test_tls_self_signed_fails_and_its_ca_in_certs_d_is_ok(
    bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_binary("docker-registry")
    issued = make_certificate(tmp_path / "self", self_signed=True)
    certs_d = tmp_path / "etc-docker-certs.d"
    monkeypatch.setattr(tls, "CERTS_DIRS", (certs_d,))
    with _tls_registry(bundle, issued.cert, issued.key) as server:
        broken = _tls_check(server)
        assert broken.status == "fail", broken
        assert "self-signed" in broken.summary
        assert f"/etc/docker/certs.d/{server.host}/ca.crt" in "\n".join(broken.fix)
        (certs_d / server.host).mkdir(parents=True)
        (certs_d / server.host / "ca.crt").write_bytes(issued.cert.read_bytes())
        fixed = _tls_check(server)
    assert fixed.status == "ok", fixed


def test_manage_py_doctor_reports_the_dropping_proxy_as_json(
    registry: RegistryServer, subprocess_env: dict[str, str]
) -> None:
    target(registry.url)  # the registry row, committed for the subprocess
    with serve(forwarding_proxy(registry.url, ProxyRules(drop_authorization=True))) as dropping:
        result = subprocess.run(
            [sys.executable, "manage.py", "doctor", "--url", dropping, "--origin", ORIGIN, "--format", "json"],
            cwd=REPO_ROOT,
            env=subprocess_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["registry"] == SERVICE and report["url"] == dropping
    found = {check["id"]: check for check in report["checks"]}
    assert list(found) == [
        "auth_settings",
        "token_trust",
        "tls",
        "roles",
        "clock",
        "proxy",
        "cors",
        "rate_limit",
    ]
    assert found["proxy"]["status"] == "fail"
    assert found["cors"]["status"] == "warn"
    assert found["clock"]["status"] == "ok" and found["rate_limit"]["status"] == "ok"
    assert "Bearer ey" not in result.stdout  # no token in the report
