"""The daily doctor job: every registry with a URL, kept in its history; admins told once when a check turns to fail.

``accounts.registry.doctor.run`` is replaced at its boundary by reports made here (``verdicts`` says
which checks fail on which registry); the job, the history, the mail and the home page are real.
ada is the admin (with an address), root a second admin without one, audrey the auditor.
"""

from __future__ import annotations

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts import services, tasks
from accounts.models import DoctorRun, Registry, User
from accounts.registry import doctor
from accounts.registry.doctor import CHECK_IDS, Check, Report, Target
from audit.models import AuditRecord, Kind
from audit.views.jobs import describe_schedule
from tests.conftest import SYSTEM, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def admins(db: None) -> User:
    make_user("root", is_superuser=True)
    return make_user("ada", is_superuser=True, email="ada@example.org")


@pytest.fixture
def verdicts(monkeypatch: pytest.MonkeyPatch) -> dict[str, dict[str, str]]:
    """service -> {check id: status}; a check not named is ok."""
    found: dict[str, dict[str, str]] = {}

    def run(target: Target) -> Report:
        statuses = found.get(target.registry.service, {})
        checks = [
            Check(i, statuses.get(i, "ok"), f"{i} on {target.registry.service}", ["evidence"], [f"do {i}"])
            for i in CHECK_IDS
        ]
        return Report(target.registry.service, target.url, checks, seconds=0.2)

    monkeypatch.setattr(doctor, "run", run)
    return found


@pytest.fixture
def registries(db: None) -> list[Registry]:
    return [
        services.create_registry("main", url="https://registry.example.org", context=SYSTEM),
        services.create_registry("mirror", url="https://mirror.example.org", context=SYSTEM),
        services.create_registry("nowhere", context=SYSTEM),  # no URL: not checked
    ]


def test_it_is_scheduled_daily_with_an_expiry() -> None:
    entry = settings.CELERY_BEAT_SCHEDULE["doctor-registries"]
    assert entry["task"] == "accounts.tasks.doctor_registries"
    assert describe_schedule(entry["schedule"]) == "daily at 06:50 UTC (50 6 * * *)"
    assert entry["options"]["expires"] == 3600


def test_it_checks_every_registry_with_a_url_and_records_the_job(
    registries: list, verdicts: dict, admins: User, mailoutbox: list
) -> None:
    result = tasks.doctor_registries()
    assert result == {"registries": 2, "failed": {}, "turned_to_fail": {}, "mailed": 0}
    runs = DoctorRun.objects.order_by("registry__service")
    assert [(run.registry.service, run.scheduled, run.worst) for run in runs] == [
        ("main", True, "ok"),
        ("mirror", True, "ok"),
    ]
    assert runs[0].requested_by_name == "job:doctor_registries"
    job = AuditRecord.objects.get(kind=Kind.JOB)
    assert job.outcome == "success" and job.detail["job"] == "doctor_registries"
    assert AuditRecord.objects.filter(kind=Kind.ADMIN_CHANGE, detail__action="registry.doctor").count() == 2
    assert not mailoutbox


def test_admins_are_mailed_once_when_a_check_turns_to_fail(
    registries: list, verdicts: dict, admins: User, mailoutbox: list
) -> None:
    tasks.doctor_registries()
    verdicts["mirror"] = {"tls": "fail", "cors": "warn"}
    result = tasks.doctor_registries()
    assert result["turned_to_fail"] == {"mirror": ["tls"]} and result["mailed"] == 1
    assert len(mailoutbox) == 1
    message = mailoutbox[0]
    assert message.to == ["ada@example.org"]
    assert "a check turned to fail on mirror" in message.subject
    assert "[FAIL] tls: tls on mirror" in message.body and "fix: do tls" in message.body
    assert "cors" not in message.body and "evidence" not in message.body.replace("its evidence", "")
    assert f"{settings.PUBLIC_URL}/manage/registries/mirror/doctor" in message.body

    tasks.doctor_registries()  # still failing: not mailed again
    assert len(mailoutbox) == 1
    verdicts["mirror"] = {"tls": "fail", "clock": "fail"}
    assert tasks.doctor_registries()["turned_to_fail"] == {"mirror": ["clock"]}
    assert len(mailoutbox) == 2 and "[FAIL] clock" in mailoutbox[1].body and "[FAIL] tls" not in mailoutbox[1].body


def test_a_check_that_recovers_and_fails_again_is_mailed_again(
    registries: list, verdicts: dict, admins: User, mailoutbox: list
) -> None:
    verdicts["main"] = {"proxy": "fail"}
    tasks.doctor_registries()
    verdicts["main"] = {}
    tasks.doctor_registries()
    verdicts["main"] = {"proxy": "fail"}
    tasks.doctor_registries()
    assert len(mailoutbox) == 2


def test_the_home_page_shows_registries_whose_latest_run_failed(registries: list, verdicts: dict, admins: User) -> None:
    audrey = make_user("audrey", is_auditor=True)
    verdicts["main"] = {"tls": "fail"}
    verdicts["mirror"] = {"proxy": "fail"}
    tasks.doctor_registries()
    verdicts["mirror"] = {}
    tasks.doctor_registries()
    for person in (admins, audrey):
        client = Client()
        client.force_login(person)
        body = client.get("/").content.decode()
        assert "The registry doctor's latest run failed:" in body
        assert '<a href="/manage/registries/main/doctor">main</a>: tls' in body
        assert "/manage/registries/mirror/doctor" not in body  # its latest run passed


def test_the_home_page_alert_costs_the_same_however_many_runs(registries: list, verdicts: dict, admins: User) -> None:
    client = Client()
    client.force_login(admins)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/").status_code == 200
        return len(captured)

    verdicts["main"] = {"tls": "fail"}
    tasks.doctor_registries()
    few = queries()
    for i in range(5):
        services.create_registry(f"extra{i}", url=f"https://extra{i}.example.org", context=SYSTEM)
        verdicts[f"extra{i}"] = {"clock": "fail"}
    for _ in range(3):
        tasks.doctor_registries()
    assert queries() == few
