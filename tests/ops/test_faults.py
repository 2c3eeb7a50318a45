"""Faults: the database gone, read-only, or the broker down; every answer is a quick, plain 503 or message.

The fast tests break the test database's cursor in-process. The end-to-end ones (``e2e``) run gunicorn on
a PostgreSQL database of their own, then drop it, make it read-only, or point the app at a dead broker.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import psycopg
import pytest
from django.core.handlers.exception import convert_exception_to_response
from django.db import OperationalError, connection
from django.http import HttpRequest, HttpResponse
from django.test import Client, RequestFactory
from django.views import defaults
from kombu.exceptions import OperationalError as BrokerError

from accounts.models import User
from audit import tasks
from audit.models import AuditExport
from registryadmin.faults import DatabaseUnavailableMiddleware, redact
from tests.conftest import REPO_ROOT
from tests.harness import in_ci
from tests.harness.ports import free_port, wait_for_http

PG_ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres"
# Put in DATABASE_URL (the server trusts loopback, so it is never checked) to show that no log line repeats it.
DSN_PASSWORD = "faults-dsn-pw-7Qx2"
ADMIN_PASSWORD = "an-operator-chosen-phrase"
UNAVAILABLE = "database unavailable, try again shortly"
BROKER_MESSAGE = "The job queue (broker) is unavailable; the export was marked failed"


# --- in-process: the test database's cursor raises -----------------------------------------------------


@pytest.fixture
def database_down(db: None) -> Iterator[None]:
    """Every query in the test fails the way a lost connection does (and works again for the teardown)."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise OperationalError('connection to server at "127.0.0.1", port 5432 failed: Connection refused')

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(connection, "_cursor", refuse)
        patch.setattr(connection, "ensure_connection", refuse)
        yield


