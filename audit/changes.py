"""What an audit record says, in words: one sentence for the list, a before/after table for its page.

Pure: every function reads only the record's own fields (``kind``, ``outcome``, ``actor``,
``repository``, ``actions``, ``detail``), never the database, so a record whose user, team or
grant is long gone still reads the way it did. An admin change or credential record names its
``action`` (``grant.create``, ``robot.rotate``...): ``ACTION_WORDS`` has a sentence for each one
the services write; an action without one falls back to a generic sentence naming it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from audit.models import Kind

NOTHING = "—"
# Detail keys the sentence and the before/after table already show.
STRUCTURAL_KEYS = frozenset({"action", "target", "before", "after"})
PROBE_NOTE = (
    "Cross-repository mount check: the client asked to pull from another repository to reuse a layer "
    "it already has there; harmless, the push itself was granted."
)


class Recorded(Protocol):
    """The fields of ``AuditRecord`` this module reads."""

    kind: str
    outcome: str
    actor: str
    repository: str
    actions: Any
    detail: Any


class Change(NamedTuple):
    """One row of a before/after table; ``changed`` when the two differ."""

    field: str
    before: str
    after: str
    changed: bool


@dataclass(frozen=True)
class Facts:
    """An admin change or credential record's detail, read defensively (any key may be missing)."""

    target: str
    before: Mapping[str, Any]
    after: Mapping[str, Any]
    detail: Mapping[str, Any]

    def get(self, key: str, default: Any = "") -> Any:
        """The value after the change, else before it, else a top-level detail value."""
        for source in (self.after, self.before, self.detail):
            if source.get(key) not in (None, ""):
                return source[key]
        return default

    @property
    def credential(self) -> str:
        return str(self.detail.get("credential") or self.target or "?")

    def pair(self) -> tuple[str, str]:
        """``"bob in web"`` (memberships) or ``"cn=devs -> web"`` (directory groups) as its two names."""
        for separator in (" -> ", " in "):
            left, found, right = self.target.partition(separator)
            if found:
                return left, right
        return self.target, ""


def _facts(detail: Any) -> Facts:
    detail = detail if isinstance(detail, Mapping) else {}
    before, after = detail.get("before"), detail.get("after")
    return Facts(
        target=str(detail.get("target") or ""),
        before=before if isinstance(before, Mapping) else {},
        after=after if isinstance(after, Mapping) else {},
        detail=detail,
    )


# --- grants ------------------------------------------------------------------------------


def _holder(facts: Facts) -> str:
    """Whom a grant is for: a user, a team or a robot."""
    if facts.get("robot"):
        return f"robot {facts.get('robot')}"
    if facts.get("team"):
        return f"team {facts.get('team')}"
    return str(facts.get("user") or "?")


def _on(facts: Facts) -> str:
    registry = facts.get("registry")
    return f"{facts.get('pattern', '?')}" + (f" (registry {registry})" if registry else "")


def _grant_update(facts: Facts) -> str:
    changed = [key for key in facts.after if facts.before.get(key) != facts.after.get(key)]
    what = ", ".join(f"{key} {_text(facts.before.get(key))} → {_text(facts.after.get(key))}" for key in changed)
    return f"changed the grant on {_on(facts)} for {_holder(facts)}" + (f": {what}" if what else "")


def _grant_cap(facts: Facts) -> str:
    return (
        f"lowered {_holder(facts)}'s grant on {_on(facts)} from {facts.before.get('role', '?')} to "
        f"{facts.after.get('role', '?')} (its team's grant shrank)"
    )


# --- memberships and teams -------------------------------------------------------------------


def _membership_add(facts: Facts) -> str:
    user, team = facts.pair()
    return f"added {user} to {team} as {facts.after.get('role', 'member')}"


def _membership_change(facts: Facts) -> str:
    user, team = facts.pair()
    return f"changed {user}'s role in {team} from {facts.before.get('role', '?')} to {facts.after.get('role', '?')}"


def _membership_remove(facts: Facts) -> str:
    user, team = facts.pair()
    reason = facts.before.get("reason")
    return f"removed {user} from {team}" + (f" ({reason})" if reason else "")


def _group(verb: str) -> Callable[[Facts], str]:
    def words(facts: Facts) -> str:
        group, team = facts.pair()
        role = facts.after.get("role") or facts.before.get("role")
        if verb == "changed":
            return f"changed directory group {group}'s role in team {team} to {facts.after.get('role', '?')}"
        link = "to" if verb == "mapped" else "from"
        return f"{verb} directory group {group} {link} team {team}" + (f" ({role})" if role else "")

    return words


def _changed_fields(noun: str) -> Callable[[Facts], str]:
    """ "changed user carol: is_active, email" from the keys that differ."""

    def words(facts: Facts) -> str:
        keys = sorted(set(facts.before) | set(facts.after))
        changed = [key for key in keys if facts.before.get(key) != facts.after.get(key)]
        return f"changed {noun} {facts.target}" + (f": {', '.join(changed)}" if changed else "")

    return words


