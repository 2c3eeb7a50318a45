"""The audit log reads: changes in words, a before/after table, "who" links to the dashboard, outcome choices,
scheduled jobs hidden by default, side panels that follow the kind, and "not verified yet" as information."""

from __future__ import annotations

import ast
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts import services
from accounts.models import Membership, User
from audit.actors import actor_links
from audit.changes import ACTION_WORDS, PROBE_NOTE, describe, describe_action, diff
from audit.context import AuditContext
from audit.filters import OUTCOMES, REFUSED_OUTCOMES
from audit.models import AuditRecord, AuditRollup, AuditVerification, Kind
from audit.services import record, record_change
from tests.conftest import REPO_ROOT, SYSTEM

pytestmark = pytest.mark.django_db

ACTION_NAME = re.compile(r"^[a-z_]+(\.[a-z_]+)+$")
# The functions that take an audit action as their second positional argument.
ACTION_WRITERS = {"record_change", "_credential_record", "_record"}
SOURCE_DIRS = ("accounts", "audit", "registryadmin")


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def as_user(user: User) -> AuditContext:
    return AuditContext.for_user(user, ip="192.0.2.9", user_agent="Mozilla/5.0 " + "x" * 200)


def latest(kind: str = Kind.ADMIN_CHANGE) -> AuditRecord:
    return AuditRecord.objects.filter(kind=kind).order_by("-id").first()


# --- every action the code writes has words ---------------------------------------------------


def _actions_in(tree: ast.AST) -> set[str]:
    """String constants used as an audit action: writer calls, ``"action": ...`` dicts, ``*_ACTION`` names,
    ``action = ...`` / ``for ..., action in ...`` bindings, and ``reason=`` / ``action=`` arguments and defaults."""
    found: set[str] = set()

    def constants(node: ast.AST | None) -> set[str]:
        if node is None:
            return set()
        return {
            sub.value
            for sub in ast.walk(node)
            if isinstance(sub, ast.Constant) and isinstance(sub.value, str) and ACTION_NAME.match(sub.value)
        }

    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            if name in ACTION_WRITERS and len(node.args) > 1:
                found |= constants(node.args[1])
            found |= {value for kw in node.keywords if kw.arg in ("action", "reason") for value in constants(kw.value)}
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "action":
                    found |= constants(value)
        elif isinstance(node, ast.Assign):
            names = {getattr(target, "id", "") for target in node.targets}
            if any(name == "action" or name.endswith("_ACTION") for name in names):
                found |= constants(node.value)
        elif isinstance(node, ast.For):
            targets = {getattr(sub, "id", "") for sub in ast.walk(node.target)}
            if "action" in targets:
                found |= constants(node.iter)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            arguments = node.args.args + node.args.kwonlyargs
            defaults = [None] * (len(node.args.args) - len(node.args.defaults)) + node.args.defaults
            defaults += node.args.kw_defaults
            for argument, default in zip(arguments, defaults, strict=True):
                if argument.arg in ("action", "reason"):
                    found |= constants(default)
    return found


def actions_in_the_code() -> set[str]:
    found: set[str] = set()
    for directory in SOURCE_DIRS:
        for path in Path(REPO_ROOT, directory).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            found |= _actions_in(ast.parse(path.read_text(), filename=str(path)))
    return found


def test_the_scan_finds_the_actions_of_every_service_family() -> None:
    found = actions_in_the_code()
    expected = {
        "grant.create",
        "grant.expire",  # a default argument and a keyword
        "membership.remove",
        "team.create",
        "robot.rotate",
        "robot.expire",  # a for loop's tuple
        "token.expire",
        "signing_key.rotate",
        "signing_key.rotate_refused",  # a *_ACTION constant
        "secrets.rewrap",  # a detail dict
        "audit.export",
        "job.run",
        "backup.restore",
        "review.escalate",
    }
    assert expected <= found
    assert len(found) >= 60


def test_every_action_the_code_writes_has_words() -> None:
    missing = sorted(action for action in actions_in_the_code() if action not in ACTION_WORDS)
    assert missing == [], f"add these to audit.changes.ACTION_WORDS: {missing}"


