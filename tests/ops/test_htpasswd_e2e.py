"""A real docker-registry in htpasswd mode, configured from `registry_config --mode htpasswd`, follows our changes.

alice and bob are users, carol is an outsider, dave is inactive. The registry is
never restarted: it re-reads the file when its modification time changes.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from django.db import connection

from accounts import services
from accounts.models import Registry, User
from accounts.registry import htpasswd
from accounts.tasks import sync_htpasswd
from audit.models import AuditRecord
from tests.conftest import PASSWORD, SYSTEM, make_user
from tests.e2e_stack import AppServer, eventually
from tests.harness import require_binary
from tests.harness.clients import Result, Skopeo
from tests.harness.ociimage import OciImage, write_oci_image
from tests.harness.registry import RegistryServer, deep_merge

pytestmark = pytest.mark.e2e

PROPAGATION_SECONDS = 5.0


def creds(name: str, password: str = PASSWORD) -> tuple[str, str]:
    return (name, password)


@pytest.fixture
def people(transactional_db: None) -> None:
    for name in ("alice", "bob", "carol"):
        make_user(name)
    make_user("dave", is_active=False)


@pytest.fixture
def stack(
    people: None, subprocess_env: dict[str, str], tmp_path: Path, settings
) -> Iterator[tuple[AppServer, RegistryServer]]:
    """The app (for notifications) and a registry set up from the command's output, as an operator would."""
    require_binary("docker-registry")
    require_binary("skopeo")
    settings.DATA_DIR = Path(subprocess_env["DATA_DIR"])  # changes made here write the file the registry reads
    services.create_registry("registry", context=SYSTEM)
    app = AppServer(subprocess_env, tmp_path)
    fragment = yaml.safe_load(app.manage("registry_config", "--registry", "registry", "--mode", "htpasswd").stdout)
    assert set(fragment) == {"auth", "notifications"}
    assert Path(fragment["auth"]["htpasswd"]["path"]).is_file()
    (tmp_path / "registry").mkdir()
    registry = RegistryServer(workdir=tmp_path / "registry")
    registry.config = deep_merge(registry.config, fragment)
    app.start()
    registry.start()
    try:
        yield app, registry
    finally:
        registry.close()
        app.stop()


@pytest.fixture
def image(tmp_path: Path) -> OciImage:
    return write_oci_image(tmp_path / "image", payload=b"hello from the htpasswd tests")


