"""My access tokens: everyone lists, makes (secret shown once, and it works) and revokes their own.

bob has a read-only token "laptop" limited to web/app and a revoked one "old"; carol has "ci";
team web (alice leads, bob is a member) holds write on web/**; the registry "registry" uses the
token server, "legacy" is in htpasswd mode.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.db import connection
from django.http import HttpResponse
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts import services
from accounts.models import PersonalAccessToken, Team, User
from accounts.services import ensure_keys
from audit.models import AuditRecord
from tests.conftest import SYSTEM, ask_registry, client_for, granted
from tests.conftest import shown_secret as _shown

pytestmark = pytest.mark.django_db

LIST = reverse("tokens:list")
NEW = reverse("tokens:new")
PERSONAS = ("anonymous", "carol", "bob", "alice", "audrey", "ada")


@pytest.fixture
def world(ada: User, audrey: User, alice: User, bob: User, carol: User, web: Team) -> dict[str, object]:
    services.create_registry("registry", url="https://registry.example.org", context=SYSTEM)
    services.create_registry("legacy", auth_mode="htpasswd", context=SYSTEM)
    ensure_keys()
    services.create_grant(web, "web/**", "write", context=SYSTEM)
    laptop, _ = services.create_access_token(bob, "laptop", read_only=True, patterns=["web/app"], context=SYSTEM)
    old, _ = services.create_access_token(bob, "old", context=SYSTEM)
    services.revoke_access_token(old, context=SYSTEM)
    ci, _ = services.create_access_token(carol, "ci", context=SYSTEM)
    people = {"ada": ada, "audrey": audrey, "alice": alice, "bob": bob, "carol": carol}
    return {**people, "laptop": laptop, "old": old, "ci": ci}


def revoke_url(token: object) -> str:
    return reverse("tokens:revoke", kwargs={"pk": token.pk})  # type: ignore[attr-defined]


# --- who may use the pages --------------------------------------------------------------


@pytest.mark.parametrize("persona", PERSONAS)
def test_the_token_list_answers_everyone_signed_in(world, persona: str) -> None:
    response = client_for(persona, world).get(LIST)
    if persona == "anonymous":
        assert response.status_code == 302 and response["Location"].startswith(reverse("accounts:login"))
    else:
        assert response.status_code == 200


@pytest.mark.parametrize("url", [NEW, "/me/tokens/1/revoke"])
def test_the_changes_send_anonymous_visitors_to_sign_in(world, url: str) -> None:
    response = Client().post(url, {"name": "x"})
    assert response.status_code == 302 and response["Location"].startswith(reverse("accounts:login"))
    assert PersonalAccessToken.objects.count() == 3


@pytest.mark.parametrize(("url", "method"), [(LIST, "post"), (NEW, "get"), ("/me/tokens/1/revoke", "get")])
def test_it_rejects_the_wrong_method(world, url: str, method: str) -> None:
    assert getattr(client_for("bob", world), method)(url).status_code == 405


# --- the list ----------------------------------------------------------------------------


def test_the_list_shows_my_tokens_and_nobody_elses(world) -> None:
    PersonalAccessToken.objects.filter(pk=world["laptop"].pk).update(  # type: ignore[attr-defined]
        last_used_at=timezone.now(), last_used_ip="192.0.2.7"
    )
    body = client_for("bob", world).get(LIST).content.decode()
    for expected in ("laptop", "read-only", "<code>web/app</code>", "192.0.2.7", "old", 'badge bad">revoked'):
        assert expected in body
    assert 'badge ok">active' in body
    assert "<td>ci</td>" not in body
    assert revoke_url(world["laptop"]) in body and revoke_url(world["old"]) not in body  # nothing to revoke twice


def test_an_expired_token_is_marked_expired(world) -> None:
    PersonalAccessToken.objects.filter(pk=world["laptop"].pk).update(  # type: ignore[attr-defined]
        expires_at=timezone.now() - timedelta(hours=1)
    )
    body = client_for("bob", world).get(LIST + "?state=expired").content.decode()
    assert "<td>laptop</td>" in body and 'badge warn">expired' in body and "<td>old</td>" not in body


def test_the_list_says_tokens_do_not_work_with_htpasswd_registries(world) -> None:
    body = client_for("carol", world).get(LIST).content.decode()
    assert "htpasswd mode" in body and "<code>legacy</code>" in body


@pytest.mark.parametrize(
    ("query", "shown", "hidden"),
    [
        ("?q=lap", "<td>laptop</td>", "<td>old</td>"),
        ("?state=revoked", "<td>old</td>", "<td>laptop</td>"),
        ("?state=active", "<td>laptop</td>", "<td>old</td>"),
    ],
)
def test_the_list_filters_by_name_and_state(world, query: str, shown: str, hidden: str) -> None:
    body = client_for("bob", world).get(LIST + query).content.decode()
    assert shown in body and hidden not in body


def test_a_bad_filter_is_a_400_with_the_message(world) -> None:
    response = client_for("bob", world).get(LIST + "?state=sideways&page=zz")
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()


def test_live_search_answers_htmx_with_just_the_rows(world) -> None:
    response = client_for("bob", world).get(LIST + "?q=lap", HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert response.status_code == 200 and "laptop" in body and "<html" not in body


def test_the_list_needs_the_same_queries_however_many_tokens(world) -> None:
    client = client_for("bob", world)
    with CaptureQueriesContext(connection) as few:
        client.get(LIST)
    for n in range(8):
        services.create_access_token(world["bob"], f"more{n}", patterns=["web/x"], context=SYSTEM)  # type: ignore[arg-type]
    with CaptureQueriesContext(connection) as many:
        body = client.get(LIST).content.decode()
    assert "more7" in body
    assert len(many) == len(few)


# --- making a token ----------------------------------------------------------------------


def test_a_new_token_is_shown_once_and_signs_in(world) -> None:
    client = client_for("bob", world)
    data = {"name": "build", "patterns": "web/app\nweb/tools/*\n", "read_only": ""}
    response = client.post(NEW, data)
    assert response.status_code == 201
    secret = shown_secret(response)
    body = response.content.decode()
    assert "docker login -u 'bob' --password-stdin registry.example.org" in body
    assert reverse("setup:index") in body
    assert "Cache-Control" in response and "no-store" in response["Cache-Control"]
    assert not list(get_messages(response.wsgi_request))
    assert secret not in str(dict(client.session))
    assert secret not in client.get(LIST).content.decode()
    token = PersonalAccessToken.objects.get(user__username="bob", name="build")
    assert token.patterns == ["web/app", "web/tools/*"] and not token.read_only
    assert secret not in token.secret_hash
    assert granted(ask_registry("bob", secret, "repository:web/app:pull,push")) == {"web/app": ["pull", "push"]}
    assert granted(ask_registry("bob", secret, "repository:web/other:pull")) == {"web/other": []}


def test_making_a_token_writes_a_credential_record_without_the_secret(world) -> None:
    response = client_for("carol", world).post(NEW, {"name": "ro", "read_only": "on"})
    secret = shown_secret(response)
    record = AuditRecord.objects.filter(kind="credential", detail__action="token.create").latest("id")
    assert record.actor == "carol" and record.detail["credential"] == "carol/ro" and record.detail["read_only"]
    assert secret not in str(record.detail)


def test_an_expiry_day_lasts_through_that_utc_day(world) -> None:
    day = (timezone.now() + timedelta(days=5)).date()
    client_for("bob", world).post(NEW, {"name": "week", "expires_on": day.isoformat()})
    token = PersonalAccessToken.objects.get(name="week")
    assert token.expires_at is not None and token.expires_at.date() == day + timedelta(days=1)
    assert (token.expires_at.hour, token.expires_at.minute) == (0, 0)


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"name": ""}, "name", "This field is required."),
        ({"name": "x" * 101}, "name", "at most 100 characters"),
        ({"name": "nul\x00byte"}, "name", "Null characters are not allowed."),
        ({"name": "laptop"}, "name", "bob already has a token named 'laptop'."),
        ({"name": "p", "patterns": "web/app\nweb//x"}, "patterns", "Line 2: pattern 'web//x' is invalid"),
        ({"name": "p", "patterns": "\n".join(f"web/a{n}" for n in range(51))}, "patterns", "At most 50 lines"),
        ({"name": "p", "expires_on": "2001-01-01"}, "expires_on", "already over"),
        ({"name": "p", "expires_on": "31/31/2030"}, "expires_on", "Enter a valid date."),
    ],
)
def test_bad_input_is_a_400_with_the_message_on_the_page(world, data, field: str, message: str) -> None:
    before = PersonalAccessToken.objects.count()
    response = client_for("bob", world).post(NEW, data)
    assert response.status_code == 400
    assert message in " ".join(response.context["form"].errors[field])
    assert message in response.content.decode().replace("&#x27;", "'")
    assert "rga_" not in response.content.decode()
    assert PersonalAccessToken.objects.count() == before


# --- revoking ------------------------------------------------------------------------------


def test_the_owner_revokes_a_token_and_it_stops_working(world) -> None:
    client = client_for("bob", world)
    secret = shown_secret(client.post(NEW, {"name": "gone"}))
    token = PersonalAccessToken.objects.get(name="gone")
    response = client.post(revoke_url(token), follow=True)
    assert response.redirect_chain == [(LIST, 302)]
    assert "Revoked the token gone" in response.content.decode()
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert ask_registry("bob", secret, "repository:web/app:pull").status_code == 401
    record = AuditRecord.objects.filter(kind="credential", detail__action="token.revoke").latest("id")
    assert (record.actor, record.detail["credential"]) == ("bob", "bob/gone")


@pytest.mark.parametrize("persona", ["carol", "alice", "audrey"])
def test_someone_elses_token_is_not_found_and_stays(world, persona: str) -> None:
    response = client_for(persona, world).post(revoke_url(world["laptop"]))
    assert response.status_code == 404
    assert "laptop" not in response.content.decode()
    assert PersonalAccessToken.objects.get(pk=world["laptop"].pk).revoked_at is None  # type: ignore[attr-defined]


def test_an_unknown_token_is_not_found(world) -> None:
    assert client_for("ada", world).post(reverse("tokens:revoke", kwargs={"pk": 99999})).status_code == 404


def test_an_admin_revokes_anyones_token_and_goes_back_where_they_came_from(world) -> None:
    back = "/manage/users/bob/"
    response = client_for("ada", world).post(revoke_url(world["laptop"]), {"next": back})
    assert response.status_code == 302 and response["Location"] == back
    assert PersonalAccessToken.objects.get(pk=world["laptop"].pk).revoked_at is not None  # type: ignore[attr-defined]
    record = AuditRecord.objects.filter(kind="credential", detail__action="token.revoke").latest("id")
    assert (record.actor, record.detail["credential"]) == ("ada", "bob/laptop")


@pytest.mark.parametrize("unsafe", ["https://evil.example/", "//evil.example/x", ""])
def test_an_unsafe_next_goes_to_the_list(world, unsafe: str) -> None:
    response = client_for("ada", world).post(revoke_url(world["ci"]), {"next": unsafe})
    assert response.status_code == 302 and response["Location"] == LIST


def test_the_changes_need_a_csrf_token(world) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(world["bob"])  # type: ignore[arg-type]
    assert client.post(NEW, {"name": "sneaky"}).status_code == 403
    assert client.post(revoke_url(world["laptop"])).status_code == 403
    assert not PersonalAccessToken.objects.filter(name="sneaky").exists()


def shown_secret(response: HttpResponse) -> str:
    return _shown(response, "rga_")
