"""The token endpoint's exact cache: what moves the version, what the guard refuses, and that the
cached and fresh paths answer and record the same requests identically (on whichever database the
suite runs: CI runs it on PostgreSQL, a plain `make test` on SQLite)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from datetime import datetime, timedelta

import jwt
import pytest
from django.db import connection
from django.test import Client, override_settings
from django.utils import timezone

from accounts import services
from accounts.access import version
from accounts.models import (
    AuthzState,
    CredentialPepper,
    DirectoryGroup,
    Grant,
    Membership,
    PersonalAccessToken,
    Registry,
    Repository,
    Robot,
    SigningKey,
    Team,
    User,
)
from accounts.registry import secrets
from accounts.registry import snapshot as snapshot_module
from accounts.registry.snapshot import FRESH
from accounts.registry.tokens import TokenRequest, _issue, issue
from audit.chain import record_mac
from audit.context import AuditContext
from audit.models import AuditRecord
from registryadmin import keywrap
from tests.conftest import PASSWORD, SYSTEM

pytestmark = pytest.mark.django_db
URL = "/auth/token"
ADDRESS = "10.1.2.3"


@pytest.fixture
def world(db: None, web: Team, carol: User) -> dict[str, object]:
    registry = services.create_registry("registry", context=SYSTEM)
    services.ensure_keys()
    services.create_grant(web, "web/**", "write", context=SYSTEM)
    services.create_grant(carol, "web/app", "read", context=SYSTEM)
    services.create_repository("pub/base", public=True, context=SYSTEM)
    robot, robot_secret = services.create_robot(web, "ci", grants=[("web/**", "read")], context=SYSTEM)
    token, token_secret = services.create_access_token(
        User.objects.get(username="bob"), "laptop", read_only=True, context=SYSTEM
    )
    return {
        "registry": registry,
        "robot": robot,
        "robot_login": robot.login_name,
        "robot_secret": robot_secret,
        "token": token,
        "token_secret": token_secret,
    }


def basic(username: str, password: str) -> dict[str, str]:
    raw = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"HTTP_AUTHORIZATION": f"Basic {raw}"}


def ask(client: Client, scope: str, username: str | None = None, password: str = PASSWORD):
    headers = basic(username, password) if username else {}
    return client.get(URL, {"service": "registry", "scope": scope}, REMOTE_ADDR=ADDRESS, **headers)


def unsigned(token: str) -> tuple[dict, dict]:
    return jwt.get_unverified_header(token), jwt.decode(token, options={"verify_signature": False})


def actions(response) -> list[str]:
    claims = jwt.decode(response.json()["token"], options={"verify_signature": False})
    return [action for entry in claims["access"] for action in entry["actions"]]


# --- What moves the version -----------------------------------------------------------------------

# Every column of every watched table, as it is today: a new column must be placed in one list or the
# other on purpose (watched unless a decision never reads it).
WATCHED = {
    User: {"password", "is_superuser", "username", "first_name", "last_name", "email", "is_staff", "is_active"},
    Robot: {"name", "team_id", "secret_hash", "expires_at", "revoked_at", "created_at"},
    PersonalAccessToken: {"user_id", "name", "secret_hash", "read_only", "patterns", "expires_at", "revoked_at"},
}


def test_every_column_a_decision_can_read_is_watched_and_only_bookkeeping_is_not() -> None:
    tables = version.watched_tables()
    for model, skipped in version.UNWATCHED_COLUMNS.items():
        columns = {f.column for f in model._meta.concrete_fields if not f.primary_key}
        assert skipped <= columns, f"{model.__name__}: an exclusion names no column"
        assert set(tables[model._meta.db_table]) == columns - skipped
        assert skipped <= {"last_login", "last_used_at", "last_used_ip", "expiry_recorded_at"}
    for model in (Team, Membership, DirectoryGroup, Grant, Registry, Repository, SigningKey, CredentialPepper):
        columns = {f.column for f in model._meta.concrete_fields if not f.primary_key}
        assert set(tables[model._meta.db_table]) == columns, f"{model.__name__} has an unwatched column"
    for model, must in WATCHED.items():
        assert must & set(tables[model._meta.db_table]) == must & {f.column for f in model._meta.concrete_fields}


def test_raw_sql_on_a_watched_table_moves_the_version_and_bookkeeping_does_not(world: dict) -> None:
    before = version.read_state()
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {Grant._meta.db_table} SET role = 'admin' WHERE pattern = 'web/app'")
    moved = version.read_state()
    assert moved.authz != before.authz and moved.limits == before.limits
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {Robot._meta.db_table} SET last_used_at = %s", [timezone.now()])
        cursor.execute(f"UPDATE {User._meta.db_table} SET last_login = %s", [timezone.now()])
    assert version.read_state() == moved
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {Membership._meta.db_table}")
    assert version.read_state().authz != moved.authz


def test_a_counted_failure_moves_the_limits_version_only(world: dict) -> None:
    before = version.read_state()
    services.limits.failed("carol", ADDRESS)
    after = version.read_state()
    assert after.authz == before.authz and after.limits != before.limits


def test_missing_version_rows_are_made_again_and_the_guard_refuses_until_then(world: dict) -> None:
    state = version.read_state()
    AuthzState.objects.all().delete()
    sql, params = version.guard(state, limits=False)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT 1 WHERE {sql}", params)
        assert cursor.fetchone() is None
    fresh = version.read_state()
    assert AuthzState.objects.count() == 2 and fresh.authz != state.authz


# --- The cache in use ------------------------------------------------------------------------------


def test_a_change_is_seen_by_the_very_next_request_and_recorded_once(client: Client, world: dict) -> None:
    assert ask(client, "repository:web/app:push,pull", "carol").status_code == 200
    assert sorted(actions(ask(client, "repository:web/app:push,pull", "carol"))) == ["pull"]  # from the cache
    services.update_grant(Grant.objects.get(user__username="carol", pattern="web/app"), role="write", context=SYSTEM)
    count = AuditRecord.objects.filter(kind="access").count()
    assert sorted(actions(ask(client, "repository:web/app:push,pull", "carol"))) == ["pull", "push"]
    assert AuditRecord.objects.filter(kind="access").count() == count + 1  # the refused try wrote nothing


def test_deactivation_password_change_and_revocations_are_seen_at_once(client: Client, world: dict) -> None:
    robot, token = world["robot"], world["token"]
    for _ in range(2):
        assert ask(client, "repository:web/app:pull", "bob").status_code == 200
        assert ask(client, "repository:web/app:pull", world["robot_login"], world["robot_secret"]).status_code == 200
        assert ask(client, "repository:web/app:pull", "bob", world["token_secret"]).status_code == 200
    services.revoke_robot(robot, context=SYSTEM)
    assert ask(client, "repository:web/app:pull", world["robot_login"], world["robot_secret"]).status_code == 401
    services.revoke_access_token(token, context=SYSTEM)
    assert ask(client, "repository:web/app:pull", "bob", world["token_secret"]).status_code == 401
    services.set_password(User.objects.get(username="bob"), "A-new-passphrase-42", context=SYSTEM, validate=False)
    assert ask(client, "repository:web/app:pull", "bob").status_code == 401
    assert ask(client, "repository:web/app:pull", "bob", "A-new-passphrase-42").status_code == 200
    services.update_user(User.objects.get(username="bob"), is_active=False, context=SYSTEM)
    assert ask(client, "repository:web/app:pull", "bob", "A-new-passphrase-42").status_code == 401


def test_an_expiring_grant_is_checked_against_the_clock_on_each_request(
    client: Client, world: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    soon = timezone.now() + timedelta(minutes=5)
    services.create_grant(User.objects.get(username="carol"), "temp/**", "read", expires_at=soon, context=SYSTEM)
    for _ in range(2):
        assert actions(ask(client, "repository:temp/x:pull", "carol")) == ["pull"]
    later = soon + timedelta(seconds=1)
    monkeypatch.setattr(timezone, "now", lambda: later)
    assert actions(ask(client, "repository:temp/x:pull", "carol")) == []


def test_a_pepper_a_restore_keeps_is_tried_by_the_next_request_and_its_removal_too(world: dict) -> None:
    """A robot made on another host: its stored hash is keyed with that host's pepper."""
    client = Client()
    old_pepper = secrets._pepper("the old host's SECRET_KEY")
    digest = hmac.new(old_pepper, world["robot_secret"].encode(), hashlib.sha256).hexdigest()
    Robot.objects.filter(pk=world["robot"].pk).update(secret_hash=digest)
    login = world["robot_login"]
    assert ask(client, "repository:web/x:pull", login, world["robot_secret"]).status_code == 401
    assert ask(client, "repository:web/x:pull", "carol").status_code == 200  # warms this worker's cache
    CredentialPepper.objects.create(
        pepper=keywrap.wrap(old_pepper), fingerprint=secrets.fingerprint(old_pepper), source="test"
    )
    for _ in range(2):  # the database path, then the cached one
        assert actions(ask(client, "repository:web/x:pull", login, world["robot_secret"])) == ["pull"]
    CredentialPepper.objects.all().delete()
    assert ask(client, "repository:web/x:pull", login, world["robot_secret"]).status_code == 401