def _repository_update(facts: Facts) -> str:
    public = facts.after.get("public")
    if public is None:
        return f"changed repository {facts.target}"
    return f"made repository {facts.target} {'public' if public else 'private'}"


def _revoked_tokens(verb: str) -> Callable[[Facts], str]:
    def words(facts: Facts) -> str:
        count = facts.after.get("refresh_tokens_revoked")
        revoked = f" ({count} refresh token{'s' if count != 1 else ''} revoked)" if count else ""
        return f"{verb} {facts.target}{revoked}"

    return words


def _plain(template: str) -> Callable[[Facts], str]:
    """A sentence with ``{target}``, ``{credential}`` or ``{x}`` (any detail value) filled in."""

    def words(facts: Facts) -> str:
        values = _Values(facts)
        return template.format_map(values)

    return words


class _Values(dict):
    def __init__(self, facts: Facts) -> None:
        super().__init__()
        self.facts = facts

    def __missing__(self, key: str) -> str:
        if key == "target":
            return self.facts.target or "?"
        if key == "credential":
            return self.facts.credential
        return _text(self.facts.get(key, "?"))


def _refused_rotation(facts: Facts) -> str:
    reason = facts.get("reason")
    return "refused to rotate the signing key" + (f": {reason}" if reason else "")


def _rewrap(facts: Facts) -> str:
    unreadable = facts.detail.get("unreadable")
    return "re-wrapped the stored secrets under the current key" + (
        f" ({unreadable} could not be read)" if unreadable else ""
    )


ACTION_WORDS: dict[str, Callable[[Facts], str]] = {
    # grants
    "grant.create": lambda f: f"granted {f.get('role', '?')} on {_on(f)} to {_holder(f)}",
    "grant.update": _grant_update,
    "grant.revoke": lambda f: f"revoked {f.get('role', '?')} on {_on(f)} from {_holder(f)}",
    "grant.expire": lambda f: f"{_holder(f)}'s {f.get('role', '?')} on {_on(f)} expired",
    "grant.cap": _grant_cap,
    # teams and memberships
    "membership.add": _membership_add,
    "membership.change": _membership_change,
    "membership.remove": _membership_remove,
    "team.create": _plain("created team {target}"),
    "team.update": _plain("changed team {target}'s description"),
    "team.delete": _plain("deleted team {target}"),
    "team.directory_group.add": _group("mapped"),
    "team.directory_group.change": _group("changed"),
    "team.directory_group.remove": _group("unmapped"),
    # people
    "user.create": _plain("created user {target}"),
    "user.update": _changed_fields("user"),
    "user.delete": _plain("deleted user {target}"),
    "user.set_password": _revoked_tokens("set the password of"),
    "user.disable_password": _revoked_tokens("disabled the password of"),
    "user.revoke_refresh_tokens": _revoked_tokens("signed out the clients of"),
    # registries and repositories
    "registry.create": _plain("added registry {target} ({auth_mode})"),
    "registry.update": _changed_fields("registry"),
    "registry.delete": _plain("removed registry {target}"),
    "registry.prepare": _plain("prepared the configuration of registry {target}"),
    "registry.doctor": _plain("ran the doctor on registry {target}"),
    "repository.create": _plain("added repository {target}"),
    "repository.update": _repository_update,
    "repository.delete": _plain("forgot repository {target}"),
    "repository.discover": _plain("discovered repository {target} on registry {registry}"),
    # robots, personal access tokens, keys and secrets (credential records)
    "robot.create": _plain("created robot {credential}"),
    "robot.rotate": _plain("rotated robot {credential}'s secret"),
    "robot.revoke": _plain("revoked robot {credential}'s secret"),
    "robot.delete": _plain("deleted robot {credential} ({reason})"),
    "robot.expire": _plain("robot {credential} expired"),
    "token.create": _plain("created personal access token {credential}"),
    "token.revoke": _plain("revoked personal access token {credential}"),
    "token.expire": _plain("personal access token {credential} expired"),
    "credential.first_use": _plain("{credential} was used for the first time"),
    "signing_key.create": _plain("created signing keys {kids}"),
    "signing_key.rotate": _plain("rotated the signing key (now {current})"),
    "signing_key.retire": _plain("retired the previous signing key {retired}"),
    "signing_key.preflight": _plain("asked every registry whether it accepts the next signing key"),
    "signing_key.rotate_refused": _refused_rotation,
    "notification_secret.create": _plain("created the registry's notification secret"),
    "notification_secret.rotate": _plain("rotated the registry's notification secret"),
    "secrets.rewrap": _rewrap,
    # backups, reviews, reports, limits, jobs, exports
    "backup.request": _plain("asked for a backup"),
    "backup.create": _plain("wrote backup {target}"),
    "backup.download": _plain("downloaded backup {target}"),
    "backup.restore": _plain("restored backup {target}"),
    "review.start": _plain("started {target}"),
    "review.certify": _plain("certified {target}"),
    "review.revoke": _plain("revoked {target}"),
    "review.gone": _plain("closed {target}: nothing left to answer"),
    "review.close": _plain("closed {target}"),
    "review.remind": _plain("reminded the leads of {target}"),
    "review.escalate": _plain("escalated {target}: {items} items unanswered at the deadline"),
    "review.export": _plain("exported the evidence of {target} ({format})"),
    "unused.apply": _plain("applied an unused-rights proposal: {target}"),
    "unused.dismiss": _plain("dismissed an unused-rights proposal: {target}"),
    "limit.lift": _plain("lifted the sign-in limit on {target}"),
    "job.run": _plain("ran the scheduled job {target} by hand"),
    "audit.export": _plain("exported audit records ({format})"),
}


