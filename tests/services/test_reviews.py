"""Access reviews: what a campaign asks whom, frozen with its last use; answers, refusals, the deadline.

The world (everything made 30 days ago): team web (alice leads it, bob is a member) holds write on
web/**; alice gave erin write on web/app (web manages it); web's robot ci writes web/api; carol reads
web/docs (no team); the global robot mirror reads pub/**; team ops (olga leads it) holds admin on
ops/**. Left out: an expired grant of carol's and web's revoked robot old. The audit history (sealed):
erin pulled and pushed web/app 10 days ago, bob pulled web/site 4 days ago, the robot pushed web/api
5 days ago, alice logged in to the registry 2 days ago and signed in on the web 3 hours ago.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from unittest import mock

import pytest
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts import services, tasks
from accounts.models import DirectoryGroup, Grant, Membership, ReviewCampaign, ReviewItem, Robot, User
from audit import chain, usage
from audit.context import AuditContext
from audit.models import AuditRecord, Kind
from tests.conftest import PASSWORD, SYSTEM, make_user

pytestmark = pytest.mark.django_db

NOW = timezone.now().replace(microsecond=0)
MADE = NOW - timedelta(days=30)


@contextmanager
def clock(at: datetime) -> Iterator[None]:
    with mock.patch.object(timezone, "now", return_value=at):
        yield


def ask(user: str, secret: str, at: datetime, *scopes: str) -> None:
    """The real token endpoint, as a registry client at ``at``."""
    raw = base64.b64encode(f"{user}:{secret}".encode()).decode()
    with clock(at):
        response = Client().get(
            "/auth/token", {"service": "registry", "scope": list(scopes)}, HTTP_AUTHORIZATION=f"Basic {raw}"
        )
    assert response.status_code == 200, response.content


def as_(user: User) -> dict:
    return {"acting_user": user, "context": AuditContext.for_user(user)}


@pytest.fixture
def world(db: None) -> dict:
    services.ensure_keys()
    services.create_registry("registry", context=SYSTEM)
    people = {
        "ada": make_user("ada", is_superuser=True, email="ada@example.org"),
        "audrey": make_user("audrey", is_auditor=True, email="audrey@example.org"),
        "alice": make_user("alice", email="alice@example.org"),
        "bob": make_user("bob", email="bob@example.org"),
        "carol": make_user("carol"),
        "erin": make_user("erin"),
        "olga": make_user("olga"),
    }
    web = services.create_team("web", context=SYSTEM)
    ops = services.create_team("ops", context=SYSTEM)
    services.set_membership(web, people["alice"], "maintainer", context=SYSTEM)
    services.set_membership(web, people["bob"], "member", context=SYSTEM)
    services.set_membership(ops, people["olga"], "maintainer", context=SYSTEM)
    services.create_grant(web, "web/**", "write", context=SYSTEM)
    services.create_grant(ops, "ops/**", "admin", context=SYSTEM)
    erins = services.lead_grant(web, people["erin"], "web/app", "write", **as_(people["alice"]))
    robot, robot_secret = services.create_robot(web, "ci", grants=[("web/api", "write")], context=SYSTEM)
    old, _ = services.create_robot(web, "old", grants=[("web/old", "read")], context=SYSTEM)
    services.revoke_robot(old, context=SYSTEM)
    carols = services.create_grant(people["carol"], "web/docs", "read", context=SYSTEM)
    services.create_grant(people["carol"], "web/gone", "read", expires_at=NOW - timedelta(days=1), context=SYSTEM)
    mirror, _ = services.create_robot(None, "mirror", grants=[("pub/**", "read")], context=SYSTEM)
    Grant.objects.update(created_at=MADE)
    ask("erin", PASSWORD, NOW - timedelta(days=10), "repository:web/app:pull,push")
    ask("bob", PASSWORD, NOW - timedelta(days=4), "repository:web/site:pull")
    ask("robot$web+ci", robot_secret, NOW - timedelta(days=5), "repository:web/api:push")
    ask("alice", PASSWORD, NOW - timedelta(days=2))
    User.objects.filter(username="alice").update(last_login=NOW - timedelta(hours=3))
    chain.seal(now=NOW + timedelta(seconds=settings.AUDIT_SEAL_LAG + 1))
    return {
        **people,
        "web": web,
        "ops": ops,
        "erins": erins,
        "carols": carols,
        "robot": Robot.objects.get(pk=robot.pk),
        "mirror": mirror,
    }


def start(**kwargs) -> ReviewCampaign:
    kwargs.setdefault("context", SYSTEM)
    return services.reviews.start_campaign(kwargs.pop("name", "Q2"), **kwargs).campaign


def items(campaign: ReviewCampaign, team: str = "") -> set[tuple[str, str, str, str]]:
    found = campaign.items.filter(team_name=team)
    return {(i.kind, i.subject, i.pattern, i.role) for i in found}


def item(campaign: ReviewCampaign, subject: str, kind: str = "grant") -> ReviewItem:
    return campaign.items.get(subject=subject, kind=kind)


def actions(action: str) -> list[AuditRecord]:
    return list(AuditRecord.objects.filter(kind=Kind.ADMIN_CHANGE, detail__action=action).order_by("id"))


# --- What a campaign asks, and whom ------------------------------------------------------------


def test_a_teams_leads_get_its_members_robots_and_the_grants_it_manages(world) -> None:
    campaign = start()
    assert items(campaign, "web") == {
        ("membership", "alice", "", "maintainer"),
        ("membership", "bob", "", "member"),
        ("robot", "robot$web+ci", "", ""),
        ("grant", "user erin", "web/app", "write"),
        ("grant", "robot robot$web+ci", "web/api", "write"),
    }
    assert items(campaign, "ops") == {("membership", "olga", "", "maintainer")}


def test_admins_get_the_teams_own_grants_what_no_team_manages_and_global_robots(world) -> None:
    campaign = start()
    assert items(campaign, "") == {
        ("grant", "team web", "web/**", "write"),
        ("grant", "team ops", "ops/**", "admin"),
        ("grant", "user carol", "web/docs", "read"),
        ("grant", "robot robot$mirror", "pub/**", "read"),
        ("robot", "robot$mirror", "", ""),
    }
    assert not campaign.items.filter(team__isnull=True).exclude(team_name="").exists()
    assert campaign.items.count() == 11  # no expired grant, no revoked robot or its grants


def test_last_use_comes_from_the_audit_history_per_kind_of_item(world) -> None:
    campaign = start()
    assert item(campaign, "user erin").last_used == NOW - timedelta(days=10)
    assert item(campaign, "robot robot$web+ci").last_used == NOW - timedelta(days=5)
    assert item(campaign, "team web").last_used == NOW - timedelta(days=4)  # bob, a member, under web/**
    assert item(campaign, "user carol").last_used is None
    assert item(campaign, "alice", "membership").last_used == NOW - timedelta(hours=3)  # web sign-in
    assert item(campaign, "bob", "membership").last_used == NOW - timedelta(days=4)
    assert item(campaign, "robot$web+ci", "robot").last_used == world["robot"].last_used_at == NOW - timedelta(days=5)
    assert item(campaign, "olga", "membership").last_used is None


def test_a_grant_on_one_registry_counts_only_uses_on_that_registry(world) -> None:
    other = services.create_registry("other", context=SYSTEM)
    pinned = services.create_grant(world["erin"], "web/ap*", "read", registry=other, context=SYSTEM)
    campaign = start()
    assert campaign.items.get(grant=pinned).last_used is None  # erin's use was on "registry", not "other"
    assert campaign.items.get(grant=pinned).registry == "other"


def test_the_items_keep_what_the_reviewer_was_shown_when_the_grant_changes(world) -> None:
    campaign = start()
    services.update_grant(world["erins"], role="read", context=SYSTEM)
    frozen = item(campaign, "user erin")
    assert (frozen.pattern, frozen.role, frozen.registry) == ("web/app", "write", "")


def test_a_start_is_a_few_queries_whatever_the_number_of_grants_and_one_record(world) -> None:
    """Beside the item INSERTs (bulk, as many rows a statement as the backend takes), the same few queries
    and one more per ``usage.UNDER_CHUNK`` holders' patterns (the usage is read under each pattern)."""

    def queries() -> tuple[int, int]:
        with CaptureQueriesContext(connection) as captured:
            start()
        inserts = [q for q in captured if q["sql"].startswith('INSERT INTO "accounts_reviewitem"')]
        return len(captured) - len(inserts), len(inserts)

    few, batches = queries()
    for n in range(300):
        user = User.objects.create(username=f"u{n}")
        Grant.objects.create(user=user, pattern=f"web/x{n}", role="read")
    assert few < 20 and queries()[0] <= few + math.ceil(300 / usage.UNDER_CHUNK)
    assert batches == 1 and queries()[1] <= math.ceil(311 / 40)
    started = actions("review.start")
    assert len(started) == 3
    assert started[0].detail["after"]["items"] == 11 and started[0].detail["after"]["for_admins"] == 5
    assert started[1].detail["after"]["grants"] == 6 + 300


