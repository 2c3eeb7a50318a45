"""The backup file's format: a gzip'd tar with a manifest and checksums, encrypted with age. Pure bytes in and out.

Why age (through ``pyrage``): a standard, audited format that an operator can open without us in an
emergency (``age -d backup.tar.gz.age | tar xz``, asked for the passphrase), with a passphrase of any
length (scrypt) and an authenticated stream, so a wrong key and a damaged or truncated file are
both caught before anything is read.

Inside: ``manifest.json`` (format, versions, migrations, counts, the SHA-256 and size of every other
member), ``configuration.json`` (the rows), ``secrets.json`` (credential peppers), ``files/...``
(the htpasswd files and certificate bundles under DATA_DIR/registry), ``fragments/<service>.yml``
(each registry's config.yml fragment) and ``README.txt``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyrage

FORMAT = "registryadmin-backup"
FORMAT_VERSION = 1
AGE_MAGIC = b"age-encryption.org/v1\n"
GZIP_MAGIC = b"\x1f\x8b"
MANIFEST = "manifest.json"
CONFIGURATION = "configuration.json"
SECRETS = "secrets.json"
README = "README.txt"
MAX_MEMBER = 2 * 1024**3  # a member larger than this is not one we wrote

HOW_TO_READ = """\
A registryadmin configuration backup.

Restore it on a host running registryadmin (the same version or a newer one):

    BACKUP_KEY=... manage.py restore_backup FILE --dry-run
    BACKUP_KEY=... manage.py restore_backup FILE

Without registryadmin, the age tool opens it (it asks for the passphrase, BACKUP_KEY):

    age -d FILE | tar xz

configuration.json holds the rows (users with password hashes, teams, memberships, grants,
repositories, registries, robots and tokens as hashes, signing keys with their private halves),
secrets.json the credential peppers; files/ the htpasswd files and certificate bundles; fragments/
each registry's config.yml fragment. manifest.json lists a SHA-256 for every member.
Not included: the audit log (manage.py export_audit).
"""


class BackupError(Exception):
    """The file cannot be read as a backup: the message says why and what to do."""


@dataclass
class Contents:
    """What a backup holds, read back and checked."""

    manifest: dict[str, Any]
    rows: dict[str, list[dict[str, Any]]]
    secrets: dict[str, Any]
    files: dict[str, bytes] = field(default_factory=dict)  # member name -> content (files/..., fragments/...)


def _json(value: Any) -> bytes:
    return json.dumps(value, indent=None, separators=(",", ":"), sort_keys=True).encode()


def pack(manifest: dict[str, Any], rows: dict[str, Any], secrets: dict[str, Any], files: dict[str, bytes]) -> bytes:
    """The tar.gz: every member, then the manifest naming each one's checksum (``manifest`` is completed here)."""
    members = {CONFIGURATION: _json(rows), SECRETS: _json(secrets), README: HOW_TO_READ.encode(), **files}
    manifest = {
        **manifest,
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "members": {
            name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)} for name, data in members.items()
        },
    }
    buffer = io.BytesIO()
    # mtime fixed by the manifest's own time; level 6: most of the gain of 9 at a third of the time.
    listing = [(MANIFEST, json.dumps(manifest, indent=2, sort_keys=True).encode()), *members.items()]
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=6, mtime=0) as zipped,
        tarfile.open(fileobj=zipped, mode="w") as tar,
    ):
        for name, data in listing:
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o600
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def encrypt(data: bytes, passphrase: str) -> bytes:
    return pyrage.passphrase.encrypt(data, passphrase)


def _recipient(text: str) -> Any:
    kind = pyrage.ssh.Recipient if text.startswith("ssh-") else pyrage.x25519.Recipient
    return kind.from_str(text)


def encrypt_to(data: bytes, recipients: list[str]) -> bytes:
    """Public-key mode: any one of ``recipients``' identities (private keys) opens the file."""
    return pyrage.encrypt(data, [_recipient(text) for text in recipients])


def identities(text: str) -> list[Any]:
    """The identities of an age identity file (``AGE-SECRET-KEY-1...`` lines) or an unencrypted SSH private key."""
    if "PRIVATE KEY-----" in text:
        return [pyrage.ssh.Identity.from_buffer(text.encode())]
    keys = [line.strip() for line in text.splitlines() if line.strip().startswith("AGE-SECRET-KEY-")]
    return [pyrage.x25519.Identity.from_str(key) for key in keys]


