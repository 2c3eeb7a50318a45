"""The doctor's history: a run is kept with its audit record, and a check "turns to fail" only once.

Reports are made here as ``doctor.run`` returns them; no registry is probed.
"""

from __future__ import annotations

import pytest

from accounts import services
from accounts.models import DoctorRun, Registry, User
from accounts.registry.doctor import Check, Report
from audit.context import AuditContext
from audit.models import AuditRecord, Kind
from tests.conftest import SYSTEM

pytestmark = pytest.mark.django_db


@pytest.fixture
def registry(db: None) -> Registry:
    return services.create_registry("registry", url="http://127.0.0.1:5000", context=SYSTEM)


def report(**statuses: str) -> Report:
    """A report where every check not named is ok; e.g. ``report(tls="fail")``."""
    ids = ("auth_settings", "token_trust", "tls", "roles", "clock", "proxy", "cors", "rate_limit")
    checks = [
        Check(i, statuses.get(i, "ok"), f"{i} said so", [f"saw {i}"], [f"fix {i}"] if i in statuses else [])
        for i in ids
    ]
    return Report("registry", "http://127.0.0.1:5000", checks, seconds=1.25)


def test_record_run_keeps_the_report_and_writes_its_audit_record(registry: Registry, ada: User) -> None:
    context = AuditContext.for_user(ada)
    run = services.doctor.record_run(registry, report(tls="fail", cors="warn"), context=context, scheduled=False)
    run.refresh_from_db()
    assert (run.worst, run.requested_by_name, run.scheduled, run.seconds) == ("fail", "ada", False, 1.25)
    assert run.results["checks"][2] == {
        "id": "tls",
        "status": "fail",
        "summary": "tls said so",
        "evidence": ["saw tls"],
        "fix": ["fix tls"],
    }
    assert run.failed_ids == ["tls"]
    audit = AuditRecord.objects.filter(kind=Kind.ADMIN_CHANGE, detail__action="registry.doctor").get()
    assert audit.actor == "ada" and audit.registry == "registry"
    assert audit.detail["target"] == "registry"
    assert audit.detail["after"] == {"run": run.pk, "worst": "fail", "failed": ["tls"], "scheduled": False}
    assert "saw tls" not in str(audit.detail)  # evidence stays out of the audit log


def test_the_worst_status_is_fail_then_warn_then_ok(registry: Registry) -> None:
    record = services.doctor.record_run
    assert record(registry, report(cors="warn"), context=SYSTEM, scheduled=True).worst == "warn"
    assert record(registry, report(roles="skip"), context=SYSTEM, scheduled=True).worst == "ok"
    assert record(registry, report(cors="warn", proxy="fail"), context=SYSTEM, scheduled=True).worst == "fail"


def test_a_run_that_cannot_be_recorded_leaves_no_audit_record(registry: Registry, monkeypatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("audit log is down")

    monkeypatch.setattr(services.doctor, "record_change", broken)
    with pytest.raises(RuntimeError):
        services.doctor.record_run(registry, report(), context=SYSTEM, scheduled=True)
    assert not DoctorRun.objects.exists()


def test_without_an_earlier_run_every_failing_check_turned_to_fail(registry: Registry) -> None:
    assert services.doctor.turned_to_fail(registry, report(tls="fail", clock="fail")) == ["tls", "clock"]
    assert services.doctor.turned_to_fail(registry, report(cors="warn")) == []


def test_only_what_did_not_fail_in_the_previous_run_turned_to_fail(registry: Registry) -> None:
    services.doctor.record_run(registry, report(tls="fail"), context=SYSTEM, scheduled=True)
    assert services.doctor.turned_to_fail(registry, report(tls="fail")) == []
    assert services.doctor.turned_to_fail(registry, report(tls="fail", proxy="fail")) == ["proxy"]
    services.doctor.record_run(registry, report(), context=SYSTEM, scheduled=True)
    assert services.doctor.turned_to_fail(registry, report(tls="fail")) == ["tls"]


def test_another_registrys_runs_do_not_count(registry: Registry) -> None:
    other = services.create_registry("other", url="http://127.0.0.1:5001", context=SYSTEM)
    services.doctor.record_run(other, report(tls="fail"), context=SYSTEM, scheduled=True)
    assert services.doctor.turned_to_fail(registry, report(tls="fail")) == ["tls"]
