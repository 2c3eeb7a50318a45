"""Fuzzing every list filter of the dashboard and the audit pages, signed in as ada (admin) or audrey (auditor).

The parameters come from the pages themselves: each page is fetched once, and the names of its GET
forms' fields (with the options of its selects) and of its paging links become what the examples
send, beside junk names and values. Whatever they send, a page answers 200, 400 (a filter it refuses
inline), 404 or 409 (an export too large to stream), never a 500.

Also here: a Content-Type charset that is not a text encoding is a 400 on every page, idna included
(its decoder refuses the errors="replace" that Django's query parser uses: it was a 500).
"""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from django.test import Client
from hypothesis import event, given
from hypothesis import strategies as st

from accounts import services
from accounts.models import Team, User
from accounts.services import ensure_keys
from audit.intake import store_events
from tests.conftest import PASSWORD, SYSTEM, ask_registry, client_for
from tests.fuzz import FUZZ, NON_TEXT_CHARSETS, any_text, mostly, query_value, rolled_back

pytestmark = pytest.mark.django_db
PAGE_ANSWERS = {200, 400, 404, 409}
AUDITOR_ANSWERS = PAGE_ANSWERS | {403}  # auditors read everything but a few admin-only pages

LIST_PAGES = [
    "/",
    "/me/",
    "/teams/",
    "/teams/web/",
    "/access/who",
    "/access/why",
    "/access/user/carol",
    "/access/robot/robot$web+ci",
    "/setup/",
    "/me/tokens/",
    "/manage/users/",
    "/manage/users/carol/",
    "/manage/registries/",
    "/manage/registries/registry/",
    "/manage/repositories/",
    "/manage/grants/",
    "/manage/grants/new",
    "/manage/robots/",
    "/manage/robots/new",
    "/manage/keys/",
    "/manage/jobs/",
    "/audit/",
    "/audit/exports/",
    "/audit/export.csv",
    "/audit/export.jsonl",
]
# Parameters the pages must offer (a page that loses its filter form fails here, not silently).
EXPECTED = {
    "/manage/users/": {"q", "role", "active"},
    "/manage/grants/": {"subject", "pattern", "role", "registry"},
    "/manage/registries/": {"q", "mode"},
    "/me/tokens/": {"q", "state"},
    "/manage/robots/": {"q", "state", "team"},
    "/audit/": {"since", "until", "kind", "outcome", "user", "repository", "ip"},
}
# Parameters read from request.GET that a page may not show in a form.
ALWAYS = ["page", "cursor", "sort", "q", "registry", "repository", "user", "scope", "action", "team"]


