"""Fuzzing /auth/token: every parameter, GET and POST, any Authorization header, any Content-Type.

The world: registry ``registry`` with keys; team web (alice leads, bob is a member) may write web/**;
carol may read web/app and holds a personal access token and a refresh token; robot$web+ci may write
web/app; dave is inactive; pub/base is public. The strategies mix those real credentials and names
with junk, so examples reach the grant path as well as every refusal.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from urllib.parse import urlencode

import pytest
from django.test import Client
from hypothesis import event, given
from hypothesis import strategies as st

from accounts import services
from accounts.models import Registry, Team, User
from accounts.services import ensure_keys
from audit.models import AuditRecord
from tests.conftest import PASSWORD, SYSTEM
from tests.fuzz import (
    FUZZ,
    NON_TEXT_CHARSETS,
    any_text,
    content_type,
    header_text,
    mostly,
    query_value,
    rolled_back,
)

pytestmark = pytest.mark.django_db
URL = "/auth/token"
ANSWERS = {200, 400, 401, 429}  # 429: failed guesses pile up into a hold
TOO_LARGE = 413
FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class World:
    robot_secret: str
    pat: str
    refresh_token: str


@pytest.fixture
def world(db: None, web: Team, carol: User, dave: User) -> World:
    registry: Registry = services.create_registry("registry", context=SYSTEM)
    ensure_keys()
    services.create_grant(web, "web/**", "write", context=SYSTEM)
    services.create_grant(carol, "web/app", "read", context=SYSTEM)
    services.create_repository("pub/base", public=True, context=SYSTEM)
    _, robot_secret = services.create_robot(web, "ci", grants=[("web/app", "write")], context=SYSTEM)
    _, pat = services.create_access_token(carol, "laptop", context=SYSTEM)
    refresh = services.new_refresh_token(carol, registry.service, "docker")
    return World(robot_secret, pat, refresh)


# --- strategies ---------------------------------------------------------------------------

GOOD_NAMES = ["web/app", "pub/base", "web/api", "other/thing"]
scope_type = mostly(
    st.sampled_from(["repository", "repository", "registry", "repository(plugin)"]),
    st.one_of(st.sampled_from(["Repository", "repo", "", "a" * 80]), any_text),
)
scope_name = mostly(
    st.sampled_from([*GOOD_NAMES, "catalog"]),
    st.one_of(
        st.sampled_from(["localhost:5000/web/app", "web", "a" * 256, "Web/App", "web//app", "web/app/", ""]), any_text
    ),
)
action = mostly(st.sampled_from(["pull", "push", "delete", "*"]), st.one_of(st.sampled_from(["", "PULL"]), any_text))
one_scope = mostly(
    st.builds(
        lambda kind, name, actions: f"{kind}:{name}:{','.join(actions)}",
        scope_type,
        scope_name,
        st.lists(action, min_size=1, max_size=4),
    ),
    query_value,
)
good_scope = st.builds(
    lambda name, actions: f"repository:{name}:{','.join(actions)}",
    st.sampled_from(GOOD_NAMES),
    st.lists(st.sampled_from(["pull", "push", "delete", "*"]), min_size=1, max_size=3),
)
scopes = mostly(st.lists(good_scope, max_size=4), st.lists(one_scope, max_size=36))
service = mostly(st.just("registry"), st.one_of(st.sampled_from(["", "other", "REGISTRY"]), query_value))


def _user_pass(world: World) -> st.SearchStrategy[tuple[str, str]]:
    known = st.sampled_from(
        [
            ("carol", PASSWORD),
            ("alice", PASSWORD),
            ("dave", PASSWORD),
            ("carol", "wrong"),
            ("robot$web+ci", world.robot_secret),
            ("robot$web+ci", "rgb_wrong"),
            ("carol", world.pat),
            ("alice", world.pat),
            ("nobody", PASSWORD),
            ("", ""),
        ]
    )
    return mostly(known, st.tuples(any_text, any_text), odds=2)


def _authorization(world: World) -> st.SearchStrategy[str | None]:
    def basic(pair: tuple[str, str]) -> str:
        return "Basic " + base64.b64encode(f"{pair[0]}:{pair[1]}".encode()).decode()

    return st.one_of(
        st.none(),
        _user_pass(world).map(basic),
        _user_pass(world).map(basic),
        _user_pass(world).map(basic),
        st.binary(max_size=60).map(lambda raw: "Basic " + base64.b64encode(raw).decode()),
        st.builds(lambda scheme, value: f"{scheme} {value}", st.sampled_from(["Basic", "basic", "BASIC"]), header_text),
        header_text.map(lambda value: f"Bearer {value}"),
        header_text,
    )


def _refresh(world: World) -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from([world.refresh_token, "rgr_wrong", world.pat]), query_value)


def _headers(authorization: str | None, user_agent: str) -> dict[str, str]:
    headers = {"HTTP_USER_AGENT": user_agent}
    if authorization is not None:
        headers["HTTP_AUTHORIZATION"] = authorization
    return headers


def _accesses() -> int:
    return AuditRecord.objects.filter(kind="access").count()


def _check(response_status: int, before: int, *, recorded: bool = True) -> None:
    event(f"status {response_status}")  # --hypothesis-show-statistics: how many examples got how far
    assert response_status in ANSWERS, response_status
    if recorded:
        assert _accesses() == before + 1, "every answer of the token endpoint records one access attempt"


# --- GET ----------------------------------------------------------------------------------


@FUZZ
@given(data=st.data())
def test_any_get_is_answered_and_recorded(client: Client, world: World, data: st.DataObject) -> None:
    query: dict[str, object] = {}
    for name, values in {
        "service": service,
        "scope": scopes,
        "account": st.one_of(st.sampled_from(["carol", "alice", ""]), query_value),
        "offline_token": st.one_of(st.sampled_from(["true", "TRUE", "false", "1"]), query_value),
        "client_id": st.one_of(st.sampled_from(["docker", ""]), query_value),
        data.draw(any_text, label="extra parameter"): query_value,
    }.items():
        if data.draw(st.integers(0, 3), label=f"send {name}") > (0 if name == "service" else 1):
            query[name] = data.draw(values, label=name)
    authorization = data.draw(_authorization(world), label="Authorization")
    user_agent = data.draw(header_text, label="User-Agent")
    with rolled_back():
        before = _accesses()
        response = client.get(URL, query, **_headers(authorization, user_agent))
        _check(response.status_code, before)
        if response.status_code == 400:
            event(AuditRecord.objects.filter(kind="access").latest("id").detail["reason"][:30])
        if response.status_code == 200:
            assert response.json()["token"] == response.json()["access_token"]


# --- POST ---------------------------------------------------------------------------------


def _form(world: World) -> st.SearchStrategy[dict[str, object]]:
    def pick(values: st.SearchStrategy) -> st.SearchStrategy:
        return st.one_of(st.none(), values)

    users = _user_pass(world)
    return st.fixed_dictionaries(
        {
            "grant_type": mostly(
                st.sampled_from(["password", "refresh_token"]),
                st.one_of(st.none(), st.sampled_from(["PASSWORD", ""]), any_text),
            ),
            "credentials": mostly(users, st.none()),
            "refresh_token": pick(_refresh(world)),
            "service": mostly(st.just("registry"), st.one_of(st.none(), query_value)),
            "scope": pick(st.one_of(scopes.map(" ".join), scopes)),
            "client_id": pick(st.one_of(st.just("containerd-client"), query_value)),
            "access_type": pick(st.one_of(st.just("offline"), query_value)),
            "extra": pick(st.tuples(any_text, query_value)),
        }
    ).map(_flatten_form)


def _flatten_form(drawn: dict[str, object]) -> dict[str, object]:
    form = {key: value for key, value in drawn.items() if value is not None and key not in {"credentials", "extra"}}
    if drawn["credentials"] is not None:
        form["username"], form["password"] = drawn["credentials"]  # type: ignore[misc]
    if drawn["extra"] is not None:
        key, value = drawn["extra"]  # type: ignore[misc]
        form.setdefault(key, value)
    return form


@FUZZ
@given(data=st.data())
def test_any_form_post_is_answered_and_recorded(client: Client, world: World, data: st.DataObject) -> None:
    form = data.draw(_form(world), label="form")
    body = urlencode(form, doseq=True).encode()
    media = data.draw(st.sampled_from([FORM, f"{FORM}; charset=utf-8", f"{FORM}; charset=UTF-8"]), label="type")
    authorization = data.draw(_authorization(world), label="Authorization")
    with rolled_back():
        before = _accesses()
        response = client.generic("POST", URL, body, content_type=media, **_headers(authorization, "containerd/2.0"))
        _check(response.status_code, before)


@FUZZ
@given(
    data=st.data(),
    media=content_type,
    query=st.dictionaries(st.sampled_from(["service", "scope", "x", "account"]), query_value, max_size=3),
)
def test_any_content_type_and_body_is_answered(
    client: Client, world: World, data: st.DataObject, media: str, query: dict[str, str]
) -> None:
    body = data.draw(
        st.one_of(
            st.binary(max_size=300),
            _form(world).map(lambda form: urlencode(form, doseq=True).encode()),
            st.just(b"--xyz\r\nContent-Disposition: form-data; name=grant_type\r\n\r\npassword\r\n--xyz--\r\n"),
        ),
        label="body",
    )
    method = data.draw(st.sampled_from(["GET", "POST"]), label="method")
    with rolled_back():
        before = _accesses()
        # CONTENT_TYPE as well: the test client drops content_type when the body is empty.
        response = client.generic(method, f"{URL}?{urlencode(query)}", body, content_type=media, CONTENT_TYPE=media)
        # A multipart body Django cannot parse is refused (400) by Django itself, before the view records it.
        event(f"status {response.status_code}")
        assert response.status_code in ANSWERS, response.status_code
        assert _accesses() - before <= 1


@FUZZ
@given(method=st.sampled_from(["PUT", "PATCH", "DELETE", "OPTIONS", "HEAD", "TRACE", "FROB"]), query=query_value)
def test_other_methods_are_405(client: Client, world: World, method: str, query: str) -> None:
    with rolled_back():
        response = client.generic(method, f"{URL}?{urlencode({'service': query})}")
        assert response.status_code == 405


# --- regressions --------------------------------------------------------------------------


@pytest.mark.parametrize("charset", NON_TEXT_CHARSETS)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_non_text_charset_is_400_and_recorded_as_invalid(
    client: Client, world: World, charset: str, method: str
) -> None:
    response = client.generic(method, f"{URL}?service=x", CONTENT_TYPE=f"text/plain; charset={charset}")
    assert response.status_code == 400
    record = AuditRecord.objects.filter(kind="access").latest("id")
    assert record.outcome == "invalid"
    assert charset in record.detail["reason"]


def test_a_non_text_charset_with_good_credentials_is_still_400(client: Client, world: World) -> None:
    raw = base64.b64encode(f"carol:{PASSWORD}".encode()).decode()
    response = client.generic(
        "GET",
        f"{URL}?service=registry&scope=repository:web/app:pull",
        CONTENT_TYPE="text/plain; charset=base64",
        HTTP_AUTHORIZATION=f"Basic {raw}",
    )
    assert response.status_code == 400
    assert "token" not in response.json()


def test_a_post_over_the_body_limit_is_413_before_it_is_parsed(client: Client, world: World, settings: object) -> None:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE  # type: ignore[attr-defined]
    body = b"grant_type=password&username=carol&password=" + b"x" * limit
    before = _accesses()
    response = client.generic("POST", URL, body, content_type=FORM)
    assert response.status_code == TOO_LARGE
    assert _accesses() == before  # refused before the view: nothing was read, so nothing to record


def test_a_post_with_a_declared_length_over_the_limit_is_413(client: Client, world: World, settings: object) -> None:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE  # type: ignore[attr-defined]
    response = client.generic("POST", URL, b"grant_type=password", content_type=FORM, CONTENT_LENGTH=str(limit + 1))
    assert response.status_code == TOO_LARGE
