"""What the repository page gathers beside its registry events: the grants that select it, who can access it
(the engine's answer, summarised), and the commands to pull and copy it from this registry.

A fixed number of queries however many grants or people: the patterns selecting the name, the ids of the
first ``GRANT_LIMIT`` + 1 grants on them (the pattern index answers), then those grants with their
subjects; the registry's facts for the commands need none (it is already loaded). "Who can access" is
the engine's whole answer (``who_can_access``: eight queries, and a decision per person, tens of
milliseconds for a repository thousands may pull): the page loads it as a fragment of its own.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q

from accounts.access.matrix import AccessMatrix, AccessRow, matching_patterns, who_can_access
from accounts.constants import ACTIONS
from accounts.models import Grant, Registry, Repository
from accounts.registry.client_setup import PLACEHOLDER_HOST, client_setup

GRANT_LIMIT = 25
WHO_SHOWN = 10
EXAMPLE_TAG = "latest"
GRANTS = Grant.objects.select_related("user", "team", "robot__team", "registry")


@dataclass(frozen=True)
class Commands:
    """Copy-ready lines for one registry: pull with docker, copy with skopeo, and the registry-side delete."""

    host: str
    known: bool  # False: the registry has no URL and ``host`` is a placeholder
    pull: str
    copy: str
    delete: str


@dataclass(frozen=True)
class Access:
    """The engine's "who can access" answer, cut to a summary: counts per action and the first few rows."""

    matrix: AccessMatrix
    counts: list[tuple[str, int]]
    shown: list[AccessRow]

    @property
    def more(self) -> int:
        return len(self.matrix.rows) - len(self.shown)


def matching_grants(repository: Repository, registry: Registry | None) -> tuple[list[Grant], bool]:
    """The grants whose pattern selects the name on this registry (or on every one), and whether there are more."""
    patterns = matching_patterns(repository.name)
    where = Q(registry__isnull=True) | Q(registry=registry) if registry is not None else Q()
    # Ids first, then their joins: sorting the joined rows read every grant of a pattern like ``**``.
    ids = list(
        Grant.objects.filter(where, pattern__in=patterns)
        .order_by("pattern", "id")[: GRANT_LIMIT + 1]
        .values_list("pk", flat=True)
    )
    found = GRANTS.in_bulk(ids[:GRANT_LIMIT])
    return [found[pk] for pk in ids[:GRANT_LIMIT] if pk in found], len(ids) > GRANT_LIMIT


def access(repository: Repository, service: str, now: datetime) -> Access:
    matrix = who_can_access(repository.name, service, now)
    counts = [(action, sum(action in row.actions for row in matrix.rows)) for action in ACTIONS]
    return Access(matrix, counts, list(matrix.rows[:WHO_SHOWN]))


def commands(repository: Repository, registry: Registry | None, tag: str) -> Commands:
    """``docker pull``, ``skopeo copy`` to an OCI archive and ``skopeo delete``, for ``tag`` (shell-quoted)."""
    setup = client_setup(registry) if registry is not None else None
    host = setup.host if setup is not None else PLACEHOLDER_HOST
    image = f"{host}/{repository.name}:{tag or EXAMPLE_TAG}"
    plain = setup is not None and setup.plain_http
    archive = shlex.quote(f"oci-archive:{repository.name.rsplit('/', 1)[-1]}.tar")
    source = shlex.quote(f"docker://{image}")
    return Commands(
        host=host,
        known=setup is not None and setup.known,
        pull=f"docker pull {shlex.quote(image)}",
        copy=f"skopeo copy{' --src-tls-verify=false' if plain else ''} {source} {archive}",
        delete=f"skopeo delete{' --tls-verify=false' if plain else ''} {source}",
    )
