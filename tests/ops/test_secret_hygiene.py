"""No secret of a real run shows up where it should not: logs, audit data and exports, pages, error pages.

A whole stack (gunicorn, a real docker-registry, skopeo) runs a day's work: ada (admin) creates erin
with a typed password and resets it to a generated one, makes robot ci for team web, and rotates the
signing key; carol makes a personal access token; alice pushes with her password and gets a refresh
token as ``docker login`` does, and uses it; the robot pushes, carol pulls with her token, and wrong
passwords are tried. Then everything a person or an operator can read is collected: the server's and
the registry's logs, the audit records, both audit exports, every page a crawl of the dashboard finds
(as ada and as audrey, the auditor), and error answers (404, 400, invalid forms that were sent a
password). Every password, ``rgb_``/``rga_``/``rgr_``/``rgn_`` secret and PEM private key of the run
must be absent from all of it, except on the one response that showed a new secret once. The
notification secret (``rgn_``) is the registry's own configuration: admins read it on the registry's
page to paste into config.yml, so that page is its one place (auditors see it masked); docker-registry
itself logs it once at start, a line of its own set apart below.
"""

from __future__ import annotations

import base64
import html
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.cookiejar import CookieJar
from pathlib import Path

import pytest
from django.urls import reverse

from accounts import services
from accounts.models import Registry, SigningKey, User
from audit.models import AuditRecord
from registryadmin.keywrap import unwrap
from tests.conftest import PASSWORD, SYSTEM, make_user
from tests.e2e_stack import AppServer, eventually, registry_for
from tests.harness import require_binary
from tests.harness.clients import Skopeo
from tests.harness.ociimage import OciImage, write_oci_image
from tests.harness.registry import RegistryServer

pytestmark = pytest.mark.e2e

TYPED = "erin-typed-passphrase-7319"  # what ada types for erin
WRONG = "not-alices-password-5521"  # what a mistyping alice sends, to the registry and to the sign-in form
REFUSED = "never-saved-passphrase-8842"  # sent with a form that is refused
CRAWL_LIMIT = 400
SKIP = re.compile(r"^/(admin|static)/|^/logout/")


@dataclass
class Seen:
    """One response a person (or a script) could read."""

    label: str
    status: int
    body: str


@dataclass
class Session:
    """A cookie-keeping HTTP client for the dashboard, remembering every response it read."""

    base: str
    seen: list[Seen] = field(default_factory=list)
    jar: CookieJar = field(default_factory=CookieJar)

    def __post_init__(self) -> None:
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def request(self, path: str, data: dict[str, str] | None = None, *, label: str = "") -> Seen:
        body = None
        if data is not None:
            body = urllib.parse.urlencode({"csrfmiddlewaretoken": self.csrf(), **data}).encode()
        request = urllib.request.Request(self.base + path, data=body)
        try:
            with self.opener.open(request, timeout=30) as response:
                seen = Seen(label or path, response.status, response.read().decode(errors="replace"))
        except urllib.error.HTTPError as error:
            seen = Seen(label or path, error.code, error.read().decode(errors="replace"))
        self.seen.append(seen)
        return seen

    def csrf(self) -> str:
        token = next((cookie.value for cookie in self.jar if cookie.name == "csrftoken"), None)
        if token is None:
            self.request(reverse("accounts:login"))
            token = next(cookie.value for cookie in self.jar if cookie.name == "csrftoken")
        return token

    def sign_in(self, username: str, password: str = PASSWORD) -> None:
        page = self.request(reverse("accounts:login"), {"username": username, "password": password})
        assert page.status == 200 and "Sign out" in page.body, page.body[:2000]

    def crawl(self, start: str = "/") -> None:
        """Every dashboard page reachable by links from ``start`` (bounded), each read once."""
        queue, visited = [start], set()
        while queue and len(visited) < CRAWL_LIMIT:
            path = queue.pop(0)
            if path in visited:
                continue
            visited.add(path)
            page = self.request(path, label=f"crawl {path}")
            for href in re.findall(r'href="(/[^"#]*)"', page.body):
                link = html.unescape(href)
                if not SKIP.search(link) and link not in visited:
                    queue.append(link)
        assert len(visited) > 30, visited


