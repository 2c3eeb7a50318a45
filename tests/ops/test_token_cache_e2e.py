"""The token cache across processes: two real gunicorn workers, changes made by another process.

Each change is made here (the test process: another process, as an admin's browser request or a
`manage.py` run would be) after both workers have answered from their caches; the very next
request, whichever worker takes it, must see it. Runs on the suite's database: PostgreSQL in CI's
first pass, the embedded SQLite in its e2e pass (where the workers' writes queue on the file lock).
"""

from __future__ import annotations

import base64
import http.client
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlencode

import pytest
from django.db import connection

from accounts import services
from accounts.models import Grant, Membership, Repository, User
from audit.models import AuditRecord
from tests.conftest import PASSWORD, SYSTEM, make_user
from tests.e2e_stack import AppServer

pytestmark = pytest.mark.e2e
NEW_PASSWORD = "Another-long-passphrase-7"


@pytest.fixture
def world(transactional_db: None, subprocess_env: dict[str, str], tmp_path: Path) -> Iterator[dict]:
    services.create_registry("registry", context=SYSTEM)
    services.ensure_keys()
    web = services.create_team("web", context=SYSTEM)
    carol, dave = make_user("carol"), make_user("dave")
    services.set_membership(web, carol, "member", context=SYSTEM)
    services.set_membership(web, dave, "member", context=SYSTEM)
    services.create_grant(web, "web/**", "read", context=SYSTEM)
    services.create_repository("open/base", context=SYSTEM)
    robot, robot_secret = services.create_robot(web, "ci", grants=[("web/**", "read")], context=SYSTEM)
    token, token_secret = services.create_access_token(dave, "laptop", context=SYSTEM)
    app = AppServer(subprocess_env, tmp_path, workers=2).start()
    try:
        yield {
            "app": app,
            "robot": robot,
            "robot_secret": robot_secret,
            "token": token,
            "token_secret": token_secret,
        }
    finally:
        app.stop()