def test_the_leads_with_an_address_get_a_mail_when_it_starts(world, mailoutbox) -> None:
    started = services.reviews.start_campaign("Q2", context=SYSTEM)
    assert started.mailed == 1  # olga leads ops but has no address
    (message,) = mailoutbox
    assert message.to == ["alice@example.org"]
    assert message.subject == '[registryadmin] Access review "Q2" has started'
    assert f"{settings.PUBLIC_URL}/reviews/{started.campaign.pk}/?team=web" in message.body
    assert "web: 5 items" in message.body


@pytest.mark.parametrize(("name", "days"), [("", 14), (" ", 14), ("x" * 101, 14), ("Q2", 0), ("Q2", "ten")])
def test_a_start_with_no_name_or_bad_days_is_refused_and_makes_nothing(world, name, days) -> None:
    with pytest.raises(ValidationError):
        start(name=name, days=days)
    assert not ReviewCampaign.objects.exists() and not actions("review.start")


def test_the_deadline_is_the_given_days_or_the_setting(world, settings) -> None:
    settings.ACCESS_REVIEW_DEADLINE_DAYS = 9
    assert start(now=NOW).deadline == NOW + timedelta(days=9)
    assert start(now=NOW, days=2).deadline == NOW + timedelta(days=2)


# --- Answering ------------------------------------------------------------------------------


