"""Registry notifications: validate, deduplicate and store during the request.

Manifest-level events (a tag or manifest pushed, pulled, deleted) become
``registry_event`` records; blob events are only counted per day, since a busy
registry sends many of them.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from audit.context import AuditContext
from audit.models import BlobEventCount, Kind, SeenEvent, SubjectType
from audit.services import record

EVENT_ACTIONS = {"push", "pull", "delete", "mount"}  # what a registry notifies, mount included
MAX_EVENTS = 1000


class EnvelopeError(ValueError):
    """The body is not a notification envelope; the message says why."""


@dataclass
class IntakeResult:
    stored: int = 0
    duplicates: int = 0
    blobs: int = 0
    ignored: int = 0
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
    host = host.strip("[]")
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
        if not _well_formed(event):
            result.ignored += 1
            continue
        try:
            with transaction.atomic():  # one odd event must not make the registry resend the batch forever
                outcome = _store_one(event, registry, on_push)
        except (ValueError, TypeError, OverflowError):
            outcome = "ignored"
        setattr(result, outcome, getattr(result, outcome) + 1)
    return result


def _well_formed(event: Any) -> bool:
    if not isinstance(event, dict) or not isinstance(event.get("target"), dict) or not event.get("id"):
        return False
    if not isinstance(event.get("action"), str) or event["action"] not in EVENT_ACTIONS:
        return False
    return all(isinstance(event.get(key) or {}, dict) for key in ("request", "actor", "source"))


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
        "size": target.get("size") if isinstance(target.get("size"), int) else None,
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
    size = target.get("size") if isinstance(target.get("size"), int) else 0
    key = {
        "registry": registry[:255],
        "repository": _text(target.get("repository")),
        "action": event["action"],
        "day": timezone.now().date(),
    }
    updated = BlobEventCount.objects.filter(**key).update(count=F("count") + 1, bytes=F("bytes") + size)
    if not updated:
        try:
            with transaction.atomic():
                BlobEventCount.objects.create(**key, count=1, bytes=size)
        except IntegrityError:
            BlobEventCount.objects.filter(**key).update(count=F("count") + 1, bytes=F("bytes") + size)