@pytest.mark.parametrize("action", sorted(ACTION_WORDS))
def test_each_action_reads_as_a_sentence_even_with_an_empty_detail(action: str) -> None:
    sentence = describe_action(action, {"action": action, "target": "web"})
    assert sentence and action not in sentence
    assert describe_action(action, {"action": action})  # no target, no before/after: still words


def test_an_unknown_action_falls_back_to_a_generic_sentence() -> None:
    assert describe_action("widget.polish", {"target": "w1"}) == "polish widget w1"
    assert describe_action("", {}) == "a change"


# --- sentences from the records the services really write ------------------------------------------------


def test_grant_changes_read_in_words(ada: User, carol: User) -> None:
    grant = services.create_grant(carol, "web/app", "read", context=as_user(ada))
    created = latest()
    assert describe(created) == "granted read on web/app to carol"
    services.revoke_grant(grant, context=as_user(ada))
    assert describe(latest()) == "revoked read on web/app from carol"


def test_team_and_membership_changes_read_in_words(ada: User, bob: User) -> None:
    team = services.create_team("web", context=as_user(ada))
    assert describe(latest()) == "created team web"
    services.set_membership(team, bob, "member", context=as_user(ada))
    assert describe(latest()) == "added bob to web as member"
    services.set_membership(team, bob, "maintainer", context=as_user(ada))
    assert describe(latest()) == "changed bob's role in web from member to maintainer"
    services.remove_membership(Membership.objects.get(team=team, user=bob), context=as_user(ada))
    assert describe(latest()) == "removed bob from web"


def test_credential_and_key_changes_read_in_words(ada: User) -> None:
    team = services.create_team("web", context=SYSTEM)
    robot, _secret = services.create_robot(team, "ci-bot", context=as_user(ada))
    assert describe(latest(Kind.CREDENTIAL)) == "created robot robot$web+ci-bot"
    services.revoke_robot(robot, context=as_user(ada))
    assert describe(latest(Kind.CREDENTIAL)) == "revoked robot robot$web+ci-bot's secret"
    services.ensure_keys(SYSTEM)
    services.rotate_signing_key(as_user(ada))
    assert describe(latest(Kind.CREDENTIAL)).startswith("rotated the signing key")


def test_the_diff_lists_each_field_before_and_after_and_marks_the_changed_ones(ada: User, carol: User) -> None:
    services.update_user(carol, context=as_user(ada), email="carol@example.org", is_auditor=True)
    change = latest()
    assert describe(change).startswith("changed user carol: ")
    rows = {row.field: row for row in diff(change)}
    assert rows["is_auditor"].before == "no" and rows["is_auditor"].after == "yes" and rows["is_auditor"].changed
    assert rows["email"].after == "carol@example.org" and rows["email"].changed


def test_a_creation_has_only_after_values_and_its_empty_fields_are_not_marked_changed(ada: User, carol: User) -> None:
    services.create_grant(carol, "web/app", "read", context=as_user(ada))
    rows = diff(latest())
    assert rows and all(row.before == "—" for row in rows)
    assert ("role", "—", "read", True) in rows and ("user", "—", "carol", True) in rows
    assert ("team", "—", "—", False) in rows


def test_records_of_other_kinds_read_too() -> None:
    event = AuditRecord(
        kind=Kind.REGISTRY_EVENT, outcome="push", repository="web/app", detail={"tag": "1.0"}, actions=[]
    )
    assert describe(event) == "pushed web/app:1.0"
    job = AuditRecord(kind=Kind.JOB, outcome="error", detail={"job": "seal_audit", "error": "disk full"})
    assert describe(job) == "job seal_audit error: disk full"
    attempt = AuditRecord(
        kind=Kind.ACCESS,
        outcome="partial",
        actions=[{"type": "repository", "name": "web/app", "requested": ["pull", "push"], "granted": ["pull"],
                  "denied": ["push"]}],
    )  # fmt: skip
    assert describe(attempt) == "web/app: pull granted; push refused"


# --- the pages ---------------------------------------------------------------------------------------