def test_a_lead_certifies_an_item_of_the_team_with_a_record(world) -> None:
    campaign = start()
    answer = services.reviews.certify(item(campaign, "bob", "membership"), **as_(world["alice"]))
    assert answer.decision == "certified"
    done = item(campaign, "bob", "membership")
    assert (done.decision, done.decided_by, done.decided_by_name) == ("certified", world["alice"], "alice")
    assert done.decided_at is not None
    (record,) = actions("review.certify")
    assert record.actor == "alice" and record.detail["after"]["subject"] == "bob"


def test_a_lead_revokes_a_managed_grant_through_the_services(world) -> None:
    campaign = start()
    services.reviews.revoke(item(campaign, "user erin"), **as_(world["alice"]))
    assert not Grant.objects.filter(pk=world["erins"].pk).exists()
    assert item(campaign, "user erin").decision == "revoked"
    assert [r.actor for r in actions("grant.revoke")] == ["alice"]
    assert [r.actor for r in actions("review.revoke")] == ["alice"]


def test_a_lead_revokes_a_membership_and_a_robot(world) -> None:
    campaign = start()
    services.reviews.revoke(item(campaign, "bob", "membership"), **as_(world["alice"]))
    services.reviews.revoke(item(campaign, "robot$web+ci", "robot"), **as_(world["alice"]))
    assert not Membership.objects.filter(team=world["web"], user=world["bob"]).exists()
    assert Robot.objects.get(pk=world["robot"].pk).revoked_at is not None
    assert len(actions("membership.remove")) == 1
    assert AuditRecord.objects.filter(kind=Kind.CREDENTIAL, detail__action="robot.revoke", actor="alice").count() == 1


def test_an_admin_answers_any_item(world) -> None:
    campaign = start()
    services.reviews.revoke(item(campaign, "user carol"), **as_(world["ada"]))
    services.reviews.certify(item(campaign, "bob", "membership"), **as_(world["ada"]))
    assert not Grant.objects.filter(pk=world["carols"].pk).exists()


@pytest.mark.parametrize(
    ("persona", "subject", "kind"),
    [
        ("bob", "bob", "membership"),  # a member, not a lead
        ("audrey", "bob", "membership"),  # auditors change nothing
        ("olga", "bob", "membership"),  # another team's lead
        ("alice", "user carol", "grant"),  # no team manages it: admins only
        ("alice", "team web", "grant"),  # the team's own grant: admins only
        ("carol", "robot$mirror", "robot"),
    ],
)
def test_who_may_not_answer_is_refused_and_nothing_changes(world, persona, subject, kind) -> None:
    campaign = start()
    records = AuditRecord.objects.count()
    for act in (services.reviews.certify, services.reviews.revoke):
        with pytest.raises(PermissionDenied):
            act(item(campaign, subject, kind), **as_(world[persona]))
    assert item(campaign, subject, kind).decision == ""
    assert Grant.objects.count() == 8 and Membership.objects.count() == 3
    assert AuditRecord.objects.count() == records


