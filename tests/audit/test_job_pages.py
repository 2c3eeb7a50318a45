"""The scheduled-jobs page: every beat entry with its last run, failures highlighted; admins queue a job now.

No worker runs here: queueing goes to the filesystem broker under DATA_DIR, and the test checks the
message landed there, the confirmation and the audit record.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from celery.schedules import crontab, schedule
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from kombu.exceptions import OperationalError

from accounts.models import User
from accounts.tasks import sync_htpasswd
from audit.jobs import run_job
from audit.models import AuditRecord
from audit.views.jobs import cron_words, describe_schedule
from registryadmin.celery import app as celery_app

pytestmark = pytest.mark.django_db

LIST = "/manage/jobs/"


def run_url(name: str) -> str:
    return reverse("jobs:run", kwargs={"name": name})


@pytest.fixture
def people(ada: User, audrey: User, carol: User) -> dict[str, User]:
    return {"ada": ada, "audrey": audrey, "carol": carol}


@pytest.fixture
def runs(db: None) -> None:
    """seal_audit succeeded; verify_audit failed after it."""
    run_job("seal_audit", lambda: {"sealed": 7})

    def broken() -> dict[str, object]:
        raise RuntimeError("the disk is full")

    with pytest.raises(RuntimeError):
        run_job("verify_audit", broken)


def client_for(persona: str, people: dict[str, User]) -> Client:
    client = Client()
    if persona != "anonymous":
        client.force_login(people[persona])
    return client


def queued_messages() -> list[Path]:
    folder = Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_out"])
    return sorted(folder.iterdir())


def test_the_urls_are_where_the_brief_says() -> None:
    assert (reverse("jobs:list"), run_url("seal-audit")) == (LIST, "/manage/jobs/seal-audit/run")


@pytest.mark.parametrize(("persona", "expected"), [("anonymous", 302), ("carol", 403), ("audrey", 200), ("ada", 200)])
def test_overseers_see_the_jobs(people, persona: str, expected: int) -> None:
    response = client_for(persona, people).get(LIST)
    assert response.status_code == expected
    if persona == "anonymous":
        assert response["Location"].startswith(reverse("accounts:login"))


@pytest.mark.parametrize(("persona", "expected"), [("anonymous", 302), ("carol", 403), ("audrey", 403), ("ada", 302)])
def test_only_admins_run_a_job(people, persona: str, expected: int) -> None:
    response = client_for(persona, people).post(run_url("seal-audit"))
    assert response.status_code == expected
    assert AuditRecord.objects.filter(detail__action="job.run").exists() == (persona == "ada")


def test_a_refused_page_shows_no_run(people, runs) -> None:
    body = client_for("carol", people).get(LIST).content.decode()
    assert "the disk is full" not in body and "audit.tasks" not in body


@pytest.mark.parametrize(("url", "method"), [(LIST, "post"), ("/manage/jobs/seal-audit/run", "get")])
def test_it_rejects_the_wrong_method(people, url: str, method: str) -> None:
    assert getattr(client_for("ada", people), method)(url).status_code == 405


def test_the_page_lists_every_beat_entry_with_a_readable_schedule(people) -> None:
    body = client_for("audrey", people).get(LIST).content.decode()
    for name, entry in settings.CELERY_BEAT_SCHEDULE.items():
        assert f">{name}</a>" in body and f"<code>{entry['task']}</code>" in body
        assert describe_schedule(entry["schedule"]) in body
    assert "every minute UTC (* * * * *)" in body and "daily at 03:30 UTC (30 3 * * *)" in body
    assert "/run" not in body  # auditors get no "Run now" buttons
    assert 'action="/manage/jobs/seal-audit/run"' in client_for("ada", people).get(LIST).content.decode()


def test_a_failed_run_is_highlighted_with_its_error(people, runs) -> None:
    body = client_for("audrey", people).get(LIST).content.decode()
    summary = body.split("</thead>")[1].split("</table>")[0]
    verify_row = summary.split(">verify-audit</a>")[1].split("</tr>")[0]
    assert "failed" in verify_row and "RuntimeError: the disk is full" in verify_row
    assert '<tr class="denied">' in summary
    seal_row = summary.split(">seal-audit</a>")[1].split("</tr>")[0]
    assert "sealed: 7" in seal_row and "failed" not in seal_row


def test_the_records_filter_by_job_and_outcome(people, runs) -> None:
    client = client_for("audrey", people)
    records = client.get(LIST, {"job": "seal-audit"}).content.decode().split("Job records")[1]
    assert "sealed: 7" in records and "the disk is full" not in records
    failed = client.get(LIST, {"outcome": "error"}).content.decode().split("Job records")[1]
    assert "the disk is full" in failed and "sealed: 7" not in failed
    partial = client.get(LIST, {"job": "verify-audit"}, headers={"HX-Request": "true"}).content.decode()
    assert "the disk is full" in partial and "<html" not in partial


def test_an_unknown_job_filter_is_refused_with_the_message(people) -> None:
    response = client_for("ada", people).get(LIST, {"job": "mine-bitcoin"})
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()


def test_the_page_takes_as_many_queries_for_many_runs_as_for_few(people, runs) -> None:
    client = client_for("ada", people)
    with CaptureQueriesContext(connection) as few:
        client.get(LIST)
    for n in range(60):
        run_job("apply_retention", lambda n=n: {"dropped": n})
    with CaptureQueriesContext(connection) as many:
        response = client.get(LIST)
    assert len(many) == len(few)
    assert "Page 1 of 2" in response.content.decode()


def test_running_a_job_queues_it_and_is_recorded(people) -> None:
    before = queued_messages()
    response = client_for("ada", people).post(run_url("verify-audit"), follow=True)
    assert response.redirect_chain[-1] == (LIST, 302)
    assert "Queued verify-audit (audit.tasks.verify_audit)" in response.content.decode()
    record = AuditRecord.objects.get(detail__action="job.run")
    assert (record.kind, record.actor, record.detail["target"]) == ("admin_change", "ada", "verify-audit")
    new = [path for path in queued_messages() if path not in before]
    assert len(new) == 1 and b"audit.tasks.verify_audit" in new[0].read_bytes()


def test_an_unknown_job_is_not_found(people) -> None:
    assert client_for("ada", people).post(run_url("mine-bitcoin")).status_code == 404
    assert not AuditRecord.objects.filter(detail__action="job.run").exists()


def test_a_broker_failure_is_reported_and_leaves_no_record(people, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise OperationalError("connection refused")

    monkeypatch.setattr(celery_app, "send_task", refuse)
    response = client_for("ada", people).post(run_url("seal-audit"), follow=True)
    assert "Could not queue seal-audit" in response.content.decode()
    assert not AuditRecord.objects.filter(detail__action="job.run").exists()


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("* * * * *", "every minute"),
        ("*/5 * * * *", "every 5 minutes"),
        ("15 * * * *", "hourly at minute 15"),
        ("0 4 * * *", "daily at 04:00"),
        ("0 4 * * 1", ""),
        ("*/5 2 * * *", ""),
    ],
)
def test_common_crontabs_read_as_words(spec: str, words: str) -> None:
    assert cron_words(spec) == words


def test_other_schedules_are_described_too() -> None:
    assert describe_schedule(crontab("0", "4", "1")) == "0 4 * * 1 (UTC)"
    assert describe_schedule(timedelta(minutes=2)) == "every 120 seconds"
    assert describe_schedule(schedule(timedelta(seconds=30))) == "every 30 seconds"
    assert describe_schedule(45.0) == "every 45 seconds"


def test_the_htpasswd_safety_net_reports_each_run(people) -> None:
    sync_htpasswd()
    body = client_for("audrey", people).get(LIST).content.decode()
    summary = body.split("</thead>")[1].split("</table>")[0]
    row = summary.split(">sync-htpasswd</a>")[1].split("</tr>")[0]
    assert "No run recorded" not in row and "files: 0" in row
