"""Configuration backups end to end: taken by the real scheduler, restored on a new host, bad files refused.

Personas from the registry tests: alice leads team web (write on web/**), bob is a member, carol may
read web/app, erin is an outsider, dave is inactive, ada is the admin; pub/base is public.

(1) Celery beat fires the backup entry on the real Redis and a real worker writes, verifies and copies
the file off the host; a copy command that fails makes the job fail with its output. (2) The disaster
case: host A (gunicorn, a docker-registry pointed at it) is backed up and then gone; host B has a new
DATA_DIR, a new database, another SECRET_KEY and KEY_ENCRYPTION_KEY, and only the backup file and
BACKUP_KEY. Restored and started where A was, B answers the registry that was never restarted: the
old password, the robot's old secret and the PAT all pull. (3) A wrong key, a truncated (or empty) file and
a file from a newer schema are refused with the reason, and change nothing.
"""

from __future__ import annotations

import copy
import json
import shutil
import stat
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from kombu import Connection
from playwright.sync_api import expect

from accounts import policy, services
from accounts.models import Backup, BackupState, CredentialPepper, User
from accounts.services.backups import archive, contents, restore
from audit.models import AuditRecord
from registryadmin.celery import app as celery_app
from tests.conftest import SYSTEM, make_user
from tests.e2e_stack import AppServer, celery_process, eventually, once_now, overdue, private_redis_db, registry_for
from tests.harness import require_binary
from tests.harness.clients import Skopeo
from tests.harness.ociimage import OciImage
from tests.ops.test_browser import browser, csp_problems, shot, sign_in  # noqa: F401 - the fixture too
from tests.ops.test_celery_worker import redis_or_skip
from tests.ops.test_registry_e2e import creds, image, people  # noqa: F401 - fixtures too
from tests.ops.test_rotation_e2e import WORKER, job_records, registry_starts, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

BACKUP_KEY = "the passphrase the operator keeps in the safe, spaces and all"
KEY_ENCRYPTION_KEY_A = "backup-e2e-key-encryption-key-A-0123456789abcdef"
KEY_ENCRYPTION_KEY_B = "backup-e2e-key-encryption-key-B-0123456789abcdef"
SECRET_KEY_B = "backup-e2e-secret-key-of-the-new-host-0123456789abcdefghijklmnop"
ROBOT = "robot$web+ci"


def backup_path(made: subprocess.CompletedProcess[str]) -> Path:
    """``manage.py backup`` prints the file's path as its last line."""
    return Path(made.stdout.strip().splitlines()[-1])


def configure_a_registry() -> None:
    """A registry row, signing keys and a notification secret, so a backup carries keys and secrets too."""
    registry = services.create_registry("registry", context=SYSTEM)
    services.ensure_keys(SYSTEM)
    services.notification_secret(registry, SYSTEM)


# 1. The scheduled backup: beat, worker, the copy off the host ---------------------------------


def test_beat_takes_a_verified_encrypted_backup_and_the_copy_command_puts_it_off_the_host(
    people: None,  # noqa: F811
    subprocess_env: dict[str, str],
    tmp_path: Path,
) -> None:
    redis_or_skip()
    configure_a_registry()
    backups, offsite = tmp_path / "backups", tmp_path / "offsite"
    offsite.mkdir()
    worker_log, beat_log = tmp_path / "worker.log", tmp_path / "beat.log"
    with private_redis_db() as broker:
        env = subprocess_env | {
            "CELERY_BROKER_URL": broker,
            "SCHEDULE_BACKUP": once_now(),
            "BACKUP_KEY": BACKUP_KEY,
            "BACKUP_DIR": str(backups),
            "BACKUP_COPY_COMMAND": f"cp -t {offsite}",  # the file's path is appended
        }
        overdue(tmp_path / "beat-schedule", "backup")
        schedule = ["--schedule", str(tmp_path / "beat-schedule"), "--loglevel", "INFO"]
        with celery_process("worker", env, worker_log, *WORKER), celery_process("beat", env, beat_log, *schedule):
            wait_for(lambda: job_records("backup").exists(), 100, "the scheduled backup", beat_log, worker_log)
    assert "Sending due task backup (accounts.tasks.backup)" in beat_log.read_text()

    (job,) = job_records("backup")
    assert job.outcome == "success", job.detail
    (run,) = Backup.objects.all()
    assert run.scheduled and run.requested_by_name == "schedule"
    assert (run.state, run.stage, run.progress, run.error) == (BackupState.VERIFIED, "done", 100, "")
    assert run.verified_at is not None and run.copied_at is not None and run.encrypted
    path = Path(run.path)
    assert [entry.name for entry in backups.iterdir()] == [path.name] and path.parent == backups.resolve()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(backups.stat().st_mode) == 0o700
    blob = path.read_bytes()
    assert archive.is_encrypted(blob) and run.size == len(blob)
    assert (offsite / path.name).read_bytes() == blob

    assert run.counts == contents.count_rows("default")
    assert run.counts["accounts.user"] == 6 and run.counts["accounts.grant"] == 2
    assert run.counts["accounts.signingkey"] == 2 and run.counts["accounts.notificationendpoint"] == 1
    assert job.detail["result"] == {"file": path.name, "size": len(blob), "rows": sum(run.counts.values())}
    created = AuditRecord.objects.get(kind="admin_change", detail__action="backup.create")
    assert created.detail["target"] == path.name and created.detail["after"]["verified"] is True

    verified = AppServer(env, tmp_path).manage("verify_backup", str(offsite / path.name))
    assert f"{path.name}: verified, {sum(run.counts.values())} rows restore" in verified.stdout


