"""Registry notifications: validate, deduplicate and store during the request.

Manifest-level events (a tag or manifest pushed, pulled, deleted) become
``registry_event`` records; blob events are only counted per day, since a busy
registry sends many of them.

Each event is checked on its own before anything is written: a field of the wrong
type or out of range (``"size": true``, a size past PostgreSQL's bigint) rejects
that event only. One bad event failing the whole envelope would make the registry
resend it for ever, and the good events beside it would never be stored.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import DataError, IntegrityError, transaction
from django.db.models import F
from django.db.models.functions import Least
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from audit.context import AuditContext
from audit.models import BlobEventCount, Kind, SeenEvent, SubjectType
from audit.services import record

logger = logging.getLogger(__name__)

EVENT_ACTIONS = {"push", "pull", "delete", "mount"}  # what a registry notifies, mount included
MAX_EVENTS = 1000
MAX_SIZE = 2**63 - 1  # BigIntegerField, on every database
LOGGED_REJECTIONS = 5  # per envelope: a registry sending junk must not flood the log

# Strings stored as they are: longer is not a real event (ids and names have these limits).
EXACT_TEXT = {
    ("id",): 100,
    ("timestamp",): 64,
    ("target", "repository"): 255,
    ("target", "digest"): 255,
    ("target", "tag"): 255,
    ("target", "mediaType"): 255,
}
# Strings that only describe the client: cut to their column, rejected only when absurd.
DESCRIPTIVE_TEXT = {
    ("request", "addr"),
    ("request", "method"),
    ("request", "useragent"),
    ("request", "id"),
    ("actor", "name"),
    ("source", "addr"),
}
MAX_DESCRIPTIVE = 4096
PARTS = ("target", "request", "actor", "source")


class EnvelopeError(ValueError):
    """The body is not a notification envelope; the message says why."""


@dataclass
class IntakeResult:
    stored: int = 0
    duplicates: int = 0
    blobs: int = 0
    ignored: int = 0  # not an event we record (unknown action, not an object)
    rejected: int = 0  # a registry event with a field of the wrong type or out of range
    pushed: list[str] | None = None


def parse_envelope(body: bytes) -> list[dict[str, Any]]:
    try:
        envelope = json.loads(body)
    except (ValueError, RecursionError) as exc:  # bad UTF-8 or JSON, huge integers, absurd nesting
        raise EnvelopeError(f"body is not JSON: {str(exc)[:200]}") from None
    events = envelope.get("events") if isinstance(envelope, dict) else None
    if not isinstance(events, list):
        raise EnvelopeError('expected {"events": [...]}')
    if len(events) > MAX_EVENTS:
        raise EnvelopeError(f"more than {MAX_EVENTS} events in one envelope")
    return events


def _is_manifest(event: dict[str, Any]) -> bool:
    media_type = str(event.get("target", {}).get("mediaType", ""))
    return event.get("action") == "delete" or "manifest" in media_type or "image.index" in media_type


def _source_ip(addr: str) -> str | None:
    host = addr.rpartition(":")[0] if addr.count(":") == 1 or addr.startswith("[") else addr
    host = host.strip("[]").partition("%")[0]  # an IPv6 zone (fe80::1%eth0): PostgreSQL's inet refuses it
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


def _text(value: Any, limit: int = 255) -> str:
    return str(value)[:limit].replace("\x00", "\ufffd") if value is not None else ""


@transaction.atomic
def store_events(
    events: list[dict[str, Any]], registry: str, on_push: Callable[[str], None] | None = None
) -> IntakeResult:
    """Store a batch; each event id is stored once however often the registry retries."""
    result = IntakeResult(pushed=[])
    for event in events:
        if not _recordable(event):
            result.ignored += 1
            continue
        problem = event_problem(event)
        if not problem:
            try:
                with transaction.atomic():  # a savepoint: what the database still refuses undoes this event only
                    outcome = _store_one(event, registry, on_push)
            except DataError as exc:
                problem = f"refused by the database: {str(exc).splitlines()[0][:200]}"
        if problem:
            result.rejected += 1
            _log_rejection(result.rejected, registry, event, problem)
            continue
        setattr(result, outcome, getattr(result, outcome) + 1)
    if result.rejected > LOGGED_REJECTIONS:
        logger.warning("registry %s: %d events rejected in one envelope", registry[:100], result.rejected)
    return result


def _recordable(event: Any) -> bool:
    """An object whose action is one we record; anything else (a future action, junk) is ignored."""
    return isinstance(event, dict) and isinstance(event.get("action"), str) and event["action"] in EVENT_ACTIONS


def event_problem(event: dict[str, Any]) -> str:
    """Why this event cannot be stored as it is, or "" when every field it has is usable."""
    if not isinstance(event.get("id"), str) or not event["id"]:
        return "id must be a non-empty string"
    for part in PARTS:
        if not isinstance(event.get(part, {}), dict) and event.get(part) is not None:
            return f"{part} must be an object"
    if not isinstance(event.get("target"), dict):
        return "target must be an object"
    size = event["target"].get("size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_SIZE):
        return f"target.size must be an integer from 0 to {MAX_SIZE}, not {_shown(size)}"
    for path, limit in EXACT_TEXT.items():
        if problem := _text_problem(event, path, limit):
            return problem
    for path in DESCRIPTIVE_TEXT:
        if problem := _text_problem(event, path, MAX_DESCRIPTIVE):
            return problem
    return ""


def _text_problem(event: dict[str, Any], path: tuple[str, ...], limit: int) -> str:
    holder = event if len(path) == 1 else event.get(path[0]) or {}
    value = holder.get(path[-1])
    name = ".".join(path)
    if value is None:
        return ""
    if not isinstance(value, str):
        return f"{name} must be a string, not {_shown(value)}"
    if len(value) > limit:
        return f"{name} is longer than {limit} characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a \ud800 escape: no database can store it
        return f"{name} is not valid Unicode"
    return ""


def _shown(value: Any) -> str:
    return f"{type(value).__name__} {str(value)[:40]}"


def _log_rejection(count: int, registry: str, event: dict[str, Any], problem: str) -> None:
    if count <= LOGGED_REJECTIONS:
        event_id = event.get("id")
        shown = ascii(event_id[:100]) if isinstance(event_id, str) else _shown(event_id)
        logger.warning("registry %s: event %s rejected: %s", registry[:100], shown, problem)


def _store_one(event: dict[str, Any], registry: str, on_push: Callable[[str], None] | None) -> str:
    if not _first_time(_text(event["id"], 100)):
        return "duplicates"
    if not _is_manifest(event):
        _count_blob(event, registry)
        return "blobs"
    _store_manifest_event(event, registry)
    if event["action"] == "push" and on_push:
        on_push(_text(event["target"].get("repository")))
    return "stored"


def _first_time(event_id: str) -> bool:
    try:
        with transaction.atomic():
            SeenEvent.objects.create(event_id=event_id)
    except IntegrityError:
        return False
    return True


def _store_manifest_event(event: dict[str, Any], registry: str) -> None:
    target, request, actor = event["target"], event.get("request") or {}, event.get("actor") or {}
    name = _text(actor.get("name"))
    context = AuditContext(
        actor=name,
        ip=_source_ip(_text(request.get("addr"))),
        user_agent=_text(request.get("useragent"), 512),
        request_id=_text(request.get("id"), 64),
    )
    try:
        when = parse_datetime(_text(event.get("timestamp"), 64)) if event.get("timestamp") else None
    except ValueError:  # well-formed but impossible, e.g. February 30th
        when = None
    detail = {
        "event_id": _text(event["id"], 100),
        "digest": _text(target.get("digest")),
        "tag": _text(target.get("tag")),
        "media_type": _text(target.get("mediaType")),
        "size": target.get("size"),
        "method": _text(request.get("method"), 10),
        "source": _text(event.get("source", {}).get("addr") if isinstance(event.get("source"), dict) else ""),
        "event_time": when.isoformat() if when else _text(event.get("timestamp"), 64),
    }
    record(
        Kind.REGISTRY_EVENT,
        event["action"],
        context,
        subject_type=SubjectType.USER if name else SubjectType.ANONYMOUS,
        registry=registry,
        repository=_text(target.get("repository")),
        detail=detail,
    )


def _count_blob(event: dict[str, Any], registry: str) -> None:
    target = event["target"]
    size = target.get("size") or 0
    added = Least(F("bytes"), MAX_SIZE - size) + size  # saturates at the column's maximum instead of overflowing
    key = {
        "registry": registry[:255],
        "repository": _text(target.get("repository")),
        "action": event["action"],
        "day": timezone.now().date(),
    }
    updated = BlobEventCount.objects.filter(**key).update(count=F("count") + 1, bytes=added)
    if not updated:
        try:
            with transaction.atomic():
                BlobEventCount.objects.create(**key, count=1, bytes=size)
        except IntegrityError:
            BlobEventCount.objects.filter(**key).update(count=F("count") + 1, bytes=added)