def test_the_change_log_shows_words_not_the_kind_and_outcome_on_each_row(audrey: User, ada: User, carol: User) -> None:
    services.create_grant(carol, "web/app", "read", context=as_user(ada))
    page = signed_in(audrey).get("/audit/", {"kind": "admin_change"}).content.decode()
    assert "granted read on web/app to carol" in page


def test_the_record_page_shows_a_diff_table_and_keeps_the_raw_record(audrey: User, ada: User, carol: User) -> None:
    services.update_user(carol, context=as_user(ada), email="carol@example.org")
    page = signed_in(audrey).get(reverse("audit:record", args=[latest().pk])).content.decode()
    assert "changed user carol: email" in page
    assert '<table class="grid diff">' in page
    assert '<tr class="changed"><th scope="row">email</th><td>—</td><td>carol@example.org</td></tr>' in page
    assert '<details class="raw-record">' in page and "<summary>Raw record</summary>" in page


def test_an_access_attempt_keeps_its_requested_and_granted_table(audrey: User) -> None:
    scopes = [{"type": "repository", "name": "web/app", "requested": ["push"], "granted": [], "denied": ["push"]}]
    attempt = record(Kind.ACCESS, "denied", AuditContext(actor="carol"), repository="web/app", actions=scopes)
    page = signed_in(audrey).get(reverse("audit:record", args=[attempt.pk])).content.decode()
    assert '<th scope="col">Requested</th><th scope="col">Granted</th>' in page
    assert '<table class="grid diff">' not in page


def test_a_probe_record_says_it_is_a_harmless_mount_check(audrey: User) -> None:
    scopes = [
        {"type": "repository", "name": "web/app", "requested": ["pull", "push"], "granted": ["pull", "push"],
         "denied": []},
        {"type": "repository", "name": "lib/base", "requested": ["pull"], "granted": [], "denied": ["pull"]},
    ]  # fmt: skip
    probe = record(Kind.ACCESS, "probe", AuditContext(actor="carol"), repository="web/app", actions=scopes)
    client = signed_in(audrey)
    page = client.get(reverse("audit:record", args=[probe.pk])).content.decode()
    assert PROBE_NOTE in page
    assert "Why denied —" not in page  # not a denial; the refused pull is still explained
    assert "Why the mount check's pull was refused —" in page and "<code>lib/base</code>" in page
    listing = client.get("/audit/").content.decode()
    assert "mount check, harmless" in listing
    denied = record(Kind.ACCESS, "denied", AuditContext(actor="carol"), repository="web/app", actions=scopes[1:])
    assert PROBE_NOTE not in client.get(reverse("audit:record", args=[denied.pk])).content.decode()


# --- who links ----------------------------------------------------------------------------------------


def test_who_links_go_to_the_dashboard_pages_of_people_robots_and_token_owners(audrey: User, carol: User) -> None:
    team = services.create_team("web", context=SYSTEM)
    robot, _secret = services.create_robot(team, "ci", context=SYSTEM)
    person = record(Kind.ACCESS, "granted", AuditContext(actor="carol", actor_id=carol.pk))
    token = record(Kind.ACCESS, "granted", AuditContext(actor="carol", actor_id=carol.pk), subject_type="token")
    machine = record(Kind.ACCESS, "granted", AuditContext(actor=robot.login_name), subject_type="robot")
    event = record(Kind.REGISTRY_EVENT, "push", AuditContext(actor=robot.login_name), repository="web/app")
    gone = record(Kind.ACCESS, "denied", AuditContext(actor="zed"))
    gone_robot = record(Kind.ACCESS, "denied", AuditContext(actor="robot$web+old"), subject_type="robot")
    system = record(Kind.JOB, "success", AuditContext.system("job:seal_audit"), subject_type="system")
    records = [person, token, machine, event, gone, gone_robot, system]
    with CaptureQueriesContext(connection) as queries:
        links = actor_links(records)
    assert len(queries) == 1  # one query for every actor on the page
    carol_page, robot_page = reverse("users:detail", args=["carol"]), reverse("access:robot", args=["robot$web+ci"])
    assert links == {person.pk: carol_page, token.pk: carol_page, machine.pk: robot_page, event.pk: robot_page}
    page = signed_in(audrey).get("/audit/", {"jobs": "1"}).content.decode()
    assert f'<a href="{carol_page}">carol</a>' in page and f'<a href="{robot_page}">robot$web+ci</a>' in page
    assert '<td class="who">zed</td>' in page and "/admin/" not in page
    detail = signed_in(audrey).get(reverse("audit:record", args=[machine.pk])).content.decode()
    assert f'<a href="{robot_page}">robot$web+ci</a>' in detail