def test_a_backup_whose_copy_command_fails_is_a_failed_job_and_the_run_says_why(
    people: None,  # noqa: F811
    subprocess_env: dict[str, str],
    tmp_path: Path,
) -> None:
    redis_or_skip()
    copy = tmp_path / "copy-off-host"
    copy.write_text('#!/bin/sh\necho "offsite store unreachable" >&2\nexit 1\n')
    copy.chmod(0o755)
    log = tmp_path / "worker.log"
    with private_redis_db() as broker:
        env = subprocess_env | {
            "CELERY_BROKER_URL": broker,
            "BACKUP_KEY": BACKUP_KEY,
            "BACKUP_DIR": str(tmp_path / "backups"),
            "BACKUP_COPY_COMMAND": str(copy),
        }
        with celery_process("worker", env, log, *WORKER):
            with Connection(broker) as connection:  # what beat sends
                celery_app.send_task("accounts.tasks.backup", connection=connection)
            wait_for(lambda: job_records("backup").exists(), 60, "the backup job", log)

    (job,) = job_records("backup")
    assert job.outcome == "error"
    assert job.detail["error"] == "BackupError: BACKUP_COPY_COMMAND exited 1: offsite store unreachable"
    (run,) = Backup.objects.all()
    assert (run.state, run.stage) == (BackupState.FAILED, "failed")
    assert run.error == job.detail["error"] and run.finished_at is not None
    assert run.verified_at is not None and run.copied_at is None  # written and verified; never off the host


# 2. The disaster case: a new host, a never-restarted registry ----------------------------------


@contextmanager
def fresh_database(like: str, tmp_path: Path) -> Iterator[str]:
    """A new, empty database of the same kind as ``like`` (a PostgreSQL database made and dropped here)."""
    if not like.startswith("postgres"):
        yield f"sqlite:///{tmp_path / 'new-host.sqlite3'}"
        return
    server, name = like.rsplit("/", 1)[0], f"backup_e2e_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{server}/{name}"
    finally:
        with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def audit_on(host: AppServer, *args: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in host.manage("export_audit", *args).stdout.splitlines()]


def pulled_event_on(host: AppServer, repository: str) -> bool:
    events = audit_on(host, "--kind", "registry_event", "--repository", repository)
    return any(event["outcome"] == "pull" for event in events)


