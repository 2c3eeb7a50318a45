"""Failure limits through two real gunicorn workers: the attacker's address is held, the real user gets in.

The attacker speaks from 127.0.0.2 and the real user from 127.0.0.1 (both loopback), on fresh
connections, so both workers answer and only the shared cache can make their counts agree.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import subprocess
from collections.abc import Iterator
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

import pytest

from accounts import services
from accounts.models import AuthHold, HoldScope
from audit.models import AuditRecord, Kind
from tests.conftest import PASSWORD, SYSTEM, make_user
from tests.e2e_stack import AppServer

pytestmark = pytest.mark.e2e
ATTACKER = "127.0.0.2"
REAL_USER = "127.0.0.1"
PEOPLE = ("alice", "bob", "carol", "erin", "frank")


class Browser:
    """Just enough of a browser for the sign-in form: cookies, the CSRF token, one source address."""

    def __init__(self, app: AppServer, source: str) -> None:
        self.port, self.source = app.port, source
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, body: str = "", headers: dict[str, str] | None = None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30, source_address=(self.source, 0))
        headers = dict(headers or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        conn.request(method, path, body=body or None, headers=headers)
        response = conn.getresponse()
        content = response.read()
        for header in response.headers.get_all("Set-Cookie") or []:
            cookie = SimpleCookie(header)
            self.cookies.update({key: morsel.value for key, morsel in cookie.items()})
        conn.close()
        return response, content.decode()

    def sign_in(self, username: str, password: str):
        _, page = self.request("GET", "/login/")
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        form = urlencode({"username": username, "password": password, "csrfmiddlewaretoken": csrf})
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Referer": f"http://127.0.0.1:{self.port}/"}
        return self.request("POST", "/login/", form, headers)

    def token(self, username: str, password: str):
        auth = base64.b64encode(f"{username}:{password}".encode()).decode()
        query = urlencode({"service": "registry", "scope": "repository:web/app:pull"})
        return self.request("GET", f"/auth/token?{query}", headers={"Authorization": f"Basic {auth}"})


@pytest.fixture
def app(transactional_db: None, subprocess_env: dict[str, str], tmp_path: Path) -> Iterator[AppServer]:
    web = services.create_team("web", context=SYSTEM)
    services.create_grant(web, "web/**", "read", context=SYSTEM)
    for name in PEOPLE:
        services.set_membership(web, make_user(name), "member", context=SYSTEM)
    services.create_registry("registry", context=SYSTEM)
    services.ensure_keys()
    app = AppServer(subprocess_env, tmp_path, workers=2)
    app.start()
    try:
        yield app
    finally:
        app.stop()


def workers(app: AppServer) -> int:
    assert app.process is not None
    children = subprocess.run(["pgrep", "-P", str(app.process.pid)], capture_output=True, text=True).stdout.split()
    return len(children)


def test_the_attackers_address_is_held_while_the_real_user_signs_in(app: AppServer) -> None:
    assert workers(app) == 2
    attacker, real = Browser(app, ATTACKER), Browser(app, REAL_USER)

    # Ten wrong passwords for alice from the attacker: that pair is held, even with the right password.
    for _ in range(10):
        response, _ = attacker.token("alice", "not-her-password")
        assert response.status == 401
    response, body = attacker.token("alice", PASSWORD)
    assert response.status == 429
    assert 1 <= int(response.getheader("Retry-After")) <= 60
    assert json.loads(body)["errors"][0]["code"] == "TOOMANYREQUESTS"
    response, page = attacker.sign_in("alice", PASSWORD)
    assert response.status == 429 and "Try again in" in page

    # Alice herself, from her own address, through the same two workers.
    response, _ = real.sign_in("alice", PASSWORD)
    assert response.status == 302 and response.getheader("Location") == "/"
    response, body = real.token("alice", PASSWORD)
    assert response.status == 200 and json.loads(body)["token"]

    # Forty more failures over other usernames: fifty from the address, which is now held for everyone.
    for round_ in range(10):
        for name in PEOPLE[1:]:
            response, _ = attacker.token(name, f"guess-{round_}")
            assert response.status in {401, 429}
    response, _ = attacker.token("bob", PASSWORD)
    assert response.status == 429
    response, _ = real.token("bob", PASSWORD)
    assert response.status == 200

    holds = {(h.scope, h.username, h.ip) for h in AuthHold.objects.all()}
    assert (HoldScope.USER, "alice", ATTACKER) in holds and (HoldScope.ADDRESS, "", ATTACKER) in holds
    limited = AuditRecord.objects.filter(outcome="limited", ip=ATTACKER)
    assert limited.filter(kind=Kind.ACCESS).exists() and limited.filter(kind=Kind.SIGNIN).exists()
    assert not AuditRecord.objects.filter(ip=REAL_USER, outcome__in=["limited", "auth_failed", "failure"]).exists()

    # The admin lifts the address from the command line; the attacker's address gets answers again.
    lifted = app.manage("lift_limit", "--ip", ATTACKER).stdout
    assert "lifted: address 127.0.0.2" in lifted
    response, _ = attacker.token("bob", PASSWORD)
    assert response.status == 200