def ask(app: AppServer, scope: str, username: str | None = None, password: str = PASSWORD) -> tuple[int, list]:
    """One request on a new connection (so either worker may take it): (status, granted actions)."""
    headers = {"User-Agent": "docker/27.0"}
    if username is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
    conn = http.client.HTTPConnection("127.0.0.1", app.port, timeout=30)
    conn.request("GET", "/auth/token?" + urlencode({"service": "registry", "scope": scope}), headers=headers)
    response = conn.getresponse()
    body = json.loads(response.read() or b"{}")
    conn.close()
    if response.status != 200:
        return response.status, []
    payload = body["token"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return 200, sorted(action for entry in claims["access"] for action in entry["actions"])


def every(app: AppServer, scope: str, username: str | None = None, password: str = PASSWORD, times: int = 8):
    """The answers of ``times`` requests in a row (both workers among them), as a set."""
    return {
        tuple([status, *granted]) for status, granted in (ask(app, scope, username, password) for _ in range(times))
    }


def test_every_change_is_seen_by_the_next_request_on_either_worker(world: dict) -> None:
    app = world["app"]
    carol_pull = ("repository:web/app:pull,push", "carol")
    assert every(app, *carol_pull) == {(200, "pull")}  # both workers now answer carol from their caches

    # A role changes.
    grant = Grant.objects.get(team__name="web", pattern="web/**")
    services.update_grant(grant, role="write", context=SYSTEM)
    assert ask(app, *carol_pull) == (200, ["pull", "push"])
    assert every(app, *carol_pull) == {(200, "pull", "push")}

    # A membership ends.
    services.remove_membership(Membership.objects.get(user__username="carol"), context=SYSTEM)
    assert ask(app, *carol_pull) == (200, [])
    assert every(app, *carol_pull) == {(200,)}

    # A repository turns public, for anonymous pulls.
    assert every(app, "repository:open/base:pull") == {(200,)}
    services.set_repository_public(Repository.objects.get(name="open/base"), True, context=SYSTEM)
    assert ask(app, "repository:open/base:pull") == (200, ["pull"])
    assert every(app, "repository:open/base:pull") == {(200, "pull")}

    # A password changes: the old one fails at once, the new one works.
    dave_pull = ("repository:web/app:pull", "dave")
    assert every(app, *dave_pull) == {(200, "pull")}
    services.set_password(User.objects.get(username="dave"), NEW_PASSWORD, context=SYSTEM, validate=False)
    assert ask(app, *dave_pull)[0] == 401
    assert every(app, *dave_pull, times=2) == {(401,)}  # few: ten failures would hold the pair (429)
    assert every(app, "repository:web/app:pull", "dave", NEW_PASSWORD) == {(200, "pull")}

    # A robot and a personal access token are revoked.
    robot_pull = ("repository:web/app:pull", world["robot"].login_name, world["robot_secret"])
    token_pull = ("repository:web/app:pull", "dave", world["token_secret"])
    assert every(app, *robot_pull) == {(200, "pull")}
    assert every(app, *token_pull) == {(200, "pull")}
    services.revoke_robot(world["robot"], context=SYSTEM)
    assert ask(app, *robot_pull)[0] == 401
    services.revoke_access_token(world["token"], context=SYSTEM)
    assert ask(app, *token_pull)[0] == 401
    assert every(app, *robot_pull, times=2) | every(app, *token_pull, times=2) == {(401,)}

    # A user is deactivated.
    services.update_user(User.objects.get(username="dave"), is_active=False, context=SYSTEM)
    assert ask(app, "repository:web/app:pull", "dave", NEW_PASSWORD)[0] == 401
    assert every(app, "repository:web/app:pull", "dave", NEW_PASSWORD, times=2) == {(401,)}


def test_raw_sql_from_another_process_is_seen_too(world: dict) -> None:
    app = world["app"]
    assert every(app, "repository:web/app:push", "carol") == {(200,)}
    with connection.cursor() as cursor:  # what an operator's psql or sqlite3 session would do
        cursor.execute(f"UPDATE {Grant._meta.db_table} SET role = 'write' WHERE pattern = 'web/**'")
    assert ask(app, "repository:web/app:push", "carol") == (200, ["push"])


def _refuse_audit_writes(on: bool) -> None:
    table = AuditRecord._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            if on:
                cursor.execute(
                    "CREATE OR REPLACE FUNCTION test_refuse_audit() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN RAISE EXCEPTION 'disk full'; END $$"
                )
                cursor.execute(
                    f"CREATE TRIGGER test_refuse_audit BEFORE INSERT ON {table} "
                    "FOR EACH ROW EXECUTE FUNCTION test_refuse_audit()"
                )
            else:
                cursor.execute(f"DROP TRIGGER IF EXISTS test_refuse_audit ON {table}")
        elif on:
            cursor.execute(
                f"CREATE TRIGGER test_refuse_audit BEFORE INSERT ON {table} BEGIN SELECT RAISE(ABORT, 'disk full'); END"
            )
        else:
            cursor.execute("DROP TRIGGER IF EXISTS test_refuse_audit")


def test_an_access_record_that_cannot_be_written_is_a_503_without_a_token_on_both_paths(world: dict) -> None:
    app = world["app"]
    assert every(app, "repository:web/app:pull", "carol") == {(200, "pull")}  # cached on both workers
    before = AuditRecord.objects.filter(kind="access").count()
    _refuse_audit_writes(True)
    try:
        # The cached path (a repeat GET), then the fresh one (an unknown password goes to the database).
        assert every(app, "repository:web/app:pull", "carol") == {(503,)}
        assert every(app, "repository:web/app:pull", "carol", "not-the-password", times=2) == {(503,)}
        assert every(app, "repository:open/base:pull") == {(503,)}
    finally:
        _refuse_audit_writes(False)
    assert AuditRecord.objects.filter(kind="access").count() == before
    assert every(app, "repository:web/app:pull", "carol") == {(200, "pull")}


def test_concurrent_requests_on_both_workers_all_answer_and_are_all_recorded(world: dict) -> None:
    app = world["app"]
    before = AuditRecord.objects.filter(kind="access").count()
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: ask(app, "repository:web/app:pull", "carol"), range(200)))
    assert set(map(tuple, ((s, *g) for s, g in answers))) == {(200, "pull")}
    assert AuditRecord.objects.filter(kind="access").count() == before + 200
