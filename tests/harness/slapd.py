"""A throwaway OpenLDAP ``slapd`` (Debian's 2.5) for the directory sign-in and sync tests.

``Slapd`` writes a plain ``slapd.conf`` into a temporary directory (schemas core, cosine,
inetorgperson and nis; one ``mdb`` database for ``dc=example,dc=org``; the ``memberof``
overlay so people carry ``memberOf`` like Active Directory users do), starts slapd in the
foreground on a free loopback port, and waits until the root DN can bind. People live under
``ou=people``, groups under ``ou=groups``; groups may list other groups, for nested-group tests.

``stop()`` and ``start()`` keep the port and the data, for "the directory goes down mid-test".
The ``slapd`` fixture skips without slapd, or fails when ``CI=true``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

import ldap
import ldap.controls
import ldap.dn
import pytest
from ldap.ldapobject import LDAPObject

from . import in_ci
from .ports import free_port

__all__ = [
    "EMPTY_GROUP_MEMBER",
    "GroupKind",
    "Population",
    "Slapd",
    "SlapdError",
    "find_slapd",
    "require_slapd",
    "slapd",
    "ssha",
]

SUFFIX = "dc=example,dc=org"
SCHEMA_DIR = Path("/etc/ldap/schema")
MODULE_DIR = Path("/usr/lib/ldap")
SCHEMAS = ("core", "cosine", "inetorgperson", "nis")
# Debian installs slapd in /usr/sbin, which is not on an ordinary user's PATH.
SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin")
# groupOfNames and groupOfUniqueNames must have a member; real directories park this one there.
EMPTY_GROUP_MEMBER = ""
FIRST_GID = 10000
LOG_TAIL_LINES = 40

GroupKind = Literal["groupOfNames", "groupOfUniqueNames", "posixGroup"]
# The attribute each kind of group lists its members in, and whether it holds DNs or uids.
MEMBER_ATTRIBUTE: dict[str, str] = {
    "groupOfNames": "member",
    "groupOfUniqueNames": "uniqueMember",
    "posixGroup": "memberUid",
}


class SlapdError(RuntimeError):
    """slapd could not be started, or exited unexpectedly."""


@dataclass(frozen=True)
class Population:
    """What ``Slapd.populate`` loaded: every person's uid, every group's cn and who is in it."""

    uids: list[str]
    groups: dict[str, list[str]] = field(default_factory=dict)
    password: str = ""
    seconds: float = 0.0


def ssha(password: str) -> str:
    """``{SSHA}`` hash of ``password`` in the form slapd checks simple binds against."""
    salt = secrets.token_bytes(8)
    digest = hashlib.sha1(password.encode() + salt, usedforsecurity=False).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


def find_slapd() -> str | None:
    """Absolute path of the slapd binary, looking in the sbin directories too."""
    search = os.pathsep.join([os.environ.get("PATH", ""), *SBIN_DIRS])
    return shutil.which("slapd", path=search)


def require_slapd() -> str:
    """Return slapd's path, or skip the test (fail it under ``CI=true``) when it is missing."""
    path = find_slapd()
    if path is not None and all((SCHEMA_DIR / f"{name}.schema").is_file() for name in SCHEMAS):
        return path
    message = "slapd or its schemas are missing (Debian packages 'slapd' and 'ldap-utils')"
    if in_ci():
        pytest.fail(f"{message}; CI=true, so this is a failure, not a skip", pytrace=False)
    pytest.skip(message)


def _b(values: Iterable[str]) -> list[bytes]:
    return [value.encode() for value in values]


