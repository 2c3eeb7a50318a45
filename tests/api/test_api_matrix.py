"""Every API URL, every method and every persona: who is let in and who is refused (with a real token).

The same world and personas as the dashboard's table (tests/web/test_url_matrix.py): anonymous; carol, a
plain user; olga, lead of team ops; alice, lead of team web; audrey, the auditor; ada, the admin. Each
request carries a body that would succeed for someone allowed, so a refusal is about the person, not
the input. "Let in" means the view ran for them (2xx, or a 400/409 about the input or the state);
"refused" means 403 or 404 in the API's JSON error shape, showing none of the world's private data;
anonymous gets 401. A test fails when an API URL is added without a row here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import transaction
from django.urls import get_resolver, reverse
from rest_framework.test import APIClient

from accounts import services
from tests.conftest import SYSTEM
from tests.web.test_url_matrix import ADMINS, OVERSEERS, PERSONAS, PRIVATE, SIGNED_IN, WEB_LEADS, WEB_READERS, _names
from tests.web.test_url_matrix import world as world  # the shared fixture

pytestmark = pytest.mark.django_db

LEADS_AND_OVERSEERS = frozenset({"olga", "alice", "audrey", "ada"})
OPS_LEAD_OR_ADMIN = frozenset({"olga", "ada"})
OPS_READERS = frozenset({"olga", "audrey", "ada"})


@dataclass(frozen=True)
class Call:
    name: str
    method: str
    allowed: frozenset[str]
    kwargs: Callable[[dict], dict[str, Any]] = lambda world: {}
    body: Callable[[dict], Any] = lambda world: None
    query: str = ""
    content_type: str = "application/json"
    label: str = ""

    @property
    def id(self) -> str:
        return f"{self.method} {self.name}{self.label}"


def pk(key: str) -> Callable[[dict], dict[str, Any]]:
    return lambda world: {"pk": world[key].pk}


def const(value: Any) -> Callable[[dict], Any]:
    return lambda world: value


WEB = const({"name": "web"})
BOB = const({"username": "bob"})
REGISTRY = const({"service": "registry"})
POLICY = "teams:\n  - name: web\n    description: The web shop\n"

CALLS = [
    Call("api:me", "GET", SIGNED_IN),
    Call("api:schema", "GET", SIGNED_IN),
    Call("api:docs", "GET", SIGNED_IN),
    Call("api:users", "GET", OVERSEERS),
    Call("api:users", "POST", ADMINS, body=const({"username": "newcomer", "email": "n@example.org"})),
    Call("api:user-search", "GET", LEADS_AND_OVERSEERS, query="q=bo"),
    Call("api:user", "GET", OVERSEERS, kwargs=BOB),
    Call("api:user", "PATCH", ADMINS, kwargs=BOB, body=const({"first_name": "Bob"})),
    Call("api:user", "DELETE", ADMINS, kwargs=BOB),
    Call("api:user-password", "POST", ADMINS, kwargs=BOB, body=const({})),
    Call("api:user-refresh", "POST", ADMINS, kwargs=BOB, body=const({})),
    Call("api:teams", "GET", SIGNED_IN),
    Call("api:teams", "POST", ADMINS, body=const({"name": "newteam"})),
    Call("api:team", "GET", WEB_READERS, kwargs=WEB),
    Call("api:team", "PATCH", ADMINS, kwargs=WEB, body=const({"description": "changed"})),
    Call("api:team", "DELETE", ADMINS, kwargs=WEB),
    Call("api:members", "GET", WEB_READERS, kwargs=WEB),
    Call("api:members", "POST", WEB_LEADS, kwargs=WEB, body=const({"username": "carol", "role": "member"})),
    Call(
        "api:member",
        "PATCH",
        WEB_LEADS,
        kwargs=const({"name": "web", "username": "bob"}),
        body=const({"role": "maintainer"}),
    ),
    Call("api:member", "DELETE", WEB_LEADS, kwargs=const({"name": "web", "username": "bob"})),
    Call("api:repository-list", "GET", OVERSEERS),
    Call("api:repository-list", "POST", ADMINS, body=const({"name": "web/new"})),
    Call("api:repository-detail", "GET", OVERSEERS, kwargs=pk("repository")),
    Call("api:repository-detail", "PATCH", ADMINS, kwargs=pk("repository"), body=const({"public": True})),
    Call("api:repository-detail", "DELETE", ADMINS, kwargs=pk("repository")),
    Call("api:grant-list", "GET", SIGNED_IN),  # filtered to what each may see
    Call(
        "api:grant-list",
        "POST",
        WEB_LEADS,
        body=const({"team": "web", "user": "bob", "pattern": "web/app", "role": "read"}),
    ),
    Call("api:grant-detail", "GET", WEB_READERS, kwargs=pk("managed")),  # web manages bob's grant
    Call("api:grant-detail", "PATCH", WEB_LEADS, kwargs=pk("managed"), body=const({"expires_at": None})),
    Call("api:grant-detail", "DELETE", WEB_LEADS, kwargs=pk("managed")),
    Call("api:robot-list", "GET", LEADS_AND_OVERSEERS),
    Call("api:robot-list", "POST", OPS_LEAD_OR_ADMIN, body=const({"team": "ops", "name": "nightly"})),
    Call("api:robot-detail", "GET", OPS_READERS, kwargs=pk("ops_robot")),
    Call("api:robot-detail", "DELETE", OPS_LEAD_OR_ADMIN, kwargs=pk("ops_robot")),
    Call("api:robot-rotate", "POST", OPS_LEAD_OR_ADMIN, kwargs=pk("ops_robot"), body=const({})),
    Call("api:token-list", "GET", SIGNED_IN),
    Call("api:token-list", "POST", SIGNED_IN, body=const({"name": "laptop", "read_only": True})),
    Call("api:token-detail", "GET", OVERSEERS, kwargs=pk("bob_token")),  # bob's own: bob, admins, auditors
    Call("api:token-detail", "DELETE", ADMINS, kwargs=pk("bob_token")),
    Call("api:registries", "GET", OVERSEERS),
    Call("api:registries", "POST", ADMINS, body=const({"service": "mirror"})),
    Call("api:registry", "GET", OVERSEERS, kwargs=REGISTRY),
    Call("api:registry", "PATCH", ADMINS, kwargs=REGISTRY, body=const({"url": "https://registry.example.org"})),
    Call("api:registry", "DELETE", ADMINS, kwargs=REGISTRY),
    Call("api:registry-rotate-secret", "POST", ADMINS, kwargs=REGISTRY, body=const({})),
    Call("api:keys", "GET", OVERSEERS),
    Call("api:keys-rotate", "POST", ADMINS, body=const({})),  # no registry URL here: ada gets a 409
    Call("api:jobs", "GET", OVERSEERS),
    Call("api:job-run", "POST", ADMINS, kwargs=const({"name": "seal-audit"}), body=const({})),
    Call("api:policy", "GET", OVERSEERS),
    Call("api:policy", "POST", ADMINS, body=const(POLICY), content_type="application/yaml"),
    Call(
        "api:policy",
        "POST",
        OVERSEERS,
        body=const(POLICY),
        query="dry_run=1",
        content_type="application/yaml",
        label=" (dry run)",
    ),
    Call("api:audit-records", "GET", OVERSEERS),
    Call("api:audit-record", "GET", OVERSEERS, kwargs=pk("record")),
    Call("api:audit-export", "GET", OVERSEERS, query="type=jsonl"),
    Call("api:access-why", "GET", SIGNED_IN, query="repository=web/app&action=pull"),  # about themselves
    Call("api:access-who", "GET", OVERSEERS, query="repository=web/app"),
    Call("api:access-user", "GET", OVERSEERS, kwargs=BOB),
    Call("api:access-robot", "GET", OVERSEERS, kwargs=const({"login": "robot$ops+deploy"})),
]


def test_every_api_url_has_a_row_in_the_table() -> None:
    names = {name for name in _names(get_resolver().url_patterns) if name.startswith("api:")}
    assert names - {call.name for call in CALLS} == set(), "add these API URLs to CALLS"
    assert {call.name for call in CALLS} - names == set(), "these rows name API URLs that no longer exist"


def _client(persona: str, world: dict) -> APIClient:
    client = APIClient()
    if persona != "anonymous":
        _, secret = services.create_access_token(world[persona], "matrix", context=SYSTEM)
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def _send(client: APIClient, call: Call, world: dict) -> Any:
    url = reverse(call.name, kwargs=call.kwargs(world)) + (f"?{call.query}" if call.query else "")
    body = call.body(world)
    if call.method == "GET":
        return client.get(url)
    if call.content_type == "application/json":
        return client.generic(
            call.method, url, data=b"" if body is None else json.dumps(body), content_type=call.content_type
        )
    return client.generic(call.method, url, data=body, content_type=call.content_type)


def _verdict(persona: str, call: Call, response: Any) -> str | None:
    """What is wrong with this persona's answer, or None."""
    body = b"" if response.streaming else response.content
    status = response.status_code
    if status >= 500:
        return f"{persona}: {status} {body[:300]!r}"
    if persona == "anonymous" and call.name == "api:docs":  # a browser: to the sign-in page and back
        return None if status == 302 and response["Location"].startswith("/login/") else f"anonymous: {status}"
    if persona == "anonymous":
        return None if status == 401 and response.json()["error"] == "not_authenticated" else f"anonymous: {status}"
    if persona in call.allowed:
        return f"{persona} was refused: {status} {body[:300]!r}" if status in (401, 403, 404, 405) else None
    if status not in (403, 404) or response.json()["status"] != status:
        return f"{persona} was let in: {status} {body[:300]!r}"
    if persona not in OVERSEERS and any(secret.encode() in body for secret in PRIVATE):
        return f"{persona} was refused but shown private data: {body[:300]!r}"
    return None


@pytest.mark.parametrize("call", [pytest.param(call, id=call.id) for call in CALLS])
def test_each_persona_is_let_in_or_refused(world: dict, call: Call) -> None:
    """Each persona's request runs in a savepoint rolled back after it: everyone meets the same world."""
    clients = {persona: _client(persona, world) for persona in PERSONAS}
    wrong = []
    for persona in PERSONAS:
        with transaction.atomic():
            wrong.append(_verdict(persona, call, _send(clients[persona], call, world)))
            transaction.set_rollback(True)
    assert not [w for w in wrong if w], [w for w in wrong if w]
