"""The htpasswd file: who is in it, how it is rendered and written, and how registry_config switches to it.

alice leads team web, bob is a member, carol is an outsider, dave is inactive.
"""

from __future__ import annotations

import fcntl
import io
import json
import logging
import os
import stat
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import bcrypt
import pytest
import yaml
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.utils import timezone

from accounts import services
from accounts.models import Registry, Robot, Team, User
from accounts.registry import htpasswd
from registryadmin.env import envfilemode
from tests.conftest import PASSWORD, REPO_ROOT, SYSTEM, make_user

HASH = htpasswd.hash_password("s3cret", cost=4)


@pytest.fixture(autouse=True)
def data_dir(settings, tmp_path: Path) -> Path:
    """Each test writes its files under its own DATA_DIR."""
    settings.DATA_DIR = tmp_path / "data"
    return settings.DATA_DIR


@pytest.fixture
def registry(db: None) -> Registry:
    return services.create_registry("registry", auth_mode="htpasswd", context=SYSTEM)


def file_names(path: Path) -> list[str]:
    return [line.split(":", 1)[0] for line in path.read_text().splitlines()]


def make_robot(team: Team | None, name: str, **fields: object) -> Robot:
    return Robot.objects.create(
        team=team, name=name, secret_hash=name.ljust(64, "x"), bcrypt_hash=htpasswd.hash_password("s3cret"), **fields
    )


@transaction.atomic
def create_then_fail(username: str) -> None:
    make_user(username)
    raise RuntimeError(f"{username} is rolled back")


# Rendering -----------------------------------------------------------------


def test_render_sorts_entries_by_name_and_is_pure() -> None:
    entries = [("zoe", HASH), ("bob", HASH), ("robot$web+ci", HASH)]
    text = htpasswd.render(entries)
    assert text == f"bob:{HASH}\nrobot$web+ci:{HASH}\nzoe:{HASH}\n"
    assert htpasswd.render(reversed(entries)) == text
    assert htpasswd.render([]) == ""


@pytest.mark.parametrize("name", ["", "a:b", "a\nb", "a\rb", " alice", "alice ", "al ice", "#alice", "a\tb"])
def test_render_refuses_names_the_registry_would_misread(name: str) -> None:
    with pytest.raises(htpasswd.HtpasswdError):
        htpasswd.render([(name, HASH)])


@pytest.mark.parametrize(
    "hashed",
    [
        "",
        "plaintext",
        "$apr1$abcdefgh$0123456789abcdefghijkl",
        "{SHA}qUqP5cyxm6YcTAhz05Hph5gvu9M=",
        HASH + "\nmallory:" + HASH,
        HASH[:-1],
    ],
    # Fixed ids: HASH is made at import, and test ids must be the same in every xdist worker.
    ids=["empty", "plaintext", "apr1", "sha", "two-lines", "truncated-bcrypt"],
)
def test_render_refuses_anything_but_a_bcrypt_hash(hashed: str) -> None:
    with pytest.raises(htpasswd.HtpasswdError):
        htpasswd.render([("alice", hashed)])


def test_render_refuses_a_name_given_twice() -> None:
    with pytest.raises(htpasswd.HtpasswdError, match="twice"):
        htpasswd.render([("alice", HASH), ("alice", HASH)])


def test_hash_password_gives_a_2y_hash_that_bcrypt_verifies(settings) -> None:
    settings.HTPASSWD_BCRYPT_COST = 5
    hashed = htpasswd.hash_password("correct horse")
    assert hashed.startswith("$2y$05$")
    assert bcrypt.checkpw(b"correct horse", hashed.encode())
    assert not bcrypt.checkpw(b"wrong horse", hashed.encode())


def test_hash_password_accepts_72_bytes_and_refuses_73() -> None:
    assert htpasswd.hash_password("é" * 36, cost=4)
    with pytest.raises(htpasswd.HtpasswdError, match="72 bytes"):
        htpasswd.hash_password("a" * 73, cost=4)


# Writing -------------------------------------------------------------------


