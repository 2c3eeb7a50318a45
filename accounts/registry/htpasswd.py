"""The htpasswd file for registries in htpasswd mode: pure rendering, atomic writing.

The registry re-reads the file when its modification time changes, so a new
file replaces the old atomically (temp file in the same directory, fsync,
rename) and its mtime is pushed past the previous one: two replaces within one
timestamp tick would otherwise look unchanged. Lock files serialize writers
across processes (gunicorn workers, Celery, management commands), and a sync
reads the database only once it holds the lock, so the last file written always
reflects the last committed change. The file is written after every committed
change that affects it, and by a periodic task that rewrites it even when
nothing changed: a registry that failed to reload the file (unreadable, broken
by hand) keeps serving its old list until the mtime changes again.

The file always lives at ``path_for(registry)``: that is the copy kept current.

Was ``accounts/htpasswd.py`` before the layout split.
"""

from __future__ import annotations

import fcntl
import grp
import logging
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import bcrypt
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import AuthMode, Registry, Robot, User

BCRYPT_PREFIXES = ("$2y$", "$2a$", "$2b$")
MAX_PASSWORD_BYTES = 72
# The registry trims each line, skips lines starting with '#', and splits at the first ':'.
_NAME = re.compile(r"[^\s:#][^\s:]*")
_BCRYPT = re.compile(r"\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}")
_MTIME_STEP_NS = 1_000_000

logger = logging.getLogger(__name__)


class HtpasswdError(ValueError):
    """An entry cannot be written (bad name or hash) or a password cannot be hashed."""


def hash_password(password: str, cost: int | None = None) -> str:
    """bcrypt in the ``$2y$`` form the registry documents; refuses what bcrypt would truncate."""
    data = password.encode()
    if len(data) > MAX_PASSWORD_BYTES:
        raise HtpasswdError(f"passwords may be at most {MAX_PASSWORD_BYTES} bytes long (bcrypt's limit)")
    rounds = cost or settings.HTPASSWD_BCRYPT_COST
    hashed = bcrypt.hashpw(data, bcrypt.gensalt(rounds)).decode()
    return "$2y$" + hashed[4:]


def entry_problem(name: str, hashed: str) -> str:
    """Why ``name:hashed`` cannot be an htpasswd line ("" when it can)."""
    if not _NAME.fullmatch(name):
        return f"the name {name!r} would not survive the registry's parser"
    if not _BCRYPT.fullmatch(hashed):
        return f"the hash for {name!r} is not a bcrypt hash"
    return ""


def render(entries: Iterable[tuple[str, str]]) -> str:
    """``name:hash`` lines sorted by name. Pure: the same entries give the same text."""
    lines = []
    seen: set[str] = set()
    for name, hashed in sorted(entries):
        problem = entry_problem(name, hashed) or (f"{name!r} appears twice" if name in seen else "")
        if problem:
            raise HtpasswdError(f"cannot write an htpasswd entry: {problem}")
        seen.add(name)
        lines.append(f"{name}:{hashed}\n")
    return "".join(lines)


def current_entries(now: datetime | None = None) -> list[tuple[str, str]]:
    """Active users with a known bcrypt hash, and robots that are neither revoked nor expired.

    An entry the file cannot hold is left out (and logged) rather than blocking
    everyone else's change, a deactivation above all.
    """
    now = now or timezone.now()
    users = (
        User.objects.filter(is_active=True, directory_dn="")  # directory users have no hash here
        .exclude(htpasswd_hash="")
        .values_list("username", "htpasswd_hash")
    )
    robots = (
        Robot.objects.filter(revoked_at__isnull=True)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .exclude(bcrypt_hash="")
        .select_related("team")
    )
    candidates = [*users, *((robot.login_name, robot.bcrypt_hash) for robot in robots)]
    return [entry for entry in candidates if _usable(*entry)]


def _usable(name: str, hashed: str) -> bool:
    problem = entry_problem(name, hashed)
    if problem:
        logger.warning("htpasswd: left out of the file: %s", problem)
    return not problem


def path_for(registry: Registry) -> Path:
    """``DATA_DIR/registry/<service>/htpasswd``; refuses a service name that is not one path component."""
    service = registry.service
    if service in {"", ".", ".."} or "/" in service or "\0" in service:
        raise HtpasswdError(f"registry service {service!r} cannot name a directory")
    return Path(settings.DATA_DIR) / "registry" / service / "htpasswd"


