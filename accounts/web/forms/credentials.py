"""Forms for robots and personal access tokens, and the one rule for a credential's state.

They parse and validate what a person typed (patterns one per line, ``pattern:role`` grant
lines, an "until" day); the services decide what is allowed. The state filter reads the
``state`` that ``Credential.objects.with_state`` annotates (``accounts.querysets``).

Was ``accounts/credential_forms.py`` before the layout split.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet

from accounts.access.patterns import InvalidName, validate_pattern
from accounts.constants import ROBOT_LOGIN_PREFIX
from accounts.models import Role, Team
from accounts.querysets import CredentialState
from accounts.web.forms.common import ExpiryMixin, add_service_error

MAX_LINES = 50
GLOBAL_TEAM = "$global"  # the team filter's value for robots of no team (never a team's slug)


# The state filter: any, or one ``CredentialState`` (what ``.with_state(now)`` annotates).
STATE_CHOICES = [("", "any state"), *CredentialState.choices]


# Service errors name model fields; these forms name some of them differently.
_FIELD_FOR = {"pattern": "grants", "role": "grants", "patterns": "patterns", "expires_at": "expires_on"}


def _field_for(form: forms.Form, key: str) -> str:
    target = _FIELD_FOR.get(key, key)
    return target if target in form.fields else key


def add_credential_error(form: forms.Form, error: ValidationError) -> None:
    """Like ``add_service_error``, with the services' field names mapped onto this module's forms."""
    if hasattr(error, "error_dict"):
        renamed: dict[str, list[str]] = {}
        for key, messages in error.message_dict.items():
            renamed.setdefault(_field_for(form, key), []).extend(messages)
        error = ValidationError(renamed)
    add_service_error(form, error)


def _lines(text: str) -> list[str]:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) > MAX_LINES:
        raise ValidationError(f"At most {MAX_LINES} lines, please.", code="too_many")
    return lines


def _pattern(line: str, number: int) -> str:
    try:
        return validate_pattern(line)
    except InvalidName as exc:
        raise ValidationError(f"Line {number}: {exc}", code="invalid_pattern") from None


class _LinesField(forms.CharField):
    """A textarea read one line at a time (blank lines ignored), checked as text first."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 10_000)
        super().__init__(**kwargs)

    def clean(self, value: Any) -> Any:
        text: str = super().clean(value)
        return self.parse(_lines(text))

    def parse(self, lines: list[str]) -> Any:
        raise NotImplementedError


class PatternLinesField(_LinesField):
    """Repository patterns, one per line (globs: ``*`` within a component, ``**`` across)."""

    widget = forms.Textarea(attrs={"rows": 3, "placeholder": "web/app\nweb/tools/*"})

    def parse(self, lines: list[str]) -> list[str]:
        return list(dict.fromkeys(_pattern(line, number) for number, line in enumerate(lines, 1)))


class GrantLinesField(_LinesField):
    """Grants as ``pattern:role`` lines, e.g. ``web/app:write``."""

    widget = forms.Textarea(attrs={"rows": 3, "placeholder": "web/app:write\nweb/base/*:read"})

    def parse(self, lines: list[str]) -> list[tuple[str, str]]:
        grants: dict[str, str] = {}
        for number, line in enumerate(lines, 1):
            pattern, colon, role = (part.strip() for part in line.rpartition(":"))
            if not colon or role not in Role.values:
                raise ValidationError(
                    f"Line {number}: write pattern:role, the role one of read, write or admin.", code="invalid_grant"
                )
            pattern = _pattern(pattern, number)
            if pattern in grants:
                raise ValidationError(f"Line {number}: {pattern!r} is given twice.", code="duplicate")
            grants[pattern] = role
        return list(grants.items())


class ExpiresOnForm(ExpiryMixin, forms.Form):
    """An optional "until" day: the credential lasts through it and expires at 00:00 UTC the next day."""

    expires_on = forms.DateField(
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Optional. Lasts through this day and expires at 00:00 UTC the next day.",
    )