def test_auditors_may_open_the_pages_the_who_links_point_to(audrey: User, carol: User) -> None:
    team = services.create_team("web", context=SYSTEM)
    services.create_robot(team, "ci", context=SYSTEM)
    client = signed_in(audrey)
    assert client.get(reverse("users:detail", args=["carol"])).status_code == 200
    assert client.get(reverse("access:robot", args=["robot$web+ci"])).status_code == 200


@pytest.mark.parametrize("persona", ["audrey", "ada"])
def test_auditors_and_admins_see_the_readable_pages(persona: str, request: pytest.FixtureRequest) -> None:
    user = request.getfixturevalue(persona)
    change = record_change(SYSTEM, "team.create", "web", after={"name": "web"})
    client = signed_in(user)
    assert "created team web" in client.get("/audit/", {"kind": "admin_change"}).content.decode()
    assert "created team web" in client.get(reverse("audit:record", args=[change.pk])).content.decode()


def test_a_plain_user_sees_none_of_it(carol: User) -> None:
    change = record_change(SYSTEM, "team.create", "web", after={"name": "web"})
    client = signed_in(carol)
    for url in ("/audit/", "/audit/?jobs=1&outcome=probe", reverse("audit:record", args=[change.pk])):
        assert client.get(url).status_code in (302, 403)
        assert "created team web" not in client.get(url).content.decode()


# --- outcome choices ------------------------------------------------------------------------------------


def test_the_outcome_filter_is_a_choice_list_with_every_outcome(audrey: User) -> None:
    page = signed_in(audrey).get("/audit/").content.decode()
    select = page[page.index('<select id="f-outcome"') : page.index("</select>", page.index('<select id="f-outcome"'))]
    assert '<option value="">any</option>' in select
    for outcome in ("refused", "granted", "partial", "denied", "auth_failed", "limited", "probe", "push", "delete"):
        assert f'<option value="{outcome}"' in select
    assert ">probe (mount check, harmless)</option>" in select
    assert (
        '<option value="refused" selected>' in signed_in(audrey).get("/audit/", {"outcome": "refused"}).content.decode()
    )


def test_outcome_urls_keep_working_and_an_unknown_one_is_a_clear_400(audrey: User) -> None:
    for outcome in (*REFUSED_OUTCOMES, "probe"):
        record(Kind.ACCESS, outcome, AuditContext(actor=f"who-{outcome}"))
    client = signed_in(audrey)
    refused = {entry.actor for entry in client.get("/audit/", {"outcome": "refused"}).context["records"]}
    assert refused == {f"who-{outcome}" for outcome in REFUSED_OUTCOMES}
    probes = client.get("/audit/", {"outcome": "probe"}).context["records"]
    assert [entry.actor for entry in probes] == ["who-probe"]
    response = client.get("/audit/", {"outcome": "dneied"})
    assert response.status_code == 400
    assert response.context["errors"]["outcome"].startswith("'dneied' is not an outcome; use one of refused, granted")
    assert "is not an outcome" in response.content.decode()


def test_every_outcome_the_code_records_is_a_choice() -> None:
    written = {"granted", "partial", "denied", "probe", "auth_failed", "limited", "invalid"}  # the token endpoint
    written |= {"success", "failure", "error", "push", "pull", "delete"}
    assert written <= set(OUTCOMES)


# --- scheduled jobs and side panels -------------------------------------------------------------------------


