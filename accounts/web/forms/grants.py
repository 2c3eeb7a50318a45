"""Forms for the admins' grant and repository pages: list filters, a new grant, a grant's new role or expiry.

They parse and validate input; the services decide what is allowed (a robot's grant lies inside its
team's, no duplicates) and their ValidationErrors land on these fields through ``add_service_error``.
Filters narrow a queryset in the database, so the lists stay one query per page however many rows.

Was ``accounts/grant_forms.py`` before the layout split.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet

from accounts.access.subjects import find_robot
from accounts.constants import ROBOT_LOGIN_PREFIX
from accounts.models import Grant, Registry, Robot, Role, Team, User
from accounts.validators import pattern_validator
from accounts.web.forms.common import ExpiryMixin, suggesting

EVERY_REGISTRY = "*"
SOON = timedelta(days=7)
NO_SUCH_TEAM = "No team is called that."


# --- shared fields ------------------------------------------------------------------


def registry_filter_choices() -> list[tuple[str, str]]:
    """Any registry, rows for every registry (no specific one), or one registry by service name."""
    services = Registry.objects.values_list("service", flat=True)
    return [("", "Any registry"), (EVERY_REGISTRY, "Every registry (none named)"), *((s, s) for s in services)]


def registry_condition(value: str) -> Q:
    if value == EVERY_REGISTRY:
        return Q(registry__isnull=True)
    return Q(registry__service=value) if value else Q()


def _expiry_field() -> forms.DateField:
    return forms.DateField(
        required=False,
        label="Expires on",
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Optional. The grant lasts through this day and expires at 00:00 UTC the next day.",
    )


def _team_field(label: str, help_text: str = "") -> forms.ModelChoiceField:
    return forms.ModelChoiceField(
        queryset=Team.objects.all(),
        to_field_name="name",
        required=False,
        label=label,
        help_text=help_text,
        widget=suggesting("teams", "suggest-managed-by", placeholder="web"),
        error_messages={"invalid_choice": NO_SUCH_TEAM},
    )


# --- the grant list's filters -------------------------------------------------------


class GrantState:
    CURRENT = "current"
    EXPIRING = "expiring"
    EXPIRED = "expired"
    CHOICES = [("", "Any state"), (CURRENT, "Current"), (EXPIRING, "Expiring within 7 days"), (EXPIRED, "Expired")]


class GrantFilterForm(forms.Form):
    """Every criterion optional; they combine (AND)."""

    subject = forms.CharField(
        required=False,
        max_length=255,
        label="Given to",
        widget=forms.TextInput(attrs={"type": "search", "placeholder": "carol, web or robot$web+ci"}),
    )
    pattern = forms.CharField(
        required=False, max_length=255, widget=forms.TextInput(attrs={"type": "search", "placeholder": "web/"})
    )
    role = forms.ChoiceField(required=False, choices=[("", "Any role"), *Role.choices])
    registry = forms.ChoiceField(required=False, choices=registry_filter_choices)
    managed_by = _team_field("Managed by")
    state = forms.ChoiceField(required=False, choices=GrantState.CHOICES)

    def apply(self, grants: QuerySet[Grant], now: datetime) -> QuerySet[Grant]:
        data = self.cleaned_data
        grants = grants.filter(registry_condition(data["registry"]), self._state(data["state"], now))
        if data["subject"]:
            grants = grants.given_to(data["subject"])
        if data["pattern"]:
            # Patterns are lowercase by validation: a plain LIKE is the same test without UPPER() on every row.
            grants = grants.filter(pattern__contains=data["pattern"].lower())
        if data["role"]:
            grants = grants.filter(role=data["role"])
        if data["managed_by"]:
            grants = grants.filter(managed_by=data["managed_by"])
        return grants

    @staticmethod
    def _state(state: str, now: datetime) -> Q:
        if state == GrantState.CURRENT:
            return Q(expires_at__isnull=True) | Q(expires_at__gt=now)
        if state == GrantState.EXPIRING:
            return Q(expires_at__gt=now, expires_at__lte=now + SOON)
        if state == GrantState.EXPIRED:
            return Q(expires_at__lte=now)
        return Q()


# --- a new grant --------------------------------------------------------------------


class SubjectKind:
    USER = "user"
    TEAM = "team"
    ROBOT = "robot"
    CHOICES = [(USER, "User"), (TEAM, "Team"), (ROBOT, "Robot")]


def find_subject(kind: str, name: str) -> User | Team | Robot | None:
    """The user, team or robot (``robot$web+ci``, global ``robot$ci``; the prefix may be left out)."""
    if kind == SubjectKind.USER:
        return User.objects.filter(username=name).first()
    if kind == SubjectKind.TEAM:
        return Team.objects.filter(name=name).first()
    return find_robot(name)


class NewGrantForm(ExpiryMixin, forms.Form):
    """An admin's grant to any user, team or robot."""

    subject_kind = forms.ChoiceField(choices=SubjectKind.CHOICES, initial=SubjectKind.USER, label="Give to a")
    subject = forms.CharField(
        max_length=255,
        label="Name",
        widget=suggesting("users", "suggest-subject"),
        help_text=f"A username, a team name, or a robot login ({ROBOT_LOGIN_PREFIX}<team>+<name>).",
    )
    pattern = forms.CharField(
        max_length=255,
        validators=[pattern_validator],
        widget=forms.TextInput(attrs={"placeholder": "web/app, web/* or web/**"}),
        help_text="A name, or a glob: * within one path component, ** for one or more components.",
    )
    role = forms.ChoiceField(choices=Role.choices)
    registry = forms.ModelChoiceField(
        queryset=Registry.objects.all(), to_field_name="service", required=False, empty_label="Every registry"
    )
    expires_on = _expiry_field()
    managed_by = _team_field("Managed by team", "Optional. That team's leads may revoke the grant.")

    @classmethod
    def prefill(cls, query: Any) -> dict[str, str]:
        """Initial values from ``?user=``, ``?team=`` or ``?robot=`` (other pages link here with one)."""
        for kind, _label in SubjectKind.CHOICES:
            name = query.get(kind, "").strip()[:255]
            if kind == SubjectKind.ROBOT:
                name = name.replace(" ", "+")  # a link that forgot to encode robot$web+ci; logins hold no spaces
            if name:
                return {"subject_kind": kind, "subject": name}
        return {}

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        kind, name = data.get("subject_kind"), data.get("subject")
        if kind and name:
            subject = find_subject(kind, name)
            if subject is None:
                self.add_error("subject", ValidationError(f"No {kind} is called {name!r}.", code="unknown"))
            else:
                data["subject"] = subject
        return data


# --- a grant's new role or expiry ---------------------------------------------------


class EditGrantForm(ExpiryMixin, forms.Form):
    """A new role and/or a new expiry; an empty day keeps the expiry, "never expires" clears it."""

    role = forms.ChoiceField(required=False, choices=[("", "Keep the role"), *Role.choices])
    expires_on = _expiry_field()
    no_expiry = forms.BooleanField(required=False, label="Never expires")

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("no_expiry") and data.get("expires_on"):
            self.add_error("expires_on", "Give a day or tick “never expires”, not both.")
        elif not (data.get("role") or data.get("expires_on") or data.get("no_expiry")) and not self.errors:
            raise ValidationError("Choose a new role, a new expiry day or “never expires”.", code="nothing")
        return data

    @property
    def changes(self) -> dict[str, Any]:
        """Keyword arguments for ``services.update_grant``: only what was asked to change."""
        data = self.cleaned_data
        changes: dict[str, Any] = {"role": data["role"] or None}
        if data["no_expiry"]:
            changes["expires_at"] = None
        elif data["expires_on"]:
            changes["expires_at"] = self.expires_at
        return changes
