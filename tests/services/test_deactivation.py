"""Deactivating someone ends their web sessions, so reactivating them does not bring those back.

ada is the admin, bob is signed in twice (laptop and phone), carol is signed in and stays active.
"""

from __future__ import annotations

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.db import transaction
from django.test import Client
from django.urls import reverse

from accounts import services
from accounts.models import User
from accounts.services.users import end_web_sessions
from audit.models import AuditRecord
from tests.conftest import PASSWORD, SYSTEM

pytestmark = pytest.mark.django_db


def signed_in(username: str) -> Client:
    """A client signed in through the sign-in form, holding a real session cookie."""
    client = Client()
    response = client.post(reverse("accounts:login"), {"username": username, "password": PASSWORD})
    assert response.status_code == 302 and settings.SESSION_COOKIE_NAME in client.cookies
    assert client.get(reverse("accounts:home")).status_code == 200
    return client


def is_anonymous(client: Client) -> bool:
    response = client.get(reverse("accounts:home"))
    return response.status_code == 302 and response["Location"].startswith(reverse("accounts:login"))


def test_a_deactivated_persons_old_session_stays_ended_after_reactivation(bob: User, carol: User) -> None:
    laptop, phone, other = signed_in("bob"), signed_in("bob"), signed_in("carol")
    services.update_user(bob, is_active=False, context=SYSTEM)
    services.update_user(bob, is_active=True, context=SYSTEM)
    assert is_anonymous(laptop) and is_anonymous(phone)
    assert not is_anonymous(other)  # carol's session is not bob's
    assert not is_anonymous(signed_in("bob"))  # and bob may sign in again


def test_the_deactivation_record_counts_the_sessions_it_ended(bob: User) -> None:
    signed_in("bob"), signed_in("bob")
    services.update_user(bob, is_active=False, context=SYSTEM)
    change = AuditRecord.objects.filter(detail__action="user.update").latest("id").detail
    assert change["before"] == {"is_active": True}
    assert change["after"] == {"is_active": False, "web_sessions_ended": 2}


def test_sessions_end_in_the_same_transaction_as_the_audit_record(bob: User) -> None:
    laptop = signed_in("bob")
    records = AuditRecord.objects.count()

    def deactivate_then_fail() -> None:
        with transaction.atomic():
            services.update_user(bob, is_active=False, context=SYSTEM)
            raise RuntimeError("the change is rolled back")

    with pytest.raises(RuntimeError):
        deactivate_then_fail()
    assert AuditRecord.objects.count() == records
    assert Session.objects.count() == 1 and not is_anonymous(laptop)


def test_an_admin_deactivating_from_the_dashboard_ends_the_session_too(ada: User, bob: User) -> None:
    laptop = signed_in("bob")
    admin = signed_in("ada")
    url = reverse("users:active", kwargs={"username": "bob"})
    assert admin.post(url, {"active": "0"}).status_code == 302
    assert admin.post(url, {"active": "1"}).status_code == 302
    assert User.objects.get(username="bob").is_active
    assert is_anonymous(laptop)
    assert not is_anonymous(admin)


def test_only_a_real_deactivation_ends_sessions(bob: User) -> None:
    laptop = signed_in("bob")
    services.update_user(bob, email="bob@new.example", context=SYSTEM)
    services.update_user(bob, is_active=True, context=SYSTEM)
    assert not is_anonymous(laptop)
    assert end_web_sessions(bob) == 1 and is_anonymous(laptop)
