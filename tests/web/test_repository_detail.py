"""The repository page: its tags from push events, pulls per day, last push and pull, the commands for its
registry, who can access it and the grants that select it; and "Forget" in place of "Delete".

web/app lives on the registry "registry" (https://registry.example.org); team web (alice leads, bob is a
member) may read web/**, carol may write web/app until next week, and ops may read ops/** (no match).
Admins and auditors see the page, as they see the list; alice (a lead), carol and anonymous do not.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts import services
from accounts.models import Registry, Repository, Team, User
from accounts.web.repository_page import GRANT_LIMIT, matching_grants
from audit import repository_activity
from audit.chain import current_key, record_mac, seal, segment_name
from audit.context import AuditContext
from audit.models import AuditRecord, Kind
from audit.services import record_values
from tests.conftest import SYSTEM, client_for, make_user

pytestmark = pytest.mark.django_db

NOW = timezone.now()


def event(
    action: str, repository: str, when: datetime, *, actor: str = "ci", registry: str = "registry", **detail: Any
):
    """A registry event record as the notification intake writes it, at ``when``."""
    values = record_values(
        Kind.REGISTRY_EVENT, action, AuditContext(actor=actor), registry=registry, repository=repository, detail=detail
    )
    values["time"] = when
    values["segment"] = segment_name(Kind.REGISTRY_EVENT, when)
    values["mac"] = record_mac(values, current_key()[1])
    return AuditRecord.objects.create(**values)


def push(tag: str, digest: str, when: datetime, **extra: Any) -> AuditRecord:
    return event("push", "web/app", when, tag=tag, digest=digest, size=extra.pop("size", 1536), **extra)


@pytest.fixture
def registry(db: None) -> Registry:
    return services.create_registry("registry", url="https://registry.example.org", context=SYSTEM)


@pytest.fixture
def world(ada: User, audrey: User, alice: User, carol: User, web: Team, registry: Registry) -> dict[str, Any]:
    app = services.create_repository("web/app", registry=registry, context=SYSTEM)
    ops = services.create_team("ops", context=SYSTEM)
    services.create_grant(web, "web/**", "read", context=SYSTEM)
    services.create_grant(carol, "web/app", "write", context=SYSTEM, expires_at=NOW + timedelta(days=7))
    services.create_grant(ops, "ops/**", "read", context=SYSTEM)
    return {"ada": ada, "audrey": audrey, "alice": alice, "carol": carol, "app": app}


def url(repository: Repository, **query: str) -> str:
    base = reverse("repositories:detail", args=[repository.pk])
    return base + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


def page(world: dict[str, Any], persona: str = "audrey", **query: str) -> str:
    response = client_for(persona, world).get(url(world["app"], **query))
    assert response.status_code == 200, response.content.decode()[:500]
    return response.content.decode().replace("&#x27;", "'")


# --- who may see it ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("persona", "status"), [("anonymous", 302), ("carol", 403), ("alice", 403), ("audrey", 200), ("ada", 200)]
)
def test_the_page_is_for_those_who_see_the_list(world, persona: str, status: int) -> None:
    response = client_for(persona, world).get(url(world["app"]))
    assert response.status_code == status
    if persona == "anonymous":
        assert response["Location"].startswith(reverse("accounts:login"))
    if status == 403:
        assert "web/app" not in response.content.decode()


def test_an_unknown_repository_is_not_found(world) -> None:
    assert client_for("ada", world).get(reverse("repositories:detail", args=[999999])).status_code == 404


def test_it_rejects_the_wrong_method(world) -> None:
    assert client_for("ada", world).post(url(world["app"])).status_code == 405


def test_the_list_links_each_name_to_its_page(world) -> None:
    body = client_for("audrey", world).get(reverse("repositories:list")).content.decode()
    assert f'href="{url(world["app"])}"' in body


def test_only_admins_get_the_forget_button(world) -> None:
    forget = reverse("repositories:delete", args=[world["app"].pk])
    assert forget in page(world, "ada") and "<summary>Forget</summary>" in page(world, "ada")
    assert forget not in page(world, "audrey") and "<summary>Forget</summary>" not in page(world, "audrey")


# --- what it shows -------------------------------------------------------------------------


def test_tags_are_newest_first_each_once_with_digest_size_pusher_and_time(world) -> None:
    push("1.0", "sha256:aaa", NOW - timedelta(days=3), actor="bob", size=2048)
    push("1.1", "sha256:bbb", NOW - timedelta(days=2), actor="robot$web+ci", size=1536)
    push("1.0", "sha256:ccc", NOW - timedelta(days=1), actor="alice", size=3 * 1024 * 1024)
    event("push", "web/other", NOW, tag="9.9", digest="sha256:zzz")  # another repository
    event("push", "web/app", NOW, registry="mirror", tag="7.7", digest="sha256:mmm")  # another registry
    shown = repository_activity.manifests("web/app", "registry")
    assert [(m.tag, m.digest, m.size, m.pusher) for m in shown] == [
        ("1.0", "sha256:ccc", 3 * 1024 * 1024, "alice"),
        ("1.1", "sha256:bbb", 1536, "robot$web+ci"),
    ]
    body = page(world)
    assert body.index("sha256:ccc") < body.index("sha256:bbb")
    assert "sha256:aaa" not in body and "sha256:zzz" not in body and "sha256:mmm" not in body
    assert "3.0\xa0MB" in body and "1.5\xa0KB" in body and "robot$web+ci" in body


def test_a_delete_by_digest_or_by_tag_marks_what_it_removed(world) -> None:
    push("old", "sha256:111", NOW - timedelta(hours=5))
    push("gone", "sha256:222", NOW - timedelta(hours=4))
    push("kept", "sha256:333", NOW - timedelta(hours=3))
    event("delete", "web/app", NOW - timedelta(hours=2), digest="sha256:222", tag="")
    event("delete", "web/app", NOW - timedelta(hours=2), digest="", tag="old")
    push("old", "sha256:444", NOW - timedelta(hours=1))  # pushed again after the delete: alive
    shown = {m.tag: (m.digest, m.deleted) for m in repository_activity.manifests("web/app", "registry")}
    assert shown == {"old": ("sha256:444", False), "kept": ("sha256:333", False), "gone": ("sha256:222", True)}
    assert page(world).count('badge bad">deleted') == 1


def test_only_the_newest_events_are_read(world) -> None:
    limit = repository_activity.RECENT_EVENTS
    for n in range(limit + 5):
        push(f"t{n}", f"sha256:{n:03d}", NOW - timedelta(minutes=100 - n))
    shown = repository_activity.manifests("web/app", "registry")
    assert len(shown) == limit and shown[0].tag == f"t{limit + 4}" and shown[-1].tag == "t5"


def test_pulls_are_counted_per_day_over_thirty_days(world) -> None:
    today = NOW.astimezone(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    if today > NOW:
        today -= timedelta(days=1)
    for n in range(3):
        event("pull", "web/app", today - timedelta(minutes=n))
    event("pull", "web/app", today - timedelta(days=2))
    event("pull", "web/app", today - timedelta(days=45))  # outside the window
    event("pull", "web/app", today, registry="mirror")  # another registry
    event("push", "web/app", today, tag="x", digest="sha256:x")  # not a pull
    assert repository_activity.pulls_per_day("web/app", "registry", NOW).total == 0  # counted once sealed
    seal(now=NOW + timedelta(minutes=5))  # the sealer keeps the hourly rollups the page counts from
    chart = repository_activity.pulls_per_day("web/app", "registry", NOW)
    counts = {day.day: day.count for day in chart.days}
    assert len(chart.days) == 30 and chart.days[-1].day == NOW.astimezone(UTC).date()
    assert counts[today.date()] == 3 and counts[(today - timedelta(days=2)).date()] == 1 and chart.total == 4
    body = page(world)
    assert "4 in all" in body and f"{today:%Y-%m-%d}: 3 pulls" in body


def test_last_push_and_last_pull_name_who_and_when(world) -> None:
    push("1.0", "sha256:aaa", NOW - timedelta(days=2), actor="bob")
    pulled = event("pull", "web/app", NOW - timedelta(hours=1), actor="carol")
    event("pull", "web/app", NOW, actor="eve", registry="mirror")
    body = page(world)
    facts = body[body.index("Last push") : body.index("Pull it")]
    assert "by bob" in facts and "by carol" in facts and "eve" not in facts
    assert reverse("audit:record", args=[pulled.pk]) in facts


def test_nothing_recorded_yet_says_so(world) -> None:
    body = page(world)
    assert "none recorded" in body and "No push seen yet" in body and "No pull recorded" in body


def test_the_commands_use_the_registry_host_and_the_newest_live_tag(world) -> None:
    push("1.0", "sha256:aaa", NOW - timedelta(days=2))
    push("2.0", "sha256:bbb", NOW - timedelta(days=1))
    event("delete", "web/app", NOW - timedelta(hours=1), digest="sha256:bbb", tag="")
    body = page(world)
    assert "<code>docker pull registry.example.org/web/app:1.0</code>" in body
    assert "<code>skopeo copy docker://registry.example.org/web/app:1.0 oci-archive:app.tar</code>" in body
    assert "<code>skopeo delete docker://registry.example.org/web/app:1.0</code>" in body
    assert "<pre" in body  # copy.js adds a button to every pre


def test_a_plain_http_registry_gets_the_tls_flag_and_no_url_a_placeholder(world, registry: Registry) -> None:
    Registry.objects.filter(pk=registry.pk).update(url="http://10.0.0.5:5000")
    body = page(world)
    assert "skopeo copy --src-tls-verify=false docker://10.0.0.5:5000/web/app:latest" in body
    Registry.objects.filter(pk=registry.pk).update(url="")
    body = page(world)
    assert "docker pull REGISTRY_HOST/web/app:latest" in body and "has no URL yet" in body


def access_url(repository: Repository, **query: str) -> str:
    return url(repository, **query).replace("/?", "/access?") if query else url(repository) + "access"


WHO = f"{reverse('access:who')}?repository=web%2Fapp&amp;registry=registry"


def test_the_page_links_who_can_access_and_loads_the_engines_answer_after(world) -> None:
    body = page(world)
    who = body[body.index('id="who"') : body.index('id="grants-title"')]
    assert f'hx-get="{access_url(world["app"])}"' in who and 'hx-trigger="load"' in who
    assert f'href="{WHO}"' in who and "through team web" not in who


@pytest.mark.parametrize(
    ("persona", "status"), [("anonymous", 302), ("carol", 403), ("alice", 403), ("audrey", 200), ("ada", 200)]
)
def test_the_answer_is_for_those_who_see_the_page(world, persona: str, status: int) -> None:
    response = client_for(persona, world).get(access_url(world["app"]), headers={"HX-Request": "true"})
    assert response.status_code == status
    if status != 200:
        assert "alice" not in response.content.decode() or persona == "alice"


def test_without_htmx_the_answer_is_the_who_can_access_page(world) -> None:
    response = client_for("audrey", world).get(access_url(world["app"]))
    assert response.status_code == 302 and response["Location"] == WHO.replace("&amp;", "&")


def test_who_can_access_is_the_engines_answer(world) -> None:
    response = client_for("audrey", world).get(access_url(world["app"]), headers={"HX-Request": "true"})
    who = response.content.decode()
    assert who.lstrip().startswith('<section class="card" id="who"') and "<html" not in who
    # alice and bob read through team web, carol writes by her own grant, ada is an administrator.
    assert "4 may pull, 2 may push, 1 may delete" in who
    for name in ("alice", "bob", "carol", "ada"):
        assert f">{name}</a>" in who
    assert "through team web" in who and f'href="{WHO}"' in who


def test_the_grants_that_select_it_are_listed_with_role_and_expiry(world) -> None:
    body = page(world)
    grants = body[body.index('id="grants-title"') : body.index('id="forget-title"')]
    assert "<code>web/**</code>" in grants
    assert "<code>web/**</code>" in grants and "<code>web/app</code>" in grants and "ops/**" not in grants
    assert f"{NOW + timedelta(days=7):%Y-%m-%d}" in grants and "never" in grants
    assert f"{reverse('grants:list')}?pattern=web/app&amp;subject=carol" in grants


def test_a_grant_for_another_registry_does_not_select_it(world) -> None:
    other = services.create_registry("mirror", context=SYSTEM)
    services.create_grant(make_user("dan"), "web/app", "admin", registry=other, context=SYSTEM)
    grants, more = matching_grants(world["app"], world["app"].registry)
    assert {g.pattern for g in grants} == {"web/**", "web/app"} and not more
    assert all(g.user is None or g.user.username != "dan" for g in grants) and ">dan<" not in page(world)


def test_a_repository_for_every_registry_shows_one_registry_at_a_time(world, registry: Registry) -> None:
    services.create_registry("mirror", url="https://mirror.example.org", context=SYSTEM)
    anywhere = services.create_repository("ops/db", context=SYSTEM)
    event("pull", "ops/db", NOW, registry="mirror")
    client = client_for("audrey", world)
    first = client.get(url(anywhere)).content.decode()
    assert 'aria-current="page">mirror' in first and "mirror.example.org/ops/db:latest" in first
    chosen = client.get(url(anywhere, registry="registry")).content.decode()
    assert "registry.example.org/ops/db:latest" in chosen and "0 in all" in chosen
    assert f'hx-get="{access_url(anywhere, registry="registry")}"' in chosen
    bad = client.get(url(anywhere, registry="nowhere"))
    assert bad.status_code == 400 and "There is no registry called 'nowhere'" in bad.content.decode().replace(
        "&#x27;", "'"
    )
    assert client.get(access_url(anywhere, registry="nowhere"), headers={"HX-Request": "true"}).status_code == 400


def test_the_page_needs_the_same_queries_for_few_or_many_rows(world) -> None:
    client = client_for("ada", world)
    headers = {"HX-Request": "true"}
    with CaptureQueriesContext(connection) as few:
        assert client.get(url(world["app"])).status_code == 200
    with CaptureQueriesContext(connection) as answer_few:
        assert client.get(access_url(world["app"]), headers=headers).status_code == 200
    team = services.create_team("many", context=SYSTEM)
    for n in range(30):
        person = make_user(f"user{n}")
        services.set_membership(team, person, "member", context=SYSTEM)
        services.create_grant(person, "web/app", "read", context=SYSTEM)
    services.create_grant(team, "web/*", "write", context=SYSTEM)
    for n in range(40):
        push(f"v{n}", f"sha256:{n:03d}", NOW - timedelta(hours=n))
        event("pull", "web/app", NOW - timedelta(days=n % 30))
    with CaptureQueriesContext(connection) as many:
        response = client.get(url(world["app"]))
    shown = (len(response.context["manifests"]), len(response.context["grants"]), response.context["more_grants"])
    assert shown == (repository_activity.RECENT_EVENTS, GRANT_LIMIT, True)
    assert len(many) == len(few), [q["sql"][:120] for q in many.captured_queries]
    with CaptureQueriesContext(connection) as answer_many:
        assert "34 may pull, 32 may push" in client.get(access_url(world["app"]), headers=headers).content.decode()
    assert len(answer_many) == len(answer_few)


# --- forgetting -----------------------------------------------------------------------------


def test_the_page_explains_forget_and_the_registry_side_delete(world) -> None:
    body = page(world, "ada")
    assert "removes only registryadmin's row" in body and "Grants are given on patterns and stay" in body
    assert "storage: delete: enabled: true" in body and "the delete right" in body
    assert 'class="confirm"' in body and "Yes, forget" in body


def test_forgetting_from_the_page_goes_back_to_the_list(world) -> None:
    forget = reverse("repositories:delete", args=[world["app"].pk])
    response = client_for("ada", world).post(forget, {"next": reverse("repositories:list")}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("repositories:list")
    assert "Forgot registry/web/app: only registryadmin's row is gone." in response.content.decode().replace(
        "&#x27;", "'"
    )
    assert not Repository.objects.filter(name="web/app").exists()
    assert client_for("ada", world).get(url(world["app"])).status_code == 404


def test_a_forgotten_repository_comes_back_private_at_its_next_push(world, registry: Registry) -> None:
    services.set_repository_public(world["app"], True, context=SYSTEM)
    services.delete_repository(world["app"], context=SYSTEM)
    services.ensure_repository("web/app", registry, context=SYSTEM)
    again = Repository.objects.get(name="web/app")
    assert again.registry == registry and not again.public


def test_before_any_registry_exists_the_commands_hold_a_placeholder(ada: User, audrey: User) -> None:
    anywhere = services.create_repository("web/app", context=SYSTEM)
    response = client_for("audrey", {"audrey": audrey}).get(url(anywhere))
    body = response.content.decode()
    assert response.status_code == 200
    assert "docker pull REGISTRY_HOST/web/app:latest" in body and "No registry is set up yet" in body
