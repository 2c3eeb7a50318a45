"""What the doctor works with: the registry it examines, what each check found, and the whole report."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from accounts.models import Registry

CHECK_IDS = ("auth_settings", "token_trust", "tls", "roles", "clock", "proxy", "cors", "rate_limit")
STATUSES = ("ok", "warn", "fail", "skip")


@dataclass(frozen=True)
class Target:
    """One registry as the doctor probes it.

    ``url`` is where clients reach it (``--url``: through a proxy or load balancer) and ``direct_url``
    the registry row's URL; they are the same without ``--url``. ``origin`` is a browser UI's web
    origin (``--origin``), ``registry_config`` the registry's config.yml when readable here.
    """

    registry: Registry
    url: str
    direct_url: str
    origin: str = ""
    registry_config: Path | None = None
    user: str = ""
    repository: str = ""
    action: str = "pull"

    @property
    def through_proxy(self) -> bool:
        return self.url.rstrip("/") != self.direct_url.rstrip("/")


@dataclass
class Check:
    """What one check found: ``status`` is ok, warn, fail or skip; ``fix`` says what to change (lines to paste)."""

    id: str
    status: str
    summary: str
    evidence: list[str] = field(default_factory=list)
    fix: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown status {self.status!r}")


@dataclass
class State:
    """What earlier checks learnt, for the later ones: the registry's answer to ``GET /v2/`` and reachability."""

    reachable: bool | None = None
    unreachable_reason: str = ""
    base_answer: Any = None  # accounts.registry.doctor.http.Answer of GET {url}/v2/
    notes: dict[str, Any] = field(default_factory=dict)


@dataclass
class Report:
    registry: str
    url: str
    checks: list[Check]
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return any(check.status == "fail" for check in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {"registry": self.registry, "url": self.url, "checks": [asdict(check) for check in self.checks]}

    def as_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2)

    def as_text(self) -> str:
        lines = [f"registry {self.registry} at {self.url}"]
        for check in self.checks:
            lines.append(f"[{check.status.upper():4}] {check.id}: {check.summary}")
            lines += [f"       saw: {line}" for line in check.evidence]
            lines += [f"       fix: {line}" for line in check.fix]
        worst = "fail" if self.failed else ("warn" if any(c.status == "warn" for c in self.checks) else "ok")
        lines.append(
            f"{worst}: {sum(c.status == 'fail' for c in self.checks)} failed, "
            f"{sum(c.status == 'warn' for c in self.checks)} warned, in {self.seconds:.1f} s"
        )
        return "\n".join(lines)