class AccessTokenForm(ExpiresOnForm):
    """A personal access token: a name, and optionally read-only and a few repository patterns."""

    name = forms.CharField(max_length=100, help_text="Where it is used, e.g. laptop or ci.")
    read_only = forms.BooleanField(required=False, help_text="Pull only, whatever you may do yourself.")
    patterns = PatternLinesField(
        required=False, help_text="Optional: one pattern a line; the token then reaches only these repositories."
    )
    field_order = ["name", "read_only", "patterns", "expires_on"]


class TeamRobotForm(ExpiresOnForm):
    """A team lead's robot: a name, what it is for, and grants inside the team's grants."""

    name = forms.CharField(max_length=100, help_text="Lowercase letters, digits, - or _.")
    description = forms.CharField(max_length=255, required=False)
    grants = GrantLinesField(required=False, help_text="One pattern:role a line, e.g. web/app:write.")
    field_order = ["name", "description", "expires_on", "grants"]


class RobotForm(TeamRobotForm):
    """An admin's robot: as a lead's, and for any team or for none (a global robot)."""

    team = forms.ModelChoiceField(
        queryset=Team.objects.only("pk", "name"),
        to_field_name="name",
        required=False,
        empty_label="(none: a global robot)",
        help_text="A team robot's grants must lie inside its team's grants.",
        error_messages={"invalid_choice": "No team is called that."},
    )
    field_order = ["team", "name", "description", "expires_on", "grants"]


class CredentialFilterForm(forms.Form):
    """Search and state filter for the token list (GET parameters); the robot list adds a team."""

    search_fields: tuple[str, ...] = ("name",)

    q = forms.CharField(max_length=200, required=False, label="Search")
    state = forms.ChoiceField(choices=STATE_CHOICES, required=False)

    def filter(self, queryset: QuerySet) -> QuerySet:
        """``queryset`` (annotated by ``.with_state(now)``) narrowed to the search and the state."""
        text, state = self.cleaned_data["q"].strip(), self.cleaned_data["state"]
        if text:
            queryset = queryset.filter(self.search(text))
        return queryset.filter(state=state) if state else queryset

    def search(self, text: str) -> Q:
        query = Q()
        for field in self.search_fields:
            query |= Q(**{f"{field}__icontains": text})
        return query


class RobotFilterForm(CredentialFilterForm):
    """The robot list's filters: a search over login name and description, team and state."""

    search_fields = ("name", "team__name", "description")

    team = forms.ChoiceField(choices=(), required=False)
    field_order = ["q", "team", "state"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        names = Team.objects.order_by("name").values_list("name", flat=True)
        team_field: forms.ChoiceField = self.fields["team"]  # type: ignore[assignment]
        team_field.choices = [("", "any team"), (GLOBAL_TEAM, "(global robots)"), *((n, n) for n in names)]

    def filter(self, queryset: QuerySet) -> QuerySet:
        team = self.cleaned_data["team"]
        if team == GLOBAL_TEAM:
            queryset = queryset.filter(team__isnull=True)
        elif team:
            queryset = queryset.filter(team__name=team)
        return super().filter(queryset)

    def search(self, text: str) -> Q:
        """Also understands a whole login name, ``robot$<team>+<name>``."""
        text = text.removeprefix(ROBOT_LOGIN_PREFIX)
        if "+" in text:
            team, _plus, name = text.partition("+")
            return Q(team__name__icontains=team, name__icontains=name)
        return super().search(text)


GRACE_CHOICES = [("24h", "24 hours"), ("1h", "1 hour"), ("7d", "7 days"), ("0", "none: the old secret stops now")]
_GRACE = {"24h": timedelta(hours=24), "1h": timedelta(hours=1), "7d": timedelta(days=7), "0": timedelta(0)}


class RotateSecretForm(forms.Form):
    """How long the old secret keeps working after a rotation."""

    grace = forms.ChoiceField(choices=GRACE_CHOICES, initial="24h", label="Old secret keeps working for")

    @property
    def grace_period(self) -> timedelta:
        return _GRACE[self.cleaned_data["grace"]]