def token_endpoint(base: str, username: str, secret: str, query: dict[str, str]) -> dict:
    raw = base64.b64encode(f"{username}:{secret}".encode()).decode()
    url = f"{base}/auth/token?{urllib.parse.urlencode({'service': 'registry', **query})}"
    request = urllib.request.Request(url, headers={"Authorization": f"Basic {raw}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def refresh(base: str, refresh_token: str) -> int:
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token, "service": "registry"}
    form |= {"client_id": "docker", "scope": "repository:web/app:pull"}
    request = urllib.request.Request(f"{base}/auth/token", data=urllib.parse.urlencode(form).encode())
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status


def only_secret(page: Seen, prefix: str) -> str:
    found = set(re.findall(rf"{prefix}[A-Za-z0-9_-]{{20,}}", page.body))
    assert len(found) == 1, (page.label, page.status, found)
    return found.pop()


def generated_password(page: Seen, username: str) -> str:
    user = User.objects.get(username=username)
    codes = [html.unescape(code) for code in re.findall(r"<code[^>]*>([^<]+)</code>", page.body)]
    matches = [code for code in codes if user.check_password(code)]
    assert len(matches) == 1, (page.status, codes)
    return matches[0]


@pytest.fixture
def people(transactional_db: None) -> None:
    make_user("ada", is_superuser=True)
    make_user("audrey", is_auditor=True)
    alice, carol = make_user("alice"), make_user("carol")
    web = services.create_team("web", context=SYSTEM)
    services.set_membership(web, alice, "maintainer", context=SYSTEM)
    services.create_grant(web, "web/**", "write", context=SYSTEM)
    services.create_grant(carol, "web/app", "read", context=SYSTEM)


@pytest.fixture
def stack(people: None, subprocess_env: dict[str, str], tmp_path: Path) -> Iterator[tuple[AppServer, RegistryServer]]:
    require_binary("docker-registry")
    require_binary("skopeo")
    app = AppServer(subprocess_env, tmp_path)
    registry_row = services.create_registry("registry", context=SYSTEM)
    registry = registry_for(app, tmp_path)
    services.update_registry(registry_row, url=registry.url, context=SYSTEM)
    app.start()
    registry.start()
    try:
        yield app, registry
    finally:
        registry.close()
        app.stop()


@pytest.fixture
def image(tmp_path: Path) -> OciImage:
    return write_oci_image(tmp_path / "image", payload=b"secret hygiene")


def test_no_secret_of_a_full_run_appears_in_logs_exports_pages_or_error_pages(
    stack: tuple[AppServer, RegistryServer], image: OciImage, subprocess_env: dict[str, str]
) -> None:
    app, registry = stack
    secrets: dict[str, str] = {"the test password": PASSWORD, "erin's typed password": TYPED}
    secrets |= {"a wrong password": WRONG, "a refused form's password": REFUSED}
    shown_once: dict[str, Seen] = {}  # secret name -> the one response that may show it

    ada = Session(app.url)
    failed = ada.request(reverse("accounts:login"), {"username": "ada", "password": WRONG}, label="wrong sign-in")
    assert failed.status == 200 and "Sign out" not in failed.body
    ada.sign_in("ada")
    created = ada.request(reverse("users:new"), {"username": "erin", "is_active": "on", "password": TYPED})
    assert User.objects.get(username="erin").check_password(TYPED), created.body[:2000]
    reset = ada.request(reverse("users:password", kwargs={"username": "erin"}), {"password": ""})
    secrets["erin's generated password"] = generated_password(reset, "erin")
    shown_once["erin's generated password"] = reset
    robot_page = ada.request(reverse("robots:new"), {"team": "web", "name": "ci", "grants": "web/**:write"})
    assert robot_page.status == 201, robot_page.body[:2000]
    secrets["the robot secret"] = only_secret(robot_page, "rgb_")
    shown_once["the robot secret"] = robot_page
    rotated = ada.request(reverse("keys:rotate"), {})
    assert rotated.status == 200 and "Rotated" in rotated.body, rotated.body[:2000]

    carol = Session(app.url)
    carol.sign_in("carol")
    token_page = carol.request(reverse("tokens:new"), {"name": "laptop", "read_only": "on"})
    assert token_page.status == 201, token_page.body[:2000]
    secrets["carol's PAT"] = only_secret(token_page, "rga_")
    shown_once["carol's PAT"] = token_page

    # The registry's side: pushes, pulls, refusals, and docker login's refresh token.
    skopeo = Skopeo(registry.host)
    skopeo.copy_to(image, "web/app", "v1", ("alice", PASSWORD)).check()
    skopeo.copy_to(image, "web/app", "ci", ("robot$web+ci", secrets["the robot secret"])).check()
    skopeo.inspect("web/app", "v1", ("carol", secrets["carol's PAT"])).check()
    assert skopeo.inspect("web/app", "v1", ("alice", WRONG)).auth_refused
    assert skopeo.inspect("web/app", "v1", ("erin", secrets["erin's generated password"])).auth_refused
    login = token_endpoint(app.url, "alice", PASSWORD, {"offline_token": "true", "client_id": "docker"})
    secrets["alice's refresh token"] = login["refresh_token"]
    assert secrets["alice's refresh token"].startswith("rgr_") and refresh(app.url, login["refresh_token"]) == 200
    eventually(
        lambda: AuditRecord.objects.filter(kind="registry_event", outcome="push", actor="robot$web+ci").exists(),
        what="the robot's push event",
    )
    secrets["the notification secret"] = services.notification_secret(Registry.objects.get(service="registry"))
    for key in SigningKey.objects.all():
        secrets[f"signing key {key.kid} (private PEM)"] = unwrap(key.private_key).decode().strip()
    assert sum(name.startswith("signing key") for name in secrets) >= 2  # current and next, after a rotation
    secrets["SECRET_KEY"] = subprocess_env["SECRET_KEY"]

    # What can be read afterwards.
    registry_page = reverse("registries:detail", kwargs={"service": "registry"})
    ada.crawl()
    audrey = Session(app.url)
    audrey.sign_in("audrey")
    audrey.crawl()
    assert secrets["the notification secret"] not in audrey.request(registry_page).body
    for persona, session in (("ada", ada), ("audrey", audrey)):
        for export in ("audit:export_jsonl", "audit:export_csv"):
            page = session.request(reverse(export), label=f"{export} as {persona}")
            assert page.status == 200 and "robot$web+ci" in page.body, (export, page.status)
    errors = Session(app.url)
    assert errors.request("/no/such/page/").status == 404
    assert errors.request("/manage/users/a%00b/").status == 400
    errors.sign_in("ada")
    refused = errors.request(reverse("users:new"), {"username": "bad name!", "password": REFUSED}, label="refused")
    assert refused.status == 400 and not User.objects.filter(username="bad name!").exists()
    assert errors.request(reverse("users:detail", kwargs={"username": "nobody"})).status == 404
    app.stop()  # flush and close the log before reading it

    haystacks = [(seen.label, seen.body, seen) for session in (ada, carol, audrey, errors) for seen in session.seen]
    haystacks.append(("the server's log", app.log.read_text(errors="replace"), None))
    # docker-registry 2.8 itself logs each notification endpoint's headers at info level when it starts
    # ("configuring endpoint ..., headers=map[Authorization:[Bearer rgn_...]]"): the registry's
    # operator reads their own secret there. That one known line is set apart; any other is a leak.
    registry_log = registry.log_text().splitlines()
    configuring = [line for line in registry_log if "configuring endpoint registryadmin" in line]
    assert all(secrets["the notification secret"] in line for line in configuring)
    rest = "\n".join(line for line in registry_log if line not in configuring)
    haystacks.append(("the registry's log (but its endpoint configuration line)", rest, None))
    records = AuditRecord.objects.order_by("id").values()
    haystacks.append(("the audit records", json.dumps(list(records), default=str), None))
    # The admin's registry page is where the operator copies the notification secret into config.yml.
    allowed = {(name, id(page)) for name, page in shown_once.items()}
    allowed |= {("the notification secret", id(seen)) for seen in ada.seen if seen.label.endswith(registry_page)}
    leaks = [
        f"{name} in {label}"
        for label, text, seen in haystacks
        for name, secret in secrets.items()
        if secret in text and (name, id(seen)) not in allowed
    ]
    leaks += [f"a PEM private key in {label}" for label, text, _ in haystacks if "PRIVATE KEY-----" in text]
    assert leaks == [], "\n".join(leaks)
    # The exclusions are exact: each shown-once page did show its secret, and only once.
    for name, page in shown_once.items():
        assert secrets[name] in page.body, name
