"""Every response is hardened: the same headers on every URL for every persona, and cookies that scripts
and other sites cannot use. https is believed only from a trusted proxy.

The URL x persona matrix is test_url_matrix's: each persona GETs and POSTs every dashboard URL there,
then the pages that are not dashboard pages (sign-in, token endpoint, notifications, health) and the
error answers (404, 405, 400 and 413 from the request guards).
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.test import Client, RequestFactory, override_settings
from django.urls import reverse

from registryadmin.middleware import RequestContextMiddleware
from tests.conftest import PASSWORD, REPO_ROOT, make_user
from tests.web.test_url_matrix import PERSONAS, TABLE, world  # noqa: F401  (world: the matrix's fixture)

pytestmark = pytest.mark.django_db

PROXY = "10.9.8.7"  # only ever a REMOTE_ADDR in the test client's environ: no traffic goes anywhere
STRANGER = "203.0.113.9"
HSTS = 31536000
HTTPS_SETTINGS: dict[str, object] = {
    "TRUSTED_PROXIES": [ipaddress.ip_network(f"{PROXY}/32")],
    # What PUBLIC_URL=https://... sets at import time (see test_public_url_https_turns_on_hsts_...).
    "SECURE_HSTS_SECONDS": HSTS,
    "SESSION_COOKIE_SECURE": True,
    "CSRF_COOKIE_SECURE": True,
}


def directives(policy: str) -> dict[str, list[str]]:
    parsed: dict[str, list[str]] = {}
    for part in policy.split(";"):
        if part.strip():
            name, *sources = part.split()
            parsed[name] = sources
    return parsed


def assert_hardened(response: HttpResponse, where: str) -> None:
    csp = directives(response.get("Content-Security-Policy", ""))
    script_src = csp.get("script-src", csp.get("default-src"))
    assert script_src, f"{where}: no Content-Security-Policy script-src"
    assert "'unsafe-inline'" not in script_src and "'unsafe-eval'" not in script_src, f"{where}: {script_src}"
    assert csp.get("frame-ancestors") == ["'none'"] and csp.get("object-src") == ["'none'"], where
    assert response.get("X-Frame-Options") == "DENY", where
    assert response.get("Referrer-Policy") == "same-origin", where
    assert response.get("X-Content-Type-Options") == "nosniff", where
    assert response.get("Cross-Origin-Opener-Policy") == "same-origin", where
    for name, morsel in response.cookies.items():
        assert morsel["samesite"] == "Lax", f"{where}: cookie {name} is SameSite={morsel['samesite']!r}"
        if not morsel.value:
            continue  # a deletion carries nothing a script could steal
        expected = settings.CSRF_COOKIE_HTTPONLY if name == settings.CSRF_COOKIE_NAME else True
        assert bool(morsel["httponly"]) is expected, f"{where}: cookie {name} HttpOnly={morsel['httponly']!r}"


def _send(client: Client, method: str, url: str) -> HttpResponse:
    return client.get(url) if method == "GET" else client.post(url)


@pytest.mark.parametrize("persona", PERSONAS)
def test_every_dashboard_response_carries_the_security_headers(world: dict, persona: str) -> None:  # noqa: F811
    client = Client()
    if persona != "anonymous":
        client.force_login(world[persona])
    for name, row in TABLE.items():
        url = reverse(name, kwargs=row.kwargs(world))
        for method in ("GET", "POST"):
            assert_hardened(_send(client, method, url), f"{persona} {method} {url}")


def test_pages_that_are_not_dashboard_pages_and_error_answers_carry_them_too(db: None) -> None:
    make_user("carol")
    client = Client()
    answers: dict[str, Callable[[], HttpResponse]] = {
        "sign-in page": lambda: client.get(reverse("accounts:login")),
        "wrong password": lambda: client.post(reverse("accounts:login"), {"username": "carol", "password": "no"}),
        "sign-in": lambda: client.post(reverse("accounts:login"), {"username": "carol", "password": PASSWORD}),
        "signed-in home": lambda: client.get(reverse("accounts:home")),
        "sign-out": lambda: client.post(reverse("accounts:logout")),
        "health": lambda: client.get(reverse("healthz")),
        "token endpoint": lambda: client.get(reverse("token"), {"service": "registry"}),
        "notifications": lambda: client.post(reverse("registry_events", kwargs={"service": "nope"})),
        "404": lambda: client.get("/no/such/page/"),
        "405": lambda: client.get(reverse("accounts:logout")),
        "400 (NUL)": lambda: client.get("/manage/users/a%00b/"),
        "413": lambda: client.post("/login/", b"x", content_type="text/plain", CONTENT_LENGTH="999999999"),
    }
    for where, send in answers.items():
        assert_hardened(send(), where)


def test_signing_in_sets_an_httponly_lax_session_cookie(db: None) -> None:
    make_user("carol")
    client = Client()
    page = client.get(reverse("accounts:login"))
    assert settings.CSRF_COOKIE_NAME in page.cookies
    response = client.post(reverse("accounts:login"), {"username": "carol", "password": PASSWORD})
    session = response.cookies[settings.SESSION_COOKIE_NAME]
    assert session.value and session["httponly"] is True and session["samesite"] == "Lax"
    assert not session["secure"]  # plain http in tests: PUBLIC_URL is http
    assert "Strict-Transport-Security" not in response


@override_settings(**HTTPS_SETTINGS)
def test_https_through_a_trusted_proxy_gets_hsts_and_secure_cookies(db: None) -> None:
    make_user("carol")
    client = Client(REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_PROTO="https")
    page = client.get(reverse("accounts:login"))
    assert page["Strict-Transport-Security"] == f"max-age={HSTS}"
    assert page.cookies[settings.CSRF_COOKIE_NAME]["secure"] is True
    response = client.post(reverse("accounts:login"), {"username": "carol", "password": PASSWORD})
    assert response.status_code == 302 and response["Strict-Transport-Security"] == f"max-age={HSTS}"
    session = response.cookies[settings.SESSION_COOKIE_NAME]
    assert session["secure"] is True and session["httponly"] is True and session["samesite"] == "Lax"
    assert_hardened(response, "https sign-in")


@override_settings(**HTTPS_SETTINGS)
@pytest.mark.parametrize(
    ("remote_addr", "forwarded_proto"),
    [(STRANGER, "https"), (PROXY, "http"), (PROXY, "https, http"), (STRANGER, "http, https")],
)
def test_https_is_not_believed_from_a_stranger_or_when_the_nearest_proxy_says_http(
    db: None, remote_addr: str, forwarded_proto: str
) -> None:
    response = Client(REMOTE_ADDR=remote_addr, HTTP_X_FORWARDED_PROTO=forwarded_proto).get(reverse("accounts:login"))
    assert response.status_code == 200
    assert "Strict-Transport-Security" not in response
    seen: list[bool] = []

    def view(request: HttpRequest) -> HttpResponse:
        seen.append(request.is_secure())
        return HttpResponse()

    request = RequestFactory().get("/", REMOTE_ADDR=remote_addr, HTTP_X_FORWARDED_PROTO=forwarded_proto)
    RequestContextMiddleware(view)(request)
    assert seen == [False]


@override_settings(**HTTPS_SETTINGS)
def test_the_trusted_proxy_marks_the_request_itself_secure() -> None:
    seen: list[bool] = []

    def view(request: HttpRequest) -> HttpResponse:
        seen.append(request.is_secure())
        return HttpResponse()

    RequestContextMiddleware(view)(RequestFactory().get("/", REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_PROTO="https"))
    assert seen == [True]


PROBE = (
    "import json, django; from django.conf import settings; django.setup(); "
    "print(json.dumps({'hsts': settings.SECURE_HSTS_SECONDS, 'session': settings.SESSION_COOKIE_SECURE, "
    "'csrf': settings.CSRF_COOKIE_SECURE}))"
)


def _settings_for(public_url: str, tmp_path: Path) -> dict[str, object]:
    """settings.py decides https-ness once, at import, from PUBLIC_URL: load it fresh in a subprocess."""
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "TEST_DATABASE_URL", "HSTS_SECONDS"}}
    env.update(DJANGO_SETTINGS_MODULE="registryadmin.settings", DATA_DIR=str(tmp_path), PUBLIC_URL=public_url)
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_public_url_https_turns_on_hsts_and_secure_cookies_and_http_leaves_them_off(tmp_path: Path) -> None:
    assert _settings_for("https://registry-admin.example.org", tmp_path) == {
        "hsts": HSTS,
        "session": True,
        "csrf": True,
    }
    assert _settings_for("http://127.0.0.1:8000", tmp_path) == {"hsts": 0, "session": False, "csrf": False}
