"""The unused-rights report: proposals that match the seeded audit history exactly, applied and dismissed.

Everyone and everything was made 120 days ago. Team web (alice leads, bob is a member) holds write
on web/**; alice gave bob write on web/app; carol reads web/app (no team); erin reads web/site (no
team); the robot web+ci writes web/api. In the last 90 days: bob pulled web/app (10 days ago), the
robot pushed web/api (5 days ago), alice and erin signed in on the web; carol pulled web/app 100
days ago and nothing since; bob's token "laptop" was never used.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from unittest import mock

import pytest
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.utils import timezone

from accounts import services
from accounts.models import Grant, PersonalAccessToken, Robot, Team, User
from audit import chain
from audit.models import AuditRecord, Kind
from tests.conftest import PASSWORD, SYSTEM, make_user

pytestmark = pytest.mark.django_db

NOW = timezone.now().replace(microsecond=0)
MADE = NOW - timedelta(days=120)


@contextmanager
def clock(at: datetime) -> Iterator[None]:
    with mock.patch.object(timezone, "now", return_value=at):
        yield


def ask(user: str, secret: str, scope: str, at: datetime) -> None:
    raw = base64.b64encode(f"{user}:{secret}".encode()).decode()
    with clock(at):
        response = Client().get(
            "/auth/token", {"service": "registry", "scope": scope}, HTTP_AUTHORIZATION=f"Basic {raw}"
        )
    assert response.status_code == 200, response.content


@pytest.fixture
def world(alice: User, bob: User, carol: User, web: Team) -> dict:
    services.ensure_keys()
    services.create_registry("registry", context=SYSTEM)
    erin = make_user("erin")
    services.create_grant(web, "web/**", "write", context=SYSTEM)
    bobs = services.lead_grant(web, bob, "web/app", "write", acting_user=alice, context=SYSTEM)
    carols = services.create_grant(carol, "web/app", "read", context=SYSTEM)
    erins = services.create_grant(erin, "web/site", "read", context=SYSTEM)
    robot, robot_secret = services.create_robot(web, "ci", grants=[("web/api", "write")], context=SYSTEM)
    token, _ = services.create_access_token(bob, "laptop", context=SYSTEM)
    Grant.objects.update(created_at=MADE)
    User.objects.update(date_joined=MADE)
    Robot.objects.update(created_at=MADE)
    PersonalAccessToken.objects.update(created_at=MADE)
    ask("carol", PASSWORD, "repository:web/app:pull", NOW - timedelta(days=100))
    ask("bob", PASSWORD, "repository:web/app:pull", NOW - timedelta(days=10))
    ask("robot$web+ci", robot_secret, "repository:web/api:pull,push", NOW - timedelta(days=5))
    User.objects.filter(username__in=["alice", "erin"]).update(last_login=NOW - timedelta(days=1))
    chain.seal(now=NOW + timedelta(seconds=settings.AUDIT_SEAL_LAG + 1))
    return {"bobs": bobs, "carols": carols, "erins": erins, "robot": robot, "token": token, "web": web}


def proposals(days: int = 90, team_ids: set[int] | None = None) -> list[tuple[str, str, str, str, str]]:
    report = services.unused.report(days, now=NOW, team_ids=team_ids)
    return [(p.proposal, p.subject_type, p.subject, p.role, p.pattern) for p in report.proposals]


def test_the_proposals_match_the_seeded_history_exactly(world: dict) -> None:
    assert proposals() == [
        ("deactivate", "user", "carol", "", ""),
        ("revoke", "token", "bob/laptop", "", ""),
        ("revoke", "user", "erin", "read", "web/site"),
        ("read", "user", "bob", "write", "web/app"),
    ]


def test_each_proposal_carries_its_evidence_and_last_use(world: dict) -> None:
    report = {p.subject: p for p in services.unused.report(90, now=NOW).proposals}
    bobs = report["bob"].as_json()
    assert bobs["last_used"] == services.unused.rfc3339(NOW - timedelta(days=10))
    assert "no push or delete under web/app since never" in bobs["evidence"]
    assert bobs["evidence"].endswith("1 pull in the period")
    assert report["carol"].last_used == NOW - timedelta(days=100)
    assert report["erin"].last_used is None and "no pull under web/site since never" in report["erin"].evidence
    assert "never used since it was made" in report["bob/laptop"].evidence


def test_a_longer_period_sees_carols_old_pull(world: dict, settings) -> None:
    settings.AUDIT_RETENTION_DAYS = {**settings.AUDIT_RETENTION_DAYS, "access": 365}
    found = proposals(days=90)
    assert ("deactivate", "user", "carol", "", "") in found
    assert ("deactivate", "user", "carol", "", "") not in proposals(days=90 + 15)
    assert ("revoke", "user", "carol", "read", "web/app") not in proposals(days=90 + 15)


def test_grants_younger_than_the_period_are_not_proposed(world: dict) -> None:
    Grant.objects.filter(pk=world["erins"].pk).update(created_at=NOW - timedelta(days=30))
    assert ("revoke", "user", "erin", "read", "web/site") not in proposals()


def test_a_robot_unused_for_the_period_is_proposed_for_revoking_instead_of_its_grants(world: dict) -> None:
    Robot.objects.filter(pk=world["robot"].pk).update(last_used_at=NOW - timedelta(days=95))
    found = proposals()
    assert ("revoke", "robot", "robot$web+ci", "", "") in found
    assert not [p for p in found if p[2] == "robot$web+ci" and p[4]]


def test_a_lead_sees_only_what_the_team_manages(world: dict) -> None:
    assert proposals(team_ids={world["web"].pk}) == [("read", "user", "bob", "write", "web/app")]


def test_the_json_has_exactly_the_contract_fields(world: dict) -> None:
    out = io.StringIO()
    with clock(NOW):
        call_command("unused_access", "--days", "90", "--format", "json", stdout=out)
    data = json.loads(out.getvalue())
    assert data["days"] == 90
    assert len(data["proposals"]) == 4
    for proposal in data["proposals"]:
        assert set(proposal) == {"subject_type", "subject", "pattern", "role", "proposal", "last_used", "evidence"}
        assert proposal["subject_type"] in {"user", "robot", "token"}
        assert proposal["proposal"] in {"read", "revoke", "deactivate"}


@pytest.mark.parametrize("days", ["0", "91", "x", "-3"])
def test_days_outside_one_to_the_retention_are_refused(world: dict, days: str) -> None:
    with pytest.raises(CommandError, match="days must be"):
        call_command("unused_access", "--days", days, stdout=io.StringIO())


def key_of(subject: str, days: int = 90) -> str:
    return next(p.key for p in services.unused.report(days, now=NOW).proposals if p.subject == subject)


def test_applying_lowers_bobs_grant_through_the_services_with_the_evidence_recorded(world: dict, ada: User) -> None:
    with clock(NOW):
        services.unused.apply(key_of("bob"), 90, acting_user=ada, context=SYSTEM)
    assert Grant.objects.get(pk=world["bobs"].pk).role == "read"
    assert AuditRecord.objects.filter(kind=Kind.ADMIN_CHANGE, detail__action="grant.update").exists()
    applied = AuditRecord.objects.filter(kind=Kind.ADMIN_CHANGE, detail__action="unused.apply").get()
    assert applied.detail["after"]["proposal"] == "read" and "1 pull" in applied.detail["after"]["evidence"]


def test_applying_deactivates_a_person_and_revokes_a_token(world: dict, ada: User) -> None:
    with clock(NOW):
        services.unused.apply(key_of("carol"), 90, acting_user=ada, context=SYSTEM)
        services.unused.apply(key_of("bob/laptop"), 90, acting_user=ada, context=SYSTEM)
    assert not User.objects.get(username="carol").is_active
    assert PersonalAccessToken.objects.get(pk=world["token"].pk).revoked_at is not None


def test_a_lead_applies_to_the_teams_grant_but_not_to_people_and_an_auditor_to_nothing(
    world: dict, alice: User, audrey: User
) -> None:
    with clock(NOW):
        with pytest.raises(ValidationError, match="no longer stands"):  # not in alice's part of the report
            services.unused.apply(key_of("carol"), 90, acting_user=alice, context=SYSTEM)
        with pytest.raises(PermissionDenied):
            services.unused.apply(key_of("bob"), 90, acting_user=audrey, context=SYSTEM)
        services.unused.apply(key_of("bob"), 90, acting_user=alice, context=SYSTEM)
    assert Grant.objects.get(pk=world["bobs"].pk).role == "read"
    assert User.objects.get(username="carol").is_active


def test_a_right_used_since_the_page_was_shown_is_not_taken(world: dict, ada: User) -> None:
    key = key_of("erin")
    ask("erin", PASSWORD, "repository:web/site:pull", NOW - timedelta(hours=1))
    chain.seal(now=NOW + timedelta(seconds=settings.AUDIT_SEAL_LAG + 1))
    with clock(NOW), pytest.raises(ValidationError, match="no longer stands"):
        services.unused.apply(key, 90, acting_user=ada, context=SYSTEM)
    assert Grant.objects.filter(pk=world["erins"].pk).exists()


def test_a_dismissed_proposal_stays_away_for_the_period_with_its_reason(world: dict, ada: User) -> None:
    with clock(NOW):
        dismissal = services.unused.dismiss(
            key_of("erin"), 90, "  reads twice a year  ", acting_user=ada, context=SYSTEM
        )
    assert dismissal.reason == "reads twice a year" and dismissal.until == NOW + timedelta(days=90)
    report = services.unused.report(90, now=NOW)
    assert "erin" not in {p.subject for p in report.proposals} and report.dismissed == 1
    assert "erin" in {p.subject for p in services.unused.report(90, now=NOW + timedelta(days=91)).proposals}
    record = AuditRecord.objects.filter(kind=Kind.ADMIN_CHANGE, detail__action="unused.dismiss").get()
    assert record.detail["after"]["reason"] == "reads twice a year"


def test_a_dismissal_needs_a_reason(world: dict, ada: User) -> None:
    with clock(NOW), pytest.raises(ValidationError, match="Say why"):
        services.unused.dismiss(key_of("erin"), 90, "   ", acting_user=ada, context=SYSTEM)


def test_a_lead_sees_no_grant_an_admin_gave_the_teams_robot_outside_the_team(world: dict, alice: User) -> None:
    extra = services.create_grant(world["robot"], "web/app", "read", context=SYSTEM)  # managed by no team
    Grant.objects.filter(pk=extra.pk).update(created_at=MADE)
    Robot.objects.filter(pk=world["robot"].pk).update(last_used_at=NOW - timedelta(days=1))
    leads_part = services.unused.report(90, now=NOW, team_ids={world["web"].pk}).proposals
    assert extra.pk not in {p.target_id for p in leads_part if p.pattern}
    assert extra.pk in {p.target_id for p in services.unused.report(90, now=NOW).proposals if p.pattern}
