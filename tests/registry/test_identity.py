"""Who is asking at the token endpoint (accounts.registry.identity): users, robots, PATs, refresh tokens, nobody.

Personas: alice leads team web, bob is a member of web, carol is an outsider, dave is inactive.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from pytest_django import Settings

from accounts import services
from accounts.access.engine import Ceiling
from accounts.models import PersonalAccessToken, RefreshToken, Robot, Team, User
from accounts.registry.identity import ANONYMOUS_IDENTITY, Failure, Identity, identify
from audit.context import AuditContext
from audit.models import AuditRecord, Kind, SubjectType
from tests.conftest import PASSWORD, SYSTEM

pytestmark = pytest.mark.django_db

CLIENT = AuditContext(ip="192.0.2.7", user_agent="docker/24.0", request_id="req-1")


def who(username: str | None, password: str = "", **overrides: object) -> Identity | Failure:
    """``identify`` as the endpoint calls it for a GET with HTTP Basic credentials."""
    arguments: dict[str, object] = {
        "grant_type": "password",
        "refresh_token": None,
        "service": "registry",
        "offline": False,
        "client_id": "docker",
        "context": CLIENT,
    }
    arguments.update(overrides)
    return identify(username, password, **arguments)  # type: ignore[arg-type]


def first_use_records() -> list[AuditRecord]:
    return list(AuditRecord.objects.filter(kind=Kind.CREDENTIAL, detail__action="credential.first_use"))


@pytest.fixture
def ci(web: Team) -> tuple[Robot, str]:
    services.create_grant(web, "web/**", "write", context=SYSTEM)
    return services.create_robot(web, "ci", grants=[("web/app", "write")], context=SYSTEM)


@pytest.fixture
def laptop(alice: User) -> tuple[PersonalAccessToken, str]:
    return services.create_access_token(alice, "laptop", read_only=True, context=SYSTEM)


# --- users with a password -----------------------------------------------------------


def test_a_user_with_the_right_password_is_that_user(alice: User) -> None:
    identity = who("alice", PASSWORD)
    assert isinstance(identity, Identity)
    assert (identity.subject.kind, identity.subject.name) == ("user", "alice")
    assert (identity.subject_type, identity.actor, identity.actor_id) == (SubjectType.USER, "alice", alice.pk)
    assert (identity.credential, identity.refresh_token) == ("", None)


@pytest.mark.parametrize(("username", "password"), [("carol", "wrong-password"), ("nobody", PASSWORD)])
def test_a_wrong_password_and_an_unknown_user_get_the_same_failure(carol: User, username: str, password: str) -> None:
    assert who(username, password) == Failure("bad username or password", SubjectType.USER, "")


def test_an_inactive_user_with_the_right_password_is_refused_as_inactive(dave: User) -> None:
    assert who("dave", PASSWORD) == Failure("user is inactive")


def test_an_inactive_user_with_a_wrong_password_is_not_told_that_the_account_is_inactive(dave: User) -> None:
    assert who("dave", "wrong-password") == Failure("bad username or password")


def test_no_username_is_anonymous_and_mints_nothing(alice: User) -> None:
    identity = who(None, "", offline=True)
    assert identity == ANONYMOUS_IDENTITY
    assert (identity.subject.kind, identity.subject_type, identity.actor) == ("anonymous", SubjectType.ANONYMOUS, "")
    assert not RefreshToken.objects.exists()


def test_offline_password_login_mints_a_refresh_token_stored_only_as_a_hash(alice: User) -> None:
    identity = who("alice", PASSWORD, offline=True, client_id="docker")
    assert isinstance(identity, Identity) and identity.refresh_token is not None
    assert identity.refresh_token.startswith("rgr_")
    row = RefreshToken.objects.get()
    assert (row.user, row.service, row.client_id) == (alice, "registry", "docker")
    assert identity.refresh_token not in row.token_hash


def test_a_password_login_without_offline_mints_no_refresh_token(alice: User) -> None:
    identity = who("alice", PASSWORD)
    assert isinstance(identity, Identity) and identity.refresh_token is None
    assert not RefreshToken.objects.exists()


# --- refresh tokens -------------------------------------------------------------------


def test_a_refresh_token_identifies_its_owner_and_is_returned_unchanged(alice: User, carol: User) -> None:
    token = services.new_refresh_token(alice, "registry", "docker")
    # The username is not asked: the token alone says who (docker sends its own idea of the name).
    identity = who("carol", "", grant_type="refresh_token", refresh_token=token)
    assert isinstance(identity, Identity)
    assert (identity.subject.name, identity.actor, identity.actor_id) == ("alice", "alice", alice.pk)
    assert identity.refresh_token == token  # docker ignores a rotated one (moby 39718)
    assert RefreshToken.objects.count() == 1


@pytest.mark.parametrize("case", ["missing", "unknown", "other-service", "revoked", "expired", "owner-inactive"])
def test_a_dead_or_foreign_refresh_token_is_refused(alice: User, settings: Settings, case: str) -> None:
    if case == "expired":
        settings.REFRESH_TOKEN_TTL = -60
    token = services.new_refresh_token(alice, "other" if case == "other-service" else "registry", "docker")
    if case == "revoked":
        services.revoke_user_refresh_tokens(alice, context=SYSTEM)
    if case == "owner-inactive":
        services.update_user(alice, is_active=False, context=SYSTEM)
    presented = {"missing": None, "unknown": "rgr_" + "x" * 43}.get(case, token)
    assert who(None, grant_type="refresh_token", refresh_token=presented) == Failure(
        "invalid, expired or revoked refresh token"
    )


# --- robots ---------------------------------------------------------------------------


def test_a_robot_with_its_login_and_secret_is_that_robot_capped_by_its_team(ci: tuple[Robot, str]) -> None:
    identity = who("robot$web+ci", ci[1])
    assert isinstance(identity, Identity)
    assert (identity.subject.kind, identity.subject.name) == ("robot", "robot$web+ci")
    assert identity.subject.ceilings == (Ceiling("web/**", "write"),)
    assert (identity.subject_type, identity.actor, identity.actor_id) == (SubjectType.ROBOT, "robot$web+ci", None)
    assert identity.credential == "robot$web+ci"


def test_a_global_robot_logs_in_without_a_team(db: None) -> None:
    _, secret = services.create_robot(None, "backup", context=SYSTEM)
    identity = who("robot$backup", secret)
    assert isinstance(identity, Identity)
    assert (identity.subject.name, identity.subject.ceilings) == ("robot$backup", None)


@pytest.mark.parametrize(
    ("username", "secret"),
    [
        ("robot$web+ci", "rgb_wrong"),
        ("robot$web+ci", PASSWORD),
        ("robot$web+other", "SECRET"),
        ("robot$ci", "SECRET"),
        ("alice", "SECRET"),
    ],
    ids=["wrong-secret", "a-password", "other-robot-name", "same-name-without-team", "a-users-name"],
)
def test_a_robot_secret_counts_only_with_its_own_login(ci: tuple[Robot, str], username: str, secret: str) -> None:
    presented = ci[1] if secret == "SECRET" else secret
    assert who(username, presented) == Failure("bad robot name or secret", SubjectType.ROBOT, "")


def test_a_revoked_robot_is_refused_and_named(ci: tuple[Robot, str]) -> None:
    robot, secret = ci
    services.revoke_robot(robot, context=SYSTEM)
    failure = who("robot$web+ci", secret)
    assert isinstance(failure, Failure)
    assert failure.reason.startswith("robot robot$web+ci revoked ")
    assert (failure.subject_type, failure.credential) == (SubjectType.ROBOT, "robot$web+ci")


def test_an_expired_robot_is_refused_and_named(db: None) -> None:
    _, secret = services.create_robot(None, "old", expires_at=timezone.now() - timedelta(hours=1), context=SYSTEM)
    failure = who("robot$old", secret)
    assert isinstance(failure, Failure)
    assert failure.reason.startswith("robot robot$old expired ")
    assert (failure.subject_type, failure.credential) == (SubjectType.ROBOT, "robot$old")


def test_a_robot_login_never_mints_a_refresh_token(ci: tuple[Robot, str]) -> None:
    identity = who("robot$web+ci", ci[1], offline=True)
    assert isinstance(identity, Identity) and identity.refresh_token is None
    assert not RefreshToken.objects.exists()


def test_a_robots_first_use_is_recorded_once_with_the_clients_address(ci: tuple[Robot, str]) -> None:
    robot, secret = ci
    who("robot$web+ci", secret)
    who("robot$web+ci", secret)
    [record] = first_use_records()
    assert (record.outcome, record.subject_type, record.ip) == ("success", SubjectType.SYSTEM, "192.0.2.7")
    assert record.detail["credential"] == "robot$web+ci"
    robot.refresh_from_db()
    assert robot.last_used_ip == "192.0.2.7" and robot.last_used_at is not None


def test_last_use_is_written_at_most_once_a_minute(ci: tuple[Robot, str]) -> None:
    robot, secret = ci
    who("robot$web+ci", secret)
    robot.refresh_from_db()
    first = robot.last_used_at
    who("robot$web+ci", secret)
    robot.refresh_from_db()
    assert robot.last_used_at == first
    two_minutes_ago = timezone.now() - timedelta(minutes=2)
    Robot.objects.filter(pk=robot.pk).update(last_used_at=two_minutes_ago)
    who("robot$web+ci", secret)
    robot.refresh_from_db()
    assert robot.last_used_at > two_minutes_ago
    assert len(first_use_records()) == 1


def test_a_robot_made_before_a_secret_key_rotation_still_logs_in(ci: tuple[Robot, str], settings: Settings) -> None:
    secret = ci[1]
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "rotated-" + settings.SECRET_KEY
    assert isinstance(who("robot$web+ci", secret), Identity)
    settings.SECRET_KEY_FALLBACKS = []
    assert who("robot$web+ci", secret) == Failure("bad robot name or secret", SubjectType.ROBOT)


# --- personal access tokens ------------------------------------------------------------


def test_a_pat_with_its_users_name_is_that_user_capped_by_the_token(
    alice: User, laptop: tuple[PersonalAccessToken, str]
) -> None:
    identity = who("alice", laptop[1])
    assert isinstance(identity, Identity)
    assert (identity.subject.kind, identity.subject.name) == ("user", "alice")
    assert identity.subject.ceilings == (Ceiling("**", "read"),)
    assert (identity.subject_type, identity.actor, identity.actor_id) == (SubjectType.TOKEN, "alice", alice.pk)
    assert identity.credential == "alice/laptop"


@pytest.mark.parametrize(
    ("username", "secret"), [("bob", "LAPTOP"), ("alice", "rga_" + "x" * 43)], ids=["bob", "unknown"]
)
def test_a_pat_counts_only_with_its_own_users_name(
    bob: User, laptop: tuple[PersonalAccessToken, str], username: str, secret: str
) -> None:
    presented = laptop[1] if secret == "LAPTOP" else secret
    assert who(username, presented) == Failure("bad username or token", SubjectType.TOKEN, "")


def test_a_revoked_pat_is_refused_and_named(laptop: tuple[PersonalAccessToken, str]) -> None:
    token, secret = laptop
    services.revoke_access_token(token, context=SYSTEM)
    failure = who("alice", secret)
    assert isinstance(failure, Failure)
    assert failure.reason.startswith("token alice/laptop revoked ")
    assert (failure.subject_type, failure.credential) == (SubjectType.TOKEN, "alice/laptop")


def test_an_expired_pat_is_refused_and_named(carol: User) -> None:
    expired = timezone.now() - timedelta(minutes=5)
    _, secret = services.create_access_token(carol, "ci", expires_at=expired, context=SYSTEM)
    failure = who("carol", secret)
    assert isinstance(failure, Failure)
    assert failure.reason.startswith("token carol/ci expired ")
    assert (failure.subject_type, failure.credential) == (SubjectType.TOKEN, "carol/ci")


def test_the_pat_of_an_inactive_user_is_refused(dave: User) -> None:
    _, secret = services.create_access_token(dave, "laptop", context=SYSTEM)
    assert who("dave", secret) == Failure("user is inactive (token dave/laptop)", SubjectType.TOKEN, "dave/laptop")


def test_a_pat_login_never_mints_a_refresh_token(laptop: tuple[PersonalAccessToken, str]) -> None:
    identity = who("alice", laptop[1], offline=True)
    assert isinstance(identity, Identity) and identity.refresh_token is None
    assert not RefreshToken.objects.exists()


def test_a_pats_first_use_is_recorded_under_its_label(laptop: tuple[PersonalAccessToken, str]) -> None:
    token, secret = laptop
    who("alice", secret)
    [record] = first_use_records()
    assert (record.subject_type, record.ip, record.detail["credential"]) == (
        SubjectType.SYSTEM,
        "192.0.2.7",
        "alice/laptop",
    )
    token.refresh_from_db()
    assert token.last_used_ip == "192.0.2.7"


def test_failures_write_no_audit_record_of_their_own(
    dave: User, ci: tuple[Robot, str], laptop: tuple[PersonalAccessToken, str]
) -> None:
    # The endpoint records the attempt with the failure's reason; identify must not add a second record.
    services.revoke_robot(ci[0], context=SYSTEM)
    after_setup = AuditRecord.objects.count()
    for username, password in [("alice", "wrong"), ("dave", PASSWORD), ("robot$web+ci", ci[1]), ("bob", laptop[1])]:
        assert isinstance(who(username, password), Failure)
    assert AuditRecord.objects.count() == after_setup
