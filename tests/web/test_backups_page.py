"""The backups page: admins see every run and its file, back up now, follow its progress, download a file.

Runs are made here as the task leaves them (state, stage, progress, the file's facts); no worker runs.
"Back up now" is checked at the send boundary (the task's ``apply_async``) and once through the real
filesystem broker. ada is the admin, audrey the auditor, alice leads team web, carol is a plain user.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from kombu.exceptions import OperationalError

from accounts import tasks
from accounts.models import Backup, BackupState, Team, User
from audit.models import AuditRecord
from audit.tasks import BROKER_DOWN
from audit.views.jobs import describe_schedule

pytestmark = pytest.mark.django_db

LIST = "/manage/backups/"
RUN = "/manage/backups/run"
COUNTS = {"accounts.user": 12, "accounts.team": 3, "accounts.grant": 40, "accounts.robot": 2}


@pytest.fixture(autouse=True)
def backup_dir(settings: Any, tmp_path: Path) -> Path:
    settings.BACKUP_DIR = (tmp_path / "backups").resolve()
    settings.BACKUP_DIR.mkdir()
    settings.BACKUP_KEY = "a passphrase kept off this host"
    return settings.BACKUP_DIR


@pytest.fixture
def people(ada: User, audrey: User, carol: User, web: Team, alice: User) -> dict[str, User]:
    return {"ada": ada, "audrey": audrey, "carol": carol, "alice": alice}


def client_for(persona: str, people: dict[str, User]) -> Client:
    client = Client()
    if persona != "anonymous":
        client.force_login(people[persona])
    return client


def made(state: str = BackupState.VERIFIED, ago: timedelta = timedelta(0), **fields: Any) -> Backup:
    """A run as the task leaves it in ``state``, started ``ago``."""
    started = timezone.now() - ago
    if state == BackupState.VERIFIED:
        fields = {
            "verified_at": started + timedelta(seconds=9),
            "finished_at": started + timedelta(seconds=10),
        } | fields
    return Backup.objects.create(state=state, started_at=started, **({"requested_by_name": "ada"} | fields))


def with_file(directory: Path, name: str, data: bytes = b"age-encryption.org/v1 not really", **fields: Any) -> Backup:
    """A verified run whose file lies in ``directory``."""
    path = directory / name
    path.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    return made(path=str(path), size=len(data), sha256=digest, **({"counts": COUNTS} | fields))


def progress_url(run: Backup) -> str:
    return reverse("backups:progress", kwargs={"pk": run.pk})


def download_url(run: Backup) -> str:
    return reverse("backups:download", kwargs={"pk": run.pk})


def downloads() -> list[AuditRecord]:
    return list(AuditRecord.objects.filter(detail__action="backup.download"))


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What "back up now" hands to the broker: the task's apply_async, recorded instead of published."""
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(tasks.backup, "apply_async", lambda *args, **kwargs: calls.append(kwargs))
    return calls


def test_the_urls_are_under_manage_like_the_other_admin_pages() -> None:
    assert (reverse("backups:list"), reverse("backups:run")) == (LIST, RUN)
    assert reverse("backups:progress", kwargs={"pk": 7}) == "/manage/backups/7/progress"
    assert reverse("backups:download", kwargs={"pk": 7}) == "/manage/backups/7/download"


def test_the_list_shows_runs_of_every_state_with_their_facts(people, backup_dir: Path, tmp_path: Path) -> None:
    copied = with_file(
        backup_dir, "registryadmin-backup-20260101T014000Z.tar.gz.age", b"x" * 2048, ago=timedelta(days=3)
    )
    Backup.objects.filter(pk=copied.pk).update(copied_at=copied.started_at + timedelta(seconds=20))
    plain = with_file(
        backup_dir, "registryadmin-backup-20260102T014000Z.tar.gz", encrypted=False, ago=timedelta(days=2)
    )
    removed = made(path=str(backup_dir / "registryadmin-backup-20251201T014000Z.tar.gz.age"), size=10, counts=COUNTS)
    Backup.objects.filter(pk=removed.pk).update(
        deleted_at=timezone.now(), started_at=timezone.now() - timedelta(days=40)
    )
    elsewhere = with_file(tmp_path, "registryadmin-backup-20260103T014000Z.tar.gz.age", ago=timedelta(days=1))
    failed = made(BackupState.FAILED, ago=timedelta(hours=2), error="BACKUP_COPY_COMMAND exited 1: bucket is gone")
    made(BackupState.RUNNING, ago=timedelta(seconds=30), stage="packing and encrypting", progress=40)
    made(BackupState.QUEUED, stage="waiting for the worker", scheduled=True, requested_by_name="schedule")

    body = client_for("ada", people).get(LIST).content.decode()

    assert "registryadmin-backup-20260101T014000Z.tar.gz.age" in body and "2.0\xa0KB" in body
    assert "12 users, 3 teams, 40 grants" in body and "1 user, 0 teams" not in body and "57 rows in all" in body
    assert f"verified</span> {copied.verified_at:%Y-%m-%d %H:%M:%S} UTC" in body
    assert f"{copied.started_at + timedelta(seconds=20):%Y-%m-%d %H:%M:%S} UTC" in body  # copied off the host
    assert body.count('<span class="badge ok">encrypted</span>') == 3 and "not encrypted" in body
    assert f'href="{download_url(copied)}"' in body and f'href="{download_url(plain)}"' in body
    assert "removed by retention" in body and f'href="{download_url(removed)}"' not in body
    assert "written outside BACKUP_DIR" in body and f'href="{download_url(elsewhere)}"' not in body
    assert "failed</span>" in body and "BACKUP_COPY_COMMAND exited 1: bucket is gone" in body
    assert "packing and encrypting" in body and 'max="100" value="40"' in body
    assert "queued</span> waiting for the worker" in body and "scheduled" in body
    assert body.index(f'id="backup-{failed.pk}"') < body.index(f'id="backup-{copied.pk}"')  # newest first