def test_a_robot_is_capped_again_when_its_teams_grant_expires(
    client: Client, world: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    team = Team.objects.get(name="web")
    soon = timezone.now() + timedelta(minutes=5)
    services.create_grant(team, "ops/**", "read", expires_at=soon, context=SYSTEM)
    robot, secret = services.create_robot(team, "deploy", grants=[("ops/**", "read")], context=SYSTEM)
    for _ in range(2):
        assert actions(ask(client, "repository:ops/x:pull", robot.login_name, secret)) == ["pull"]
    later = soon + timedelta(seconds=1)
    monkeypatch.setattr(timezone, "now", lambda: later)
    assert actions(ask(client, "repository:ops/x:pull", robot.login_name, secret)) == []


@override_settings(AUTH_FAIL_LIMIT_USER=3, AUTH_FAIL_LIMIT_IP=0)
def test_a_hold_reached_by_other_requests_stops_a_pair_the_cache_knew_clean(client: Client, world: dict) -> None:
    for _ in range(3):
        assert ask(client, "repository:web/app:pull", "carol").status_code == 200  # clean, then skipped
    for _ in range(3):
        assert ask(client, "repository:web/app:pull", "carol", "wrong").status_code == 401
    assert ask(client, "repository:web/app:pull", "carol").status_code == 429


def test_a_public_flag_is_seen_by_the_next_anonymous_request(client: Client, world: dict) -> None:
    repository = services.create_repository("open/thing", context=SYSTEM)
    for _ in range(2):
        assert actions(ask(client, "repository:open/thing:pull")) == []
    services.set_repository_public(repository, True, context=SYSTEM)
    assert actions(ask(client, "repository:open/thing:pull")) == ["pull"]
    services.set_repository_public(Repository.objects.get(pk=repository.pk), False, context=SYSTEM)
    assert actions(ask(client, "repository:open/thing:pull")) == []


def test_the_cache_gives_up_after_a_few_refused_tries_and_the_database_answers(
    client: Client, world: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    ask(client, "repository:web/app:pull", "carol")
    tries = []
    real = version.guard

    def always_moved(state, *, limits):
        tries.append(state)
        sql, params = real(state, limits=limits)
        return sql, [p + 1 for p in params]  # never the stored version

    monkeypatch.setattr(snapshot_module.version, "guard", always_moved)
    response = ask(client, "repository:web/app:pull", "carol")
    assert response.status_code == 200 and actions(response) == ["pull"]
    assert len(tries) == snapshot_module.ATTEMPTS


# --- The same answers and the same records ---------------------------------------------------------


CASES = [
    ("user", "carol", None, ["repository:web/app:pull,push", "repository:web/other:pull"]),
    ("robot", "robot", "robot", ["repository:web/app:pull,push"]),
    ("token", "bob", "token", ["repository:web/app:*"]),
    ("anonymous", None, None, ["repository:pub/base:pull", "repository:web/app:pull"]),
    ("catalog", "carol", None, ["registry:catalog:*"]),
]


@pytest.mark.parametrize(("label", "username", "secret", "scopes"), CASES, ids=[c[0] for c in CASES])
def test_the_cached_and_fresh_paths_answer_and_record_byte_for_byte_alike(
    world: dict, monkeypatch: pytest.MonkeyPatch, label: str, username: str | None, secret: str | None, scopes: list
) -> None:
    if secret == "robot":
        username, password = world["robot_login"], world["robot_secret"]
    elif secret == "token":
        password = world["token_secret"]
    else:
        password = PASSWORD if username else None
    moment = timezone.now().replace(microsecond=123456)
    monkeypatch.setattr(timezone, "now", lambda: moment)
    monkeypatch.setattr(uuid, "uuid4", lambda: uuid.UUID(int=7))  # the same jti each time
    context = AuditContext(ip=ADDRESS, user_agent="docker/27.0", request_id="req-1")

    def request() -> TokenRequest:
        return TokenRequest(method="GET", service="registry", scopes=scopes, username=username, password=password)

    warm = issue(request(), context)  # verifies secrets, fills the cache, checks the failure pair
    assert warm.status == 200
    served = []
    real_cached = snapshot_module.Cached.guard

    def spy(self):
        served.append("cache")
        return real_cached(self)

    monkeypatch.setattr(snapshot_module.Cached, "guard", spy)
    cached = issue(request(), context)
    assert served == ["cache"], "the repeat request was not answered from the cache"
    cached_row = AuditRecord.objects.filter(kind="access").latest("id")
    fresh = _issue(request(), context, FRESH)
    fresh_row = AuditRecord.objects.filter(kind="access").latest("id")
    assert fresh_row.pk != cached_row.pk
    assert (cached.status, cached.body["expires_in"]) == (fresh.status, fresh.body["expires_in"])
    assert unsigned(cached.body["token"]) == unsigned(fresh.body["token"])  # ES256 signatures are randomised
    fields = [f.name for f in AuditRecord._meta.concrete_fields if not f.primary_key]
    assert {f: getattr(cached_row, f) for f in fields} == {f: getattr(fresh_row, f) for f in fields}
    stored = {f: getattr(fresh_row, f) for f in fields if f != "mac"}
    assert record_mac(stored) == fresh_row.mac == cached_row.mac
    assert isinstance(cached_row.time, datetime)
