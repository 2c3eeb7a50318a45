"""Robot accounts and personal access tokens: made once, stored hashed, capped, refused when dead."""

from __future__ import annotations

import base64
import io
from datetime import timedelta

import jwt
import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.utils import timezone

from accounts import services
from accounts.models import Grant, PersonalAccessToken, Robot, Team, User
from accounts.registry import htpasswd
from accounts.services import ensure_keys
from audit.models import AuditRecord
from tests.conftest import SYSTEM

pytestmark = pytest.mark.django_db
URL = "/auth/token"


@pytest.fixture
def setup(web: Team, carol: User) -> None:
    services.create_registry("registry", context=SYSTEM)
    ensure_keys()
    services.create_grant(web, "web/**", "write", context=SYSTEM)
    services.create_grant(carol, "web/app", "read", context=SYSTEM)


def ask(client: Client, username: str, secret: str, *scopes: str, **params: str):
    raw = base64.b64encode(f"{username}:{secret}".encode()).decode()
    return client.get(URL, {"service": "registry", "scope": list(scopes), **params}, HTTP_AUTHORIZATION=f"Basic {raw}")


def granted(response) -> dict[str, list[str]]:
    claims = jwt.decode(response.json()["token"], options={"verify_signature": False})
    return {a["name"]: a["actions"] for a in claims["access"]}


def last_access() -> AuditRecord:
    return AuditRecord.objects.filter(kind="access").latest("id")


def test_a_team_robot_logs_in_as_robot_team_plus_name_and_pushes(client: Client, setup: None, web: Team) -> None:
    robot, secret = services.create_robot(web, "ci", grants=[("web/app", "write")], context=SYSTEM)
    assert robot.login_name == "robot$web+ci"
    assert secret.startswith("rgb_")
    assert secret not in robot.secret_hash
    response = ask(client, "robot$web+ci", secret, "repository:web/app:pull,push", "repository:web/other:pull")
    assert granted(response) == {"web/app": ["pull", "push"], "web/other": []}
    record = last_access()
    assert (record.subject_type, record.actor, record.detail["credential"]) == ("robot", "robot$web+ci", "robot$web+ci")


def test_a_robot_grant_outside_the_team_is_refused_at_creation(setup: None, web: Team) -> None:
    with pytest.raises(ValidationError, match="outside what team web holds"):
        services.create_robot(web, "ci", grants=[("ops/**", "read")], context=SYSTEM)
    with pytest.raises(ValidationError, match="outside what team web holds"):
        services.create_robot(web, "deployer", grants=[("web/app", "admin")], context=SYSTEM)
    assert not Robot.objects.exists()


def test_a_robot_loses_what_its_team_loses_at_once(client: Client, setup: None, web: Team) -> None:
    robot, secret = services.create_robot(web, "ci", grants=[("web/app", "write")], context=SYSTEM)
    services.update_grant(Grant.objects.get(team=web), role="read", context=SYSTEM)
    assert granted(ask(client, robot.login_name, secret, "repository:web/app:pull,push")) == {"web/app": ["pull"]}


def test_a_global_robot_is_robot_dollar_name(client: Client, setup: None) -> None:
    robot, secret = services.create_robot(None, "mirror", grants=[("pub/**", "read")], context=SYSTEM)
    assert robot.login_name == "robot$mirror"
    assert granted(ask(client, "robot$mirror", secret, "repository:pub/base:pull")) == {"pub/base": ["pull"]}