def test_write_gives_mode_0640_and_the_exact_content(tmp_path: Path) -> None:
    path = tmp_path / "reg" / "htpasswd"
    htpasswd.write(path, f"alice:{HASH}\n")
    assert path.read_text() == f"alice:{HASH}\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_write_uses_the_configured_mode(settings, tmp_path: Path) -> None:
    settings.HTPASSWD_MODE = 0o600
    path = tmp_path / "htpasswd"
    htpasswd.write(path, "")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_write_replaces_the_file_with_a_new_one_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    path = tmp_path / "htpasswd"
    htpasswd.write(path, f"alice:{HASH}\n")
    reader = path.open()  # a registry in the middle of reading the old file
    old_inode = path.stat().st_ino
    htpasswd.write(path, f"bob:{HASH}\n")
    assert path.stat().st_ino != old_inode
    assert reader.read() == f"alice:{HASH}\n"
    reader.close()
    assert path.read_text() == f"bob:{HASH}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".htpasswd.lock", "htpasswd"]


def test_two_writes_in_one_timestamp_tick_still_change_the_mtime(tmp_path: Path) -> None:
    path = tmp_path / "htpasswd"
    mtimes = []
    for name in ("alice", "bob", "carol", "erin"):
        htpasswd.write(path, f"{name}:{HASH}\n")
        mtimes.append(path.stat().st_mtime_ns)
    assert mtimes == sorted(set(mtimes)), mtimes


def test_the_new_file_is_dated_after_the_old_one_even_if_the_old_one_is_dated_ahead(tmp_path: Path) -> None:
    path = tmp_path / "htpasswd"
    htpasswd.write(path, f"alice:{HASH}\n")
    ahead = time.time_ns() + 10 * 10**9  # the clock stepped back, or an earlier bump
    os.utime(path, ns=(ahead, ahead))
    htpasswd.write(path, f"bob:{HASH}\n")
    assert path.stat().st_mtime_ns > ahead


