"""Parsing token-request scopes (``type:name:actions``), pure.

The type is split at the first ``:`` and the actions at the last, because a
name may contain ``host:port``. ``repository(plugin)`` is read as
``repository``. Repeated actions collapse; order is kept for the answer.

Was ``accounts/scopes.py`` before the layout split.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from accounts.access.patterns import is_valid_repository_name

MAX_SCOPE_LENGTH = 512
MAX_SCOPES = 32
KNOWN_TYPES = ("repository", "registry")
_TYPE = re.compile(r"^([a-z0-9]+)(\([a-z0-9]+\))?$")
_ACTION = re.compile(r"^[a-z*]{1,16}$")


class ScopeError(ValueError):
    """A scope that does not follow the grammar; the message says how."""


@dataclass(frozen=True, slots=True)
class Scope:
    type: str
    name: str
    actions: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{','.join(self.actions)}"


def parse_scope(text: str) -> Scope:
    if len(text) > MAX_SCOPE_LENGTH:
        raise ScopeError(f"scope longer than {MAX_SCOPE_LENGTH} characters")
    if not text.isprintable() or not text.isascii() or " " in text:
        raise ScopeError("scope must be printable ASCII without spaces")
    type_part, _, rest = text.partition(":")
    name, sep, actions_part = rest.rpartition(":")
    if not sep or not name:
        raise ScopeError(f"scope {text!r} is not type:name:actions")
    match = _TYPE.match(type_part)
    if not match:
        raise ScopeError(f"scope type {type_part!r} is not valid")
    scope_type = match.group(1)
    if scope_type == "repository" and not is_valid_repository_name(name):
        raise ScopeError(f"repository name {name!r} is not valid")
    actions: list[str] = []
    for action in actions_part.split(","):
        if not _ACTION.match(action):
            raise ScopeError(f"action {action!r} is not valid")
        if action not in actions:
            actions.append(action)
    return Scope(scope_type, name, tuple(actions))


def parse_scopes(values: list[str]) -> list[Scope]:
    """All ``scope`` parameters; a value may hold several space-separated scopes (OAuth2 form)."""
    parts = [part for value in values for part in value.split(" ") if part]
    if len(parts) > MAX_SCOPES:
        raise ScopeError(f"more than {MAX_SCOPES} scopes in one request")
    return [parse_scope(part) for part in parts]
