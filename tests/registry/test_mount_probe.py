"""Cross-repository mount checks: a push granted whose only refusal is a pull on another repository.

Before uploading a blob, docker, skopeo and containerd ask for ``pull`` on a repository they
believe already holds it, to mount it from there. carol may write web/app and web/tools and
nothing under base/; bob may only read web/app; erin holds nothing. A refused mount check is
recorded as ``probe``: the token is the same as before, the push is a use of the grant, and
nothing that lists or counts denials (home page, ``outcome=refused``, charts, alerts) shows it.
"""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

import jwt
import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts import services
from accounts.models import Registry, User
from accounts.registry.tokens import outcome_of
from accounts.services import ensure_keys
from audit import chain
from audit.alerts import failed_login_bursts
from audit.charts import top_lists, window_for
from audit.filters import AuditFilter
from audit.models import AccessUse, AuditRecord, Kind
from registryadmin.metrics import PROCESS
from tests.api.conftest import token_client
from tests.conftest import PASSWORD, SYSTEM, make_user

pytestmark = pytest.mark.django_db

TARGET = "repository:web/app:pull,push"
SOURCE = "repository:base/img:pull"


@pytest.fixture
def registry(db: None) -> Registry:
    registry = services.create_registry("registry", context=SYSTEM)
    ensure_keys()
    return registry


@pytest.fixture
def grants(registry: Registry, carol: User, bob: User) -> None:
    services.create_grant(carol, "web/app", "write", context=SYSTEM)
    services.create_grant(carol, "web/tools", "write", context=SYSTEM)
    services.create_grant(bob, "web/app", "read", context=SYSTEM)
    make_user("erin")


def ask(user: str, *scopes: str) -> Any:
    raw = base64.b64encode(f"{user}:{PASSWORD}".encode()).decode()
    query = {"service": "registry", "scope": list(scopes)}
    response = Client().get("/auth/token", query, HTTP_AUTHORIZATION=f"Basic {raw}", HTTP_USER_AGENT="skopeo/1.9.3")
    assert response.status_code == 200
    return response


def token_access(response: Any) -> dict[str, list[str]]:
    claims = jwt.decode(response.json()["token"], options={"verify_signature": False})
    return {entry["name"]: entry["actions"] for entry in claims["access"]}


def last_access() -> AuditRecord:
    return AuditRecord.objects.filter(kind=Kind.ACCESS).latest("id")


def entry(name: str, requested: list[str], granted: list[str], kind: str = "repository") -> dict[str, Any]:
    denied = [action for action in requested if action not in granted]
    return {"type": kind, "name": name, "requested": requested, "granted": granted, "denied": denied}


def probe_count() -> float:
    labels = {"outcome": "probe", "subject_type": "user"}
    return PROCESS.get_sample_value("registryadmin_token_requests_total", labels) or 0.0


# --- The outcome ----------------------------------------------------------------------------


def test_a_granted_push_with_a_refused_pull_on_another_repository_is_a_probe(grants: None) -> None:
    before = probe_count()
    response = ask("carol", TARGET, SOURCE)
    assert token_access(response) == {"web/app": ["pull", "push"], "base/img": []}  # the token is unchanged
    record = last_access()
    assert (record.outcome, record.actor, record.repository) == ("probe", "carol", "web/app")
    assert record.actions == [
        entry("web/app", ["pull", "push"], ["pull", "push"]),
        entry("base/img", ["pull"], []),
    ]
    assert probe_count() == before + 1


def test_a_probe_names_the_repository_pushed_to_whichever_scope_comes_first(grants: None) -> None:
    ask("carol", SOURCE, TARGET)  # containerd's order
    record = last_access()
    assert (record.outcome, record.repository) == ("probe", "web/app")
    assert [scope["name"] for scope in record.actions] == ["base/img", "web/app"]  # as asked
    ask("bob", SOURCE, TARGET)
    assert (last_access().outcome, last_access().repository) == ("partial", "base/img")  # as before: the first


def test_two_granted_pushes_and_one_refused_mount_source_are_a_probe(grants: None) -> None:
    ask("carol", TARGET, "repository:web/tools:pull,push", SOURCE)
    assert last_access().outcome == "probe"


def test_a_refused_push_with_a_refused_mount_source_stays_a_refusal(grants: None) -> None:
    ask("bob", TARGET, SOURCE)
    assert last_access().outcome == "partial"  # pull on web/app granted, push refused
    ask("erin", TARGET, SOURCE)
    assert last_access().outcome == "denied"


def test_a_refused_pull_alone_is_denied(grants: None) -> None:
    ask("carol", SOURCE)
    assert last_access().outcome == "denied"


def test_a_refused_catalog_beside_a_granted_push_is_partial(grants: None) -> None:
    ask("carol", TARGET, "registry:catalog:*")
    assert last_access().outcome == "partial"


