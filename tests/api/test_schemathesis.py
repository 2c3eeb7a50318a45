"""Property-based requests from our own OpenAPI schema, for every operation, as an admin and a plain user.

schemathesis reads the schema drf-spectacular generates (the same one /api/schema/ serves), makes
requests that fit it (and some that do not: wrong types, missing fields) and checks every answer: no
500, a status the schema documents for that operation, and a body that matches the schema for that
status. Requests go straight into the WSGI application (no server), with a real personal access token.
Examples are bounded and derandomized, so a run takes the same few minutes and finds the same things.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import schemathesis
from django.core.serializers.json import DjangoJSONEncoder
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from accounts import services
from accounts.models import User
from tests.conftest import SYSTEM, make_user

MAX_EXAMPLES = 15
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance, content_type_conformance]

_document = json.loads(json.dumps(SchemaGenerator().get_schema(request=None, public=True), cls=DjangoJSONEncoder))
schema = schemathesis.openapi.from_dict(_document)
schema.app = get_wsgi_application()

pytestmark = pytest.mark.django_db


def _world() -> dict[str, User]:
    """A few of everything, so that names in paths sometimes exist (web, bob, the registry)."""
    people = {
        "admin": make_user("ada", is_superuser=True),
        "plain": make_user("carol"),
        "bob": make_user("bob"),
    }
    web = services.create_team("web", context=SYSTEM)
    services.set_membership(web, people["bob"], "maintainer", context=SYSTEM)
    services.create_grant(web, "web/**", "write", context=SYSTEM)
    services.create_registry("registry", context=SYSTEM)
    services.create_repository("web/app", context=SYSTEM)
    services.ensure_keys()
    return people


@pytest.fixture(autouse=True)
def _connections_stay_open() -> Iterator[None]:
    """As Django's test client does: the request must not close the test's database connection."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def bearer(request: pytest.FixtureRequest) -> dict[str, str]:
    people = _world()
    _, secret = services.create_access_token(people[request.param], "schemathesis", context=SYSTEM)
    return {"Authorization": f"Bearer {secret}"}


@pytest.mark.parametrize("bearer", ["admin", "plain"], indirect=True)
@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_every_answer_matches_the_schema_and_none_is_a_server_error(case: schemathesis.Case, bearer: dict) -> None:
    case.call_and_validate(headers=bearer, checks=CHECKS)