# --- sentences for every kind ------------------------------------------------------------------


def describe(record: Recorded) -> str:
    """One sentence saying what happened, e.g. "granted read on web/app to carol"."""
    detail = record.detail if isinstance(record.detail, Mapping) else {}
    if record.kind in (Kind.ADMIN_CHANGE, Kind.CREDENTIAL):
        return describe_action(str(detail.get("action") or ""), detail)
    if record.kind == Kind.ACCESS:
        return _access(record)
    if record.kind == Kind.REGISTRY_EVENT:
        return _registry_event(record, detail)
    if record.kind == Kind.SIGNIN:
        return _signin(record, detail)
    if record.kind == Kind.JOB:
        return _job(record, detail)
    return f"{record.kind} {record.outcome}".strip()


def describe_action(action: str, detail: Mapping[str, Any]) -> str:
    """The sentence for one admin change or credential action; unknown actions get a generic one."""
    facts = _facts(detail)
    words = ACTION_WORDS.get(action)
    if words is not None:
        return words(facts)
    noun, _, verb = action.rpartition(".")
    if not noun:
        return f"{action or 'a change'}" + (f" on {facts.target}" if facts.target else "")
    return f"{verb.replace('_', ' ')} {noun.replace('_', ' ').replace('.', ' ')}" + (
        f" {facts.target}" if facts.target else ""
    )


def _access(record: Recorded) -> str:
    scopes = record.actions if isinstance(record.actions, list) else []
    parts = []
    for scope in scopes:
        if not isinstance(scope, Mapping):
            continue
        granted, denied = scope.get("granted") or [], scope.get("denied") or []
        said = [f"{','.join(granted)} granted"] if granted else []
        said += [f"{','.join(denied)} refused"] if denied else []
        parts.append(f"{scope.get('name', '?')}: {'; '.join(said) or 'nothing asked'}")
    if record.outcome == "probe":
        return "push granted; a cross-repository mount check was refused (harmless)" + (
            f" — {' · '.join(parts)}" if parts else ""
        )
    if not parts:
        reason = record.detail.get("reason") if isinstance(record.detail, Mapping) else ""
        return f"sign-in to the registry {record.outcome.replace('_', ' ')}" + (f": {reason}" if reason else "")
    return " · ".join(parts)


def _registry_event(record: Recorded, detail: Mapping[str, Any]) -> str:
    verbs = {"push": "pushed", "pull": "pulled", "delete": "deleted"}
    tag, digest = detail.get("tag"), str(detail.get("digest") or "")
    reference = f":{tag}" if tag else (f"@{digest[:19]}…" if digest else "")
    return f"{verbs.get(record.outcome, record.outcome)} {record.repository}{reference}"


def _signin(record: Recorded, detail: Mapping[str, Any]) -> str:
    reason = detail.get("reason")
    said = {"success": "signed in", "failure": "sign-in failed", "limited": "sign-in refused: too many attempts"}
    return said.get(record.outcome, f"sign-in {record.outcome}") + (
        f" ({reason})" if reason and record.outcome != "success" else ""
    )


def _job(record: Recorded, detail: Mapping[str, Any]) -> str:
    job = detail.get("job") or record.actor or "a job"
    if record.outcome == "success":
        seconds = detail.get("seconds")
        return f"job {job} ran" + (f" in {seconds} s" if isinstance(seconds, int | float) else "")
    return f"job {job} {record.outcome}" + (f": {detail['error']}" if detail.get("error") else "")


# --- the record page's tables --------------------------------------------------------------------


def diff(record: Recorded) -> list[Change]:
    """(field, before, after, changed) for every field in the change's ``before`` or ``after``."""
    facts = _facts(record.detail)
    if not facts.before and not facts.after:
        return []
    keys = list(facts.before) + [key for key in facts.after if key not in facts.before]
    rows = []
    for key in keys:
        had, has = key in facts.before, key in facts.after
        before = _text(facts.before[key]) if had else NOTHING
        after = _text(facts.after[key]) if has else NOTHING
        # Compared as shown: a field created empty ("—" before and after) did not change.
        rows.append(Change(key, before, after, before != after))
    return rows


def other_details(record: Recorded) -> list[tuple[str, str]]:
    """The detail's remaining fields (besides action, target, before and after) as readable text."""
    detail = record.detail if isinstance(record.detail, Mapping) else {}
    return [(str(key), _text(value)) for key, value in detail.items() if key not in STRUCTURAL_KEYS]


def _text(value: Any) -> str:
    if value is None or value == "":
        return NOTHING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(_text(item) for item in value) or NOTHING
    if isinstance(value, Mapping):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)