def test_the_last_failure_is_shown_at_the_top_until_a_backup_verifies(people, backup_dir: Path) -> None:
    with_file(backup_dir, "registryadmin-backup-20260101T014000Z.tar.gz.age", ago=timedelta(days=1))
    made(BackupState.FAILED, ago=timedelta(hours=1), error="cannot write /backups: No space left on device")
    client = client_for("ada", people)
    body = client.get(LIST).content.decode()
    assert "The last backup failed" in body
    assert body.index("No space left on device") < body.index("<table")
    with_file(backup_dir, "registryadmin-backup-20260102T014000Z.tar.gz.age")
    assert "The last backup failed" not in client.get(LIST).content.decode()


def test_it_warns_that_scheduled_backups_fail_without_backup_key(people, settings: Any) -> None:
    settings.BACKUP_KEY = ""
    body = client_for("ada", people).get(LIST).content.decode()
    assert "BACKUP_KEY is not set:</strong> scheduled backups will fail until it is set" in body
    settings.BACKUP_KEY = "set again"
    assert "BACKUP_KEY is not set" not in client_for("ada", people).get(LIST).content.decode()


def test_it_shows_the_schedule_the_retention_and_the_directory(people, settings: Any, backup_dir: Path) -> None:
    settings.BACKUP_KEEP_DAILY, settings.BACKUP_KEEP_WEEKLY, settings.BACKUP_KEEP_MONTHLY = 5, 3, 9
    body = client_for("ada", people).get(LIST).content.decode()
    assert describe_schedule(settings.CELERY_BEAT_SCHEDULE["backup"]["schedule"]) in body
    assert "last 5 days, 3 weeks and 9 months" in body
    assert f"<code>{backup_dir}</code>" in body
    assert "BACKUP_COPY_COMMAND</code> is not set" in body


def test_the_page_has_no_inline_script_or_style(people) -> None:
    made(BackupState.RUNNING, stage="reading the configuration", progress=5)
    body = client_for("ada", people).get(LIST).content.decode()
    assert "<script>" not in body and "<script " not in body.replace('<script src="', "") and "style=" not in body


def test_the_list_takes_as_many_queries_for_many_runs_as_for_few(people, backup_dir: Path) -> None:
    client = client_for("ada", people)
    with_file(backup_dir, "registryadmin-backup-20260101T014000Z.tar.gz.age")
    with CaptureQueriesContext(connection) as few:
        client.get(LIST)
    for n in range(30):
        made(BackupState.FAILED if n % 2 else BackupState.VERIFIED, ago=timedelta(hours=n + 1), counts=COUNTS)
    with CaptureQueriesContext(connection) as many:
        client.get(LIST)
    assert len(many) == len(few)


def test_the_list_is_paged_fifty_runs_at_a_time(people) -> None:
    Backup.objects.bulk_create(
        Backup(state=BackupState.FAILED, error=f"error {n}", started_at=timezone.now() - timedelta(hours=n))
        for n in range(55)
    )
    client = client_for("ada", people)
    first = client.get(LIST).content.decode()
    assert "Page 1 of 2" in first and "error 49<" in first and "error 50<" not in first
    assert "error 54<" in client.get(LIST, {"page": 2}).content.decode()


def test_back_up_now_queues_a_run_and_sends_it_to_a_worker(people, sent: list[dict[str, Any]]) -> None:
    client = client_for("ada", people)
    response = client.post(RUN)
    assert response.status_code == 302 and response["Location"] == LIST
    run = Backup.objects.get()
    assert (run.state, run.requested_by_name, run.scheduled) == (BackupState.QUEUED, "ada", False)
    assert [call["args"] for call in sent] == [[run.pk]]
    body = client.get(LIST).content.decode()
    assert f"Backup run {run.pk} is queued" in body and f'hx-get="{progress_url(run)}"' in body


