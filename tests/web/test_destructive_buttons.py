"""Destructive buttons look and behave the same everywhere (issue 20, item 8): red and confirmed.

ada (admin) opens every page that carries a destructive button, with data so each button shows: every
form whose action revokes, rotates, deletes, removes, forgets or deactivates something must hold the
shared ``_confirm.html`` markup (a red summary that opens onto the only submit button, so it is confirmed
without JavaScript), or the typed-name confirmation the team deletion asks for. A plain destructive
button added to any of these pages fails here. On each page the first such form is then submitted as
its "Yes, ..." button would send it (its own fields and CSRF token, CSRF checks on), and the change is
made and recorded. alice leads web, bob is a member with a token, carol holds an unused grant.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.utils import timezone

from accounts import services
from accounts.models import Grant, Team, User
from audit.models import AuditRecord, Kind
from tests.conftest import SYSTEM

pytestmark = pytest.mark.django_db

# What a destructive action's URL is called; the two whose names do not say so are listed by hand.
DESTRUCTIVE_NAME = re.compile(r"revoke|delete|rotate|remove|forget|unmap|deactivate|purge|wipe")
ALSO_DESTRUCTIVE = {"access:unused_apply"}  # revokes, lowers or deactivates what the report proposes
DASHBOARD_ONLY = re.compile(r"^(admin|api):")  # Django's admin and the API have no dashboard buttons


@dataclass
class Button:
    text: str
    classes: set[str]
    confirmed: bool  # inside a details.confirm's .confirm-body


@dataclass
class Form:
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)
    buttons: list[Button] = field(default_factory=list)
    confirm_summaries: int = 0
    typed_confirmation: bool = False


class FormParser(HTMLParser):
    """Every form of a page with the values it would send and where its submit buttons sit."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self.form: Form | None = None
        self.details: list[bool] = []  # open <details>: is it a confirm?
        self.divs: list[bool] = []  # open <div>: is it a confirm-body?
        self.button: Button | None = None
        self.select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {key: value or "" for key, value in attrs}
        classes = set(a.get("class", "").split())
        if tag == "form":
            self.form = Form(a.get("action", ""), a.get("method", "get").lower())
            self.forms.append(self.form)
        elif tag == "details":
            self.details.append("confirm" in classes)
        elif tag == "div":
            self.divs.append("confirm-body" in classes)
        if self.form is None:
            return
        if tag == "summary" and self.details and self.details[-1]:
            self.form.confirm_summaries += 1
        elif tag == "button" and a.get("type", "submit") == "submit":
            self.button = Button("", classes, self._confirmed())
            self.form.buttons.append(self.button)
        elif tag == "input":
            self._input(a, classes)
        elif tag == "select":
            self.select = a.get("name")
        elif tag == "option" and self.select and ("selected" in a or self.select not in self.form.fields):
            self.form.fields[self.select] = a.get("value", "")

    def _input(self, a: dict[str, str], classes: set[str]) -> None:
        kind, name = a.get("type", "text"), a.get("name", "")
        if kind == "submit":
            self.form.buttons.append(Button(a.get("value", ""), classes, self._confirmed()))
        elif name and (kind not in ("checkbox", "radio") or "checked" in a):
            self.form.fields[name] = a.get("value", "on" if kind in ("checkbox", "radio") else "")
        if name.split("-")[-1] == "confirm" and kind == "text":  # a form prefix may come first
            self.form.typed_confirmation = True

    def _confirmed(self) -> bool:
        return bool(self.details and self.details[-1] and self.divs and self.divs[-1])

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.form = None
        elif tag == "details" and self.details:
            self.details.pop()
        elif tag == "div" and self.divs:
            self.divs.pop()
        elif tag == "button":
            self.button = None
        elif tag == "select":
            self.select = None

    def handle_data(self, data: str) -> None:
        if self.button is not None:
            self.button.text += data.strip()


def view_name(form: Form, page_url: str) -> str:
    return resolve(urlsplit(form.action or page_url).path).view_name


def is_destructive(form: Form, page_url: str) -> bool:
    if form.method != "post":
        return False
    name = view_name(form, page_url)
    if name == "users:active":  # the same URL reactivates: only switching off is destructive
        return form.fields.get("active") == "0"
    return bool(DESTRUCTIVE_NAME.search(name)) or name in ALSO_DESTRUCTIVE


