"""Rotations end to end: signing key, robot secret and notification secret, against the real processes.

A real docker-registry uses us as its token server (gunicorn on the test database), skopeo pushes and
pulls, and a Celery worker and beat run on the real Redis. alice leads team web (write on web/**), bob
is a member, carol may read web/app; the robot robot$web+ci writes to web/**.

(1) beat fires the rotate-signing-key entry; the worker rotates an old key after the preflight asked the
running registry, which then accepts tokens from the new key without a restart. (2) a token-mode
registry without a URL makes the worker refuse the rotation, with the remedy. (3) a robot's old secret
works through the registry during its grace and is refused after it. (4) the registry's notifications
keep arriving with the old secret during its grace, with the new one after a restart, and an event
sent with the old secret after a rotation without grace is refused.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
import uuid
from datetime import timedelta
from pathlib import Path

import jwt
import pytest
from django.utils import timezone
from kombu import Connection

from accounts import services
from accounts.models import KeyState, NotificationEndpoint, Registry, Robot, SigningKey
from audit.models import AuditRecord
from registryadmin.celery import app as celery_app
from tests.conftest import SYSTEM
from tests.e2e_stack import AppServer, apply_fragment, celery_process, eventually, once_now, overdue, private_redis_db
from tests.harness.clients import Skopeo
from tests.harness.ociimage import MANIFEST_MEDIA_TYPE, OciImage
from tests.harness.ports import free_port
from tests.harness.registry import RegistryServer
from tests.ops.test_celery_worker import REDIS_URL, redis_or_skip
from tests.ops.test_registry_e2e import creds, image, people, stack  # noqa: F401 - fixtures too

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
Stack = tuple[AppServer, RegistryServer]
WORKER = ["--pool", "solo", "--loglevel", "INFO", "--without-gossip", "--without-mingle"]
ROBOT = "robot$web+ci"
GRACE_ENDED = "used its previous secret after the rotation's grace period ended"
# Loopback services must never be reached through an HTTP(S)_PROXY from the environment.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def wait_for(predicate, timeout: float, what: str, *logs: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    tails = "\n".join(f"--- {log.name} ---\n{log.read_text(errors='replace')[-3000:]}" for log in logs)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{tails}")


def credential_records(action: str):
    return AuditRecord.objects.filter(kind="credential", detail__action=action).order_by("pk")


def job_records(job: str):
    return AuditRecord.objects.filter(kind="job", detail__job=job).order_by("pk")


def registry_starts(registry: RegistryServer) -> int:
    return registry.log_text().count("--- harness: starting")


def fetch_token(app: AppServer, who: tuple[str, str], scope: str) -> str:
    raw = base64.b64encode(f"{who[0]}:{who[1]}".encode()).decode()
    request = urllib.request.Request(
        f"{app.url}/auth/token?service=registry&scope={scope}", headers={"Authorization": f"Basic {raw}"}
    )
    with OPENER.open(request, timeout=10) as response:
        return json.loads(response.read())["token"]


def http_status(request: urllib.request.Request) -> int:
    try:
        with OPENER.open(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


# 1. The scheduled rotation: beat, worker, preflight against the running registry -------------


def test_beat_rotates_an_old_key_and_the_running_registry_accepts_tokens_from_the_new_one(
    stack: Stack,  # noqa: F811
    image: OciImage,  # noqa: F811
    tmp_path: Path,
) -> None:
    redis_or_skip()
    app, registry = stack
    skopeo = Skopeo(registry.host)
    skopeo.copy_to(image, "web/app", "v1", creds("alice")).check()
    old, upcoming = SigningKey.objects.get(state=KeyState.CURRENT), SigningKey.objects.get(state=KeyState.NEXT)
    assert fetch_token(app, creds("carol"), "repository:web/app:pull") and old.kid != upcoming.kid
    SigningKey.objects.filter(pk=old.pk).update(activated_at=timezone.now() - timedelta(days=31))

    worker_log, beat_log = tmp_path / "worker.log", tmp_path / "beat.log"
    with private_redis_db() as broker:
        env = app.env | {"CELERY_BROKER_URL": broker, "SCHEDULE_ROTATE_SIGNING_KEY": once_now()}
        overdue(tmp_path / "beat-schedule", "rotate-signing-key")
        schedule = ["--schedule", str(tmp_path / "beat-schedule"), "--loglevel", "INFO"]
        with celery_process("worker", env, worker_log, *WORKER), celery_process("beat", env, beat_log, *schedule):
            wait_for(
                lambda: (
                    SigningKey.objects.filter(state=KeyState.CURRENT, kid=upcoming.kid).exists()
                    and credential_records("signing_key.rotate").exists()
                ),
                90,
                "the scheduled rotation",
                beat_log,
                worker_log,
            )
            wait_for(lambda: job_records("rotate_signing_key").exists(), 30, "the job record", worker_log)
    assert "Sending due task rotate-signing-key (accounts.tasks.rotate_signing_key)" in beat_log.read_text()

    (rotation,) = credential_records("signing_key.rotate")
    assert rotation.detail["current"] == upcoming.kid and rotation.detail["previous"] == old.kid
    assert SigningKey.objects.get(kid=old.kid).state == KeyState.PREVIOUS  # its tokens still verify
    preflight = credential_records("signing_key.preflight").first()
    assert preflight.outcome == "success" and preflight.detail["rotated"] is True
    assert [(r["registry"], r["ok"]) for r in preflight.detail["results"]] == [("registry", True)]
    job = job_records("rotate_signing_key").first()
    assert job.outcome == "success", job.detail
    assert job.detail["result"]["rotated_to"] == upcoming.kid and job.detail["result"]["refused"] is None

    # The registry still runs the process started before the rotation, with the bundle it loaded then.
    assert registry.running and registry_starts(registry) == 1
    tokens: list[str] = []

    def signed_with_the_new_key() -> bool:
        tokens.append(fetch_token(app, creds("carol"), "repository:web/app:pull"))
        return jwt.get_unverified_header(tokens[-1])["kid"] == upcoming.kid

    # gunicorn's workers pick the new current key up within RELOAD_SECONDS.
    eventually(signed_with_the_new_key, timeout=10, what="a token signed with the new current key")
    manifest = urllib.request.Request(
        f"{registry.url}/v2/web/app/manifests/v1",
        headers={"Authorization": f"Bearer {tokens[-1]}", "Accept": MANIFEST_MEDIA_TYPE},
    )
    assert http_status(manifest) == 200
    skopeo.copy_from("web/app", "v1", tmp_path / "pulled", creds("carol")).check()
    skopeo.copy_to(image, "web/app", "v2", creds("bob")).check()
    assert registry_starts(registry) == 1


# 2. A token registry nobody can ask: the worker refuses ---------------------------------------


def test_a_token_registry_without_a_url_makes_the_worker_refuse_the_rotation_with_the_remedy(
    subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    redis_or_skip()
    services.create_registry("registry", url=f"http://127.0.0.1:{free_port()}", context=SYSTEM)
    services.create_registry("mirror", context=SYSTEM)  # token mode, no URL
    services.ensure_keys(SYSTEM)
    current = SigningKey.objects.get(state=KeyState.CURRENT)
    SigningKey.objects.filter(pk=current.pk).update(activated_at=timezone.now() - timedelta(days=31))
    queue = f"test-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "worker.log"
    env = subprocess_env | {"CELERY_BROKER_URL": REDIS_URL}
    with celery_process("worker", env, log, *WORKER, "-Q", queue, "--hostname", f"{queue}@%h"):
        with Connection(REDIS_URL) as connection:
            celery_app.send_task("accounts.tasks.rotate_signing_key", queue=queue, connection=connection)
        wait_for(lambda: job_records("rotate_signing_key").exists(), 60, "the job record", log)

    assert SigningKey.objects.get(state=KeyState.CURRENT).kid == current.kid
    assert not credential_records("signing_key.rotate").exists()
    assert not credential_records("signing_key.preflight").exists()  # refused before asking anyone
    (refusal,) = credential_records("signing_key.rotate_refused")
    assert refusal.outcome == "failure" and refusal.detail["current"] == current.kid
    assert refusal.detail["age_days"] == 31
    assert "token-mode registry mirror has no URL" in refusal.detail["reason"]
    assert "Set its URL" in refusal.detail["reason"]
    (job,) = job_records("rotate_signing_key")
    assert job.outcome == "error"
    assert job.detail["error"].startswith("RotationRefused: not rotated: token-mode registry mirror has no URL")
    assert "Set its URL" in job.detail["error"]


# 3. A robot's old secret during and after its grace --------------------------------------------


def test_a_robots_old_secret_works_through_the_registry_during_its_grace_and_is_refused_after(
    stack: Stack,  # noqa: F811
    image: OciImage,  # noqa: F811
) -> None:
    app, registry = stack
    out = app.manage("create_robot", "web", "ci", "--grant", "web/**:write").stdout
    robot = dict(line.split(": ", 1) for line in out.strip().splitlines())
    old = (ROBOT, robot["secret"])
    skopeo = Skopeo(registry.host)
    skopeo.copy_to(image, "web/app", "ci-1", old).check()  # the worker's caches now hold the robot

    rotated = app.manage("rotate_robot", ROBOT, "--grace", "8s")
    new = (ROBOT, dict(line.split(": ", 1) for line in rotated.stdout.strip().splitlines())["secret"])
    assert new[1] != old[1] and "The old secret keeps working until" in rotated.stderr
    until = Robot.objects.get(name="ci").previous_valid_until
    skopeo.copy_to(image, "web/app", "ci-2", old).check()
    skopeo.copy_to(image, "web/app", "ci-3", new).check()
    assert timezone.now() < until, "the machine was too slow: the grace ended before the old secret was tried"

    left = (until - timezone.now()).total_seconds()
    assert left < 10, f"the grace ends at {until}, not about 8 s after the rotation"
    time.sleep(max(0.0, left) + 1)
    for attempt in range(3):  # new connections: more than one gunicorn worker answers
        refused = skopeo.inspect("web/app", "ci-1", old)
        assert refused.auth_refused, f"attempt {attempt}: {refused.describe()}"
    skopeo.copy_to(image, "web/app", "ci-4", new).check()
    skopeo.inspect("web/app", "ci-2", new).check()

    robot_access = AuditRecord.objects.filter(kind="access", actor=ROBOT).order_by("pk")
    in_grace = robot_access.filter(outcome="granted", detail__secret_used="previous")
    assert in_grace.exists() and all(record.time < until for record in in_grace)
    failures = AuditRecord.objects.filter(kind="access", outcome="auth_failed", detail__credential=ROBOT)
    assert failures.count() >= 3
    assert all(GRACE_ENDED in record.detail["reason"] for record in failures)
    assert max(in_grace.values_list("pk", flat=True)) < min(failures.values_list("pk", flat=True))
    assert robot_access.filter(outcome="granted", detail__secret_used="current", time__gt=until).exists()
    assert credential_records("robot.rotate").get().detail["previous_valid_until"] is not None


# 4. The notification secret during and after its grace -----------------------------------------


def push_event(repository: str, tag: str, digest: str) -> bytes:
    event = {
        "id": str(uuid.uuid4()),
        "timestamp": timezone.now().isoformat(),
        "action": "push",
        "target": {"mediaType": MANIFEST_MEDIA_TYPE, "repository": repository, "digest": digest, "tag": tag},
        "request": {"addr": "127.0.0.1:40000", "method": "PUT", "useragent": "tests"},
        "actor": {"name": "alice"},
    }
    return json.dumps({"events": [event]}).encode()


def post_events(app: AppServer, secret: str, body: bytes) -> int:
    request = urllib.request.Request(
        f"{app.url}/registry/registry/events",
        data=body,
        method="POST",
        headers={
            "Authorization": f"Bearer {secret}",
            "Content-Type": "application/vnd.docker.distribution.events.v1+json",
        },
    )
    return http_status(request)


def bearer_in(registry: RegistryServer) -> str:
    (endpoint,) = registry.config["notifications"]["endpoints"]
    (header,) = endpoint["headers"]["Authorization"]
    return header.removeprefix("Bearer ")


def pushed_event(tag: str) -> bool:
    return AuditRecord.objects.filter(
        kind="registry_event", outcome="push", repository="web/app", detail__tag=tag
    ).exists()


def last_used() -> str:
    return NotificationEndpoint.objects.get(registry__service="registry").last_used


def test_the_registrys_notifications_keep_arriving_with_the_old_secret_until_it_is_restarted_with_the_new(
    stack: Stack,  # noqa: F811
    image: OciImage,  # noqa: F811
) -> None:
    app, registry = stack
    skopeo = Skopeo(registry.host)
    first = bearer_in(registry)
    skopeo.copy_to(image, "web/app", "v1", creds("alice")).check()
    eventually(lambda: pushed_event("v1"), what="the push event before the rotation")
    assert last_used() == "current"

    assert "within 1h" in app.manage("rotate_notification_secret", "--registry", "registry", "--grace", "1h").stdout
    skopeo.copy_to(image, "web/app", "v2", creds("alice")).check()
    eventually(lambda: pushed_event("v2"), what="the push event sent with the old secret in its grace")
    eventually(lambda: last_used() == "previous", what="the endpoint noting the previous secret")
    assert registry_starts(registry) == 1 and bearer_in(registry) == first

    apply_fragment(app, registry).restart()
    second = bearer_in(registry)
    assert second != first
    skopeo.copy_to(image, "web/app", "v3", creds("alice")).check()
    eventually(lambda: pushed_event("v3"), what="the push event sent with the new secret")
    eventually(lambda: last_used() == "current", what="the endpoint noting the current secret")

    ended = app.manage("rotate_notification_secret", "--registry", "registry", "--grace", "0").stdout
    assert "the old secret is refused from now on" in ended
    third = services.notification_secret(Registry.objects.get(service="registry"), SYSTEM)
    assert third not in {first, second}
    assert post_events(app, second, push_event("web/app", "forged", image.manifest_digest)) == 401
    assert post_events(app, first, push_event("web/app", "forged", image.manifest_digest)) == 401
    assert not pushed_event("forged")
    assert post_events(app, third, push_event("web/app", "forged", image.manifest_digest)) == 200
    assert pushed_event("forged")
    rotations = credential_records("notification_secret.rotate")
    assert [record.detail["previous_valid_until"] is None for record in rotations] == [False, True]