def test_on_a_filesystem_with_whole_second_timestamps_the_mtime_still_moves_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_utime = os.utime

    def whole_seconds(target: str, *, ns: tuple[int, int]) -> None:
        real_utime(target, ns=tuple(value - value % 10**9 for value in ns))

    path = tmp_path / "htpasswd"
    htpasswd.write(path, f"alice:{HASH}\n")
    ahead = (time.time_ns() // 10**9 + 10) * 10**9
    os.utime(path, ns=(ahead, ahead))
    monkeypatch.setattr(htpasswd.os, "utime", whole_seconds)
    htpasswd.write(path, f"bob:{HASH}\n")
    assert path.stat().st_mtime_ns == ahead + 10**9


def test_a_failed_write_keeps_the_old_file_and_cleans_up(settings, tmp_path: Path) -> None:
    path = tmp_path / "htpasswd"
    htpasswd.write(path, f"alice:{HASH}\n")
    settings.HTPASSWD_GROUP = "no-such-group-here"
    with pytest.raises(htpasswd.HtpasswdError, match="no-such-group-here"):
        htpasswd.write(path, f"bob:{HASH}\n")
    assert path.read_text() == f"alice:{HASH}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".htpasswd.lock", "htpasswd"]


def test_write_waits_for_the_lock_file(tmp_path: Path) -> None:
    path = tmp_path / "htpasswd"
    htpasswd.write(path, "")
    with open(tmp_path / ".htpasswd.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        writer = threading.Thread(target=htpasswd.write, args=(path, f"alice:{HASH}\n"))
        writer.start()
        time.sleep(0.3)
        assert path.read_text() == ""
        fcntl.flock(lock, fcntl.LOCK_UN)
    writer.join(timeout=10)
    assert path.read_text() == f"alice:{HASH}\n"


def test_the_group_is_set_when_configured(settings, tmp_path: Path) -> None:
    import grp

    group = grp.getgrgid(os.getgid()).gr_name
    settings.HTPASSWD_GROUP = group
    path = tmp_path / "htpasswd"
    htpasswd.write(path, "")
    assert path.stat().st_gid == os.getgid()


def test_a_world_readable_mode_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    for refused in ("0644", "0604", "0641", "0777"):
        monkeypatch.setenv("HTPASSWD_MODE", refused)
        with pytest.raises(ImproperlyConfigured, match="HTPASSWD_MODE"):
            envfilemode("HTPASSWD_MODE", 0o640)
    monkeypatch.setenv("HTPASSWD_MODE", "0600")
    assert envfilemode("HTPASSWD_MODE", 0o640) == 0o600


def test_settings_refuse_to_start_with_a_world_readable_htpasswd_mode(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "TEST_DATABASE_URL"}}
    env.update(DJANGO_SETTINGS_MODULE="registryadmin.settings", DATA_DIR=str(tmp_path / "data"))
    probe = "import django; from django.conf import settings; django.setup(); print(oct(settings.HTPASSWD_MODE))"
    run = [sys.executable, "-c", probe]
    refused = subprocess.run(run, cwd=REPO_ROOT, env=env | {"HTPASSWD_MODE": "0644"}, capture_output=True, text=True)
    assert refused.returncode != 0 and "HTPASSWD_MODE" in refused.stderr
    default = subprocess.run(run, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert default.stdout.strip() == "0o640", default.stderr


# Who is in the file --------------------------------------------------------


def test_entries_hold_active_users_with_a_hash_and_live_robots(web: Team, carol: User, dave: User) -> None:
    services.create_user("frank", context=SYSTEM)  # no password yet: no hash
    make_robot(web, "ci")
    make_robot(None, "deploy")
    make_robot(web, "old", revoked_at=timezone.now())
    make_robot(web, "expired", expires_at=timezone.now() - timedelta(minutes=1))
    make_robot(web, "later", expires_at=timezone.now() + timedelta(days=1))
    names = [name for name, _ in htpasswd.current_entries()]
    assert sorted(names) == ["alice", "bob", "carol", "robot$deploy", "robot$web+ci", "robot$web+later"]
    entries = dict(htpasswd.current_entries())
    assert bcrypt.checkpw(PASSWORD.encode(), entries["alice"].encode())
    assert bcrypt.checkpw(b"s3cret", entries["robot$web+ci"].encode())


def test_a_robot_drops_out_once_its_expiry_passes(web: Team) -> None:
    make_robot(web, "ci", expires_at=timezone.now() + timedelta(hours=1))
    assert "robot$web+ci" in dict(htpasswd.current_entries())
    assert "robot$web+ci" not in dict(htpasswd.current_entries(timezone.now() + timedelta(hours=2)))


def test_an_unwritable_entry_is_left_out_and_logged_without_blocking_the_others(
    alice: User, bob: User, caplog: pytest.LogCaptureFixture
) -> None:
    User.objects.filter(pk=bob.pk).update(htpasswd_hash="$1$md5$notbcrypt")
    with caplog.at_level(logging.WARNING, logger="accounts.htpasswd"):
        assert [name for name, _ in htpasswd.current_entries()] == ["alice"]
    assert "'bob'" in caplog.text


def test_users_without_hash_lists_active_users_who_must_set_a_password(alice: User, dave: User) -> None:
    services.create_user("frank", context=SYSTEM)
    services.create_user("gina", context=SYSTEM, is_active=False)
    assert htpasswd.users_without_hash() == ["frank"]


def test_directory_users_are_neither_in_the_file_nor_listed_as_missing_a_hash(alice: User) -> None:
    directory = services.create_user("dora", context=SYSTEM)
    User.objects.filter(pk=directory.pk).update(directory_dn="uid=dora,ou=people,dc=example,dc=org")
    assert htpasswd.users_without_hash() == [] and htpasswd.count_users_without_hash() == 0
    # Even a hash left over from before cannot put a directory account in the file.
    User.objects.filter(pk=directory.pk).update(htpasswd_hash=alice.htpasswd_hash)
    assert [name for name, _ in htpasswd.current_entries()] == ["alice"]


def test_the_path_is_under_data_dir_per_service_and_refuses_a_path_as_a_service(data_dir: Path) -> None:
    assert htpasswd.path_for(Registry(service="registry")) == data_dir / "registry" / "registry" / "htpasswd"
    for service in ("..", "../etc", "a/b", ""):
        with pytest.raises(htpasswd.HtpasswdError):
            htpasswd.path_for(Registry(service=service))


# Syncing -------------------------------------------------------------------


def test_sync_all_writes_only_for_registries_in_htpasswd_mode(registry: Registry, alice: User, bob: User) -> None:
    services.create_registry("second", auth_mode="htpasswd", context=SYSTEM)
    token = services.create_registry("tokens", context=SYSTEM)
    assert htpasswd.sync_all() == 2
    for service in ("registry", "second"):
        assert file_names(htpasswd.path_for(Registry(service=service))) == ["alice", "bob"]
    assert not htpasswd.path_for(token).exists()


def test_sync_all_does_nothing_without_htpasswd_registries(alice: User, data_dir: Path) -> None:
    services.create_registry("tokens", context=SYSTEM)
    assert htpasswd.sync_all() == 0
    assert not list((data_dir / "registry").glob("*/htpasswd"))


def test_creating_and_deactivating_a_user_rewrites_the_file(
    registry: Registry, django_capture_on_commit_callbacks
) -> None:
    path = htpasswd.path_for(registry)
    with django_capture_on_commit_callbacks(execute=True):
        erin = make_user("erin")
    assert file_names(path) == ["erin"]
    with django_capture_on_commit_callbacks(execute=True):
        services.update_user(erin, is_active=False, context=SYSTEM)
    assert path.read_text() == ""
    with django_capture_on_commit_callbacks(execute=True):
        services.update_user(erin, is_active=True, context=SYSTEM)
        services.set_password(erin, "a-new-long-password", context=SYSTEM, validate=False)
    entries = dict(line.split(":", 1) for line in path.read_text().splitlines())
    assert bcrypt.checkpw(b"a-new-long-password", entries["erin"].encode())
    with django_capture_on_commit_callbacks(execute=True):
        services.delete_user(erin, context=SYSTEM)
    assert path.read_text() == ""


def test_switching_a_registry_to_htpasswd_mode_writes_its_file(alice: User, django_capture_on_commit_callbacks) -> None:
    registry = services.create_registry("registry", context=SYSTEM)
    with django_capture_on_commit_callbacks(execute=True):
        services.update_registry(registry, auth_mode="htpasswd", context=SYSTEM)
    assert file_names(htpasswd.path_for(registry)) == ["alice"]


def test_many_changes_in_one_transaction_sync_once(
    registry: Registry, monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks
) -> None:
    syncs = []
    real_sync = htpasswd.sync_all
    monkeypatch.setattr(htpasswd, "sync_all", lambda: syncs.append(1) or real_sync())
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        for name in ("erin", "frank", "gina"):
            make_user(name)
    assert len(syncs) == 1
    assert file_names(htpasswd.path_for(registry)) == ["erin", "frank", "gina"]


def test_a_rolled_back_savepoint_keeps_the_sync_of_the_changes_that_stay(
    registry: Registry, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        make_user("erin")
        with pytest.raises(RuntimeError):
            create_then_fail("frank")
    assert file_names(htpasswd.path_for(registry)) == ["erin"]


def test_a_rolled_back_change_does_not_sync(registry: Registry, django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks(execute=True) as callbacks, pytest.raises(RuntimeError):
        create_then_fail("erin")
    assert callbacks == []
    assert not htpasswd.path_for(registry).exists()


def test_a_failed_sync_after_commit_is_logged_not_raised(
    registry: Registry,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    django_capture_on_commit_callbacks,
) -> None:
    def disk_full() -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(htpasswd, "sync_all", disk_full)
    with caplog.at_level(logging.ERROR, logger="accounts.htpasswd"), django_capture_on_commit_callbacks(execute=True):
        make_user("erin")
    assert User.objects.filter(username="erin").exists()
    assert "periodic sync will retry" in caplog.text


def test_a_sync_reads_the_database_only_once_it_holds_the_lock(transactional_db: None, data_dir: Path) -> None:
    registry = services.create_registry("registry", auth_mode="htpasswd", context=SYSTEM)
    lock_path = data_dir / "registry" / ".htpasswd-sync.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        syncer = threading.Thread(target=_sync_in_thread)
        syncer.start()
        time.sleep(0.3)
        User.objects.create(username="erin", htpasswd_hash=HASH)  # commits while the other writer waits
        fcntl.flock(lock, fcntl.LOCK_UN)
    syncer.join(timeout=10)
    assert file_names(htpasswd.path_for(registry)) == ["erin"]


def _sync_in_thread() -> None:
    try:
        htpasswd.sync_all()
    finally:
        connection.close()


# registry_config --mode htpasswd ------------------------------------------


def run_config(*args: str) -> tuple[dict, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("registry_config", *args, stdout=out, stderr=err)
    return yaml.safe_load(out.getvalue()), err.getvalue()


def test_registry_config_switches_to_htpasswd_writes_the_file_and_prints_only_yaml(
    alice: User, bob: User, dave: User, data_dir: Path
) -> None:
    services.create_registry("registry", context=SYSTEM)
    services.create_user("frank", context=SYSTEM)
    fragment, err = run_config("--mode", "htpasswd")
    assert set(fragment) == {"auth", "notifications"}
    assert set(fragment["auth"]) == {"htpasswd"}
    assert fragment["auth"]["htpasswd"]["realm"] == "registry"
    path = Path(fragment["auth"]["htpasswd"]["path"])
    assert path.is_absolute() and path == (data_dir / "registry" / "registry" / "htpasswd").resolve()
    assert file_names(path) == ["alice", "bob"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    endpoint = fragment["notifications"]["endpoints"][0]
    assert endpoint["url"].endswith("/registry/registry/events")
    assert endpoint["headers"]["Authorization"][0].startswith("Bearer rgn_")
    assert Registry.objects.get().auth_mode == "htpasswd"
    assert "switched to htpasswd" in err
    assert "cannot enforce roles" in err and "push and delete" in err
    assert "personal access tokens" in err and "LDAP" in err
    assert "no record of access attempts" in err
    assert "must reset password for htpasswd mode" in err and "frank" in err


def test_registry_config_in_htpasswd_mode_is_stable_between_runs(alice: User) -> None:
    services.create_registry("registry", auth_mode="htpasswd", context=SYSTEM)
    first, err = run_config()
    assert "must reset password" not in err
    again, _ = run_config("--mode", "htpasswd")
    assert again == first


def test_registry_config_writes_the_file_even_with_nobody_in_it(db: None) -> None:
    services.create_registry("registry", auth_mode="htpasswd", context=SYSTEM)
    fragment, _ = run_config()
    path = Path(fragment["auth"]["htpasswd"]["path"])
    assert path.is_file() and path.read_text() == ""


def test_registry_config_refuses_an_output_dir_in_htpasswd_mode_before_switching(alice: User, tmp_path: Path) -> None:
    services.create_registry("registry", context=SYSTEM)
    with pytest.raises(CommandError, match="token mode only"):
        run_config("--mode", "htpasswd", "--output-dir", str(tmp_path / "elsewhere"))
    assert Registry.objects.get().auth_mode == "token"
    assert not (tmp_path / "elsewhere").exists()


def test_registry_config_accepts_the_output_dir_the_file_is_kept_in(alice: User, data_dir: Path) -> None:
    services.create_registry("registry", context=SYSTEM)
    fragment, _ = run_config("--mode", "htpasswd", "--output-dir", str(data_dir / "registry" / "registry"))
    assert file_names(Path(fragment["auth"]["htpasswd"]["path"])) == ["alice"]


def test_registry_config_switches_back_to_token_mode(alice: User, tmp_path: Path) -> None:
    services.create_registry("registry", auth_mode="htpasswd", context=SYSTEM)
    fragment, err = run_config("--mode", "token", "--output-dir", str(tmp_path))
    assert set(fragment["auth"]) == {"token"}
    assert "WARNING" not in err
    assert json.dumps(fragment)  # plain data, nothing YAML-specific