def destructive_forms(body: str, page_url: str) -> list[Form]:
    parser = FormParser()
    parser.feed(body)
    return [form for form in parser.forms if is_destructive(form, page_url)]


def problems_with(form: Form) -> list[str]:
    """Why a destructive form is not the shared red, confirmed button (empty when it is)."""
    found = []
    if not form.buttons:
        found.append("no submit button")
    if any("danger" not in button.classes for button in form.buttons):
        found.append("a submit button that is not red (class danger)")
    if "csrfmiddlewaretoken" not in form.fields:
        found.append("no CSRF token")
    if form.typed_confirmation:  # deleting a team: the admin types its name, a stronger confirmation
        return found
    if form.confirm_summaries != 1:
        found.append(f"{form.confirm_summaries} details.confirm summaries, not 1")
    if any(not button.confirmed for button in form.buttons):
        found.append("a submit button outside the confirm step (shown before its summary is opened)")
    return found


def dashboard_destructive_names() -> set[str]:
    """Every destructive URL name of the dashboard, from the URLconf itself."""

    def walk(patterns: list[URLPattern | URLResolver], prefix: str = "") -> set[str]:
        names = set()
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                names |= walk(pattern.url_patterns, f"{prefix}{pattern.namespace}:" if pattern.namespace else prefix)
            elif pattern.name:
                names.add(prefix + pattern.name)
        return names

    every = walk(get_resolver().url_patterns)
    return {
        name
        for name in every
        if not DASHBOARD_ONLY.match(name) and (DESTRUCTIVE_NAME.search(name) or name in ALSO_DESTRUCTIVE)
    } | {"users:active"}


def build_world(ada: User, alice: User, bob: User, carol: User, web: Team) -> dict:
    """Enough data for every destructive button to show (shared with the browser walk)."""
    services.ensure_keys(SYSTEM)
    registry = services.create_registry("registry", context=SYSTEM)
    services.notification_secret(registry)
    services.create_grant(web, "web/**", "write", context=SYSTEM)
    services.create_grant(bob, "web/secret-app", "read", managed_by=web, context=SYSTEM)
    services.create_grant(carol, "web/docs", "read", context=SYSTEM)
    robot = services.create_robot(web, "ci", grants=[("web/app", "read")], context=SYSTEM)[0]
    ada_token = services.create_access_token(ada, "ada-laptop", context=SYSTEM)[0]
    services.create_access_token(bob, "bob-laptop", context=SYSTEM)
    services.refresh.new_refresh_token(bob, "registry", "docker")  # a docker login that stays signed in
    repository = services.create_repository("web/app", context=SYSTEM)
    web_devs = ("cn=web-devs,ou=groups,dc=example,dc=org", "member")
    services.directory.set_directory_groups(web, [web_devs], context=SYSTEM)
    old = timezone.now() - timedelta(days=120)  # nothing was used since: the unused report proposes
    Grant.objects.update(created_at=old)
    User.objects.filter(username__in=["bob", "carol"]).update(date_joined=old)
    campaign = services.reviews.start_campaign("Q2", context=SYSTEM).campaign
    return {
        "ada": ada,
        "robot": robot,
        "ada_token": ada_token,
        "repository": repository,
        "campaign": campaign,
    }


@dataclass(frozen=True)
class Page:
    url: Callable[[dict], str]
    expected: frozenset[str]  # the destructive actions the page offers with this data
    typed: dict[str, str] = field(default_factory=dict)  # what the admin types into a typed confirmation