def _decrypt_for_identity(blob: bytes, identity_file: str | None, *, name: str) -> bytes:
    if not identity_file:
        raise BackupError(
            f"{name} is encrypted to public keys (age recipients): set BACKUP_IDENTITY_FILE to an identity file "
            "holding one of their private keys (or decrypt it with `age -d -i IDENTITY` and restore the .tar.gz)."
        )
    try:
        found = identities(Path(identity_file).read_text())
    except (OSError, pyrage.IdentityError, ValueError) as exc:
        raise BackupError(f"BACKUP_IDENTITY_FILE={identity_file!r} cannot be used: {exc}") from None
    if not found:
        raise BackupError(f"BACKUP_IDENTITY_FILE={identity_file!r} holds no AGE-SECRET-KEY-1... line or SSH key.")
    try:
        return pyrage.decrypt(blob, found)
    except pyrage.DecryptError as exc:
        if "No matching keys" in str(exc) or str(exc) == "Decryption failed":
            raise BackupError(f"{name} is not encrypted to any key in BACKUP_IDENTITY_FILE: wrong identity.") from None
        raise BackupError(f"{name} is truncated or damaged: decryption stopped partway ({exc}).") from None


def is_encrypted(blob: bytes) -> bool:
    return blob.startswith(AGE_MAGIC)


def decrypt(blob: bytes, passphrase: str | None, *, name: str = "the file", identity_file: str | None = None) -> bytes:
    """The tar.gz inside ``blob``: decrypted with ``passphrase`` (or, for public-key files, the identities
    in ``identity_file``) when encrypted, as is when not."""
    if blob.startswith(GZIP_MAGIC):
        return blob
    if AGE_MAGIC.startswith(blob) or GZIP_MAGIC.startswith(blob):  # empty, or cut inside the first line
        raise BackupError(f"{name} is truncated: it ends after {len(blob)} bytes, before its format line.")
    if not is_encrypted(blob):
        raise BackupError(f"{name} is not a registryadmin backup (neither age-encrypted nor gzip).")
    if b"\n---" not in blob:  # before the stanzas are read: a cut header is not a recipients file
        raise BackupError(f"{name} is truncated: its age header is incomplete.")
    header = blob[: blob.find(b"\n---")]
    if b"\n-> scrypt " not in header:
        return _decrypt_for_identity(blob, identity_file, name=name)
    if not passphrase:
        raise BackupError(
            f"{name} is encrypted: set BACKUP_KEY (or BACKUP_KEY_FILE) to the passphrase it was made with."
        )
    try:
        return pyrage.passphrase.decrypt(blob, passphrase)
    except pyrage.DecryptError as exc:
        if str(exc) == "Decryption failed":  # the header's MAC: the passphrase does not open it
            raise BackupError(f"{name} does not open with this BACKUP_KEY: wrong key (or a damaged header).") from None
        raise BackupError(f"{name} is truncated or damaged: decryption stopped partway ({exc}).") from None


def unpack(data: bytes, *, name: str = "the file") -> Contents:
    """Read the tar.gz and check every member against the manifest's checksums."""
    members: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for info in tar:
                if (
                    not info.isfile()
                    or info.size > MAX_MEMBER
                    or info.name.startswith("/")
                    or ".." in info.name.split("/")
                ):
                    raise BackupError(f"{name} holds an unexpected member {info.name!r}: not a backup we wrote.")
                handle = tar.extractfile(info)
                members[info.name] = handle.read() if handle else b""
    except (tarfile.TarError, EOFError, OSError, gzip.BadGzipFile) as exc:
        raise BackupError(f"{name} is truncated or damaged: {exc}.") from None
    try:
        manifest = json.loads(members.pop(MANIFEST))
    except (KeyError, ValueError):
        raise BackupError(f"{name} has no readable manifest.json: not a backup we wrote, or damaged.") from None
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{name} is not a registryadmin backup (manifest format {manifest.get('format')!r}).")
    if int(manifest.get("format_version", 0)) > FORMAT_VERSION:
        raise BackupError(
            f"{name} was written in backup format {manifest['format_version']}, newer than this registryadmin "
            f"reads ({FORMAT_VERSION}): upgrade registryadmin first."
        )
    listed = manifest.get("members", {})
    missing = sorted(set(listed) - set(members))
    extra = sorted(set(members) - set(listed))
    if missing or extra:
        raise BackupError(
            f"{name} does not match its manifest: missing {missing or 'none'}, unlisted {extra or 'none'}."
        )
    for member, data in members.items():
        if hashlib.sha256(data).hexdigest() != listed[member]["sha256"]:
            raise BackupError(f"{name}: {member} does not match its checksum in the manifest: the file is damaged.")
    try:
        rows = json.loads(members.pop(CONFIGURATION))
        secrets = json.loads(members.pop(SECRETS))
    except (KeyError, ValueError):
        raise BackupError(f"{name}: configuration.json or secrets.json is missing or not JSON.") from None
    members.pop(README, None)
    return Contents(manifest=manifest, rows=rows, secrets=secrets, files=members)


def read(blob: bytes, passphrase: str | None, *, name: str = "the file", identity_file: str | None = None) -> Contents:
    return unpack(decrypt(blob, passphrase, name=name, identity_file=identity_file), name=name)
