"""Forms for the admins' user pages: they parse input; ``services`` validates the user and changes it.

A password field left empty means "generate one": the page shows it once and stores nothing but its hash.

Was ``accounts/user_forms.py`` before the layout split.
"""

from __future__ import annotations

import secrets
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from accounts.models import Team, TeamRole, User
from accounts.web.forms.common import suggesting

GENERATED_PASSWORD_BYTES = 18  # 24 URL-safe characters, 144 random bits: far past any guessing


def generate_password() -> str:
    """A strong random password for an admin to hand over (it is never stored in clear)."""
    return secrets.token_urlsafe(GENERATED_PASSWORD_BYTES)


class UserFilterForm(forms.Form):
    """The user list's search box and filters (all optional)."""

    ROLES = [
        ("", "Every role"),
        ("admin", "Administrators"),
        ("auditor", "Auditors"),
        ("lead", "Team leads"),
        ("other", "Everyone else"),
    ]
    STATES = [("", "Active and inactive"), ("active", "Active"), ("inactive", "Inactive")]

    q = forms.CharField(required=False, max_length=150, label="Search")
    role = forms.ChoiceField(required=False, choices=ROLES)
    active = forms.ChoiceField(required=False, choices=STATES, label="State")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["q"].widget.attrs.update(placeholder="username, name or email", autocomplete="off")

    def value(self, name: str) -> str:
        """The cleaned value of a filter, or "" when it was missing or invalid (the page then says why)."""
        return self.cleaned_data.get(name, "") if hasattr(self, "cleaned_data") else ""


class PasswordField(forms.CharField):
    """A password typed by the admin, or nothing to have one generated."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("help_text", "Leave empty to generate a strong one, shown once on the next page.")
        super().__init__(
            required=False,
            strip=False,
            widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
            **kwargs,
        )


class PasswordChoice:
    """What forms with a ``password`` field share: the password to set, and whether we made it up."""

    cleaned_data: dict[str, Any]

    def password_to_set(self) -> tuple[str, bool]:
        typed: str = self.cleaned_data.get("password") or ""
        return (typed, False) if typed else (generate_password(), True)


class NewUserForm(PasswordChoice, forms.Form):
    """A new person: profile, flags and the first password."""

    username = forms.CharField(max_length=150, help_text="Letters, digits and @ . + - _ only.")
    email = forms.EmailField(required=False, max_length=254)
    first_name = forms.CharField(required=False, max_length=150)
    last_name = forms.CharField(required=False, max_length=150)
    is_superuser = forms.BooleanField(required=False, label="Administrator", help_text="May change everything.")
    is_auditor = forms.BooleanField(required=False, label="Auditor", help_text="May read everything, change nothing.")
    catalog_access = forms.BooleanField(
        required=False, label="Catalog access", help_text="May list the registry catalog."
    )
    is_active = forms.BooleanField(required=False, initial=True, label="Active", help_text="May sign in.")
    password = PasswordField()

    def profile(self) -> dict[str, Any]:
        """Everything but the username and password, as ``services.create_user``/``update_user`` take it."""
        return {name: self.cleaned_data[name] for name in self.fields if name not in ("username", "password")}


class EditUserForm(forms.Form):
    """An admin changes a person's profile and flags; an admin may not lock themselves out."""

    email = forms.EmailField(required=False, max_length=254)
    first_name = forms.CharField(required=False, max_length=150)
    last_name = forms.CharField(required=False, max_length=150)
    is_active = forms.BooleanField(
        required=False, label="Active", help_text="Deactivating also signs them out of every docker login."
    )
    is_superuser = forms.BooleanField(required=False, label="Administrator")
    is_auditor = forms.BooleanField(required=False, label="Auditor")
    catalog_access = forms.BooleanField(required=False, label="Catalog access")

    def __init__(self, *args: Any, person: User, acting_user: Any, **kwargs: Any) -> None:
        kwargs.setdefault("initial", {name: getattr(person, name) for name in self.base_fields})
        super().__init__(*args, **kwargs)
        self.is_self = person.pk == acting_user.pk

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.is_self and not data.get("is_superuser"):
            raise ValidationError("You cannot remove your own administrator flag: ask another admin.", code="lockout")
        if self.is_self and not data.get("is_active"):
            raise ValidationError("You cannot deactivate yourself: ask another admin.", code="lockout")
        return data


class SetPasswordForm(PasswordChoice, forms.Form):
    """An admin resets someone's password (typed, or generated and shown once)."""

    password = PasswordField(label="New password")


class ActiveForm(forms.Form):
    """One click to deactivate or reactivate someone; the same no-lockout rule as the edit form."""

    active = forms.TypedChoiceField(choices=[("1", "active"), ("0", "inactive")], coerce=lambda v: v == "1")

    def __init__(self, *args: Any, person: User, acting_user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.is_self = person.pk == acting_user.pk

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.is_self and data.get("active") is False:
            raise ValidationError("You cannot deactivate yourself: ask another admin.", code="lockout")
        return data


class AddToTeamForm(forms.Form):
    """From a person's page: put them in a team (or change their role there), picked by name."""

    team = forms.ModelChoiceField(
        queryset=Team.objects.all(),
        to_field_name="name",
        widget=suggesting("teams", "suggest-team", placeholder="web"),
        error_messages={"invalid_choice": "No team is called that."},
    )
    role = forms.ChoiceField(choices=TeamRole.choices, initial=TeamRole.MEMBER)
