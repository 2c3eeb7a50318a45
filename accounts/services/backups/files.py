"""Backup files on disk: names, the atomic 0600 write, retention and the copy hook."""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from django.conf import settings

from accounts.services.backups.archive import BackupError

PREFIX = "registryadmin-backup-"
ENCRYPTED_SUFFIX = ".tar.gz.age"
PLAIN_SUFFIX = ".tar.gz"


def backup_dir(output_dir: Path | None = None) -> Path:
    """BACKUP_DIR (or ``output_dir``), made 0700 when missing."""
    directory = Path(output_dir or settings.BACKUP_DIR)
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise BackupError(f"cannot create the backup directory {directory}: {exc.strerror}") from None
    return directory


def file_name(when: datetime, *, encrypted: bool) -> str:
    return f"{PREFIX}{when:%Y%m%dT%H%M%S}Z{ENCRYPTED_SUFFIX if encrypted else PLAIN_SUFFIX}"


def write(directory: Path, name: str, data: bytes) -> Path:
    """Write ``data`` as ``directory/name``: a 0600 temp file, fsync, link, fsync of the directory.

    A crash leaves either no file or the whole file, never a part under the final name; an existing
    file is never overwritten (two backups in one second get ``-2``, ``-3``...).
    """
    fd, temp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        path = _link_free_name(temp, directory, name)
    except OSError as exc:
        raise BackupError(f"cannot write {directory / name}: {exc.strerror}") from None
    finally:
        Path(temp).unlink(missing_ok=True)
    _fsync_dir(directory)
    return path


def _link_free_name(temp: str, directory: Path, name: str) -> Path:
    """Link ``temp`` under ``name``, or the first free ``name-N``: link() never replaces, unlike rename()."""
    stem, dot, suffix = name.partition(".")
    for attempt in range(1, 100):
        path = directory / (name if attempt == 1 else f"{stem}-{attempt}{dot}{suffix}")
        try:
            os.link(temp, path)
        except FileExistsError:
            continue
        return path
    raise BackupError(f"no free file name for {name} in {directory}")


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def kept(
    times: Iterable[datetime], *, daily: int, weekly: int, monthly: int, recent_after: datetime | None = None
) -> set[datetime]:
    """Which backups retention keeps: the newest of each of the last ``daily`` days that have one,
    of the last ``weekly`` ISO weeks and of the last ``monthly`` months (grandfather-father-son).

    The newest backup is always kept, whatever the settings, and so is every one made after
    ``recent_after`` (a "back up now" before a change is not removed by the scheduled run that follows).
    """
    ordered = sorted(set(times), reverse=True)
    keep: set[datetime] = set(ordered[:1])
    if recent_after is not None:
        keep |= {when for when in ordered if when > recent_after}
    for count, period in (
        (daily, lambda t: t.date()),
        (weekly, lambda t: t.isocalendar()[:2]),
        (monthly, lambda t: (t.year, t.month)),
    ):
        seen: list[object] = []
        for when in ordered:
            key = period(when)
            if key in seen:
                continue
            if len(seen) >= count:
                break
            seen.append(key)
            keep.add(when)
    return keep


def copy_off_host(path: Path) -> str:
    """Run BACKUP_COPY_COMMAND with the file's path as its last argument; its output, or raise."""
    command = settings.BACKUP_COPY_COMMAND
    try:
        done = subprocess.run(
            [*shlex.split(command), str(path)],
            capture_output=True,
            text=True,
            timeout=settings.BACKUP_COPY_TIMEOUT,
            check=False,
        )
    except FileNotFoundError:
        raise BackupError(f"BACKUP_COPY_COMMAND: {shlex.split(command)[0]!r} is not found.") from None
    except subprocess.TimeoutExpired:
        raise BackupError(f"BACKUP_COPY_COMMAND did not finish in {settings.BACKUP_COPY_TIMEOUT} s.") from None
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise BackupError(f"BACKUP_COPY_COMMAND exited {done.returncode}: {' / '.join(said) or 'no output'}")
    return done.stdout.strip()[-500:]