class FormFields(HTMLParser):
    """The names (and offered values) of the fields of a page's GET forms, and of its ``?...`` links."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, set[str]] = {}
        self._in_get_form = False
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {key: value or "" for key, value in attrs}
        if tag == "form":
            self._in_get_form = attr.get("method", "get").lower() == "get"
        elif tag == "a" and "?" in attr.get("href", ""):
            for key, value in parse_qsl(urlsplit(attr["href"]).query, keep_blank_values=True):
                self.fields.setdefault(key, set()).add(value)
        elif self._in_get_form and tag in {"input", "select", "textarea"} and attr.get("name"):
            values = self.fields.setdefault(attr["name"], set())
            if attr.get("value"):
                values.add(attr["value"])
            self._select = attr["name"] if tag == "select" else None
        elif tag == "option" and self._select:
            self.fields[self._select].add(attr.get("value", ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_get_form = False
        elif tag == "select":
            self._select = None


@pytest.fixture
def world(db: None, ada: User, audrey: User, web: Team, carol: User, dave: User) -> dict[str, object]:
    registry = services.create_registry("registry", context=SYSTEM)
    ensure_keys()
    services.create_grant(web, "web/**", "write", context=SYSTEM)
    services.create_grant(carol, "web/app", "read", context=SYSTEM)
    services.create_repository("pub/base", public=True, context=SYSTEM)
    services.create_robot(web, "ci", grants=[("web/app", "write")], context=SYSTEM)
    services.create_access_token(ada, "laptop", context=SYSTEM)
    ask_registry("carol", PASSWORD, "repository:web/app:pull,push")
    ask_registry("carol", "wrong", "repository:web/app:pull")
    manifest = "application/vnd.oci.image.manifest.v1+json"
    push = {"id": "e1", "action": "push", "target": {"repository": "web/app", "tag": "v1", "mediaType": manifest}}
    store_events([push], registry.service)
    return {"ada": ada, "audrey": audrey}


@pytest.fixture
def offered(world: dict[str, object]) -> dict[str, dict[str, list[str]]]:
    """Per page, each parameter it offers and the values it offers for it."""
    client = client_for("ada", world)
    pages: dict[str, dict[str, list[str]]] = {}
    for url in LIST_PAGES:
        response = client.get(url)
        assert response.status_code == 200, url
        parser = FormFields()
        if not response.streaming:
            parser.feed(response.content.decode())
        pages[url] = {name: sorted(values) for name, values in sorted(parser.fields.items())}
    return pages


def test_the_pages_offer_the_filters_this_fuzzing_relies_on(offered: dict[str, dict[str, list[str]]]) -> None:
    for url, names in EXPECTED.items():
        assert names <= set(offered[url]), (url, sorted(offered[url]))


def _read(response: object) -> None:
    if getattr(response, "streaming", False):
        b"".join(response.streaming_content)  # type: ignore[attr-defined]  # an export fails while streaming


@FUZZ
@given(data=st.data())
def test_any_filter_on_any_list_page_is_answered(
    world: dict[str, object], offered: dict[str, dict[str, list[str]]], data: st.DataObject
) -> None:
    url = data.draw(st.sampled_from(LIST_PAGES), label="page")
    names = sorted({*offered[url], *ALWAYS})
    chosen = data.draw(st.lists(mostly(st.sampled_from(names), any_text), max_size=5), label="parameters")
    query: list[tuple[str, str]] = []
    for name in chosen:
        good = offered[url].get(name) or [""]
        query.append((name, data.draw(mostly(st.sampled_from(good), query_value, odds=2), label=name)))
    persona = data.draw(st.sampled_from(["ada", "audrey"]), label="persona")
    client = client_for(persona, world)
    htmx = {"HTTP_HX_REQUEST": "true"} if data.draw(st.booleans(), label="htmx") else {}
    with rolled_back():
        response = client.get(f"{url}?{urlencode(query)}", **htmx)
        _read(response)
    event(f"{response.status_code}")
    assert response.status_code in (PAGE_ANSWERS if persona == "ada" else AUDITOR_ANSWERS), (url, query)


@FUZZ
@given(
    url=st.sampled_from([page for page in LIST_PAGES if page not in {"/", "/me/"}]),
    suffix=st.one_of(any_text, st.sampled_from(["%00", "..", "%2F", "x" * 300, "\u202e"])),
)
def test_any_name_in_a_detail_url_is_answered(world: dict[str, object], url: str, suffix: str) -> None:
    client = client_for("ada", world)
    with rolled_back():
        response = client.get(url.rstrip("/") + "/" + suffix.replace("/", "%2F"))
        _read(response)
    assert response.status_code in PAGE_ANSWERS | {301, 302, 405}


# --- charsets -------------------------------------------------------------------------------


@pytest.mark.parametrize("charset", NON_TEXT_CHARSETS)
@pytest.mark.parametrize("url", ["/healthz?x=1", "/login/?x=1", "/auth/token?service=x", "/manage/users/?q=a"])
def test_a_non_text_charset_is_400_everywhere(world: dict[str, object], url: str, charset: str) -> None:
    client = client_for("ada", world) if url.startswith("/manage/") else Client()
    response = client.get(url, CONTENT_TYPE=f"text/plain; charset={charset}")
    assert response.status_code == 400


@pytest.mark.parametrize("charset", NON_TEXT_CHARSETS)
def test_a_login_post_with_a_non_text_charset_is_400(db: None, charset: str) -> None:
    client = Client(enforce_csrf_checks=False)
    body = b"username=ada&password=x"
    response = client.generic("POST", "/login/?x=1", body, content_type=f"text/plain; charset={charset}")
    assert response.status_code == 400


def test_an_idna_charset_with_an_escape_in_the_query_is_a_400(db: None) -> None:
    response = Client().get("/healthz?x=%ff", CONTENT_TYPE="text/plain; charset=idna")
    assert response.status_code == 400
