"""A registry's doctor page: admins run it and read its history, auditors read, everyone else is refused.

Most tests replace ``accounts.registry.doctor.run`` (the boundary where the probing starts) with a
report made here; the last one runs the real doctor against a tiny registry stand-in on a loopback
port. ada is the admin, audrey the auditor, alice leads team web, carol is a plain user.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.conf import settings
from django.test import Client

from accounts import services
from accounts.models import DoctorRun, Registry, Team, User
from accounts.registry import doctor
from accounts.registry.doctor import CHECK_IDS, Check, Report, Target
from audit.models import AuditRecord, Kind
from tests.conftest import SYSTEM
from tests.harness.ports import free_port

pytestmark = pytest.mark.django_db

PAGE = "/manage/registries/registry/doctor"


@pytest.fixture
def registry(db: None) -> Registry:
    return services.create_registry("registry", url="http://127.0.0.1:5000", context=SYSTEM)


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def report(url: str = "http://127.0.0.1:5000", **statuses: str) -> Report:
    checks = [
        Check(i, statuses.get(i, "ok"), f"{i}: what it saw", [f"{i} evidence"], [f"{i} fix"] if i in statuses else [])
        for i in CHECK_IDS
    ]
    return Report("registry", url, checks, seconds=0.4)


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> list[Target]:
    """Every target the page hands to the doctor; the doctor answers with tls failing."""
    targets: list[Target] = []

    def run(target: Target) -> Report:
        targets.append(target)
        return report(target.url, tls="fail", cors="warn")

    monkeypatch.setattr(doctor, "run", run)
    return targets


def test_the_registry_page_links_to_it(registry: Registry, audrey: User) -> None:
    body = signed_in(audrey).get("/manage/registries/registry/").content.decode()
    assert f'href="{PAGE}">Doctor history</a>' in body


def test_an_admin_runs_it_and_is_sent_back_to_the_history(registry: Registry, ada: User, asked: list) -> None:
    response = signed_in(ada).post(PAGE, {"action": "pull"}, follow=True)
    assert response.redirect_chain == [(PAGE, 302)]
    run = DoctorRun.objects.get()
    assert (run.worst, run.requested_by_name, run.scheduled, run.failed_ids) == ("fail", "ada", False, ["tls"])
    assert asked[0].url == asked[0].direct_url == "http://127.0.0.1:5000"
    body = html.unescape(response.content.decode())
    assert "tls failed. Each check's fix is below." in body
    assert "tls: what it saw" in body and "tls evidence" in body and "tls fix" in body
    audit = AuditRecord.objects.get(kind=Kind.ADMIN_CHANGE, detail__action="registry.doctor")
    assert audit.actor == "ada" and audit.detail["after"]["failed"] == ["tls"]


def test_the_form_asks_what_manage_py_doctor_takes(registry: Registry, ada: User, asked: list, web: Team) -> None:
    fields = {
        "url": "https://proxy.example.org/",
        "origin": "https://ui.example.org",
        "user": "bob",
        "repository": "web/app",
        "action": "push",
    }
    assert signed_in(ada).post(PAGE, fields).status_code == 302
    target = asked[0]
    assert (target.url, target.direct_url, target.origin) == (
        "https://proxy.example.org",
        "http://127.0.0.1:5000",
        "https://ui.example.org",
    )
    assert (target.user, target.repository, target.action) == ("bob", "web/app", "push")
    assert DoctorRun.objects.get().origin == "https://ui.example.org"


def test_a_user_without_a_repository_is_refused(registry: Registry, ada: User, asked: list) -> None:
    response = signed_in(ada).post(PAGE, {"user": "bob", "action": "pull"})
    assert response.status_code == 400 and "together" in response.content.decode()
    assert not asked and not DoctorRun.objects.exists()


def test_a_registry_without_a_url_gets_a_clear_message(ada: User, asked: list) -> None:
    services.create_registry("registry", context=SYSTEM)
    client = signed_in(ada)
    assert "not set:" in client.get(PAGE).content.decode()
    response = client.post(PAGE, {"action": "pull"})
    assert response.status_code == 409
    assert "registry registry has no URL: set it on its page" in html.unescape(response.content.decode())
    assert not asked and not DoctorRun.objects.exists()
    assert client.post(PAGE, {"url": "http://127.0.0.1:5001", "action": "pull"}).status_code == 302
    assert asked[0].url == asked[0].direct_url == "http://127.0.0.1:5001"


def test_the_history_is_newest_first_with_the_latest_open(registry: Registry, audrey: User) -> None:
    services.doctor.record_run(registry, report(proxy="fail"), context=SYSTEM, scheduled=True)
    services.doctor.record_run(registry, report(clock="warn"), context=SYSTEM, scheduled=False)
    older, newer = DoctorRun.objects.order_by("pk")
    body = signed_in(audrey).get(PAGE).content.decode()
    assert body.index(f'id="run-{newer.pk}"') < body.index(f'id="run-{older.pk}"')
    assert f'id="run-{newer.pk}" open' in body and f'id="run-{older.pk}">' in body
    assert "scheduled" in body and "failed: proxy" in body and "proxy fix" in body


def test_auditors_read_but_do_not_run_it(registry: Registry, audrey: User, asked: list) -> None:
    client = signed_in(audrey)
    body = client.get(PAGE).content.decode()
    assert "Run the doctor<" not in body and f'action="{PAGE}"' not in body
    assert "The doctor has not run on this registry yet." in body
    assert client.post(PAGE, {"action": "pull"}).status_code == 403
    assert not asked and not DoctorRun.objects.exists()


@pytest.mark.parametrize("persona", ["alice", "carol"])
def test_everyone_else_is_refused(registry: Registry, persona: str, request: pytest.FixtureRequest) -> None:
    client = signed_in(request.getfixturevalue(persona))
    assert client.get(PAGE).status_code == 403
    assert client.post(PAGE, {"action": "pull"}).status_code == 403


def test_it_requires_sign_in_and_rejects_other_methods(registry: Registry, ada: User) -> None:
    assert Client().get(PAGE)["Location"].startswith("/login/")
    assert signed_in(ada).put(PAGE).status_code == 405
    assert signed_in(ada).delete(PAGE).status_code == 405


def test_an_unknown_registry_is_404(ada: User) -> None:
    assert signed_in(ada).get("/manage/registries/nowhere/doctor").status_code == 404


# --- the real doctor, against a registry stand-in on a loopback port ------------------


class Stand(BaseHTTPRequestHandler):
    """Answers like a token-mode registry that trusts nobody: every request is a 401 with our realm."""

    def do_GET(self) -> None:
        self.send_response(401)
        realm = f"{settings.PUBLIC_URL}/auth/token"
        self.send_header("WWW-Authenticate", f'Bearer realm="{realm}",service="registry"')
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_HEAD = do_GET

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def stand_in() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Stand)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_real_run_is_recorded_and_shown(stand_in: str, ada: User, carol: User, web: Team) -> None:
    services.create_registry("registry", url=stand_in, context=SYSTEM)
    services.create_grant(web, "web/**", "write", context=SYSTEM)
    question = {"user": "carol", "repository": "web/app", "action": "push"}
    response = signed_in(ada).post(PAGE, question, follow=True)
    assert response.status_code == 200
    run = DoctorRun.objects.get()
    assert run.url == stand_in
    assert [check["id"] for check in run.checks] == list(CHECK_IDS)
    roles = run.checks[CHECK_IDS.index("roles")]
    assert roles["status"] == "fail" and roles["summary"] == "carol push web/app on registry: denied"
    assert "roles" in run.failed_ids and run.worst == "fail"
    body = html.unescape(response.content.decode())
    assert "reason: carol holds no grant matching web/app" in body
    assert "a lead of team web (alice) adds carol to team web" in body
