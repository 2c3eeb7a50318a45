"""The first face: sign-in, "my access", sign-out, health, and the interim admin."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from django.test import Client, RequestFactory
from django.urls import reverse

from accounts import services
from accounts.models import Grant, Team, User
from accounts.services import ensure_keys, new_refresh_token
from audit.models import AuditRecord
from registryadmin.pages import next_url
from tests.conftest import PASSWORD, SYSTEM

pytestmark = pytest.mark.django_db


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_visitor_is_sent_to_the_sign_in_form(client: Client) -> None:
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")
    page = client.get(response["Location"]).content.decode()
    assert 'name="username"' in page and 'name="password"' in page


def test_signing_in_shows_my_access_with_reasons(carol: User, web: Team) -> None:
    services.create_grant(carol, "web/app", "read", context=SYSTEM)
    services.create_grant(web, "web/**", "write", context=SYSTEM)
    client = Client(enforce_csrf_checks=True)
    login_page = client.get("/login/")
    token = login_page.cookies["csrftoken"].value
    response = client.post(
        "/login/", {"username": "carol", "password": PASSWORD, "csrfmiddlewaretoken": token}, follow=True
    )
    page = response.content.decode()
    assert response.status_code == 200
    assert "My access" in page and "web/app" in page and "pull" in page
    assert "web/**" not in page  # carol is not in team web


def test_a_team_member_sees_the_team_grant(bob: User, web: Team) -> None:
    services.create_grant(web, "web/**", "write", context=SYSTEM)
    page = signed_in(bob).get("/").content.decode()
    assert "web/**" in page and "push" in page and "web" in page


def test_a_wrong_password_is_refused_without_saying_which_part(carol: User, client: Client) -> None:
    response = client.post("/login/", {"username": "carol", "password": "wrong"})
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()


def test_an_inactive_user_cannot_sign_in(dave: User, client: Client) -> None:
    response = client.post("/login/", {"username": "dave", "password": PASSWORD})
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session


def test_sign_out_is_a_post(carol: User) -> None:
    client = signed_in(carol)
    assert client.get("/logout/").status_code == 405
    assert client.post("/logout/").status_code == 302
    assert client.get("/").status_code == 302


def test_login_without_csrf_token_is_refused(carol: User) -> None:
    client = Client(enforce_csrf_checks=True)
    assert client.post("/login/", {"username": "carol", "password": PASSWORD}).status_code == 403


def test_healthz_reports_the_database(client: Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}
    assert response["X-Request-ID"]


def test_a_request_id_is_taken_only_from_a_trusted_proxy(client: Client, settings) -> None:
    assert client.get("/healthz", HTTP_X_REQUEST_ID="abc-123")["X-Request-ID"] != "abc-123"
    import ipaddress

    settings.TRUSTED_PROXIES = [ipaddress.ip_network("127.0.0.0/8")]
    assert client.get("/healthz", HTTP_X_REQUEST_ID="abc-123")["X-Request-ID"] == "abc-123"
    assert client.get("/healthz", HTTP_X_REQUEST_ID="<script>")["X-Request-ID"] != "<script>"
    assert client.get("/healthz", HTTP_X_REQUEST_ID="abc\n")["X-Request-ID"] != "abc\n"


def test_the_admin_is_closed_to_non_admins(carol: User, audrey: User) -> None:
    assert signed_in(carol).get("/admin/").status_code == 302
    assert signed_in(audrey).get("/admin/").status_code == 302


def test_admin_saves_go_through_the_services(ada: User, carol: User) -> None:
    client = signed_in(ada)
    response = client.post(
        reverse("admin:accounts_grant_add"), {"pattern": "web/app", "role": "read", "user": carol.pk}
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    record = AuditRecord.objects.get(detail__action="grant.create")
    assert record.actor == "ada" and record.ip == "127.0.0.1"
    assert Grant.objects.get().created_by == ada


def test_admin_refuses_a_bad_pattern_with_a_form_error(ada: User, carol: User) -> None:
    response = signed_in(ada).post(
        reverse("admin:accounts_grant_add"), {"pattern": "Web/App", "role": "read", "user": carol.pk}
    )
    assert response.status_code == 200
    assert "invalid" in response.content.decode()
    assert not Grant.objects.exists()


def test_admin_bulk_delete_goes_through_the_services(ada: User, carol: User, bob: User) -> None:
    response = signed_in(ada).post(
        reverse("admin:accounts_user_changelist"),
        {"action": "delete_selected", "_selected_action": [carol.pk, bob.pk], "post": "yes"},
    )
    assert response.status_code == 302
    deleted = AuditRecord.objects.filter(detail__action="user.delete")
    assert set(deleted.values_list("detail__target", flat=True)) == {"carol", "bob"}


def test_admin_password_change_is_audited(ada: User, carol: User) -> None:
    url = reverse("admin:auth_user_password_change", args=(carol.pk,))
    response = signed_in(ada).post(
        url, {"password1": "a-brand-new-phrase", "password2": "a-brand-new-phrase", "usable_password": "true"}
    )
    assert response.status_code == 302
    assert AuditRecord.objects.filter(detail__action="user.set_password", detail__target="carol").exists()
    carol.refresh_from_db()
    assert carol.check_password("a-brand-new-phrase")


def test_admin_user_change_records_flags(ada: User, carol: User) -> None:
    url = reverse("admin:accounts_user_change", args=(carol.pk,))
    data = {
        "username": "carol",
        "email": "",
        "first_name": "",
        "last_name": "",
        "is_active": "on",
        "is_auditor": "on",
        "date_joined_0": "2026-01-01",
        "date_joined_1": "00:00:00",
    }
    response = signed_in(ada).post(url, data)
    assert response.status_code == 302, response.content.decode()[:3000]
    record = AuditRecord.objects.get(detail__action="user.update")
    assert record.detail["after"] == {"is_auditor": True}


def test_createsuperuser_goes_through_the_services(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "root-level-passphrase")
    call_command("createsuperuser", "--username", "root", "--noinput")
    assert User.objects.get(username="root").is_superuser
    assert AuditRecord.objects.filter(detail__action="user.create", actor="manage.py createsuperuser").exists()


def test_createsuperuser_reads_the_password_from_a_file(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("file-held-passphrase\n")
    monkeypatch.delenv("DJANGO_SUPERUSER_PASSWORD", raising=False)
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD_FILE", str(secret))
    call_command("createsuperuser", "--username", "root", "--noinput")
    assert User.objects.get(username="root").check_password("file-held-passphrase")
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "both")
    with pytest.raises(CommandError, match="not both"):
        call_command("createsuperuser", "--username", "root2", "--noinput")


def test_my_access_flags_grants_expiring_within_a_week(carol: User) -> None:
    from datetime import timedelta

    from django.utils import timezone

    services.create_grant(carol, "web/app", "read", expires_at=timezone.now() + timedelta(days=2), context=SYSTEM)
    services.create_grant(carol, "web/later", "read", expires_at=timezone.now() + timedelta(days=30), context=SYSTEM)
    page = signed_in(carol).get("/").content.decode()
    assert page.count('class="soon"') == 1
    assert "UTC" in page


def test_admin_creates_a_robot_showing_the_secret_once(ada: User, web: Team) -> None:
    client = signed_in(ada)
    response = client.post(reverse("admin:accounts_robot_add"), {"team": web.pk, "name": "ci"}, follow=True)
    shown = [str(m) for m in response.context["messages"]]
    assert any("rgb_" in m and "robot$web+ci" in m for m in shown)
    assert AuditRecord.objects.filter(detail__action="robot.create").exists()
    response = client.post(
        reverse("admin:accounts_robot_changelist"), {"action": "revoke", "_selected_action": [web.robots.get().pk]}
    )
    assert response.status_code == 302
    assert web.robots.get().revoked_at is not None


def test_admin_revokes_refresh_tokens(ada: User, carol: User) -> None:
    new_refresh_token(carol, "registry", "docker")
    response = signed_in(ada).post(
        reverse("admin:accounts_user_changelist"), {"action": "revoke_refresh_tokens", "_selected_action": [carol.pk]}
    )
    assert response.status_code == 302
    assert not carol.refresh_tokens.filter(revoked_at__isnull=True).exists()
    assert AuditRecord.objects.filter(detail__action="user.revoke_refresh_tokens").exists()


def test_signing_keys_are_read_only_in_the_admin(ada: User) -> None:
    ensure_keys()
    client = signed_in(ada)
    assert client.get(reverse("admin:accounts_signingkey_changelist")).status_code == 200
    assert client.get(reverse("admin:accounts_signingkey_add")).status_code == 403


def test_my_access_says_grants_are_not_enforced_in_htpasswd_mode(carol: User) -> None:
    services.create_registry("legacy", auth_mode="htpasswd", context=SYSTEM)
    page = signed_in(carol).get("/").content.decode()
    assert "not enforced in this mode" in page
    assert "legacy" in page


def test_every_persona_reaches_its_pages_from_the_navigation(carol: User, audrey: User) -> None:
    page = signed_in(carol).get("/").content.decode()
    # carol is in no team: no Teams link for her (issue 20); auditors see every team.
    assert 'href="/teams/"' not in page and 'href="/access/why"' in page
    assert 'href="/audit/"' not in page and 'href="/access/who"' not in page
    page = signed_in(audrey).get("/").content.decode()
    assert 'href="/audit/"' in page and 'href="/access/who"' in page and 'href="/teams/"' in page


@pytest.mark.parametrize(
    "path",
    [
        "/access/user/%00",
        "/manage/users/%00/",
        "/manage/registries/%00/bundle.pem",
        "/registry/%00/events",
    ],
)
def test_a_nul_byte_in_the_address_is_a_clear_400(ada: User, path: str) -> None:
    response = signed_in(ada).get(path)
    assert response.status_code == 400 and b"NUL" in response.content


def test_the_token_endpoint_still_records_a_nul_byte_itself(client: Client) -> None:
    response = client.get("/auth/token?service=registry&scope=repository:a%00b:pull")
    assert response.status_code == 400
    assert AuditRecord.objects.filter(kind="access", outcome="invalid").exists()


@pytest.mark.parametrize(
    ("given", "expected"),
    [("/manage/grants/?role=read", "/manage/grants/?role=read"), ("abc", "/home"), ("//evil.example/x", "/home"),
     ("https://evil.example/", "/home"), ("", "/home")],
)  # fmt: skip
def test_the_way_back_after_a_change_is_only_a_path_on_this_site(given: str, expected: str) -> None:
    request = RequestFactory().post("/x", {"next": given})
    assert next_url(request, "/home") == expected


@pytest.mark.parametrize(
    "path",
    [
        "/manage/registries/?mode=bogus",
        "/manage/jobs/?outcome=bogus",
        "/me/tokens/?state=x",
        "/manage/users/?role=bogus",
        "/manage/robots/?state=bogus",
        "/manage/grants/?role=bogus",
        "/manage/repositories/?public=bogus",
        "/teams/?q=" + "x" * 101,
    ],
)
def test_a_bad_filter_is_a_400_page_but_a_200_partial_that_shows_why(ada: User, path: str) -> None:
    client = signed_in(ada)
    whole = client.get(path)
    assert whole.status_code == 400
    partial = client.get(path, headers={"HX-Request": "true"})
    assert partial.status_code == 200  # htmx swaps only 2xx answers
    assert 'role="alert"' in partial.content.decode() and "<html" not in partial.content.decode()
    assert "HX-Request" in whole["Vary"] and "HX-Request" in partial["Vary"]


def test_overseers_reach_the_change_log_from_the_navigation(ada: User, audrey: User, carol: User) -> None:
    services.create_team("ops", context=SYSTEM)
    for person in (ada, audrey):
        page = signed_in(person).get("/").content.decode()
        assert 'href="/audit/?kind=admin_change"' in page
    changes = signed_in(audrey).get("/audit/?kind=admin_change").content.decode()
    assert "team.create" in changes
    assert 'href="/audit/?kind=admin_change"' not in signed_in(carol).get("/").content.decode()
