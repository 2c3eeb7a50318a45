"""The sign-in page: where the first admin password is, until someone has signed in; the Teams link."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Team, User
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def password_file(settings: object, tmp_path: Path) -> Path:
    settings.DATA_DIR = tmp_path  # type: ignore[attr-defined]
    path = tmp_path / "initial-admin-password"
    path.write_text("secret\n")
    return path


def test_the_sign_in_page_says_where_the_first_admin_password_is_before_anyone_signed_in(
    password_file: Path, ada: User
) -> None:
    page = Client().get(reverse("accounts:login")).content.decode()
    assert str(password_file) in page


def test_the_sign_in_page_says_nothing_of_it_once_someone_has_signed_in(password_file: Path, ada: User) -> None:
    User.objects.filter(pk=ada.pk).update(last_login=timezone.now())
    page = Client().get(reverse("accounts:login")).content.decode()
    assert "initial-admin-password" not in page


def test_the_sign_in_page_says_nothing_of_it_when_no_password_file_was_written(
    settings: object, tmp_path: Path, ada: User
) -> None:
    settings.DATA_DIR = tmp_path  # type: ignore[attr-defined]
    assert "initial-admin-password" not in Client().get(reverse("accounts:login")).content.decode()


def test_the_teams_link_shows_for_team_members_admins_and_auditors_only(
    ada: User, audrey: User, alice: User, bob: User, carol: User, web: Team
) -> None:
    world = {"ada": ada, "audrey": audrey, "alice": alice, "bob": bob, "carol": carol}
    teams = f'href="{reverse("teams:list")}"'
    for persona in ("ada", "audrey", "alice", "bob"):
        assert teams in client_for(persona, world).get(reverse("accounts:my_access")).content.decode(), persona
    assert teams not in client_for("carol", world).get(reverse("accounts:my_access")).content.decode()


def test_the_header_names_the_signed_in_person_once(bob: User) -> None:
    page = client_for("bob", {"bob": bob}).get(reverse("accounts:my_access")).content.decode()
    header = page.split("<header", 1)[1].split("</header>", 1)[0]
    assert header.count("bob") == 1