class Slapd:
    """slapd on ``127.0.0.1`` with its configuration, database and log in a temporary directory.

    Use as a context manager, or call ``start()``/``stop()`` and ``close()``. Every method
    that changes the directory goes through one connection bound as the root DN.
    """

    def __init__(
        self,
        *,
        binary: str | None = None,
        workdir: Path | None = None,
        memberof: bool = True,
        start_timeout: float = 5.0,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        self.binary = binary or find_slapd() or "/usr/sbin/slapd"
        self.memberof = memberof
        self.tls = tls  # (certificate, private key) PEM files: StartTLS on the ldap:// port
        self.start_timeout = start_timeout
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="slapd-"))
        self.port = free_port()
        self.suffix = SUFFIX
        self.bind_dn = f"cn=admin,{SUFFIX}"
        self.bind_password = secrets.token_urlsafe(12)
        self.people_base = f"ou=people,{SUFFIX}"
        self.groups_base = f"ou=groups,{SUFFIX}"
        self._process: subprocess.Popen[bytes] | None = None
        self._admin: LDAPObject | None = None
        self._seeded = False
        self._next_gid = FIRST_GID

    # --- where things are -------------------------------------------------------------

    @property
    def uri(self) -> str:
        """``ldap://127.0.0.1:PORT``."""
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.workdir / "slapd.conf"

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def log_path(self) -> Path:
        """slapd's stderr, appended across restarts."""
        return self.workdir / "slapd.log"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def person_dn(self, uid: str) -> str:
        return f"uid={ldap.dn.escape_dn_chars(uid)},{self.people_base}"

    def group_dn(self, cn: str) -> str:
        return f"cn={ldap.dn.escape_dn_chars(cn)},{self.groups_base}"

    # --- process ------------------------------------------------------------------------

    def write_config(self) -> Path:
        """Write ``slapd.conf``: schemas, mdb without fsync (a test database), memberof, ACLs."""
        includes = "\n".join(f"include {SCHEMA_DIR / name}.schema" for name in SCHEMAS)
        overlay = "overlay memberof\nmemberof-refint true\n" if self.memberof else ""
        tls = f"TLSCertificateFile {self.tls[0]}\nTLSCertificateKeyFile {self.tls[1]}\n" if self.tls else ""
        self.config_path.write_text(
            f"""{includes}
pidfile {self.workdir / "slapd.pid"}
argsfile {self.workdir / "slapd.args"}
modulepath {MODULE_DIR}
moduleload back_mdb
{"moduleload memberof" if self.memberof else ""}
sizelimit unlimited
{tls}
database mdb
suffix "{self.suffix}"
rootdn "{self.bind_dn}"
rootpw {ssha(self.bind_password)}
directory {self.data_dir}
maxsize 1073741824
dbnosync
# Equality indexes only: substring indexes more than double the time populate() takes.
index objectClass eq
index uid,cn,mail eq
index member,uniqueMember,memberUid eq
{overlay}
access to attrs=userPassword by self write by anonymous auth by * none
access to * by * read
"""
        )
        return self.config_path

    def start(self) -> Self:
        """Start slapd on the same port and data as before, and wait until the root DN binds."""
        if self.running:
            raise SlapdError("slapd is already running")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.write_config()
        self._process = self._spawn()
        self._wait_until_it_answers()
        if not self._seeded:
            self._seed()
        return self

    def _spawn(self) -> subprocess.Popen[bytes]:
        """``slapd -d 0`` stays in the foreground, so the harness owns the process."""
        with open(self.log_path, "ab") as log:
            log.write(f"--- harness: starting at {time.strftime('%H:%M:%S')} ---\n".encode())
            log.flush()
            return subprocess.Popen(
                [self.binary, "-d", "none", "-f", str(self.config_path), "-h", self.uri],
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def _wait_until_it_answers(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self._process is not None and self._process.poll() is not None:
                code, self._process = self._process.returncode, None
                raise SlapdError(f"slapd exited early with status {code}\n--- slapd log ---\n{self.log_tail()}")
            try:
                self._admin = self.connect(self.bind_dn, self.bind_password, timeout=1.0)
                return
            except ldap.SERVER_DOWN:
                if time.monotonic() >= deadline:
                    self.stop()
                    raise SlapdError(
                        f"slapd did not answer within {self.start_timeout:.1f}s\n--- slapd log ---\n{self.log_tail()}"
                    ) from None
                time.sleep(0.02)

    def _seed(self) -> None:
        """The suffix entry and the two organizational units, on the first start only."""
        self._add(self.suffix, objectClass=["dcObject", "organization"], dc=["example"], o=["Example"])
        for base in (self.people_base, self.groups_base):
            self._add(base, objectClass=["organizationalUnit"], ou=[ldap.dn.str2dn(base)[0][0][1]])
        self._seeded = True

    def stop(self, timeout: float = 10.0) -> None:
        """Stop slapd (SIGTERM, then SIGKILL); binds fail with ``SERVER_DOWN`` until ``start()``."""
        if self._admin is not None:
            self._admin.unbind_s()
            self._admin = None
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)

    def close(self) -> None:
        """Stop slapd and delete its directory if the harness created it."""
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- connections --------------------------------------------------------------------

    def connect(self, who: str | None = None, password: str = "", *, timeout: float = 2.0) -> LDAPObject:
        """A new connection, bound as ``who`` (a DN or a person's uid) or anonymous when ``None``.

        Raises ``ldap.INVALID_CREDENTIALS`` for a wrong password, ``ldap.SERVER_DOWN`` when
        slapd is not listening. Unbind it when done.
        """
        conn = ldap.initialize(self.uri)
        conn.set_option(ldap.OPT_NETWORK_TIMEOUT, timeout)
        conn.set_option(ldap.OPT_TIMEOUT, timeout)
        conn.set_option(ldap.OPT_REFERRALS, 0)
        conn.protocol_version = ldap.VERSION3
        try:
            conn.simple_bind_s(self._dn_of_person(who) if who else "", password)
        except ldap.LDAPError:
            conn.unbind_s()
            raise
        return conn

    @property
    def admin(self) -> LDAPObject:
        """The root DN's connection (slapd must be running)."""
        if self._admin is None:
            raise SlapdError("slapd is not running")
        return self._admin

    def _dn_of_person(self, who: str) -> str:
        return who if "=" in who else self.person_dn(who)

    def _add(self, dn: str, **attributes: Iterable[str]) -> str:
        self.admin.add_s(dn, [(name, _b(values)) for name, values in attributes.items()])
        return dn

    # --- people -------------------------------------------------------------------------

    def add_person(
        self,
        uid: str,
        password: str | None,
        *,
        mail: str | None = None,
        given_name: str | None = None,
        sn: str | None = None,
        cn: str | None = None,
        hashed: bool = True,
    ) -> str:
        """Add an ``inetOrgPerson`` under ``ou=people`` and return its DN.

        ``password`` becomes an ``{SSHA}`` ``userPassword`` (plain with ``hashed=False``);
        ``None`` leaves the person unable to bind.
        """
        attributes = self._person_attributes(uid, password, mail, given_name, sn, cn, hashed)
        return self._add(self.person_dn(uid), **attributes)

    @staticmethod
    def _person_attributes(
        uid: str,
        password: str | None,
        mail: str | None,
        given_name: str | None,
        sn: str | None,
        cn: str | None,
        hashed: bool = True,
    ) -> dict[str, list[str]]:
        surname = sn or uid
        attributes = {
            "objectClass": ["inetOrgPerson"],
            "uid": [uid],
            "sn": [surname],
            "cn": [cn or " ".join(part for part in (given_name, surname) if part)],
        }
        optional = {"mail": mail, "givenName": given_name}
        if password is not None:
            optional["userPassword"] = ssha(password) if hashed else password
        attributes.update({name: [value] for name, value in optional.items() if value})
        return attributes

    def delete_person(self, uid: str) -> None:
        """Delete the person; ``memberof-refint`` drops them from every groupOfNames too."""
        self.admin.delete_s(self.person_dn(uid))

    def set_password(self, uid: str, password: str) -> None:
        self.admin.modify_s(self.person_dn(uid), [(ldap.MOD_REPLACE, "userPassword", _b([ssha(password)]))])

    def modify_person(self, uid: str, **attributes: str | None) -> None:
        """Replace (or, with ``None``, delete) attributes of a person: ``mail="x@y"``, ``givenName=None``."""
        changes = [
            (ldap.MOD_REPLACE, name, _b([value]) if value is not None else None) for name, value in attributes.items()
        ]
        self.admin.modify_s(self.person_dn(uid), changes)

    # --- groups -------------------------------------------------------------------------

    def add_group(self, cn: str, members: Iterable[str] = (), *, kind: GroupKind = "groupOfNames") -> str:
        """Add a group under ``ou=groups`` and return its DN.

        ``members`` are uids or DNs; a DN of another group nests it (groupOfNames and
        groupOfUniqueNames). A posixGroup lists uids in ``memberUid`` and gets the next gidNumber.
        """
        return self._add(self.group_dn(cn), **self._group_attributes(cn, list(members), kind))

    def _group_attributes(self, cn: str, members: list[str], kind: GroupKind) -> dict[str, list[str]]:
        if kind not in MEMBER_ATTRIBUTE:
            raise ValueError(f"unknown group kind {kind!r}")
        values = [self._member_value(kind, member) for member in members]
        attributes = {"objectClass": [kind], "cn": [cn]}
        if kind == "posixGroup":
            attributes["gidNumber"] = [str(self._next_gid)]
            self._next_gid += 1
        attributes[MEMBER_ATTRIBUTE[kind]] = values or ([] if kind == "posixGroup" else [EMPTY_GROUP_MEMBER])
        return {name: value for name, value in attributes.items() if value}

    def _member_value(self, kind: str, member: str) -> str:
        if kind != "posixGroup":
            return self._dn_of_person(member)
        if "=" in member:
            raise ValueError("a posixGroup lists uids, not DNs; it cannot nest groups")
        return member

    def _group_kind(self, cn: str) -> str:
        [(_, entry)] = self.admin.search_s(self.group_dn(cn), ldap.SCOPE_BASE, attrlist=["objectClass"])
        classes = {value.decode() for value in entry["objectClass"]}
        return next(kind for kind in MEMBER_ATTRIBUTE if kind in classes)

    def add_member(self, group: str, member: str) -> None:
        """Add a uid or DN (a group, to nest it) to group ``group`` (its cn), whatever its kind."""
        kind = self._group_kind(group)
        attribute, value = MEMBER_ATTRIBUTE[kind], self._member_value(kind, member)
        changes = [(ldap.MOD_ADD, attribute, _b([value]))]
        if kind != "posixGroup" and EMPTY_GROUP_MEMBER in self.members(group):
            changes.append((ldap.MOD_DELETE, attribute, _b([EMPTY_GROUP_MEMBER])))
        self.admin.modify_s(self.group_dn(group), changes)

    def remove_member(self, group: str, member: str) -> None:
        """Remove a uid or DN from the group; the last one leaves the empty-group placeholder."""
        kind = self._group_kind(group)
        attribute, value = MEMBER_ATTRIBUTE[kind], self._member_value(kind, member)
        changes = [(ldap.MOD_DELETE, attribute, _b([value]))]
        if kind != "posixGroup" and self.members(group) == [value]:
            changes.insert(0, (ldap.MOD_ADD, attribute, _b([EMPTY_GROUP_MEMBER])))
        self.admin.modify_s(self.group_dn(group), changes)

    def members(self, group: str) -> list[str]:
        """The group's member values as stored: DNs, or uids for a posixGroup."""
        attribute = MEMBER_ATTRIBUTE[self._group_kind(group)]
        [(_, entry)] = self.admin.search_s(self.group_dn(group), ldap.SCOPE_BASE, attrlist=[attribute])
        return [value.decode() for value in entry.get(attribute, [])]

    def delete_group(self, cn: str) -> None:
        self.admin.delete_s(self.group_dn(cn))

    # --- bulk ---------------------------------------------------------------------------

    def populate(
        self,
        people: int = 5000,
        groups: int = 200,
        *,
        password: str = "pw",
        kind: GroupKind = "groupOfNames",
        prefix: str = "user",
    ) -> Population:
        """Add ``people`` people and ``groups`` groups; person ``i`` is in group ``i % groups``.

        The adds are pipelined on the root connection (all sent, then all answered), which
        with ``dbnosync`` loads 5,000 people in 200 groups in about a second. Every person
        shares ``password`` (hashed once: a bulk load need not salt each one apart).
        """
        started = time.perf_counter()
        hashed = ssha(password)
        uids = [f"{prefix}{index:05d}" for index in range(people)]
        entries = [
            (self.person_dn(uid), self._person_attributes(uid, hashed, f"{uid}@example.org", "User", uid, None, False))
            for uid in uids
        ]
        membership = {f"group{index:04d}": uids[index::groups] for index in range(groups)}
        self._add_pipelined(entries)
        # Only after every person exists: slapd runs pipelined operations concurrently, and memberof
        # can only stamp memberOf on a person already there.
        self._add_pipelined(
            [(self.group_dn(cn), self._group_attributes(cn, members, kind)) for cn, members in membership.items()]
        )
        return Population(uids, membership, password, time.perf_counter() - started)

    def _add_pipelined(self, entries: list[tuple[str, dict[str, list[str]]]], window: int = 500) -> None:
        """Send adds ``window`` at a time without waiting, then collect every answer (errors raise).

        slapd may run the operations of one window in any order: none may depend on another.
        """
        for start in range(0, len(entries), window):
            batch = entries[start : start + window]
            ids = [
                self.admin.add_ext(dn, [(name, _b(values)) for name, values in attributes.items()])
                for dn, attributes in batch
            ]
            for msgid in ids:
                self.admin.result(msgid)

    def search_people(self, filterstr: str = "(objectClass=inetOrgPerson)", page_size: int = 500) -> Iterator[str]:
        """DNs under ``ou=people`` matching ``filterstr``, fetched in pages of ``page_size``."""
        yield from paged_search(self.admin, self.people_base, filterstr, page_size)


def paged_search(conn: LDAPObject, base: str, filterstr: str, page_size: int = 500) -> Iterator[str]:
    """DNs of a subtree search done with the Simple Paged Results control (RFC 2696)."""
    control = ldap.controls.SimplePagedResultsControl(True, size=page_size, cookie="")
    while True:
        msgid = conn.search_ext(base, ldap.SCOPE_SUBTREE, filterstr, attrlist=["1.1"], serverctrls=[control])
        _, data, _, controls = conn.result3(msgid)
        yield from (dn for dn, _ in data if dn)
        cookie = next(
            (c.cookie for c in controls if c.controlType == ldap.controls.SimplePagedResultsControl.controlType), b""
        )
        if not cookie:
            return
        control.cookie = cookie


@pytest.fixture
def slapd() -> Iterator[Slapd]:
    """A started, empty directory (ou=people, ou=groups), stopped and deleted after the test."""
    binary = require_slapd()
    with Slapd(binary=binary) as server:
        yield server