def test_a_refused_push_or_delete_on_another_repository_is_partial(grants: None) -> None:
    ask("carol", TARGET, "repository:base/img:pull,push")
    assert last_access().outcome == "partial"
    ask("carol", TARGET, "repository:web/app:delete")
    assert last_access().outcome == "partial"


def test_a_mount_source_carol_may_pull_is_simply_granted(grants: None) -> None:
    ask("carol", "repository:web/tools:pull,push", "repository:web/app:pull")
    assert last_access().outcome == "granted"


@pytest.mark.parametrize(
    ("access", "outcome"),
    [
        ([entry("web/app", ["pull", "push"], ["pull", "push"]), entry("base/img", ["pull"], [])], "probe"),
        # A push never implies a pull: a pull refused on the pushed repository itself is a refusal.
        ([entry("web/app", ["push"], ["push"]), entry("web/app", ["pull"], [])], "partial"),
        ([entry("web/app", ["pull", "push"], ["push"]), entry("base/img", ["pull"], [])], "partial"),
        ([entry("web/app", ["pull", "push"], ["pull"]), entry("base/img", ["pull"], [])], "partial"),
        ([entry("web/app", ["pull", "push"], []), entry("base/img", ["pull"], [])], "denied"),
        # "*" (skopeo delete) not wholly held is refused on the pushed repository itself.
        ([entry("web/app", ["*"], ["pull", "push"]), entry("base/img", ["pull"], [])], "partial"),
        ([entry("web/app", ["push"], ["push"]), entry("catalog", ["*"], [], kind="registry")], "partial"),
        ([entry("web/app", ["pull", "push"], ["pull", "push"])], "granted"),
        ([], "granted"),
    ],
)
def test_the_outcome_of_requested_and_granted_entries(access: list[dict[str, Any]], outcome: str) -> None:
    assert outcome_of(access) == outcome


# --- Nothing counts it as a denial; everything counts the issued token ---------------------------


def test_the_home_page_lists_no_probe_among_recent_denials(grants: None, ada: User) -> None:
    ask("carol", TARGET, SOURCE)
    client = Client()
    client.force_login(ada)
    response = client.get("/")
    assert response.status_code == 200
    assert response.context["denials"] == []
    ask("bob", TARGET, SOURCE)  # a real refusal is listed
    assert [r.actor for r in client.get("/").context["denials"]] == ["bob"]


def test_the_refusal_filter_leaves_probes_out_and_the_outcome_filter_finds_them(grants: None, ada: User) -> None:
    ask("carol", TARGET, SOURCE)
    ask("bob", TARGET, SOURCE)
    client = Client()
    client.force_login(ada)
    refused = client.get("/audit/", {"kind": "access", "outcome": "refused"})
    assert [r.actor for r in refused.context["records"]] == ["bob"]
    probes = client.get("/audit/", {"kind": "access", "outcome": "probe"})
    assert [(r.actor, r.outcome) for r in probes.context["records"]] == [("carol", "probe")]


def test_the_usage_rollups_count_the_granted_push(grants: None) -> None:
    ask("carol", TARGET, SOURCE)
    chain.seal(now=timezone.now() + timedelta(seconds=settings.AUDIT_SEAL_LAG + 1))
    uses = set(AccessUse.objects.filter(actor="carol").values_list("repository", "action"))
    assert uses == {("web/app", "pull"), ("web/app", "push"), ("", "login")}


def test_the_chart_stacks_probes_apart_from_denials_and_no_one_is_a_most_denied_user(grants: None) -> None:
    ask("carol", TARGET, SOURCE)
    ask("bob", TARGET, SOURCE)
    now = timezone.now()
    chain.seal(now=now + timedelta(seconds=settings.AUDIT_SEAL_LAG + 1))
    client = Client()
    client.force_login(make_user("audrey", is_auditor=True))
    chart = client.get("/audit/").context["chart"]
    totals = {outcome: (total, css) for outcome, total, css in chart.totals}
    assert totals == {"probe": (1, "outcome-probe"), "partial": (1, "outcome-partial")}
    assert chart.outcomes.index("probe") < chart.outcomes.index("partial")  # good first
    window = window_for(AuditFilter(), now + timedelta(hours=1))
    assert [top.label for top in top_lists(window).denied_users] == ["bob"]


def test_no_alert_fires_however_many_probes(grants: None) -> None:
    for _ in range(8):
        ask("carol", TARGET, SOURCE)
    assert AuditRecord.objects.filter(kind=Kind.ACCESS, outcome="probe").count() == 8
    assert failed_login_bursts() == []


def test_the_api_explains_the_refused_mount_source_of_a_probe(grants: None, ada: User) -> None:
    ask("carol", TARGET, SOURCE)
    body = token_client(ada).get(reverse("api:audit-record", args=[last_access().pk])).json()
    assert body["outcome"] == "probe"
    scopes = body["why_refused"]["scopes"]
    assert [(s["name"], s["denied"], s["allowed_now"]) for s in scopes] == [("base/img", ["pull"], [])]