def test_an_item_answered_once_cannot_be_answered_again(world) -> None:
    campaign = start()
    services.reviews.certify(item(campaign, "user erin"), **as_(world["alice"]))
    with pytest.raises(ValidationError, match="already answered: certified by alice"):
        services.reviews.revoke(item(campaign, "user erin"), **as_(world["ada"]))
    assert Grant.objects.filter(pk=world["erins"].pk).exists()


def test_an_item_whose_grant_went_is_marked_gone_when_answered(world) -> None:
    campaign = start()
    services.revoke_grant(world["erins"], context=SYSTEM)
    answer = services.reviews.certify(item(campaign, "user erin"), **as_(world["alice"]))
    assert answer.decision == "gone" and "revoked since the review started" in answer.message
    assert item(campaign, "user erin").decision == "gone"
    assert len(actions("review.gone")) == 1 and not actions("review.certify")


def test_an_item_whose_robot_was_revoked_is_gone_and_so_are_its_grants(world) -> None:
    campaign = start()
    services.revoke_robot(world["robot"], context=SYSTEM)
    assert services.reviews.revoke(item(campaign, "robot$web+ci", "robot"), **as_(world["alice"])).decision == "gone"
    assert services.reviews.certify(item(campaign, "robot robot$web+ci"), **as_(world["alice"])).decision == "gone"


def test_a_membership_only_a_directory_group_gives_cannot_be_revoked_here(world) -> None:
    (group,) = services.directory.set_directory_groups(
        world["web"], [("cn=web-devs,ou=groups,dc=example,dc=org", "member")], context=SYSTEM
    )
    membership = Membership.objects.create(team=world["web"], user=world["carol"], role="member")
    membership.directory_groups.add(group)
    campaign = start()
    with pytest.raises(ValidationError, match="comes only from directory groups"):
        services.reviews.revoke(item(campaign, "carol", "membership"), **as_(world["alice"]))
    assert Membership.objects.filter(pk=membership.pk).exists()
    assert item(campaign, "carol", "membership").decision == ""
    assert not actions("review.revoke") and not actions("membership.remove")
    assert DirectoryGroup.objects.count() == 1


def test_who_sees_which_items_and_what_waits_for_them(world) -> None:
    campaign = start()
    assert services.reviews.visible_items(world["audrey"], campaign).count() == 11
    assert set(services.reviews.visible_items(world["alice"], campaign).values_list("team_name", flat=True)) == {"web"}
    with pytest.raises(PermissionDenied):
        services.reviews.visible_items(world["bob"], campaign)
    waiting = {name: services.reviews.waiting_for(world[name]) for name in ("ada", "alice", "olga", "bob", "audrey")}
    assert [row["waiting"] for row in waiting["alice"]] == [5]
    assert [row["waiting"] for row in waiting["ada"]] == [5]  # the admins' own items
    assert [row["waiting"] for row in waiting["olga"]] == [1]
    assert waiting["bob"] == [] and waiting["audrey"] == []


# --- Reminders, escalation, closing -------------------------------------------------------------


def test_leads_are_reminded_once_some_days_before_the_deadline(world, mailoutbox) -> None:
    campaign = start(now=NOW, days=10)
    mailoutbox.clear()
    assert services.reviews.remind_due(now=NOW + timedelta(days=6))["reminded"] == 0
    assert services.reviews.remind_due(now=NOW + timedelta(days=7, hours=1)) == {"reminded": 1, "reminder_mails": 1}
    assert services.reviews.remind_due(now=NOW + timedelta(days=8))["reminded"] == 0
    (message,) = mailoutbox
    assert message.to == ["alice@example.org"] and "ends soon" in message.subject
    campaign.refresh_from_db()
    assert campaign.reminded_at == NOW + timedelta(days=7, hours=1)
    assert len(actions("review.remind")) == 1


def test_a_campaign_shorter_than_the_reminder_gets_no_reminder(world, mailoutbox) -> None:
    start(now=NOW, days=2)
    mailoutbox.clear()
    assert services.reviews.remind_due(now=NOW + timedelta(days=1))["reminded"] == 0
    assert mailoutbox == []