def test_back_up_now_reaches_the_broker(people) -> None:
    queue = Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"])
    before = set(queue.iterdir())
    client_for("ada", people).post(RUN)
    run = Backup.objects.get()
    new = [json.loads(path.read_bytes()) for path in set(queue.iterdir()) - before]
    assert [(m["headers"]["task"], m["headers"]["argsrepr"]) for m in new] == [("accounts.tasks.backup", f"[{run.pk}]")]


@pytest.mark.parametrize("state", [BackupState.QUEUED, BackupState.RUNNING])
def test_back_up_now_is_refused_while_another_run_is_under_way(people, sent: list, state: str) -> None:
    under_way = made(state, ago=timedelta(minutes=5), stage="verifying")
    response = client_for("ada", people).post(RUN, follow=True)
    assert f"Not started: backup run {under_way.pk} is {state}" in response.content.decode()
    assert list(Backup.objects.all()) == [under_way] and sent == []


def test_a_run_that_stalled_for_over_an_hour_no_longer_blocks_back_up_now(people, sent: list) -> None:
    stalled = made(BackupState.QUEUED, ago=timedelta(hours=2), stage="waiting for the worker")
    client = client_for("ada", people)
    body = client.get(LIST).content.decode()
    assert "stalled</span>" in body and f'hx-get="{progress_url(stalled)}"' not in body
    client.post(RUN)
    assert Backup.objects.count() == 2 and len(sent) == 1


def test_back_up_now_is_refused_without_backup_key(people, sent: list, settings: Any) -> None:
    settings.BACKUP_KEY = ""
    response = client_for("ada", people).post(RUN, follow=True)
    assert "Not started: BACKUP_KEY is not set" in response.content.decode()
    assert not Backup.objects.exists() and sent == []