def within(seconds: float, attempt: Callable[[], Result], accept: Callable[[Result], bool], what: str) -> Result:
    """Retry ``attempt`` until ``accept(result)``; fail after ``seconds`` with the last result."""
    deadline = time.monotonic() + seconds
    while True:
        result = attempt()
        if accept(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not seen within {seconds}s:\n{result.describe()}")
        time.sleep(0.2)


def test_the_registry_uses_only_the_file_we_wrote(stack: tuple[AppServer, RegistryServer], image: OciImage) -> None:
    _, registry = stack
    skopeo = Skopeo(registry.host)
    skopeo.copy_to(image, "web/app", "v1", creds("alice")).check()
    eventually(
        lambda: AuditRecord.objects.filter(kind="registry_event", outcome="push", actor="alice").exists(),
        what="alice's push event, named by her htpasswd login",
    )
    # Authentication only: carol, an outsider in token mode, may pull and push anywhere here.
    skopeo.inspect("web/app", "v1", creds("carol")).check()
    skopeo.copy_to(image, "web/app", "carol", creds("carol")).check()
    for who in (creds("alice", "wrong-password"), creds("dave"), creds("docker", "anything"), None):
        refused = skopeo.inspect("web/app", "v1", who)
        assert refused.auth_refused, refused.describe()
    assert "htpasswd is missing" not in registry.log_text()


def test_a_user_created_after_the_registry_started_can_push_within_seconds(
    stack: tuple[AppServer, RegistryServer], image: OciImage
) -> None:
    _, registry = stack
    skopeo = Skopeo(registry.host)
    assert skopeo.copy_to(image, "erin/app", "v1", creds("erin")).auth_refused
    started = time.monotonic()
    make_user("erin")
    within(PROPAGATION_SECONDS, lambda: skopeo.copy_to(image, "erin/app", "v1", creds("erin")), _ok, "erin's push")
    assert time.monotonic() - started < PROPAGATION_SECONDS
    skopeo.inspect("erin/app", "v1", creds("erin")).check()


def test_a_deactivated_user_is_refused_by_the_running_registry_within_seconds(
    stack: tuple[AppServer, RegistryServer], image: OciImage
) -> None:
    _, registry = stack
    skopeo = Skopeo(registry.host)
    skopeo.copy_to(image, "web/app", "v1", creds("bob")).check()
    services.update_user(User.objects.get(username="bob"), is_active=False, context=SYSTEM)
    within(PROPAGATION_SECONDS, lambda: skopeo.inspect("web/app", "v1", creds("bob")), _refused, "bob refused")
    skopeo.inspect("web/app", "v1", creds("alice")).check()


def test_a_changed_password_replaces_the_old_one_within_seconds(
    stack: tuple[AppServer, RegistryServer], image: OciImage
) -> None:
    _, registry = stack
    skopeo = Skopeo(registry.host)
    skopeo.copy_to(image, "web/app", "v1", creds("bob")).check()
    services.set_password(User.objects.get(username="bob"), "bobs-new-password", context=SYSTEM, validate=False)
    new = creds("bob", "bobs-new-password")
    within(PROPAGATION_SECONDS, lambda: skopeo.inspect("web/app", "v1", new), _ok, "bob's new password")
    assert skopeo.inspect("web/app", "v1", creds("bob")).auth_refused


def test_a_file_broken_by_hand_is_repaired_by_the_periodic_sync(
    stack: tuple[AppServer, RegistryServer], image: OciImage
) -> None:
    _, registry = stack
    skopeo = Skopeo(registry.host)
    skopeo.copy_to(image, "web/app", "v1", creds("alice")).check()
    path = htpasswd.path_for(Registry.objects.get())
    path.write_text(path.read_text() + "a line without a colon\n")
    os.utime(path, ns=(time.time_ns() + 10**9,) * 2)
    assert not skopeo.inspect("web/app", "v1", creds("alice")).ok  # the registry fails the request that reloads
    # ... and then keeps its old list, even for users removed since, until the mtime changes again.
    User.objects.filter(username="alice").update(is_active=False)  # a change whose sync was lost
    assert skopeo.inspect("web/app", "v1", creds("alice")).ok
    sync_htpasswd()
    within(PROPAGATION_SECONDS, lambda: skopeo.inspect("web/app", "v1", creds("alice")), _refused, "alice refused")
    skopeo.inspect("web/app", "v1", creds("bob")).check()


def test_many_changes_while_a_stable_user_keeps_pulling_never_fail_a_pull(
    stack: tuple[AppServer, RegistryServer], image: OciImage
) -> None:
    _, registry = stack
    skopeo = Skopeo(registry.host)
    skopeo.copy_to(image, "web/app", "v1", creds("alice")).check()
    storm = ChangeStorm(changes=30)
    storm.start()
    results, during = [], 0
    while len(results) < 40 or storm.is_alive():
        results.append(skopeo.inspect("web/app", "v1", creds("alice")))
        during += storm.is_alive()
    storm.join(timeout=120)
    assert storm.error is None, storm.error
    assert storm.done == 30 and during >= 20, (storm.done, during)  # the pulls really overlapped the changes
    failures = [result.describe() for result in results if not result.ok]
    assert not failures, f"{len(failures)} of {len(results)} pulls failed:\n" + "\n".join(failures[:3])
    # The last change of the storm is what the registry knows now.
    last = creds("bob", storm.bobs_password)
    within(PROPAGATION_SECONDS, lambda: skopeo.inspect("web/app", "v1", last), _ok, "bob's last password")
    within(PROPAGATION_SECONDS, lambda: skopeo.inspect("web/app", "v1", creds("user14")), _ok, "the last new user")
    names = [line.split(":")[0] for line in htpasswd.path_for(Registry.objects.get()).read_text().splitlines()]
    assert names == sorted(["alice", "bob", "carol", *(f"user{n}" for n in range(15))])


class ChangeStorm(threading.Thread):
    """Password changes for bob and new users, one committed change after another, spread over a second or two."""

    def __init__(self, changes: int, pause: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.changes = changes
        self.pause = pause
        self.done = 0
        self.bobs_password = PASSWORD
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            bob = User.objects.get(username="bob")
            for index in range(self.changes):
                self.change(bob, index)
                self.done += 1
                time.sleep(self.pause)
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            connection.close()

    def change(self, bob: User, index: int) -> None:
        if index % 2:
            make_user(f"user{index // 2}")
        else:
            self.bobs_password = f"bobs-password-{index}"
            services.set_password(bob, self.bobs_password, context=SYSTEM, validate=False)


def _ok(result: Result) -> bool:
    return result.ok


def _refused(result: Result) -> bool:
    return result.auth_refused