def test_a_new_host_restored_from_the_backup_answers_the_registry_that_was_never_restarted(
    people: None,  # noqa: F811
    subprocess_env: dict[str, str],
    live_database_url: str,
    image: OciImage,  # noqa: F811
    tmp_path: Path,
) -> None:
    require_binary("docker-registry")
    require_binary("skopeo")
    data_a = tmp_path / "a" / "data"
    host_a = AppServer(
        subprocess_env
        | {"DATA_DIR": str(data_a), "KEY_ENCRYPTION_KEY": KEY_ENCRYPTION_KEY_A, "BACKUP_KEY": BACKUP_KEY},
        tmp_path / "a",
    )
    registry_row = services.create_registry("registry", context=SYSTEM)
    registry = registry_for(host_a, tmp_path)  # its realm and notifications name host A's address
    services.update_registry(registry_row, url=registry.url, context=SYSTEM)
    host_b: AppServer | None = None
    try:
        host_a.start()
        registry.start()
        skopeo = Skopeo(registry.host)
        skopeo.copy_to(image, "web/app", "v1", creds("alice")).check()
        created = host_a.manage("create_robot", "web", "ci", "--grant", "web/**:write")
        robot = dict(line.split(": ", 1) for line in created.stdout.strip().splitlines())
        assert robot["username"] == ROBOT
        pat = host_a.manage("create_token", "alice", "laptop", "--read-only").stdout.strip()
        eventually(
            lambda: AuditRecord.objects.filter(kind="registry_event", outcome="push", detail__tag="v1").exists(),
            what="host A taking in the push event",
        )
        policy_a = host_a.manage("export_policy").stdout
        made = host_a.manage("backup")
        kept = tmp_path / "offsite" / backup_path(made).name  # the copy the operator kept off the host
        kept.parent.mkdir()
        shutil.copy2(backup_path(made), kept)

        loaded = Path(registry.config["auth"]["token"]["rootcertbundle"]).read_text()  # what the registry trusts

        # Host A is gone, with its DATA_DIR (its keys, its copy of the bundle, its secret files).
        host_a.stop()
        shutil.rmtree(data_a)
        with fresh_database(live_database_url, tmp_path) as database_b:
            env_b = {key: value for key, value in host_a.env.items() if key not in {"PUBLIC_URL", "PORT"}}
            env_b |= {
                "DATABASE_URL": database_b,
                "DATA_DIR": str(tmp_path / "b" / "data"),
                "SECRET_KEY": SECRET_KEY_B,
                "KEY_ENCRYPTION_KEY": KEY_ENCRYPTION_KEY_B,
                "BOOTSTRAP_ON_MIGRATE": "true",  # a fresh install, as documented: migrate makes the first admin
            }
            (tmp_path / "b").mkdir()
            host_b = AppServer(env_b, tmp_path / "b", port=host_a.port)  # where the registry's realm points
            assert host_b.url == host_a.url
            host_b.manage("migrate", "--noinput")
            restored = host_b.manage("restore_backup", str(kept), "--noinput")
            assert "1 credential pepper(s) kept from the old host" in restored.stderr
            bundle_b = tmp_path / "b" / "data" / "registry" / "registry" / "token-bundle.pem"
            assert f"wrote {bundle_b}" in restored.stderr and bundle_b.read_text() == loaded
            host_b.start()

            skopeo.copy_from("web/app", "v1", tmp_path / "pulled-password", creds("alice")).check()
            skopeo.copy_from("web/app", "v1", tmp_path / "pulled-robot", (ROBOT, robot["secret"])).check()
            skopeo.copy_from("web/app", "v1", tmp_path / "pulled-pat", ("alice", pat)).check()
            skopeo.copy_to(image, "web/app", "after-restore", (ROBOT, robot["secret"])).check()
            for who in (creds("alice", "not-her-password"), ("alice", pat + "0"), creds("erin")):
                refused = skopeo.inspect("web/app", "v1", who)
                assert refused.auth_refused, refused.describe()
            assert not skopeo.copy_to(image, "web/app", "read-only", ("alice", pat)).ok
            assert registry.running and registry_starts(registry) == 1

            assert host_b.manage("export_policy").stdout == policy_a
            # The registry's notifications reach B too: the notification secret came with the backup.
            eventually(lambda: pulled_event_on(host_b, "web/app"), timeout=30, what="a pull event on host B")
            records = audit_on(host_b)
            (restore,) = [r for r in records if r["detail"].get("action") == "backup.restore"]
            assert restore["kind"] == "admin_change" and restore["detail"]["target"] == kept.name
            assert restore["detail"]["after"]["replaced"] == [] and restore["detail"]["after"]["peppers_kept"] == 1
            assert restore["detail"]["after"]["counts"]["accounts.robot"] == 1
            granted = {(r["actor"], r["outcome"]) for r in records if r["kind"] == "access"}
            assert {("alice", "granted"), (ROBOT, "granted")} <= granted  # host B answered, not A
    finally:
        registry.close()
        host_a.stop()
        if host_b is not None:
            host_b.stop()


# 3. Bad files change nothing -------------------------------------------------------------------


def state_of() -> dict[str, Any]:
    """What a restore would replace: the policy export_policy prints, every row count, the peppers, the restores."""
    return {
        "policy": policy.dump(policy.export()),
        "rows": contents.count_rows("default"),
        "users": sorted(User.objects.values_list("username", flat=True)),
        "peppers": CredentialPepper.objects.count(),
        "restores": AuditRecord.objects.filter(detail__action="backup.restore").count(),
    }


