"""The token service: who is asking, what they may have, the signed answer, and its record.

One call per token request. It never raises for bad input: every path ends in
a ``TokenOutcome`` with an HTTP status, and every path writes exactly one
``access`` record before answering (if that write fails, the caller answers
503: an access without its record never happens).

The same rules run against the database or against this process's exact cache
(``accounts.registry.snapshot``): a plain repeat GET is answered from the cache, with one
guarded INSERT; whatever the cache declines, and every retry it gives up on, is answered
from the database. There is one copy of each rule: only where the rows come from differs.

Was ``accounts/tokens.py`` before the layout split.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from accounts import services
from accounts.access.engine import Subject, allowed_actions, catalog_allowed
from accounts.access.scopes import Scope, ScopeError, parse_scopes
from accounts.constants import ACTIONS
from accounts.models import Registry
from accounts.registry.identity import Failure, Identity, identify
from accounts.registry.snapshot import ATTEMPTS, FRESH, Decline, Fresh, Stale, snapshot
from audit.context import AuditContext
from audit.models import AuditRecord, Kind, SubjectType
from audit.services import insert, record, record_values
from registryadmin.metrics import TOKEN_REQUESTS

NBF_BACKDATE = 30  # seconds; registries allow some skew, clocks drift
RETRY_WINDOW = timedelta(seconds=15)


@dataclass
class TokenRequest:
    """What the client sent, already pulled out of GET or POST."""

    method: str
    service: str
    scopes: list[str]
    username: str | None = None
    password: str | None = None
    refresh_token: str | None = None
    grant_type: str = ""  # "" for GET; "password" or "refresh_token" for POST
    offline: bool = False
    client_id: str = ""
    account: str = ""
    malformed: str = ""  # a parse problem found by the view (bad Basic header, bad form)


@dataclass
class TokenOutcome:
    status: int
    body: dict[str, Any]
    challenge: bool = False  # add WWW-Authenticate: Basic on 401
    record_detail: dict[str, Any] = field(default_factory=dict)
    retry_after: int | None = None  # seconds, on 429


def issue(request: TokenRequest, context: AuditContext) -> TokenOutcome:
    """Answer one token request and record it: from the cache when it can, else from the database."""
    if _cacheable(request):
        for _ in range(ATTEMPTS):
            lookups = snapshot.lookups()
            try:
                return _issue(request, context, lookups)
            except Decline:
                break
            except Stale:
                snapshot.stale(lookups)  # something changed since the cache was read: read again
    return _issue(request, context, FRESH)


def _cacheable(request: TokenRequest) -> bool:
    """The plain repeat case: a GET that asks for no refresh token and that the view found well-formed."""
    return request.method == "GET" and not request.offline and not request.malformed and bool(request.service)


def _issue(request: TokenRequest, context: AuditContext, lookups: Fresh) -> TokenOutcome:
    actor = (request.username or "")[:150]
    if request.malformed:
        return _refuse(400, "invalid", request.malformed, context, request, actor, lookups=lookups)
    registry = lookups.registry(request.service) if request.service else None
    if registry is None:
        reason = f"unknown service {request.service[:100]!r}"
        return _refuse(400, "invalid", reason, context, request, actor, lookups=lookups)
    try:
        scopes = parse_scopes(request.scopes)
    except ScopeError as exc:
        return _refuse(400, "invalid", str(exc), context, request, actor, lookups=lookups)
    counted = request.username is not None or request.grant_type == "refresh_token"
    limit_name = request.username or ""  # the refresh-token grant names nobody: its own pair per address
    checked = lookups.check_limits(limit_name, context.ip) if counted else services.limits.CLEAR
    if checked.hold is not None:
        return _limited(checked.hold, context, request, actor, scopes, lookups)
    identity = identify(
        request.username,
        request.password or "",
        grant_type=request.grant_type,
        refresh_token=request.refresh_token,
        service=request.service,
        offline=request.offline,
        client_id=request.client_id,
        context=context,
        lookups=lookups,
    )
    if isinstance(identity, Failure):
        outcome = _refuse(
            identity.status,
            "auth_failed",
            identity.reason,
            context,
            request,
            actor,
            scopes=scopes,
            subject_type=identity.subject_type,
            credential=identity.credential,
            lookups=lookups,
        )
        # containerd's GET retry is the same guess; a directory that cannot answer is nobody's guess
        if counted and identity.status == 401 and "retry_of" not in outcome.record_detail:
            services.limits.failed(limit_name, context.ip)
        return outcome
    if counted:
        services.limits.succeeded(limit_name, context.ip, checked)
    access = _decide(identity.subject, scopes, registry.service, lookups)
    return _grant(request, context, registry, identity, scopes, access, lookups)


def _decide(subject: Subject, scopes: list[Scope], service: str, lookups: Fresh) -> list[dict[str, Any]]:
    now = timezone.now()
    names = [s.name for s in scopes if s.type == "repository"]
    public = lookups.public_names(names, service) if names else set()
    entries = []
    for scope in scopes:
        if scope.type == "repository":
            held = allowed_actions(subject, scope.name, registry=service, public=scope.name in public, now=now)
        elif scope.type == "registry" and scope.name == "catalog":
            held = frozenset({"*"}) if catalog_allowed(subject) else frozenset()
        else:
            held = frozenset()
        entries.append(_scope_entry(scope, held))
    return entries


def _scope_entry(scope: Scope, held: frozenset[str]) -> dict[str, Any]:
    """Requested vs granted for one scope; ``*`` answers with the concrete actions held."""
    granted: list[str] = []
    for action in scope.actions:
        if action == "*" and scope.type == "repository":
            wanted = [a for a in ACTIONS if a in held]
            if len(wanted) == len(ACTIONS):
                wanted.append("*")  # registry 2.8 does not read "*" alone as every action
        else:
            wanted = [action] if action in held else []
        granted += [a for a in wanted if a not in granted]
    denied = [a for a in scope.actions if a not in granted]
    return {
        "type": scope.type,
        "name": scope.name,
        "requested": list(scope.actions),
        "granted": granted,
        "denied": denied,
    }


def outcome_of(access: list[dict[str, Any]]) -> str:
    """The access record's outcome for these requested-vs-granted entries (``_scope_entry``'s)."""
    refused = [entry for entry in access if entry["denied"]]
    if not refused:
        return "granted"
    if _mount_probe(access, refused):
        return "probe"
    return "partial" if any(entry["granted"] for entry in access) else "denied"


def _mount_probe(access: list[dict[str, Any]], refused: list[dict[str, Any]]) -> bool:
    """A push granted, and nothing refused but a pull on another repository: a cross-repository mount check.

    Before uploading a blob, docker, skopeo and containerd ask for ``pull`` on a repository they
    believe holds it (``scope=repository:TARGET:pull,push&scope=repository:SOURCE:pull``), to
    mount it from there. Refused, the client uploads the blob instead and the push succeeds: an
    allowed push, not a denial. A pull refused on a pushed repository itself is a real refusal.
    """
    pushed = {entry["name"] for entry in access if entry["type"] == "repository" and "push" in entry["granted"]}
    return bool(pushed) and all(
        entry["type"] == "repository" and entry["name"] not in pushed and set(entry["requested"]) == {"pull"}
        for entry in refused
    )


def _grant(
    request: TokenRequest,
    context: AuditContext,
    registry: Registry,
    identity: Identity,
    scopes: list[Scope],
    access: list[dict[str, Any]],
    lookups: Fresh,
) -> TokenOutcome:
    now = int(timezone.now().timestamp())
    jti = uuid.uuid4().hex
    claims = {
        "iss": settings.TOKEN_ISSUER,
        "sub": identity.actor,
        "aud": registry.service,
        "exp": now + settings.TOKEN_TTL,
        "nbf": now - NBF_BACKDATE,
        "iat": now,
        "jti": jti,
        "access": _claim_access(access),
    }
    detail = {"method": request.method, "jti": jti, "grant_type": request.grant_type or "basic"}
    if identity.credential:
        detail["credential"] = identity.credential
    if identity.secret:
        detail["secret_used"] = identity.secret  # a robot's "current" secret, or its "previous" one in a grace
    if identity.refresh_token and request.grant_type != "refresh_token":
        detail["refresh_token"] = "issued"  # a new long-lived credential: say so (never the token itself)
    if request.account and identity.actor and request.account != identity.actor:
        detail["account_hint_ignored"] = request.account[:150]
    actor_context = AuditContext(
        actor=identity.actor,
        actor_id=identity.actor_id,
        ip=context.ip,
        user_agent=context.user_agent,
        request_id=context.request_id,
    )
    outcome = outcome_of(access)
    values = record_values(
        Kind.ACCESS,
        outcome,
        actor_context,
        subject_type=identity.subject_type,
        registry=registry.service,
        repository=_pushed_repository(access) if outcome == "probe" else _first_repository(scopes),
        actions=access,
        detail=detail,
    )
    signer = lookups.signer()
    # One INSERT in autocommit, the token signed only after it; from the cache, it writes only
    # while nothing the decision read has changed since (else: decided again, nothing recorded).
    if not insert(values, guard=lookups.guard()):
        raise Stale
    TOKEN_REQUESTS.labels(values["outcome"], values["subject_type"]).inc()  # counted once its record is written
    token = signer.sign(claims)
    issued = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    body: dict[str, Any] = {
        "token": token,
        "access_token": token,
        "expires_in": settings.TOKEN_TTL,
        "issued_at": issued,
    }
    if request.grant_type:
        body["scope"] = " ".join(_scope_text(e) for e in access)
    if identity.refresh_token:
        body["refresh_token"] = identity.refresh_token
    return TokenOutcome(200, body)


def _claim_access(access: list[dict[str, Any]]) -> list[dict[str, Any]]:
    merged: dict[tuple[str, str], list[str]] = {}
    for entry in access:
        actions = merged.setdefault((entry["type"], entry["name"]), [])
        actions += [a for a in entry["granted"] if a not in actions]
    return [{"type": t, "name": n, "actions": a} for (t, n), a in merged.items()]


def _scope_text(entry: dict[str, Any]) -> str:
    return f"{entry['type']}:{entry['name']}:{','.join(entry['granted'])}"


def _first_repository(scopes: list[Scope]) -> str:
    return next((s.name for s in scopes if s.type == "repository"), "")


def _pushed_repository(access: list[dict[str, Any]]) -> str:
    """A probe's record names the repository pushed to, whichever order the client sent its scopes in
    (containerd names the mount source first, skopeo last)."""
    return next(e["name"] for e in access if e["type"] == "repository" and "push" in e["granted"])


def _refuse(
    status: int,
    outcome: str,
    reason: str,
    context: AuditContext,
    request: TokenRequest,
    actor: str,
    *,
    scopes: list[Scope] | None = None,
    subject_type: str = SubjectType.USER,
    credential: str = "",
    extra: dict[str, Any] | None = None,
    lookups: Fresh = FRESH,
) -> TokenOutcome:
    if lookups.cached:
        raise Decline  # refusals are recorded and answered from the database
    requested = [
        {"type": s.type, "name": s.name, "requested": list(s.actions), "granted": [], "denied": list(s.actions)}
        for s in scopes or []
    ]
    detail = {"method": request.method, "reason": reason, "grant_type": request.grant_type or "basic"}
    if credential:
        detail["credential"] = credential
    detail.update(extra or {})
    actor_context = AuditContext(
        actor=actor, ip=context.ip, user_agent=context.user_agent, request_id=context.request_id
    )
    retry_of = _containerd_retry_of(request, actor_context, outcome)
    if retry_of is not None:
        detail["retry_of"] = retry_of  # the same attempt as that POST: counted once by alerts and charts
    subject_type = subject_type if actor else SubjectType.ANONYMOUS
    record(
        Kind.ACCESS,
        outcome,
        actor_context,
        subject_type=subject_type,
        registry=request.service[:100],
        repository=_first_repository(scopes or []),
        actions=requested,
        detail=detail,
    )
    TOKEN_REQUESTS.labels(outcome, str(subject_type)).inc()
    if status == 401:
        # Unknown users, wrong secrets, expired or revoked credentials: one answer for all.
        message = "authentication failed"
        body = {"errors": [{"code": "UNAUTHORIZED", "message": message}]}
        return TokenOutcome(status, body, challenge=True, record_detail=detail)
    if status == 503:
        message = "the user directory cannot be reached; try again shortly"
        body = {"errors": [{"code": "UNAVAILABLE", "message": message}]}
        return TokenOutcome(status, body, record_detail=detail, retry_after=services.directory.RETRY_AFTER)
    return TokenOutcome(status, {"errors": [{"code": "INVALID_REQUEST", "message": reason}]}, record_detail=detail)


def _limited(
    hold: services.limits.Hold,
    context: AuditContext,
    request: TokenRequest,
    actor: str,
    scopes: list[Scope],
    lookups: Fresh,
) -> TokenOutcome:
    """Held: recorded as ``limited``, and the guess is not even checked."""
    if lookups.cached:
        raise Decline
    retry_after = hold.retry_after()
    extra = {"hold": str(hold.scope), "retry_after": retry_after}
    _refuse(429, "limited", hold.reason, context, request, actor, scopes=scopes, extra=extra)
    message = f"too many failed sign-ins; try again in {retry_after} seconds"
    body = {"errors": [{"code": "TOOMANYREQUESTS", "message": message}]}
    return TokenOutcome(429, body, retry_after=retry_after, record_detail=extra)


def _containerd_retry_of(request: TokenRequest, context: AuditContext, outcome: str) -> int | None:
    """containerd retries a refused POST once as a GET: link the GET to that POST.

    Every request is still recorded; only the first GET after a given POST is linked, so
    repeated guesses cannot hide behind one POST.
    """
    if request.method != "GET" or outcome != "auth_failed" or not context.actor:
        return None
    recent = AuditRecord.objects.filter(
        kind=Kind.ACCESS,
        outcome=outcome,
        actor=context.actor,
        ip=context.ip,
        user_agent=context.user_agent,
        time__gte=timezone.now() - RETRY_WINDOW,
    )
    posts = list(recent.filter(detail__method="POST").order_by("-id").values_list("id", flat=True)[:5])
    if not posts:
        return None
    linked = set(recent.filter(detail__has_key="retry_of").values_list("detail__retry_of", flat=True))
    return next((post for post in posts if post not in linked), None)