def test_revoked_and_expired_robots_are_refused_and_recorded_by_name(client: Client, setup: None, web: Team) -> None:
    robot, secret = services.create_robot(web, "ci", grants=[("web/app", "write")], context=SYSTEM)
    services.revoke_robot(robot, context=SYSTEM)
    response = ask(client, robot.login_name, secret, "repository:web/app:pull")
    assert response.status_code == 401
    record = last_access()
    assert record.outcome == "auth_failed"
    assert record.detail["credential"] == "robot$web+ci"
    assert record.detail["reason"].startswith("robot robot$web+ci revoked")
    old, old_secret = services.create_robot(
        web, "old", expires_at=timezone.now() + timedelta(seconds=1), context=SYSTEM
    )
    Robot.objects.filter(pk=old.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert ask(client, old.login_name, old_secret).status_code == 401
    assert "expired" in last_access().detail["reason"]


def test_wrong_secrets_and_unknown_robots_get_the_same_answer(client: Client, setup: None, web: Team) -> None:
    services.create_robot(web, "ci", context=SYSTEM)
    wrong = ask(client, "robot$web+ci", "rgb_wrong")
    unknown = ask(client, "robot$web+nobody", "rgb_wrong")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()


def test_a_robot_secret_with_another_robots_name_is_refused(client: Client, setup: None, web: Team) -> None:
    services.create_robot(web, "a", context=SYSTEM)
    _, secret_b = services.create_robot(web, "b", context=SYSTEM)
    assert ask(client, "robot$web+a", secret_b).status_code == 401


def test_last_use_is_kept_without_a_write_every_time(client: Client, setup: None, web: Team) -> None:
    robot, secret = services.create_robot(web, "ci", context=SYSTEM)
    ask(client, robot.login_name, secret)
    robot.refresh_from_db()
    first = robot.last_used_at
    assert first is not None
    assert robot.last_used_ip == "127.0.0.1"
    ask(client, robot.login_name, secret)
    robot.refresh_from_db()
    assert robot.last_used_at == first
    assert AuditRecord.objects.filter(detail__action="credential.first_use").count() == 1


def test_a_read_only_token_pulls_but_never_pushes(client: Client, setup: None, bob: User) -> None:
    _, secret = services.create_access_token(bob, "laptop", read_only=True, context=SYSTEM)
    assert secret.startswith("rga_")
    response = ask(client, "bob", secret, "repository:web/app:pull,push")
    assert granted(response) == {"web/app": ["pull"]}
    record = last_access()
    assert (record.subject_type, record.actor, record.detail["credential"]) == ("token", "bob", "bob/laptop")


def test_a_pattern_token_is_limited_to_its_patterns(client: Client, setup: None, bob: User) -> None:
    _, secret = services.create_access_token(bob, "ci", patterns=["web/tools"], context=SYSTEM)
    response = ask(client, "bob", secret, "repository:web/tools:pull,push", "repository:web/app:pull")
    assert granted(response) == {"web/tools": ["pull", "push"], "web/app": []}


def test_a_token_never_gives_more_than_its_user_has(client: Client, setup: None, carol: User) -> None:
    _, secret = services.create_access_token(carol, "all", context=SYSTEM)
    assert granted(ask(client, "carol", secret, "repository:web/app:pull,push")) == {"web/app": ["pull"]}


def test_a_token_login_mints_no_refresh_token(client: Client, setup: None, bob: User) -> None:
    _, secret = services.create_access_token(bob, "laptop", context=SYSTEM)
    response = ask(client, "bob", secret, offline_token="true", client_id="docker")
    assert response.status_code == 200
    assert "refresh_token" not in response.json()


def test_tokens_of_someone_else_expired_revoked_or_of_inactive_users_are_refused(
    client: Client, setup: None, bob: User, carol: User
) -> None:
    token, secret = services.create_access_token(bob, "laptop", context=SYSTEM)
    assert ask(client, "carol", secret).status_code == 401
    services.revoke_access_token(token, context=SYSTEM)
    assert ask(client, "bob", secret).status_code == 401
    assert "revoked" in last_access().detail["reason"]
    other, other_secret = services.create_access_token(bob, "old", context=SYSTEM)
    PersonalAccessToken.objects.filter(pk=other.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    assert ask(client, "bob", other_secret).status_code == 401
    assert "expired" in last_access().detail["reason"]
    _, live_secret = services.create_access_token(bob, "live", context=SYSTEM)
    services.update_user(bob, is_active=False, context=SYSTEM)
    assert ask(client, "bob", live_secret).status_code == 401


def test_expiries_are_recorded_once_by_the_scheduled_task(setup: None, web: Team, bob: User) -> None:
    robot, _ = services.create_robot(web, "ci", context=SYSTEM)
    token, _ = services.create_access_token(bob, "t", context=SYSTEM)
    past = timezone.now() - timedelta(minutes=1)
    Robot.objects.filter(pk=robot.pk).update(expires_at=past)
    PersonalAccessToken.objects.filter(pk=token.pk).update(expires_at=past)
    assert services.record_credential_expiries() == 2
    assert services.record_credential_expiries() == 0
    actions = set(AuditRecord.objects.filter(kind="credential").values_list("detail__action", flat=True))
    assert {"robot.expire", "token.expire", "robot.create", "token.create"} <= actions


def test_create_robot_prints_the_secret_once(setup: None, web: Team) -> None:
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "create_robot", "web", "ci", "--grant", "web/app:write", "--expires", "2099-01-01", stdout=out, stderr=err
    )
    lines = dict(line.split(": ", 1) for line in out.getvalue().strip().splitlines())
    assert lines["username"] == "robot$web+ci"
    robot = Robot.objects.get()
    assert robot.expires_at.year == 2099
    assert robot.grants.get().pattern == "web/app"
    assert lines["secret"] not in str(list(AuditRecord.objects.values_list("detail", flat=True)))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nowhere", "ci"], "no team 'nowhere'"),
        (["web", "ci", "--grant", "web/app"], "PATTERN:ROLE"),
        (["web", "ci", "--expires", "2001-01-01"], "in the past"),
        (["web", "CI!"], "lowercase"),
        (["--global", "a", "b"], "only the robot's NAME"),
        (["web", "ci", "--grant", "ops/**:read"], "outside what team web holds"),
    ],
)
def test_create_robot_explains_bad_input(setup: None, args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        call_command("create_robot", *args, stdout=io.StringIO(), stderr=io.StringIO())


def test_create_token_prints_only_the_secret(setup: None, bob: User) -> None:
    out = io.StringIO()
    call_command("create_token", "bob", "ci", "--read-only", "--pattern", "web/*", stdout=out, stderr=io.StringIO())
    secret = out.getvalue().strip()
    assert secret.startswith("rga_")
    token = PersonalAccessToken.objects.get()
    assert (token.read_only, token.patterns) == (True, ["web/*"])
    with pytest.raises(CommandError, match="already has a token named"):
        call_command("create_token", "bob", "ci", stdout=io.StringIO(), stderr=io.StringIO())
    with pytest.raises(CommandError, match="no user"):
        call_command("create_token", "zed", "x", stdout=io.StringIO(), stderr=io.StringIO())


def test_deleting_a_team_drops_its_robots_from_htpasswd_and_records_it(
    setup: None, web: Team, django_capture_on_commit_callbacks
) -> None:

    registry = services.create_registry("legacy", auth_mode="htpasswd", context=SYSTEM)
    with django_capture_on_commit_callbacks(execute=True):
        services.create_robot(web, "ci", context=SYSTEM)
    assert "robot$web+ci" in htpasswd.path_for(registry).read_text()
    with django_capture_on_commit_callbacks(execute=True):
        services.delete_team(Team.objects.get(pk=web.pk), context=SYSTEM)
    assert "robot$web+ci" not in htpasswd.path_for(registry).read_text()
    assert AuditRecord.objects.filter(detail__action="robot.delete", detail__credential="robot$web+ci").exists()