def users_without_hash(limit: int | None = None) -> list[str]:
    """Active local users who must set their password again before htpasswd mode can know them (the first ``limit``).

    Directory users are left out: they have no password here to hash, so htpasswd mode never knows them.
    """
    users = User.objects.filter(is_active=True, htpasswd_hash="", directory_dn="").order_by("username")
    return list(users.values_list("username", flat=True)[:limit])


def count_users_without_hash() -> int:
    return User.objects.filter(is_active=True, htpasswd_hash="", directory_dn="").count()


@contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock_path`` (created if missing)."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with os.fdopen(os.open(lock_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def write(path: Path, content: str) -> None:
    """Replace ``path`` atomically under a lock, with the configured mode/group and a fresh mtime."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path.with_name(f".{path.name}.lock")):
        previous = path.stat().st_mtime_ns if path.exists() else 0
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
                handle.write(content)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(temp, settings.HTPASSWD_MODE)
            _set_group(temp)
            _bump_mtime(temp, previous)
            os.replace(temp, path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        _fsync_dir(path.parent)


def _set_group(temp: str) -> None:
    """Give the file to HTPASSWD_GROUP (the registry's group), if one is configured."""
    if not settings.HTPASSWD_GROUP:
        return
    try:
        gid = grp.getgrnam(settings.HTPASSWD_GROUP).gr_gid
    except KeyError:
        raise HtpasswdError(f"HTPASSWD_GROUP={settings.HTPASSWD_GROUP!r} is not a group on this host") from None
    os.chown(temp, -1, gid)


def _bump_mtime(temp: str, previous: int) -> None:
    """Make the new file's mtime later than the old one's, even on coarse-timestamp filesystems."""
    mtime = max(os.stat(temp).st_mtime_ns, previous + _MTIME_STEP_NS)
    os.utime(temp, ns=(mtime, mtime))
    if os.stat(temp).st_mtime_ns <= previous:
        os.utime(temp, ns=(previous + 1_000_000_000,) * 2)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_all() -> int:
    """Write the file of every registry in htpasswd mode; returns how many were written.

    The database is read under the sync lock: a writer that rendered before a
    change committed can never replace the file after one that rendered since.
    """
    with _locked(Path(settings.DATA_DIR) / "registry" / ".htpasswd-sync.lock"):
        registries = list(Registry.objects.filter(auth_mode=AuthMode.HTPASSWD))
        if not registries:
            return 0
        content = render(current_entries())
        for registry in registries:
            write(path_for(registry), content)
        return len(registries)


def sync_after_commit() -> None:
    """Rewrite the files once the current transaction commits (at once outside one).

    Every change registers a callback, so a rollback of one savepoint never
    drops another's; the callbacks of one transaction share a batch and only
    the first to run syncs (an apply_policy run writes the file once).
    """
    connection = transaction.get_connection()
    pending = getattr(connection, "run_on_commit", [])
    batch = next((e[1].batch for e in pending if isinstance(e[1], _PendingSync) and not e[1].batch.done), None)
    transaction.on_commit(_PendingSync(batch or _Batch()))


@dataclass
class _Batch:
    """The syncs one transaction registered; ``done`` once one of them ran."""

    done: bool = False


@dataclass
class _PendingSync:
    batch: _Batch

    def __call__(self) -> None:
        if not self.batch.done:
            self.batch.done = True
            _sync_on_commit()


def _sync_on_commit() -> None:
    """The change has committed whatever happens here: log a failure, the periodic task retries."""
    try:
        sync_all()
    except Exception:
        logger.exception("htpasswd: could not rewrite the file after a change; the periodic sync will retry")


# The doctor's probe ---------------------------------------------------------


@contextmanager
def probe_entry(registry: Registry, name: str, hashed: str) -> Iterator[Path]:
    """Add ``name:hashed`` to ``registry``'s file for the duration of the block, then put the file back as it was.

    The sync lock is held throughout: a sync that would drop the probe (a false "not read") or that
    the restore would overwrite (a change lost) waits, then renders from the database as usual.
    The file must exist: the probe never creates one the registry would then take as the real list.
    """
    problem = entry_problem(name, hashed)
    if problem:
        raise HtpasswdError(f"cannot write the probe entry: {problem}")
    path = path_for(registry)
    with _locked(Path(settings.DATA_DIR) / "registry" / ".htpasswd-sync.lock"):
        before = path.read_text(encoding="utf-8")
        separator = "" if not before or before.endswith("\n") else "\n"
        write(path, f"{before}{separator}{name}:{hashed}\n")
        try:
            yield path
        finally:
            write(path, before)