def test_at_the_deadline_what_waits_escalates_to_the_admins_who_are_mailed(world, mailoutbox) -> None:
    make_user("adam", is_superuser=True)  # no address
    make_user("dora", is_superuser=True, is_active=False, email="dora@example.org")
    campaign = start(now=NOW, days=10)
    services.reviews.certify(item(campaign, "bob", "membership"), **as_(world["alice"]))
    mailoutbox.clear()
    assert services.reviews.check(now=NOW + timedelta(days=9, hours=23))["escalated"] == 0
    later = NOW + timedelta(days=10, minutes=15)
    assert services.reviews.check(now=later)["escalated"] == 1
    assert services.reviews.check(now=later + timedelta(hours=1))["escalated"] == 0
    campaign.refresh_from_db()
    assert campaign.escalated_at == later and campaign.closed_at is None
    assert campaign.items.filter(escalated_at=later).count() == 10
    assert campaign.items.get(subject="bob", kind="membership").escalated_at is None
    reminder, message = mailoutbox  # the check an hour before the deadline reminded alice
    assert reminder.to == ["alice@example.org"] and "ends soon" in reminder.subject
    assert message.to == ["ada@example.org"] and "escalated" in message.subject
    assert "10 item(s) unanswered" in message.body and "web: 4" in message.body
    (record,) = actions("review.escalate")
    assert record.detail["after"] == {"items": 10, "teams": 3}


def test_leads_may_still_answer_escalated_items_and_the_last_answer_closes_the_campaign(world) -> None:
    campaign = start(now=NOW, days=1)
    services.reviews.escalate_overdue(now=NOW + timedelta(days=2))
    assert services.reviews.waiting_for(world["ada"])[0]["waiting"] == 11
    services.reviews.certify(item(campaign, "bob", "membership"), **as_(world["alice"]))
    for left in campaign.items.filter(decision=""):
        services.reviews.certify(left, **as_(world["ada"]))
    campaign.refresh_from_db()
    assert campaign.closed_at is not None
    (record,) = actions("review.close")
    assert record.detail["after"]["certified"] == 11 and record.detail["after"]["escalated"] == 11
    assert services.reviews.waiting_for(world["ada"]) == []


def test_a_campaign_all_answered_before_the_deadline_closes_and_never_escalates(world) -> None:
    campaign = start(now=NOW, days=1)
    for each in campaign.items.all():
        services.reviews.certify(each, **as_(world["ada"]))
    campaign.refresh_from_db()
    assert campaign.closed_at is not None
    assert services.reviews.check(now=NOW + timedelta(days=2))["escalated"] == 0


def test_the_scheduled_start_makes_one_campaign_a_day_and_records_the_job(world) -> None:
    assert tasks.start_access_review()["items"] == 11
    assert tasks.start_access_review() == {"skipped": "a scheduled review already started today"}
    assert ReviewCampaign.objects.get().scheduled
    jobs = AuditRecord.objects.filter(kind=Kind.JOB, detail__job="start_access_review")
    assert jobs.count() == 2 and jobs.first().outcome == "success"


def test_the_hourly_check_is_a_job_with_its_counts(world) -> None:
    start(now=NOW - timedelta(days=20), days=14)
    result = tasks.check_access_reviews()
    assert result["escalated"] == 1
    job = AuditRecord.objects.get(kind=Kind.JOB, detail__job="check_access_reviews")
    assert job.detail["result"]["escalated"] == 1 and job.detail["result"]["escalation_mails"] == 1


def test_manage_start_review_starts_one_with_its_name_and_days(world) -> None:
    out = io.StringIO()
    call_command("start_review", "--name", "By hand", "--days", "3", stdout=out)
    campaign = ReviewCampaign.objects.get()
    assert campaign.name == "By hand" and (campaign.deadline - campaign.started_at) == timedelta(days=3)
    assert "11 items" in out.getvalue() and campaign.started_by_name == "manage.py start_review"


@pytest.mark.parametrize(
    ("entry", "task", "crontab", "expires"),
    [
        ("start-access-review", "start_access_review", "0 6 1 1,4,7,10 *", 3600),
        ("check-access-reviews", "check_access_reviews", "15 * * * *", 3000),  # under the hour between runs
        ("expiry-reminders", "send_expiry_reminders", "0 7 * * *", 3600),
    ],
)
def test_beat_runs_the_review_and_reminder_tasks_on_their_default_schedules(entry, task, crontab, expires) -> None:
    scheduled = settings.CELERY_BEAT_SCHEDULE[entry]
    assert scheduled["task"] == f"accounts.tasks.{task}" and hasattr(tasks, task)
    assert str(scheduled["schedule"]) == f"<crontab: {crontab} (m/h/dM/MY/d)>"
    assert scheduled["options"]["expires"] == expires


def test_a_grant_changed_since_the_start_is_not_certified_under_its_old_role(world) -> None:
    campaign = start()
    services.update_grant(world["erins"], role="read", context=SYSTEM)
    answer = services.reviews.certify(item(campaign, "user erin"), **as_(world["alice"]))
    assert answer.decision == "gone" and "changed from write to read" in answer.message
    assert not actions("review.certify")