PAGES = {
    "my tokens": Page(lambda w: "/me/tokens/", frozenset({"tokens:revoke"})),
    "a person": Page(
        lambda w: "/manage/users/bob/", frozenset({"users:active", "users:revoke_refresh", "tokens:revoke"})
    ),
    "grants": Page(lambda w: "/manage/grants/", frozenset({"grants:revoke"})),
    "robots": Page(lambda w: "/manage/robots/", frozenset({"robots:rotate", "robots:revoke"})),
    "team members": Page(
        lambda w: "/teams/web/?tab=members", frozenset({"teams:remove_member", "teams:remove_directory_group"})
    ),
    "team grants": Page(lambda w: "/teams/web/?tab=grants", frozenset({"teams:revoke_grant"})),
    "team robots": Page(lambda w: "/teams/web/?tab=robots", frozenset({"robots:rotate", "teams:revoke_robot"})),
    "team settings": Page(lambda w: "/teams/web/?tab=settings", frozenset({"teams:delete"}), {"delete-confirm": "web"}),
    "repositories": Page(lambda w: "/manage/repositories/", frozenset({"repositories:delete"})),
    "a repository": Page(lambda w: f"/manage/repositories/{w['repository'].pk}/", frozenset({"repositories:delete"})),
    "a registry": Page(lambda w: "/manage/registries/registry/", frozenset({"registries:rotate_secret"})),
    "signing keys": Page(lambda w: "/manage/keys/", frozenset({"keys:rotate"})),
    "a review": Page(lambda w: f"/reviews/{w['campaign'].pk}/", frozenset({"reviews:revoke"})),
    "unused access": Page(lambda w: "/access/unused/", frozenset({"access:unused_apply"})),
}


@pytest.fixture(autouse=True)
def data_dir(settings, tmp_path: Path) -> Path:
    settings.DATA_DIR = tmp_path / "data"  # a key rotation rewrites the bundles there
    settings.LDAP_SERVER_URI = "ldap://127.0.0.1:1"  # directory groups can be unmapped; no server is asked
    settings.LDAP_GROUP_SEARCH_BASE = "ou=groups,dc=example,dc=org"
    return settings.DATA_DIR


@pytest.fixture
def world(ada: User, alice: User, bob: User, carol: User, web: Team) -> dict:
    return build_world(ada, alice, bob, carol, web)


def admin_client(world: dict) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(world["ada"])
    return client


def recorded_changes() -> int:
    return AuditRecord.objects.filter(actor="ada").exclude(kind__in=[Kind.SIGNIN, Kind.ACCESS]).count()


@pytest.mark.parametrize("name", list(PAGES))
def test_every_destructive_form_on_the_page_is_red_and_confirmed(world: dict, name: str) -> None:
    page = PAGES[name]
    url = page.url(world)
    response = admin_client(world).get(url)
    assert response.status_code == 200, url
    forms = destructive_forms(response.content.decode(), url)
    assert {view_name(form, url) for form in forms} == page.expected
    assert {form.action: problems_with(form) for form in forms if problems_with(form)} == {}


@pytest.mark.parametrize("name", list(PAGES))
def test_the_confirmed_button_still_does_its_job(world: dict, name: str) -> None:
    page = PAGES[name]
    url = page.url(world)
    client = admin_client(world)
    form = destructive_forms(client.get(url).content.decode(), url)[0]
    before = recorded_changes()
    response = client.post(form.action or url, {**form.fields, **page.typed})  # what "Yes, ..." sends
    assert response.status_code in (200, 302), (form.action, response.content.decode()[:500])
    assert recorded_changes() > before, f"{form.action} changed nothing"


def test_the_pages_cover_every_destructive_action_of_the_dashboard() -> None:
    covered = set().union(*(page.expected for page in PAGES.values()))
    assert dashboard_destructive_names() == covered


def test_a_plain_destructive_button_is_caught() -> None:
    body = (
        '<form method="post" action="/me/tokens/1/revoke"><input type="hidden" name="csrfmiddlewaretoken" value="x">'
        '<button type="submit" class="small danger">Revoke</button></form>'
        '<form method="post" action="/me/tokens/2/revoke"><input type="hidden" name="csrfmiddlewaretoken" value="x">'
        '<details class="confirm"><summary>Revoke</summary><div class="confirm-body"><p>Sure?</p>'
        '<button type="submit" class="danger small">Yes, revoke</button></div></details></form>'
    )
    plain, confirmed = destructive_forms(body, "/me/tokens/")
    assert problems_with(plain) == [
        "0 details.confirm summaries, not 1",
        "a submit button outside the confirm step (shown before its summary is opened)",
    ]
    assert problems_with(confirmed) == []
    assert confirmed.buttons[0].text == "Yes, revoke"
