"""The repositories pages: admins and auditors list them; only admins add, flip the public flag and forget one.

web/app is public for every registry, web/site lives on the registry "registry", ops/db is private.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts import services
from accounts.models import Registry, Repository, User
from audit.models import AuditRecord, Kind
from tests.conftest import SYSTEM, client_for

pytestmark = pytest.mark.django_db

LIST = reverse("repositories:list")
NEW = reverse("repositories:new")
HTMX = {"HX-Request": "true"}


@pytest.fixture
def registry(db: None) -> Registry:
    return services.create_registry("registry", context=SYSTEM)


@pytest.fixture
def world(ada: User, audrey: User, carol: User, registry: Registry) -> dict[str, object]:
    app = services.create_repository("web/app", public=True, context=SYSTEM)
    site = services.create_repository("web/site", registry=registry, context=SYSTEM)
    db = services.create_repository("ops/db", context=SYSTEM)
    return {"ada": ada, "audrey": audrey, "carol": carol, "app": app, "site": site, "db": db}


def public_url(repository: object) -> str:
    return reverse("repositories:public", args=[repository.pk])  # type: ignore[attr-defined]


def delete_url(repository: object) -> str:
    return reverse("repositories:delete", args=[repository.pk])  # type: ignore[attr-defined]


def names_in(body: str) -> set[str]:
    return {name for name in ("web/app", "web/site", "ops/db") if f"<code>{name}</code>" in body}


def last_change(action: str) -> AuditRecord:
    return AuditRecord.objects.filter(kind=Kind.ADMIN_CHANGE, detail__action=action).latest("id")


# --- who may do what ---------------------------------------------------------------------

UrlFor = Callable[[dict[str, object]], str]
POSTS: dict[str, tuple[UrlFor, dict[str, str]]] = {
    "new": (lambda w: NEW, {"name": "web/new"}),
    "public": (lambda w: public_url(w["db"]), {"public": "1"}),
    "delete": (lambda w: delete_url(w["db"]), {}),
}


@pytest.mark.parametrize(("persona", "status"), [("anonymous", 302), ("carol", 403), ("audrey", 200), ("ada", 200)])
def test_the_list_is_for_admins_and_auditors(world, persona: str, status: int) -> None:
    response = client_for(persona, world).get(LIST)
    assert response.status_code == status
    if persona == "anonymous":
        assert response["Location"].startswith(reverse("accounts:login"))


@pytest.mark.parametrize(("persona", "status"), [("anonymous", 302), ("carol", 403), ("audrey", 403), ("ada", 200)])
def test_the_new_repository_form_is_for_admins(world, persona: str, status: int) -> None:
    assert client_for(persona, world).get(NEW).status_code == status


@pytest.mark.parametrize("action", sorted(POSTS))
@pytest.mark.parametrize(("persona", "status"), [("anonymous", 302), ("carol", 403), ("audrey", 403), ("ada", 302)])
def test_only_admins_change_repositories(world, action: str, persona: str, status: int) -> None:
    url_for, data = POSTS[action]
    response = client_for(persona, world).post(url_for(world), data)
    assert response.status_code == status
    if persona == "anonymous":
        assert response["Location"].startswith(reverse("accounts:login"))


def test_a_refused_change_changes_nothing(world) -> None:
    for persona in ("carol", "audrey"):
        client = client_for(persona, world)
        for url_for, data in POSTS.values():
            client.post(url_for(world), data)
    assert set(Repository.objects.values_list("name", "public")) == {
        ("web/app", True),
        ("web/site", False),
        ("ops/db", False),
    }


@pytest.mark.parametrize("url_for", [lambda w: LIST, lambda w: NEW])
def test_a_refused_page_shows_no_repository(world, url_for: UrlFor) -> None:
    response = client_for("carol", world).get(url_for(world))
    assert response.status_code == 403
    assert not names_in(response.content.decode()) and "web/" not in response.content.decode()


@pytest.mark.parametrize(
    ("url_for", "method"),
    [
        (lambda w: LIST, "post"),
        (lambda w: NEW, "put"),
        (lambda w: public_url(w["db"]), "get"),
        (lambda w: delete_url(w["db"]), "get"),
    ],
)
def test_it_rejects_the_wrong_method(world, url_for: UrlFor, method: str) -> None:
    assert getattr(client_for("ada", world), method)(url_for(world)).status_code == 405


def test_auditors_get_no_buttons_and_admins_do(world) -> None:
    auditor = client_for("audrey", world).get(LIST).content.decode()
    assert NEW not in auditor and public_url(world["db"]) not in auditor and delete_url(world["db"]) not in auditor
    admin = client_for("ada", world).get(LIST).content.decode()
    assert NEW in admin and public_url(world["db"]) in admin and delete_url(world["db"]) in admin


def test_the_changes_need_a_csrf_token(world) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(world["ada"])  # type: ignore[arg-type]
    assert client.post(public_url(world["db"]), {"public": "1"}).status_code == 403
    assert not Repository.objects.get(name="ops/db").public


# --- the list ---------------------------------------------------------------------------


def test_the_list_shows_each_repository_with_a_link_to_its_page(world) -> None:
    body = client_for("audrey", world).get(LIST).content.decode()
    assert names_in(body) == {"web/app", "web/site", "ops/db"}
    for name in ("app", "site", "db"):
        assert f'href="{reverse("repositories:detail", args=[world[name].pk])}"' in body  # type: ignore[attr-defined]
    assert "every registry" in body and "public" in body


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"q": "web"}, {"web/app", "web/site", "web/tools", "web/tools/cli"}),
        ({"q": "SITE"}, {"web/site"}),
        ({"q": "ools/c"}, {"web/tools/cli"}),
        ({"q": "web/*"}, {"web/app", "web/site", "web/tools"}),
        ({"q": "web/**"}, {"web/app", "web/site", "web/tools", "web/tools/cli"}),
        ({"q": "*/db"}, {"ops/db"}),
        ({"q": "w*"}, set()),
        ({"registry": "registry"}, {"web/site"}),
        ({"registry": "*"}, {"web/app", "ops/db", "web/tools", "web/tools/cli"}),
        ({"public": "yes"}, {"web/app"}),
        ({"public": "no", "q": "web"}, {"web/site", "web/tools", "web/tools/cli"}),
    ],
)
def test_each_filter_narrows_the_list(world, query: dict[str, str], expected: set[str]) -> None:
    services.create_repository("web/tools", context=SYSTEM)
    services.create_repository("web/tools/cli", context=SYSTEM)
    response = client_for("ada", world).get(LIST, query)
    assert response.status_code == 200
    shown = {r.name for r in response.context["page"].object_list}
    assert shown == expected


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"q": "web/**x"}, "is not a valid pattern"),
        ({"q": "x" * 256}, "at most 255 characters"),
        ({"q": "web\x00"}, "Null characters are not allowed"),
        ({"registry": "nowhere"}, "Select a valid choice"),
        ({"public": "maybe"}, "Select a valid choice"),
    ],
)
def test_a_bad_filter_is_a_400_with_the_reason_on_the_page(world, query: dict[str, str], message: str) -> None:
    response = client_for("ada", world).get(LIST, query)
    assert response.status_code == 400
    assert message in response.content.decode().replace("&#x27;", "'")
    assert not response.context["page"].object_list


def test_htmx_live_search_gets_only_the_results(world) -> None:
    response = client_for("ada", world).get(LIST, {"q": "ops"}, headers=HTMX)
    body = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in body and "<table" in body and names_in(body) == {"ops/db"}
    bad = client_for("ada", world).get(LIST, {"q": "web/**x"}, headers=HTMX)
    assert bad.status_code == 200 and "is not a valid pattern" in bad.content.decode()


def test_the_list_pages_and_survives_a_bad_page_number(world) -> None:
    for n in range(60):
        services.create_repository(f"many/r{n:02}", context=SYSTEM)
    client = client_for("ada", world)
    second = client.get(LIST, {"q": "many/", "page": "2"})
    assert [r.name for r in second.context["page"].object_list] == [f"many/r{n:02}" for n in range(50, 60)]
    assert "?q=many%2F&amp;page=1" in second.content.decode()
    assert client.get(LIST, {"page": "nope"}).status_code == 200
    assert client.get(LIST, {"page": "99999999999999999999"}).status_code == 200


def test_the_list_needs_the_same_queries_for_5_or_60_repositories(world, registry: Registry) -> None:
    client = client_for("ada", world)
    for n in range(2):
        services.create_repository(f"few/r{n}", registry=registry, context=SYSTEM)
    with CaptureQueriesContext(connection) as few:
        assert client.get(LIST).status_code == 200
    for n in range(55):
        services.create_repository(f"more/r{n}", registry=registry if n % 2 else None, context=SYSTEM)
    with CaptureQueriesContext(connection) as many:
        response = client.get(LIST)
    assert len(response.context["page"].object_list) == 50
    assert len(many) == len(few)


# --- adding one ---------------------------------------------------------------------------


def test_an_admin_adds_a_public_repository_for_one_registry(world) -> None:
    data = {"name": "web/new", "registry": "registry", "public": "on"}
    response = client_for("ada", world).post(NEW, data, follow=True)
    repository = Repository.objects.get(name="web/new")
    assert (repository.registry.service, repository.public) == ("registry", True)  # type: ignore[union-attr]
    assert "Added repository registry/web/new (public)." in response.content.decode()
    record = last_change("repository.create")
    assert (record.actor, record.repository, record.detail["after"]) == (
        "ada",
        "web/new",
        {"public": True, "registry": "registry"},
    )


def test_a_repository_without_a_registry_is_for_every_registry(world) -> None:
    client_for("ada", world).post(NEW, {"name": "web/any"})
    repository = Repository.objects.get(name="web/any")
    assert repository.registry is None and not repository.public


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "Web/App"}, "path components must be lowercase"),
        ({"name": "web//app"}, "it has an empty path component"),
        ({"name": "web/-app"}, "must start and end with a lowercase letter or digit"),
        ({"name": ""}, "This field is required."),
        ({"name": "a" * 256}, "at most 255 characters"),
        ({"name": "web/\x00"}, "Null characters are not allowed"),
        ({"name": "web/app"}, "Repository 'web/app' already exists."),
        ({"name": "web/x", "registry": "nowhere"}, "Select a valid choice"),
    ],
)
def test_a_bad_repository_is_an_inline_error(world, data: dict[str, str], message: str) -> None:
    before = Repository.objects.count()
    response = client_for("ada", world).post(NEW, data)
    assert response.status_code == 400
    assert message in response.content.decode().replace("&#x27;", "'")
    assert Repository.objects.count() == before
    assert not AuditRecord.objects.filter(detail__action="repository.create", actor="ada").exists()


# --- the public flag ----------------------------------------------------------------------


def test_an_admin_makes_a_repository_public_and_goes_back_to_the_same_list(world) -> None:
    back = f"{LIST}?q=ops&page=1"
    response = client_for("ada", world).post(public_url(world["db"]), {"public": "1", "next": back})
    assert response.status_code == 302 and response["Location"] == back
    assert Repository.objects.get(name="ops/db").public
    record = last_change("repository.update")
    assert (record.actor, record.detail["before"], record.detail["after"]) == (
        "ada",
        {"public": False},
        {"public": True},
    )


def test_making_a_public_repository_private_is_recorded_too(world) -> None:
    client_for("ada", world).post(public_url(world["app"]), {"public": "0"})
    assert not Repository.objects.get(name="web/app").public
    assert last_change("repository.update").detail["after"] == {"public": False}


def test_with_htmx_the_row_re_renders_in_place(world) -> None:
    back = f"{LIST}?q=ops"
    response = client_for("ada", world).post(public_url(world["db"]), {"public": "1", "next": back}, headers=HTMX)
    body = response.content.decode()
    assert response.status_code == 200
    assert body.strip().startswith(f'<tr id="repository-{world["db"].pk}"')  # type: ignore[attr-defined]
    assert "Make private" in body and "badge ok" in body and f'value="{back}"' in body


@pytest.mark.parametrize("unsafe", ["https://evil.example/", "//evil.example/x", "javascript:alert(1)"])
def test_it_never_redirects_off_the_site(world, unsafe: str) -> None:
    response = client_for("ada", world).post(public_url(world["db"]), {"public": "1", "next": unsafe})
    assert response["Location"] == LIST


@pytest.mark.parametrize("value", ["", "yes", "2", "\x00"])
def test_a_bad_public_value_is_a_400(world, value: str) -> None:
    response = client_for("ada", world).post(public_url(world["db"]), {"public": value})
    assert response.status_code == 400
    assert "Choose public (1) or private (0)." in response.content.decode()
    assert not Repository.objects.get(name="ops/db").public


def test_a_missing_repository_is_not_found(world) -> None:
    client = client_for("ada", world)
    assert client.post(reverse("repositories:public", args=[999999]), {"public": "1"}).status_code == 404
    assert client.post(reverse("repositories:delete", args=[999999])).status_code == 404


# --- forgetting one (the delete URL) ---------------------------------------------------------


def test_an_admin_forgets_a_repository_and_is_told_the_registry_keeps_its_images(world) -> None:
    response = client_for("ada", world).post(delete_url(world["site"]), {"next": f"{LIST}?q=web"}, follow=True)
    assert not Repository.objects.filter(name="web/site").exists()
    body = response.content.decode().replace("&#x27;", "'")
    assert "Forgot registry/web/site: only registryadmin's row is gone. The registry's content is not touched" in body
    assert response.redirect_chain[-1][0] == f"{LIST}?q=web"
    record = last_change("repository.delete")
    assert (record.actor, record.repository, record.detail["before"]) == (
        "ada",
        "web/site",
        {"name": "web/site", "public": False},
    )


def test_with_htmx_a_forgotten_row_is_swapped_for_what_was_done(world) -> None:
    response = client_for("ada", world).post(delete_url(world["db"]), headers=HTMX)
    body = response.content.decode()
    assert response.status_code == 200 and body.startswith('<tr class="done">') and "Forgot ops/db" in body
    assert not Repository.objects.filter(name="ops/db").exists()


def test_the_forget_button_is_red_confirmed_and_says_the_registry_is_not_touched(world) -> None:
    body = client_for("ada", world).get(LIST).content.decode().replace("&#x27;", "'")
    assert body.count("<summary>Forget</summary>") == 3 and ">Delete<" not in body and "hx-confirm" not in body
    question = "Forget ops/db? Only registryadmin's row goes (and its public flag); the registry's content is not"
    assert question + " touched" in body
    assert body.count('class="danger small">Yes, forget</button>') == 3
