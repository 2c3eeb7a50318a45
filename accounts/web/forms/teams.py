"""Forms for the team pages (admins make teams and map directory groups, leads add members and grants).

The services decide what is allowed.

Was ``accounts/forms.py`` before the layout split.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from accounts.constants import ROBOT_LOGIN_PREFIX, ROLE_ORDER
from accounts.models import Robot, Role, Team, TeamRole, User
from accounts.validators import pattern_validator
from accounts.web.forms.common import ExpiryMixin, suggesting


class AddMemberForm(forms.Form):
    """Add a user to a team, or change the role they have in it."""

    username = forms.ModelChoiceField(
        queryset=User.objects.all(),
        to_field_name="username",
        widget=suggesting("users", "suggest-member"),
        error_messages={"invalid_choice": "No user is called that."},
    )
    role = forms.ChoiceField(choices=TeamRole.choices, initial=TeamRole.MEMBER)


class DirectoryGroupForm(forms.Form):
    """An admin maps a directory group to the team, or changes the role a mapped group gives.

    The field is ``group``, the key ``services.directory`` names in its errors (not a DN, outside
    ``LDAP_GROUP_SEARCH_BASE``), so they show on it.
    """

    group = forms.CharField(
        max_length=1024,
        label="Group DN",
        widget=forms.TextInput(attrs={"autocomplete": "off", "placeholder": "cn=web-devs,ou=groups,dc=example,dc=org"}),
    )
    role = forms.ChoiceField(choices=TeamRole.choices, initial=TeamRole.MEMBER, label="Role it gives")


class GrantForm(ExpiryMixin, forms.Form):
    """A lead's grant: a user or one of the team's robots, a pattern, a role up to the team's strongest."""

    subject = forms.CharField(
        max_length=255,
        widget=suggesting("users", "suggest-grantee"),
        help_text=f"A username, or a robot of this team ({ROBOT_LOGIN_PREFIX}<team>+<name>).",
    )
    pattern = forms.CharField(max_length=255, validators=[pattern_validator])
    role = forms.ChoiceField(choices=())
    expires_on = forms.DateField(
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Optional. The grant lasts through this day and expires at 00:00 UTC the next day.",
    )

    def __init__(self, *args: Any, team: Team, cap: str | None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.team = team
        self.cap = cap
        allowed = ROLE_ORDER[: ROLE_ORDER.index(cap) + 1] if cap else ()
        role_field: forms.ChoiceField = self.fields["role"]  # type: ignore[assignment]
        role_field.choices = [(value, label) for value, label in Role.choices if value in allowed]
        role_field.error_messages["invalid_choice"] = (
            f"Team {team.name} holds at most {cap}; %(value)s is beyond it."
            if cap
            else f"Team {team.name} holds no grants, so it has nothing to hand out."
        )

    def clean_subject(self) -> User | Robot:
        name: str = self.cleaned_data["subject"].strip()
        subject: User | Robot | None
        if name.startswith(ROBOT_LOGIN_PREFIX):
            own_prefix = f"{ROBOT_LOGIN_PREFIX}{self.team.name}+"
            robots = Robot.objects.select_related("team").filter(team=self.team)
            subject = robots.filter(name=name.removeprefix(own_prefix)).first() if name.startswith(own_prefix) else None
        else:
            subject = User.objects.filter(username=name).first()
        if subject is None:
            raise ValidationError(f"No user or robot of team {self.team.name} is called {name!r}.", code="unknown")
        return subject


class TeamForm(forms.Form):
    """An admin's new team: a slug name and what the team is for."""

    name = forms.SlugField(max_length=100, help_text="Letters, digits, - or _; robots sign in as robot$<team>+<name>.")
    description = forms.CharField(max_length=255, required=False)


class TeamEditForm(forms.Form):
    """What an admin may change about a team once made (the name is in robots' login names)."""

    description = forms.CharField(max_length=255, required=False)


class DeleteTeamForm(forms.Form):
    """Deleting a team takes its memberships, grants and robots: the admin types its name to confirm."""

    confirm = forms.CharField(max_length=100, label="Type the team's name to confirm")

    def __init__(self, *args: Any, team: Team, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.team = team

    def clean_confirm(self) -> str:
        typed: str = self.cleaned_data["confirm"].strip()
        if typed != self.team.name:
            raise ValidationError(f"Type {self.team.name} exactly to delete the team.", code="mismatch")
        return typed


class ExpiryChangeForm(ExpiryMixin, forms.Form):
    """A managed grant's new last day, or none ("never expires", which the team's own expiry may cap)."""

    expires_on = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    no_expiry = forms.BooleanField(required=False, label="Never expires")

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if bool(data.get("no_expiry")) == bool(data.get("expires_on")) and not self.errors:
            raise ValidationError("Give a new last day, or tick “never expires”.", code="expiry")
        return data

    @property
    def new_expiry(self) -> datetime | None:
        return None if self.cleaned_data["no_expiry"] else self.expires_at