def basic(username: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{secret}".encode()).decode()


def test_the_token_endpoint_answers_503_in_the_registry_error_format_with_no_token(database_down: None) -> None:
    response = Client().get(
        "/auth/token", {"service": "registry", "scope": "repository:web/app:pull"}, HTTP_AUTHORIZATION=basic("ada", "x")
    )
    assert response.status_code == 503
    body = response.json()
    assert body["errors"][0]["code"] == "UNAVAILABLE" and "token" not in body and "access_token" not in body


def test_notification_intake_answers_503_json(database_down: None) -> None:
    response = Client().post("/registry/registry/events", b"{}", content_type="application/json")
    assert response.status_code == 503
    assert response.json() == {"errors": [{"code": "UNAVAILABLE", "message": UNAVAILABLE}]}


@pytest.mark.parametrize("path", ["/login/", "/", "/audit/"])
def test_pages_answer_a_plain_503_page_and_log_one_line(
    database_down: None, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("ERROR", logger="registryadmin.faults"):
        response = Client().get(path)
    page = response.content.decode()
    assert response.status_code == 503 and response["Content-Type"].startswith("text/html")
    assert UNAVAILABLE in page.lower() and "Traceback" not in page and "127.0.0.1" not in page
    assert response["Retry-After"] == "30"
    lines = [r.getMessage() for r in caplog.records if r.name == "registryadmin.faults"]
    assert len(lines) == 1 and lines[0].startswith(f"database unavailable on GET {path}") and "\n" not in lines[0]


def test_healthz_answers_503_when_the_database_does_not_answer(database_down: None) -> None:
    response = Client().get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "error", "database": "unreachable"}


# Per backend: make this connection refuse writes, and undo it.
READ_ONLY = {
    "sqlite": ("PRAGMA query_only = ON", "PRAGMA query_only = OFF"),
    "postgresql": (
        "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
        "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
    ),
}


def test_healthz_checks_a_write_and_says_read_only_when_it_is_refused(transactional_db: None) -> None:
    assert Client().get("/healthz").json() == {"status": "ok", "database": "ok"}
    read_only, read_write = READ_ONLY[connection.vendor]
    with connection.cursor() as cursor:
        cursor.execute(read_only)
    try:
        response = Client().get("/healthz")
    finally:
        with connection.cursor() as cursor:
            cursor.execute(read_write)
    assert response.status_code == 503
    assert response.json() == {"status": "error", "database": "read-only"}


def test_an_error_from_a_middleware_inside_it_is_caught_too(db: None) -> None:
    """Django turns an inner middleware's exception into a 500 before it gets out; ours must see it first."""

    def session_middleware(request: HttpRequest) -> HttpResponse:
        raise OperationalError("server closed the connection unexpectedly")

    middleware = DatabaseUnavailableMiddleware(convert_exception_to_response(session_middleware))
    response = middleware(RequestFactory().get("/teams/"))
    assert response.status_code == 503 and b"Service unavailable" in response.content


def test_error_pages_render_without_the_database(database_down: None) -> None:
    request = RequestFactory().get("/nowhere")
    assert b"Not found" in defaults.page_not_found(request, Exception("gone")).content
    assert b"Something went wrong" in defaults.server_error(request).content
    assert b"Bad request" in defaults.bad_request(request, Exception("bad")).content
    assert b"Not allowed" in defaults.permission_denied(request, Exception("no")).content


def test_log_lines_never_carry_a_password() -> None:
    text = redact("could not connect to postgres://app:hunter2@db:5432/ra (password=hunter2 host=db)")
    assert "hunter2" not in text and "postgres://app:***@db" in text


def test_a_broker_that_refuses_the_export_fails_it_with_a_message_instead_of_a_500(
    transactional_db: None,
    audrey: User,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(export_id: int) -> None:
        raise BrokerError("Error 111 connecting to 127.0.0.1:6390. Connection refused.")

    monkeypatch.setattr(tasks.run_export, "delay", refuse)
    client = Client()
    client.force_login(audrey)
    response = client.post("/audit/exports/", {"format": "csv"}, follow=True)  # commits: the publish runs
    export = AuditExport.objects.get()
    assert response.status_code == 200 and response.redirect_chain[-1][0] == f"/audit/exports/{export.pk}/"
    assert export.status == "failed" and export.finished_at is not None
    assert export.error.startswith(tasks.BROKER_DOWN) and "Connection refused" in export.error
    page = response.content.decode()
    assert BROKER_MESSAGE in page and "Refresh" not in response.headers


# --- end to end: gunicorn on a PostgreSQL database of its own ----------------------------------------


def postgres_or_skip() -> None:
    try:
        psycopg.connect(PG_ADMIN_URL, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        if in_ci():
            pytest.fail(f"PostgreSQL at {PG_ADMIN_URL} is not reachable ({exc}); CI=true, so this is a failure")
        pytest.skip(f"the fault tests need PostgreSQL at {PG_ADMIN_URL}: {exc}")


def admin_sql(*statements: str) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        for statement in statements:
            admin.execute(statement)


def terminate(name: str) -> str:
    return (
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' AND pid <> pg_backend_pid()"
    )


def database_url(name: str) -> str:
    return f"postgres://postgres:{DSN_PASSWORD}@127.0.0.1:5432/{name}"


def app_env(tmp: Path, static_root: Path, name: str, **extra: str) -> dict[str, str]:
    skip = {"DJANGO_SETTINGS_MODULE", "TEST_DATABASE_URL", "DATABASE_URL", "CELERY_BROKER_URL", "DEBUG"}
    env = {k: v for k, v in os.environ.items() if k not in skip}
    env.update(
        DJANGO_SETTINGS_MODULE="registryadmin.settings",
        DATABASE_URL=database_url(name),
        DATA_DIR=str(tmp / "data"),
        STATIC_ROOT=str(static_root),
        SECRET_KEY="faults-test-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
        ADMIN_PASSWORD=ADMIN_PASSWORD,
        PYTHONPATH=str(REPO_ROOT),
        **extra,
    )
    return env


def manage(env: dict[str, str], *args: str) -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]


@dataclass
class Template:
    name: str
    static_root: Path


@pytest.fixture(scope="module")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Template]:
    """A migrated database (with its first admin) that each test copies, and collected static files."""
    postgres_or_skip()
    tmp = tmp_path_factory.mktemp("faults-template")
    template = Template(f"faults_tpl_{uuid.uuid4().hex[:10]}", tmp / "static")
    admin_sql(f'CREATE DATABASE "{template.name}"')
    try:
        env = app_env(tmp, template.static_root, template.name, BOOTSTRAP_ON_MIGRATE="true")
        manage(env, "migrate", "--noinput")
        manage(env, "collectstatic", "--noinput", "--verbosity", "0")
        yield template
    finally:
        admin_sql(terminate(template.name), f'DROP DATABASE IF EXISTS "{template.name}"')


@dataclass
class App:
    base: str
    database: str
    log: Path

    def sql(self, query: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(f"postgres://postgres@127.0.0.1:5432/{self.database}") as conn:
            return conn.execute(query).fetchall()


@pytest.fixture
def start_app(template_db: Template, tmp_path: Path) -> Iterator[Callable[..., App]]:
    """Start gunicorn on a fresh copy of the template database; stopped and dropped afterwards."""
    started: list[tuple[subprocess.Popen[bytes], str]] = []

    def start(**extra: str) -> App:
        name = f"faults_{uuid.uuid4().hex[:12]}"
        admin_sql(f'CREATE DATABASE "{name}" TEMPLATE "{template_db.name}"')
        port = free_port()
        env = app_env(tmp_path, template_db.static_root, name, PORT=str(port), **extra)
        log = tmp_path / f"{name}.log"
        with log.open("wb") as out:
            server = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "registryadmin.wsgi:application", "--bind", f"127.0.0.1:{port}"],
                cwd=REPO_ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        started.append((server, name))
        app = App(f"http://127.0.0.1:{port}", name, log)

        def alive() -> None:
            if server.poll() is not None:
                pytest.fail(f"gunicorn exited: {log.read_text()[-3000:]}")

        wait_for_http(app.base + "/healthz", timeout=60, check=alive)
        return app

    yield start
    for server, name in started:
        server.terminate()
        server.wait(timeout=20)
        admin_sql(terminate(name), f'DROP DATABASE IF EXISTS "{name}"')


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: str
    url: str

    def json(self) -> Any:
        return json.loads(self.body)


class Browser:
    """Cookies, CSRF and no HTTP proxy, like a person's browser on loopback."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPCookieProcessor(self.jar)
        )

    def get(self, path: str, **headers: str) -> Answer:
        return self._send(urllib.request.Request(self.base + path, headers=headers))

    def post(self, path: str, fields: dict[str, str]) -> Answer:
        fields = {**fields, "csrfmiddlewaretoken": self.csrf()}
        request = urllib.request.Request(
            self.base + path, data=urlencode(fields).encode(), headers={"Referer": self.base + path}
        )
        return self._send(request)

    def csrf(self) -> str:
        return next(cookie.value for cookie in self.jar if cookie.name == "csrftoken")

    def sign_in(self, username: str, password: str) -> None:
        self.get("/login/")
        assert "Overview" in self.post("/login/", {"username": username, "password": password}).body

    def _send(self, request: urllib.request.Request) -> Answer:
        try:
            with self.opener.open(request, timeout=30) as response:
                return Answer(response.status, dict(response.headers), response.read().decode(), response.url)
        except urllib.error.HTTPError as error:
            return Answer(error.code, dict(error.headers), error.read().decode(), error.url)


@pytest.mark.e2e
def test_with_the_database_dropped_everything_answers_503_and_no_token(start_app: Callable[..., App]) -> None:
    app = start_app()
    browser = Browser(app.base)
    assert browser.get("/login/").status == 200
    admin_sql(terminate(app.database), f'DROP DATABASE "{app.database}" WITH (FORCE)')

    token = browser.get("/auth/token?service=registry&scope=repository:web/app:pull", Authorization=basic("admin", "x"))
    assert token.status == 503 and token.headers["Content-Type"] == "application/json"
    assert token.json()["errors"][0]["code"] == "UNAVAILABLE" and "token" not in token.json()
    events = browser.post("/registry/registry/events", {})
    assert events.status == 503 and events.json()["errors"][0]["code"] == "UNAVAILABLE"
    for path in ("/login/", "/"):
        page = browser.get(path)
        assert page.status == 503 and page.headers["Content-Type"].startswith("text/html"), (path, page.body)
        assert UNAVAILABLE in page.body.lower() and "Traceback" not in page.body and DSN_PASSWORD not in page.body
    health = browser.get("/healthz")
    assert health.status == 503 and health.json() == {"status": "error", "database": "unreachable"}

    log = app.log.read_text()
    assert "database unavailable on GET /login/" in log
    assert DSN_PASSWORD not in log and "Traceback" not in log


@pytest.mark.e2e
def test_healthz_says_read_only_when_the_database_refuses_writes(start_app: Callable[..., App]) -> None:
    app = start_app()
    browser = Browser(app.base)
    assert browser.get("/healthz").json() == {"status": "ok", "database": "ok"}
    # The setting applies to new connections: end the app's, so its next request reconnects.
    admin_sql(f'ALTER DATABASE "{app.database}" SET default_transaction_read_only = on', terminate(app.database))

    health = browser.get("/healthz")
    assert health.status == 503 and health.json() == {"status": "error", "database": "read-only"}
    token = browser.get("/auth/token?service=registry&scope=repository:web/app:pull", Authorization=basic("admin", "x"))
    assert token.status == 503 and token.json()["errors"][0]["code"] == "UNAVAILABLE" and "token" not in token.json()


@pytest.fixture(params=["refused", "silent"])
def dead_broker(request: pytest.FixtureRequest) -> Iterator[str]:
    """A Redis URL where nothing listens, or where a socket takes the connection and never answers."""
    if request.param == "refused":
        yield f"redis://127.0.0.1:{free_port()}/0"
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)  # the kernel completes the handshakes; nobody ever reads or writes
        yield f"redis://127.0.0.1:{silent.getsockname()[1]}/0"


@pytest.mark.e2e
def test_with_the_broker_down_an_export_fails_quickly_with_a_message(
    start_app: Callable[..., App], dead_broker: str
) -> None:
    app = start_app(CELERY_BROKER_URL=dead_broker)
    browser = Browser(app.base)
    browser.sign_in("admin", ADMIN_PASSWORD)

    started = time.monotonic()
    answer = browser.post("/audit/exports/", {"format": "jsonl"})
    elapsed = time.monotonic() - started
    assert elapsed < 10, f"the export request took {elapsed:.1f}s"
    assert answer.status == 200 and "/audit/exports/" in answer.url, answer.body[-2000:]
    assert BROKER_MESSAGE in answer.body and "The export failed" in answer.body
    ((status, error),) = app.sql("SELECT status, error FROM audit_auditexport")
    assert status == "failed" and error.startswith(tasks.BROKER_DOWN)

    started = time.monotonic()
    queued = browser.post("/manage/jobs/seal-audit/run", {})
    assert time.monotonic() - started < 10
    assert queued.status == 200 and "Could not queue seal-audit" in queued.body