def test_a_broker_failure_fails_the_run_with_a_clear_error_and_no_500(people, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(tasks.backup, "apply_async", refuse)
    response = client_for("ada", people).post(RUN, follow=True)
    assert response.status_code == 200 and response.redirect_chain == [(LIST, 302)]
    run = Backup.objects.get()
    assert run.state == BackupState.FAILED and run.finished_at is not None
    assert run.error.startswith(BROKER_DOWN) and "Connection refused" in run.error
    body = response.content.decode()
    assert f"Backup run {run.pk} failed: {BROKER_DOWN}" in body and "The last backup failed" in body
    sent: list = []
    monkeypatch.setattr(tasks.backup, "apply_async", lambda *args, **kwargs: sent.append(kwargs))
    client_for("ada", people).post(RUN)  # a failed run does not block the next one
    assert len(sent) == 1


@pytest.mark.parametrize("state", [BackupState.QUEUED, BackupState.RUNNING])
def test_the_progress_fragment_polls_while_the_run_is_under_way_and_not_after(
    people, backup_dir: Path, state: str
) -> None:
    run = made(state, stage="verifying: reading the file back", progress=60)
    client = client_for("ada", people)
    fragment = client.get(progress_url(run)).content.decode()
    assert fragment.lstrip().startswith(f'<tr id="backup-{run.pk}"')
    assert f'hx-get="{progress_url(run)}"' in fragment
    assert 'hx-trigger="every 1s"' in fragment and 'hx-swap="outerHTML"' in fragment
    if state == BackupState.RUNNING:
        assert "verifying: reading the file back" in fragment and 'value="60"' in fragment
    path = backup_dir / "registryadmin-backup-20260101T014000Z.tar.gz.age"
    path.write_bytes(b"done")
    Backup.objects.filter(pk=run.pk).update(
        state=BackupState.VERIFIED, progress=100, stage="done", path=str(path), verified_at=timezone.now()
    )
    fragment = client.get(progress_url(run)).content.decode()
    assert "hx-get" not in fragment and "hx-trigger" not in fragment
    assert "verified</span>" in fragment and f'href="{download_url(run)}"' in fragment


def test_a_failed_run_stops_polling_and_shows_its_error(people) -> None:
    run = made(BackupState.FAILED, error="wrong passphrase")
    fragment = client_for("ada", people).get(progress_url(run)).content.decode()
    assert "hx-trigger" not in fragment and "wrong passphrase" in fragment


def test_an_unknown_run_has_no_progress(people) -> None:
    assert client_for("ada", people).get(reverse("backups:progress", kwargs={"pk": 999})).status_code == 404


def test_an_admin_downloads_a_file_and_the_download_is_recorded(people, backup_dir: Path) -> None:
    data = b"age-encryption.org/v1\n-> scrypt ...\n" + bytes(range(256))
    run = with_file(backup_dir, "registryadmin-backup-20260101T014000Z.tar.gz.age", data)
    response = client_for("ada", people).get(download_url(run))
    assert response.status_code == 200 and b"".join(response.streaming_content) == data
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Disposition"] == f'attachment; filename="{run.file_name}"'
    assert "no-store" in response["Cache-Control"]
    [record] = downloads()
    assert (record.kind, record.actor, record.detail["target"]) == ("admin_change", "ada", run.file_name)
    assert record.detail["after"] == {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


def test_a_file_outside_backup_dir_is_listed_but_not_downloadable(people, backup_dir: Path, tmp_path: Path) -> None:
    outside = with_file(tmp_path, "registryadmin-backup-20260101T014000Z.tar.gz.age")
    (backup_dir / "registryadmin-backup-20260102T014000Z.tar.gz.age").symlink_to(outside.path)
    linked = made(path=str(backup_dir / "registryadmin-backup-20260102T014000Z.tar.gz.age"), size=1)
    client = client_for("ada", people)
    assert client.get(download_url(outside)).status_code == 404
    assert client.get(download_url(linked)).status_code == 404
    assert "not downloadable here" in client.get(LIST).content.decode()
    assert downloads() == []


def test_a_removed_missing_or_unfinished_file_is_not_found(people, backup_dir: Path) -> None:
    removed = with_file(backup_dir, "registryadmin-backup-20260101T014000Z.tar.gz.age", deleted_at=timezone.now())
    missing = with_file(backup_dir, "registryadmin-backup-20260102T014000Z.tar.gz.age")
    Path(missing.path).unlink()
    running = with_file(backup_dir, "registryadmin-backup-20260103T014000Z.tar.gz.age")
    Backup.objects.filter(pk=running.pk).update(state=BackupState.RUNNING, stage="verifying")
    client = client_for("ada", people)
    for run in (removed, missing, running):
        assert client.get(download_url(run)).status_code == 404, run
    assert client.get(reverse("backups:download", kwargs={"pk": 999})).status_code == 404
    assert "no longer in BACKUP_DIR" in client.get(LIST).content.decode()
    assert downloads() == []


VIEWS = [("list", "get"), ("run", "post"), ("progress", "get"), ("download", "get")]


def url_of(name: str, run: Backup) -> str:
    return reverse(f"backups:{name}", kwargs={"pk": run.pk} if name in ("progress", "download") else {})


@pytest.fixture
def run(backup_dir: Path) -> Backup:
    return with_file(backup_dir, "registryadmin-backup-20260101T014000Z.tar.gz.age")


@pytest.mark.parametrize(("name", "method"), VIEWS)
def test_every_view_requires_login(people, run: Backup, name: str, method: str, sent: list) -> None:
    response = getattr(Client(), method)(url_of(name, run))
    assert response.status_code == 302 and response["Location"].startswith(reverse("accounts:login"))


@pytest.mark.parametrize("persona", ["audrey", "alice", "carol"])
@pytest.mark.parametrize(("name", "method"), VIEWS)
def test_auditors_leads_and_users_are_refused(
    people, run: Backup, persona: str, name: str, method: str, sent: list
) -> None:
    response = getattr(client_for(persona, people), method)(url_of(name, run))
    assert response.status_code == 403
    assert run.file_name.encode() not in response.content
    assert Backup.objects.count() == 1 and sent == [] and downloads() == []


@pytest.mark.parametrize(("name", "method"), VIEWS)
def test_every_view_rejects_the_wrong_method(people, run: Backup, name: str, method: str, sent: list) -> None:
    wrong = "get" if method == "post" else "post"
    assert getattr(client_for("ada", people), wrong)(url_of(name, run)).status_code == 405
    assert Backup.objects.count() == 1 and sent == []


@pytest.mark.parametrize(("name", "method"), VIEWS)
def test_every_view_works_for_an_admin(people, run: Backup, name: str, method: str, sent: list) -> None:
    assert getattr(client_for("ada", people), method)(url_of(name, run)).status_code in (200, 302)


def test_the_navigation_links_the_page_for_admins_only(people) -> None:
    link = f'<a href="{LIST}">Backups</a>'
    assert link in client_for("ada", people).get("/").content.decode()
    assert link not in client_for("audrey", people).get("/").content.decode()


def test_the_counts_summary_speaks_of_one_user_in_the_singular(people, backup_dir: Path) -> None:
    with_file(backup_dir, "registryadmin-backup-20260101T014000Z.tar.gz.age", counts={"accounts.user": 1})
    assert "1 user, 0 teams, 0 grants" in client_for("ada", people).get(LIST).content.decode()
