"""Configuration backups: what they hold, the file, verification, retention, and the restore.

alice leads team web (bob is a member); the team holds write on web/**, alice read on web/app
managed by web; robot web+ci and bob's PAT exist; the signing keys and a notification secret are made.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import os
import re
import stat
import subprocess
import tarfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.apps import apps
from django.contrib.auth.models import Group, Permission
from django.contrib.sessions.models import Session
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db.migrations.loader import MigrationLoader
from django.test import Client

from accounts import services, tasks
from accounts.models import (
    Backup,
    BackupState,
    CredentialPepper,
    DirectoryGroup,
    Grant,
    Membership,
    NotificationEndpoint,
    Registry,
    SigningKey,
    Team,
    User,
)
from accounts.registry import secrets as credential_secrets
from accounts.services import backups
from accounts.services.backups import archive, contents, files, restore
from audit.models import AuditRecord, Kind
from tests.conftest import PASSWORD, SYSTEM, ask_registry, granted
from tests.harness import require_binary

pytestmark = pytest.mark.django_db
KEY = "a passphrase with spaces "


@pytest.fixture(autouse=True)
def _backup_settings(settings, tmp_path: Path, allow_scratch_databases: None) -> None:
    settings.BACKUP_DIR = tmp_path / "backups"
    settings.BACKUP_KEY = KEY
    settings.BACKUP_COPY_COMMAND = ""


@pytest.fixture
def world(web: Team, alice: User, bob: User) -> dict[str, object]:
    registry = services.create_registry("registry", context=SYSTEM)
    services.ensure_keys(SYSTEM)
    services.notification_secret(registry, SYSTEM)
    services.create_grant(web, "web/**", "write", context=SYSTEM)
    services.create_grant(alice, "web/app", "read", context=SYSTEM, managed_by=web)
    robot, robot_secret = services.create_robot(web, "ci", grants=[("web/**", "write")], context=SYSTEM)
    _, token_secret = services.create_access_token(bob, "laptop", context=SYSTEM)
    refresh = services.new_refresh_token(alice, "registry", "docker")
    return {"robot": robot, "robot_secret": robot_secret, "token_secret": token_secret, "refresh": refresh}


def take(*, encrypted: bool = False) -> Backup:
    """A backup; plain unless the test is about encryption (scrypt costs about a second each way)."""
    return backups.take(SYSTEM, fragments={"fragments/registry.yml": "auth: {}\n"}, encrypted=encrypted)


def read(run: Backup) -> archive.Contents:
    return backups.read_file(Path(run.path))


# --- What a backup holds ------------------------------------------------------------------------


def test_every_model_is_either_in_a_backup_or_excluded_with_a_reason() -> None:
    labels = {m._meta.label_lower for m in apps.get_models(include_auto_created=True)}
    placed = set(contents.INCLUDED) | set(contents.THROUGH) | set(contents.EXCLUDED)
    assert labels - placed == set(), "place each new model in INCLUDED or EXCLUDED on purpose"
    assert placed - labels == set(), "a listed model no longer exists"
    assert not set(contents.INCLUDED) & set(contents.EXCLUDED)
    assert all(reason for reason in contents.EXCLUDED.values())
    assert all(parent in contents.INCLUDED for parent in contents.THROUGH.values())


def test_a_backup_holds_the_configuration_with_private_keys_peppers_and_files_but_not_the_audit_log(
    world: dict,
) -> None:
    run = take()
    backup = read(run)
    assert run.state == BackupState.VERIFIED and run.verified_at is not None
    assert backup.manifest["counts"]["accounts.user"] == 2
    assert backup.manifest["counts"]["accounts.grant"] == 3  # team, managed, robot
    assert {r["fields"]["username"] for r in backup.rows["accounts.user"]} == {"alice", "bob"}
    membership = backup.rows["accounts.membership"]
    assert sorted(r["fields"]["local_role"] for r in membership) == ["maintainer", "member"]
    key = backup.rows["accounts.signingkey"][0]["fields"]["private_key"]
    assert base64.b64decode(key).startswith(b"-----BEGIN")  # decrypted: the next host has another key
    secret = backup.rows["accounts.notificationendpoint"][0]["fields"]["secret"]
    assert base64.b64decode(secret).startswith(b"rgn_")
    assert [base64.b64decode(p) for p in backup.secrets["peppers"]] == credential_secrets.own_peppers()
    assert backup.files["fragments/registry.yml"] == b"auth: {}\n"
    assert "audit" not in json.dumps(list(backup.rows))
    assert backup.manifest["audit_log"].startswith("not included")
    leaves = MigrationLoader(None, ignore_no_migrations=True).graph.leaf_nodes()
    assert backup.manifest["migrations"]["accounts"][-1] == dict(leaves)["accounts"]  # the newest, whatever it is


def test_the_file_is_age_encrypted_private_to_its_owner_and_carries_checksums(world: dict) -> None:
    run = take(encrypted=True)
    path = Path(run.path)
    blob = path.read_bytes()
    assert blob.startswith(b"age-encryption.org/v1\n-> scrypt ")
    assert b"BEGIN" not in blob and b"alice" not in blob
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.parent == Path(backups.files.backup_dir())
    assert path.name.startswith("registryadmin-backup-") and path.name.endswith(".tar.gz.age")
    assert run.size == len(blob) and len(run.sha256) == 64
    members = read(run).manifest["members"]
    assert set(members) >= {"configuration.json", "secrets.json", "README.txt", "fragments/registry.yml"}


def test_the_age_command_line_opens_a_backup_with_the_passphrase(world: dict, tmp_path: Path) -> None:
    age = require_binary("age")
    run = take(encrypted=True)
    out = tmp_path / "plain.tar.gz"
    pid, fd = os.forkpty()
    if pid == 0:  # age reads the passphrase from the terminal only
        os.execv(age, [age, "-d", "-o", str(out), run.path])
    said = b""
    while b"passphrase" not in said.lower():
        said += os.read(fd, 1024)
    os.write(fd, KEY.encode() + b"\n")
    try:
        while os.read(fd, 1024):
            pass
    except OSError:
        pass
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert archive.unpack(out.read_bytes()).manifest["counts"]["accounts.user"] == 2


# --- Refusals and damage ------------------------------------------------------------------------


def test_it_refuses_to_write_a_backup_without_a_key_unless_told_to_write_it_plain(world: dict, settings) -> None:
    settings.BACKUP_KEY = ""
    with pytest.raises(backups.BackupError, match="BACKUP_KEY"):
        take(encrypted=True)
    assert not list(Path(settings.BACKUP_DIR).glob("*")) if Path(settings.BACKUP_DIR).exists() else True
    run = backups.take(SYSTEM, fragments={}, encrypted=False)
    assert Path(run.path).read_bytes()[:2] == b"\x1f\x8b" and run.path.endswith(".tar.gz")
    assert archive.read(Path(run.path).read_bytes(), None).manifest["encrypted"] is False


@pytest.fixture
def taken(world: dict) -> Path:
    return Path(take().path)


@pytest.fixture
def sealed(world: dict) -> Path:
    return Path(take(encrypted=True).path)


def test_a_wrong_key_a_truncated_file_and_foreign_bytes_are_each_named(sealed: Path, tmp_path: Path) -> None:
    taken = sealed
    blob = taken.read_bytes()
    with pytest.raises(backups.BackupError, match="wrong key"):
        backups.read_file(taken, "not the passphrase")
    for cut in (len(blob) - 1, len(blob) // 2, 200):
        short = tmp_path / f"short-{cut}"
        short.write_bytes(blob[:cut])
        with pytest.raises(backups.BackupError, match="truncated"):
            backups.read_file(short)
    junk = tmp_path / "junk"
    junk.write_bytes(b"PK\x03\x04 a zip")
    with pytest.raises(backups.BackupError, match="not a registryadmin backup"):
        backups.read_file(junk)
    with pytest.raises(backups.BackupError, match="set BACKUP_KEY"):
        backups.read_file(taken, "")


def test_a_member_that_does_not_match_its_checksum_is_refused(taken: Path) -> None:
    data = taken.read_bytes()
    backup = archive.unpack(data)
    rows = backup.rows
    rows["accounts.user"][0]["fields"]["is_superuser"] = True
    forged = archive.pack({}, rows, backup.secrets, backup.files)
    manifest = archive.unpack(forged).manifest
    original = archive.unpack(data).manifest
    assert manifest["members"]["configuration.json"] != original["members"]["configuration.json"]
    # Swap the forged configuration in under the original manifest: the checksum catches it.
    buffer = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data))) as old, tarfile.open(fileobj=buffer, mode="w") as new:
        forged_config = archive.unpack(forged)
        for info in old:
            body = old.extractfile(info).read()
            if info.name == "configuration.json":
                body = json.dumps(forged_config.rows).encode()
                info.size = len(body)
            new.addfile(info, io.BytesIO(body))
    with pytest.raises(backups.BackupError, match="checksum"):
        archive.unpack(gzip.compress(buffer.getvalue()))


def newer_schema(path: Path) -> Path:
    backup = backups.read_file(path)
    manifest = dict(backup.manifest)
    manifest["migrations"] = {
        **manifest["migrations"],
        "accounts": [*manifest["migrations"]["accounts"], "0999_future"],
    }
    manifest.pop("members")
    data = archive.pack(manifest, backup.rows, backup.secrets, backup.files)
    newer = path.with_name("newer.tar.gz")
    newer.write_bytes(data)
    return newer


def test_restore_refuses_a_file_from_a_newer_schema_and_changes_nothing(taken: Path) -> None:
    before = contents.dump()
    with pytest.raises(CommandError, match=r"newer registryadmin.*0999_future"):
        call_command("restore_backup", str(newer_schema(taken)), "--noinput", "--force")
    assert contents.dump() == before


def test_a_failed_restore_command_changes_nothing(sealed: Path, tmp_path: Path, settings) -> None:
    taken = sealed
    before = contents.dump()
    short = tmp_path / "short.age"
    short.write_bytes(taken.read_bytes()[:-10])
    for path, key, words in ((taken, "wrong", "wrong key"), (short, KEY, "truncated")):
        settings.BACKUP_KEY = key
        with pytest.raises(CommandError, match=f"nothing changed.*{words}"):
            call_command("restore_backup", str(path), "--noinput", "--force", verbosity=0)
    assert contents.dump() == before


def test_a_backup_that_does_not_verify_fails_and_never_counts_for_retention(world: dict, monkeypatch) -> None:
    real_write = files.write

    def lossy_write(directory: Path, name: str, data: bytes) -> Path:  # a disk that loses the tail
        return real_write(directory, name, data[:-100])

    monkeypatch.setattr(files, "write", lossy_write)
    with pytest.raises(backups.BackupError, match="truncated"):
        take()
    run = Backup.objects.get()
    assert run.state == BackupState.FAILED and "truncated" in run.error and run.verified_at is None
    assert Path(run.path).exists()  # kept for the operator to look at
    assert backups.prune() == []


def test_the_scheduled_job_records_a_failed_verification_and_mails_the_admins(
    world: dict, monkeypatch, mailoutbox, ada: User
) -> None:
    ada.email = "ada@example.org"
    ada.save(update_fields=["email"])
    real_write = files.write
    monkeypatch.setattr(files, "write", lambda d, n, data: real_write(d, n, data[:-100]))
    with pytest.raises(backups.BackupError):
        tasks.backup()
    job = AuditRecord.objects.filter(kind=Kind.JOB, detail__job="backup").get()
    assert job.outcome == "error" and "truncated" in job.detail["error"]
    assert [m.to for m in mailoutbox] == [["ada@example.org"]] and "backup" in mailoutbox[0].subject
    assert Backup.objects.get().scheduled


# --- Retention and the copy hook -----------------------------------------------------------------


def at(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(hour=1, tzinfo=UTC)


def test_retention_keeps_the_newest_of_each_recent_day_week_and_month() -> None:
    daily = [at("2026-12-07") - timedelta(days=n) for n in range(400)]
    kept = files.kept(daily, daily=7, weekly=4, monthly=12)
    assert sorted(kept)[-7:] == sorted(daily[:7])
    assert len(kept) == 7 + 3 + 10  # the week and month of the newest days are already kept
    assert min(kept) == at("2026-01-31")
    assert files.kept(daily, daily=0, weekly=0, monthly=0) == {daily[0]}  # the newest always stays
    twice = [at("2026-12-07"), at("2026-12-07") + timedelta(hours=5)]
    assert files.kept(twice, daily=1, weekly=0, monthly=0) == {twice[1]}
    assert files.kept(twice, daily=1, weekly=0, monthly=0, recent_after=twice[0] - timedelta(hours=1)) == set(twice)


def test_prune_removes_only_verified_files_of_this_host_that_retention_drops(world: dict, settings) -> None:
    first, second = take(), take()
    settings.BACKUP_KEEP_DAILY, settings.BACKUP_KEEP_WEEKLY, settings.BACKUP_KEEP_MONTHLY = 1, 0, 0
    Backup.objects.filter(pk=first.pk).update(started_at=first.started_at - timedelta(days=2))
    stranger = Path(settings.BACKUP_DIR) / "copied-in.tar.gz.age"
    stranger.write_bytes(b"someone else's")
    assert backups.prune() == [first.file_name]
    assert not Path(first.path).exists() and Path(second.path).exists() and stranger.exists()
    assert Backup.objects.get(pk=first.pk).deleted_at is not None


def test_the_copy_command_gets_the_path_and_its_failure_fails_the_run(world: dict, settings, tmp_path: Path) -> None:
    offsite = tmp_path / "offsite"
    offsite.mkdir()
    settings.BACKUP_COPY_COMMAND = f"cp -t {offsite}"
    run = take()
    assert (offsite / run.file_name).read_bytes() == Path(run.path).read_bytes() and run.copied_at
    settings.BACKUP_COPY_COMMAND = "sh -c 'echo no route to the bucket >&2; exit 3' copy"
    with pytest.raises(backups.BackupError, match="exited 3: no route to the bucket"):
        take()
    failed = Backup.objects.order_by("-id").first()
    assert failed.state == BackupState.FAILED and failed.verified_at is not None  # a good file, not off the host
    # It is a good backup all the same: retention counts it (copies failing for days must not pile files up).
    settings.BACKUP_KEEP_DAILY, settings.BACKUP_KEEP_WEEKLY, settings.BACKUP_KEEP_MONTHLY = 1, 0, 0
    Backup.objects.exclude(pk=failed.pk).update(started_at=failed.started_at - timedelta(days=2))
    assert backups.prune() == [run.file_name] and Path(failed.path).exists()


def test_backup_command_prints_the_path_last(world: dict, capsys) -> None:
    call_command("backup", verbosity=1)
    out = capsys.readouterr().out.strip().splitlines()
    assert Path(out[-1]).is_file() and out[-1] == Backup.objects.get().path


def test_backup_command_without_a_key_exits_with_the_remedy(world: dict, settings) -> None:
    settings.BACKUP_KEY = ""
    with pytest.raises(CommandError, match=r"BACKUP_KEY.*--unencrypted"):
        call_command("backup")


# --- Restore ------------------------------------------------------------------------------------


def restore_here(path: Path, **options: object) -> None:
    call_command("restore_backup", str(path), "--noinput", verbosity=0, **options)


def test_restore_refuses_a_host_with_people_on_it_unless_forced(taken: Path) -> None:
    with pytest.raises(CommandError, match=r"already holds 2 users.*--force"):
        restore_here(taken)


def test_restore_replaces_the_configuration_and_keeps_the_audit_log(world: dict, taken: Path, carol: User) -> None:
    services.create_team("ops", context=SYSTEM)
    Grant.objects.filter(pattern="web/app").update(role="write")
    session = Client()
    session.force_login(carol)
    records = AuditRecord.objects.count()
    restore_here(taken, force=True)
    assert not User.objects.filter(username="carol").exists()
    assert not Team.objects.filter(name="ops").exists()
    assert Grant.objects.get(pattern="web/app").role == "read"
    assert Session.objects.count() == 0
    assert AuditRecord.objects.count() == records + 1
    record = AuditRecord.objects.order_by("-id").first()
    assert record.kind == Kind.ADMIN_CHANGE and record.detail["action"] == "backup.restore"
    assert record.detail["after"]["counts"]["accounts.grant"] == 3 and record.detail["after"]["replaced"]


def test_restore_dry_run_shows_each_change_and_changes_nothing(world: dict, taken: Path, capsys) -> None:
    services.create_team("ops", context=SYSTEM)
    Grant.objects.filter(pattern="web/app").update(role="write")
    User.objects.filter(username="bob").delete()
    before = contents.dump()
    call_command("restore_backup", str(taken), "--dry-run", "--force")
    out = capsys.readouterr()
    lines = out.out.splitlines()
    assert any(re.fullmatch(r"- team #\d+ ops", line) for line in lines)
    assert any(line.startswith("+ user #") and line.endswith(" bob") for line in lines)
    assert any(line.startswith("+ membership #") and line.endswith("user bob team web") for line in lines)
    assert any(line.startswith("~ grant #") and "role 'write' -> 'read'" in line for line in lines)
    assert "Would change:" in out.err and "teams -1" in out.err
    assert contents.dump() == before


def test_restore_asks_on_a_terminal_and_refuses_without_one(world: dict, taken: Path, monkeypatch) -> None:
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    with pytest.raises(CommandError, match="confirm on a terminal, or pass --noinput"):
        call_command("restore_backup", str(taken), "--force", verbosity=0)
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt: "no")
    with pytest.raises(CommandError, match="not confirmed"):
        call_command("restore_backup", str(taken), "--force", verbosity=0)


def wipe_to_fresh_install() -> None:
    """What a new host holds after migrate: its bootstrap admin and registry row, nothing else."""
    contents.clear()
    CredentialPepper.objects.all().delete()
    services.create_user("admin", password=PASSWORD, validate=False, is_superuser=True, context=SYSTEM)


def test_a_new_host_with_other_keys_takes_the_backup_and_old_secrets_keep_working(
    world: dict, taken: Path, settings
) -> None:
    alice_grants = granted(ask_registry("alice", PASSWORD, "repository:web/app:pull"))
    wipe_to_fresh_install()
    settings.SECRET_KEY = "another-host-secret-key-" + "x" * 40
    settings.KEY_ENCRYPTION_KEY = "another-host-kek-" + "y" * 40
    settings.SECRET_KEY_FALLBACKS = []
    restore_here(taken)
    kept = CredentialPepper.objects.get()
    assert "backup of" in kept.source
    assert credential_secrets.kept_peppers() == [
        credential_secrets._pepper("test-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz")
    ]
    assert granted(ask_registry("alice", PASSWORD, "repository:web/app:pull")) == alice_grants
    assert granted(ask_registry(world["robot"].login_name, world["robot_secret"], "repository:web/x:push"))
    assert granted(ask_registry("bob", world["token_secret"], "repository:web/x:pull")) == {"web/x": ["pull"]}
    assert ask_registry("bob", world["token_secret"] + "x", "repository:web/x:pull").status_code == 401
    refresh = Client().post(
        "/auth/token",
        {
            "grant_type": "refresh_token",
            "refresh_token": world["refresh"],
            "service": "registry",
            "client_id": "docker",
            "scope": "repository:web/app:pull",
        },
    )
    assert refresh.status_code == 200, refresh.content
    # Wrapped values were wrapped again under this host's key: they read without the old one.
    assert NotificationEndpoint.objects.get().secret and services.notification_secret(
        Registry.objects.get()
    ).startswith("rgn_")
    assert SigningKey.objects.filter(state="current").exists()
    # New secrets made here use this host's own pepper.
    _, fresh_secret = services.create_robot(
        Team.objects.get(name="web"), "deploy", grants=[("web/**", "read")], context=SYSTEM
    )
    assert granted(ask_registry("robot$web+deploy", fresh_secret, "repository:web/x:pull")) == {"web/x": ["pull"]}


def test_a_restore_keeps_ids_so_audit_records_name_the_same_people(world: dict, taken: Path) -> None:
    ids = dict(User.objects.values_list("username", "pk"))
    wipe_to_fresh_install()
    restore_here(taken, force=True)
    assert dict(User.objects.values_list("username", "pk")) == ids
    assert Membership.objects.filter(team__name="web").count() == 2
    # New rows continue after the restored ids (PostgreSQL's sequences were moved).
    assert services.create_team("later", context=SYSTEM).pk > Team.objects.exclude(name="later").order_by("-pk")[0].pk


def test_verify_backup_command_restores_into_a_scratch_database(taken: Path, capsys) -> None:
    call_command("verify_backup", str(taken))
    assert "verified" in capsys.readouterr().out
    assert restore.occupied() == [
        "2 users",
        "1 teams",
        "3 grants",
        "2 memberships",
        "1 robots",
        "1 personal access tokens",
    ]


def test_two_backups_in_one_second_get_two_files(tmp_path: Path) -> None:
    first = files.write(tmp_path, "registryadmin-backup-x.tar.gz.age", b"one")
    second = files.write(tmp_path, "registryadmin-backup-x.tar.gz.age", b"two")
    assert (first.name, second.name) == ("registryadmin-backup-x.tar.gz.age", "registryadmin-backup-x-2.tar.gz.age")
    assert first.read_bytes() == b"one" and stat.S_IMODE(second.stat().st_mode) == 0o600
    assert {p.name for p in tmp_path.iterdir()} == {first.name, second.name}  # no temp file left


def test_a_scheduled_run_without_a_key_fails_visibly_with_the_remedy(world: dict, settings) -> None:
    settings.BACKUP_KEY = ""
    with pytest.raises(backups.BackupError):
        tasks.backup()
    run = Backup.objects.get()
    assert run.state == BackupState.FAILED and "BACKUP_KEY" in run.error and run.finished_at


def test_back_up_now_is_recorded_and_refused_while_a_run_is_under_way(world: dict, settings) -> None:
    run = backups.request_run(SYSTEM)
    assert run.state == BackupState.QUEUED
    record = AuditRecord.objects.filter(detail__action="backup.request").get()
    assert record.detail["after"] == {"run": run.pk}
    with pytest.raises(backups.BackupError, match=f"backup run {run.pk} is queued"):
        backups.request_run(SYSTEM)
    Backup.objects.filter(pk=run.pk).update(started_at=run.started_at - backups.STALE_AFTER)  # its worker died
    assert backups.request_run(SYSTEM).pk != run.pk
    settings.BACKUP_KEY = ""
    with pytest.raises(backups.BackupError, match="BACKUP_KEY is not set"):
        backups.request_run(SYSTEM)


# --- Public-key mode ------------------------------------------------------------------------------


@pytest.fixture
def identity(tmp_path: Path) -> tuple[str, Path]:
    """An age key pair made by age-keygen: (its recipient, its identity file)."""
    keygen = require_binary("age-keygen")
    path = tmp_path / "identity.txt"
    subprocess.run([keygen, "-o", str(path)], check=True, capture_output=True)
    recipient = next(line.split(": ")[1] for line in path.read_text().splitlines() if "public key" in line)
    return recipient, path


def test_with_recipients_a_backup_opens_only_with_an_identity_and_age_reads_it(
    world: dict, settings, identity: tuple[str, Path], tmp_path: Path
) -> None:
    recipient, identity_file = identity
    settings.BACKUP_KEY, settings.BACKUP_RECIPIENTS = "", [recipient]
    run = take(encrypted=True)  # verified from what it encrypted: this host holds no identity
    assert run.state == BackupState.VERIFIED
    assert Path(run.path).read_bytes().startswith(b"age-encryption.org/v1\n-> X25519 ")
    with pytest.raises(backups.BackupError, match="set BACKUP_IDENTITY_FILE"):
        backups.read_file(Path(run.path))
    plain = tmp_path / "plain.tar.gz"
    subprocess.run([require_binary("age"), "-d", "-i", str(identity_file), "-o", str(plain), run.path], check=True)
    assert archive.unpack(plain.read_bytes()).manifest["encryption"] == "recipients"
    other = tmp_path / "other.txt"
    subprocess.run([require_binary("age-keygen"), "-o", str(other)], check=True, capture_output=True)
    settings.BACKUP_IDENTITY_FILE = str(other)
    with pytest.raises(backups.BackupError, match="wrong identity"):
        backups.read_file(Path(run.path))
    settings.BACKUP_IDENTITY_FILE = str(identity_file)
    wipe_to_fresh_install()
    restore_here(Path(run.path))
    assert set(User.objects.values_list("username", flat=True)) == {"alice", "bob"}


def test_a_restore_gives_back_every_row_as_it_was_groups_permissions_and_directory_sources_included(
    world: dict, alice: User, bob: User
) -> None:
    editors = Group.objects.create(name="editors")
    editors.permissions.add(Permission.objects.get(codename="view_team"))
    alice.groups.add(editors)
    bob.user_permissions.add(Permission.objects.get(codename="change_grant"))
    web = Team.objects.get(name="web")
    group = DirectoryGroup.objects.create(team=web, dn="cn=web,ou=groups,dc=example,dc=org", role="maintainer")
    Membership.objects.get(team=web, user=bob).directory_groups.add(group)
    before = contents.dump()
    path = Path(take().path)
    wipe_to_fresh_install()
    Permission.objects.filter(codename="view_team").update(name="renamed, same natural key")
    restore_here(path, force=True)
    assert contents.dump() == before
    assert list(User.objects.get(username="bob").user_permissions.values_list("codename", flat=True)) == [
        "change_grant"
    ]
    assert Membership.objects.get(team=web, user=bob).directory_groups.get() == group


def test_rows_that_do_not_fit_this_database_are_refused_whole(taken: Path, tmp_path: Path) -> None:
    backup = backups.read_file(taken)
    users = backup.rows["accounts.user"]
    users.append({"pk": 999, "fields": {**users[0]["fields"]}})  # a second alice: the unique name refuses it
    manifest = {k: v for k, v in backup.manifest.items() if k != "members"}
    manifest["counts"]["accounts.user"] += 1
    odd = tmp_path / "odd.tar.gz"
    odd.write_bytes(archive.pack(manifest, backup.rows, backup.secrets, backup.files))
    before = contents.dump()
    with pytest.raises(CommandError, match="nothing changed: the backup's rows do not fit here"):
        restore_here(odd, force=True)
    assert contents.dump() == before