def test_job_records_are_hidden_by_default_with_a_visible_toggle(audrey: User) -> None:
    job = record(Kind.JOB, "success", AuditContext.system("job:seal_audit"), subject_type="system", detail={"job": "x"})
    change = record_change(SYSTEM, "team.create", "web")
    client = signed_in(audrey)
    response = client.get("/audit/")
    shown = {entry.pk for entry in response.context["records"]}
    assert change.pk in shown and job.pk not in shown
    page = response.content.decode()
    assert 'name="jobs" value="1"' in page and "Show scheduled jobs" in page
    assert 'href="?jobs=1">Show scheduled jobs</a>' in page
    shown = {entry.pk for entry in client.get("/audit/", {"jobs": "1"}).context["records"]}
    assert {job.pk, change.pk} <= shown
    assert [entry.pk for entry in client.get("/audit/", {"kind": "job"}).context["records"]] == [job.pk]
    assert client.get("/audit/", {"jobs": "maybe"}).status_code == 400


def test_the_export_of_the_page_leaves_out_the_jobs_it_hides(audrey: User) -> None:
    record(Kind.JOB, "success", AuditContext.system("job:seal_audit"), subject_type="system")
    record_change(SYSTEM, "team.create", "web")
    client = signed_in(audrey)
    page = client.get("/audit/").content.decode()
    link = re.search(r'href="(/audit/export\.jsonl\?[^"]*)"', page).group(1).replace("&amp;", "&")
    lines = b"".join(client.get(link).streaming_content).decode().splitlines()
    assert any('"kind":"admin_change"' in line for line in lines)
    assert not any('"kind":"job"' in line for line in lines)


def rollup(kind: str, outcome: str, count: int, **fields: Any) -> None:
    hour = timezone.now().astimezone(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    values = {"registry": "registry", "repository": "", "actor": "", "ip": None, **fields}
    AuditRollup.objects.create(hour=hour, kind=kind, outcome=outcome, count=count, **values)


def test_the_side_panels_follow_the_kind_filter(audrey: User) -> None:
    rollup(Kind.ACCESS, "denied", 5, actor="mallory", repository="web/app")
    rollup(Kind.ACCESS, "auth_failed", 2, actor="eve")
    rollup(Kind.ACCESS, "probe", 9, actor="prober")  # a harmless mount check is no refusal
    rollup(Kind.SIGNIN, "failure", 7, actor="trudy", ip="192.0.2.66")
    rollup(Kind.SIGNIN, "success", 3, actor="carol")
    client = signed_in(audrey)
    default = client.get("/audit/").context["panels"]
    assert [panel.title for panel in default] == [
        "Most refused users",
        "Most pulled repositories",
        "Most active source IPs",
    ]
    assert [(entry.label, entry.count) for entry in default[0].entries] == [("mallory", 5), ("eve", 2)]
    assert default[0].entries[0].query == "user=mallory&kind=access&outcome=refused"
    signins = client.get("/audit/", {"kind": "signin"}).context["panels"]
    assert signins[0].title == "Most failed sign-ins"
    assert [(entry.label, entry.count) for entry in signins[0].entries] == [("trudy", 7)]
    assert [(entry.label, entry.count) for entry in signins[1].entries] == [("192.0.2.66", 7)]
    assert [(entry.label, entry.count) for entry in signins[2].entries] == [("carol", 3)]
    page = client.get("/audit/", {"kind": "signin"}).content.decode()
    assert "Most failed sign-ins" in page and "Most refused users" not in page


# --- "not verified yet" ----------------------------------------------------------------------------------------


def test_a_young_install_never_verified_reads_as_information(audrey: User) -> None:
    record_change(SYSTEM, "team.create", "web")
    page = signed_in(audrey).get("/audit/").content.decode()
    assert "never unverified-info" in page
    assert "Not verified yet: the first check runs within a few minutes of start." in page


def test_an_install_a_day_old_and_never_verified_is_a_warning(audrey: User) -> None:
    AuditRecord.objects.create(time=timezone.now() - timedelta(days=2), kind=Kind.ADMIN_CHANGE, outcome="success")
    page = signed_in(audrey).get("/audit/").content.decode()
    assert "never unverified-warning" in page and "Never verified" in page


def test_once_verified_the_result_is_shown_instead(audrey: User) -> None:
    AuditVerification.objects.create(outcome="intact", checked=3, finished_at=datetime.now(UTC))
    page = signed_in(audrey).get("/audit/").content.decode()
    assert "intact" in page and "Not verified yet" not in page