def with_a_newer_schema(backup: archive.Contents, target: Path) -> Path:
    """The same backup, re-made by the product's own code as a newer release would, with a migration unknown here."""
    manifest = copy.deepcopy(backup.manifest)
    manifest["migrations"]["accounts"].append("9999_from_a_newer_release")
    target.write_bytes(archive.encrypt(archive.pack(manifest, backup.rows, backup.secrets, backup.files), BACKUP_KEY))
    return target


def test_a_wrong_key_a_truncated_file_and_a_newer_schema_each_leave_the_database_as_it_was(
    people: None,  # noqa: F811
    subprocess_env: dict[str, str],
    tmp_path: Path,
) -> None:
    configure_a_registry()
    host = AppServer(subprocess_env | {"BACKUP_KEY": BACKUP_KEY, "BACKUP_DIR": str(tmp_path / "backups")}, tmp_path)
    good = backup_path(host.manage("backup"))
    frank = make_user("frank")  # after the backup: a restore would remove him and his grant
    services.create_grant(frank, "web/tools", "read", context=SYSTEM)
    backup = archive.read(good.read_bytes(), BACKUP_KEY, name=good.name)
    assert f"- user #{frank.pk} frank" in restore.plan(backup.rows).lines  # the good file would change this host
    before = state_of()
    assert "frank" in before["users"] and "frank" in before["policy"]

    truncated = tmp_path / "truncated.tar.gz.age"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size * 2 // 3])
    empty = tmp_path / "empty.tar.gz.age"  # what an interrupted copy leaves
    empty.touch()
    newer = with_a_newer_schema(backup, tmp_path / "newer.tar.gz.age")
    wrong_key = AppServer(host.env | {"BACKUP_KEY": "not the passphrase it was made with"}, tmp_path)
    for runner, path, reason in (
        (wrong_key, good, "wrong key"),
        (host, truncated, "is truncated"),
        (host, empty, "is truncated"),
        (host, newer, "comes from a newer registryadmin"),
    ):
        result = runner.manage("restore_backup", str(path), "--noinput", "--force", check=False)
        assert result.returncode != 0, result.stdout
        assert "not restored, nothing changed" in result.stderr and reason in result.stderr, result.stderr
        assert state_of() == before, path.name
    assert "accounts.9999_from_a_newer_release" in result.stderr and "upgrade registryadmin" in result.stderr


# 5. The page: "back up now" in a real browser, a real worker, then the download -------------------


def test_an_admin_backs_up_now_in_the_browser_sees_it_verified_and_downloads_it(
    subprocess_env: dict[str, str],
    tmp_path: Path,
    browser: object,  # noqa: F811
) -> None:
    redis_or_skip()
    make_user("ada", is_superuser=True)
    configure_a_registry()
    with private_redis_db() as broker:
        env = subprocess_env | {
            "CELERY_BROKER_URL": broker,
            "BACKUP_KEY": BACKUP_KEY,
            "BACKUP_DIR": str(tmp_path / "backups"),
        }
        app = AppServer(env, tmp_path).start()
        try:
            with celery_process("worker", env, tmp_path / "worker.log", *WORKER):
                page = sign_in(browser, app.url, "ada")
                page.goto(app.url + "/manage/backups/")
                page.get_by_role("button", name="Back up now").click()
                page.wait_for_load_state("networkidle")
                # The row polls itself until the worker is done: no reload by the test.
                expect(page.locator("table").get_by_text("verified", exact=False).first).to_be_visible(timeout=90_000)
                with page.expect_download() as download:
                    page.get_by_role("link", name="Download").first.click()
                saved = tmp_path / "downloaded"
                download.value.save_as(saved)
                shot(page, "backups-verified")
                assert csp_problems(page) == [] and page.console_errors == [], page.console_errors
        finally:
            app.stop()
    (run,) = Backup.objects.all()
    assert run.state == BackupState.VERIFIED and run.requested_by_name == "ada"
    assert saved.read_bytes() == Path(run.path).read_bytes()
    assert saved.read_bytes().startswith(b"age-encryption.org/v1\n-> scrypt ")
    assert AuditRecord.objects.filter(detail__action="backup.download", actor="ada").count() == 1
    assert AuditRecord.objects.filter(detail__action="backup.request", actor="ada").count() == 1
