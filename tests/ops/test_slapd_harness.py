"""Self-tests of ``tests.harness.slapd``: a real slapd, people and groups, going down and coming back.

alice and bob are people; web lists alice, platform nests web and lists bob.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import ldap
import ldap.controls
import pytest

from tests.harness.slapd import EMPTY_GROUP_MEMBER, GroupKind, Slapd, SlapdError, require_slapd
from tests.harness.slapd import slapd as slapd  # the fixture

pytestmark = pytest.mark.e2e

ALICE = ("alice", "alice-secret")
BOB = ("bob", "bob-secret")


def binds(server: Slapd, who: str, password: str) -> bool:
    try:
        server.connect(who, password).unbind_s()
    except ldap.INVALID_CREDENTIALS:
        return False
    return True


def member_of(server: Slapd, uid: str) -> set[str]:
    [(_, entry)] = server.admin.search_s(server.person_dn(uid), ldap.SCOPE_BASE, attrlist=["memberOf"])
    return {value.decode() for value in entry.get("memberOf", [])}


def test_it_starts_fast_on_loopback_and_teardown_kills_it_and_removes_its_directory() -> None:
    binary = require_slapd()
    started = time.perf_counter()
    with Slapd(binary=binary) as server:
        elapsed = time.perf_counter() - started
        assert server.uri == f"ldap://127.0.0.1:{server.port}"
        assert server.connect(server.bind_dn, server.bind_password).whoami_s() == f"dn:{server.bind_dn}"
        workdir, port = server.workdir, server.port
    assert elapsed < 2.0
    assert not workdir.exists()
    with socket.socket() as sock, pytest.raises(ConnectionRefusedError):
        sock.connect(("127.0.0.1", port))


def test_a_person_binds_with_the_right_password_and_not_a_wrong_one(slapd: Slapd) -> None:
    slapd.add_person(*ALICE, mail="alice@example.org", given_name="Alice", sn="Liddell")
    assert binds(slapd, *ALICE)
    assert binds(slapd, slapd.person_dn("alice"), ALICE[1])
    assert not binds(slapd, "alice", "wrong")
    [(_, entry)] = slapd.admin.search_s(slapd.person_dn("alice"), ldap.SCOPE_BASE)
    assert entry["mail"] == [b"alice@example.org"] and entry["cn"] == [b"Alice Liddell"]
    assert entry["userPassword"][0].startswith(b"{SSHA}")


def test_a_plain_password_binds_and_set_password_replaces_the_old_one(slapd: Slapd) -> None:
    slapd.add_person(*BOB, hashed=False)
    assert binds(slapd, *BOB)
    slapd.set_password("bob", "new-secret")
    assert binds(slapd, "bob", "new-secret")
    assert not binds(slapd, *BOB)


def test_other_people_cannot_read_a_password_hash(slapd: Slapd) -> None:
    slapd.add_person(*ALICE)
    slapd.add_person(*BOB)
    conn = slapd.connect(*BOB)
    [(_, entry)] = conn.search_s(slapd.person_dn("alice"), ldap.SCOPE_BASE)
    assert "uid" in entry and "userPassword" not in entry


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("groupOfNames", "dns"),
        ("groupOfUniqueNames", "dns"),
        ("posixGroup", "uids"),
    ],
)
def test_groups_list_their_members(slapd: Slapd, kind: GroupKind, expected: str) -> None:
    slapd.add_person(*ALICE)
    slapd.add_person(*BOB)
    slapd.add_group("web", ["alice", "bob"], kind=kind)
    uids = ["alice", "bob"]
    assert sorted(slapd.members("web")) == (uids if expected == "uids" else [slapd.person_dn(u) for u in uids])
    slapd.remove_member("web", "alice")
    slapd.remove_member("web", "bob")
    assert slapd.members("web") == ([] if kind == "posixGroup" else [EMPTY_GROUP_MEMBER])
    slapd.add_member("web", "bob")
    assert slapd.members("web") == (["bob"] if kind == "posixGroup" else [slapd.person_dn("bob")])


def test_people_carry_memberof_and_groups_nest(slapd: Slapd) -> None:
    slapd.add_person(*ALICE)
    slapd.add_person(*BOB)
    web = slapd.add_group("web", ["alice"])
    platform = slapd.add_group("platform", [web, "bob"])
    assert set(slapd.members("platform")) == {web, slapd.person_dn("bob")}
    assert member_of(slapd, "alice") == {web}
    assert member_of(slapd, "bob") == {platform}
    [(_, entry)] = slapd.admin.search_s(web, ldap.SCOPE_BASE, attrlist=["memberOf"])
    assert entry["memberOf"] == [platform.encode()]


def test_deleting_a_person_drops_them_from_their_groups(slapd: Slapd) -> None:
    slapd.add_person(*ALICE)
    slapd.add_person(*BOB)
    slapd.add_group("web", ["alice", "bob"])
    slapd.delete_person("alice")
    assert slapd.members("web") == [slapd.person_dn("bob")]
    with pytest.raises(ldap.INVALID_CREDENTIALS):
        slapd.connect(*ALICE)


def test_stop_makes_binds_fail_fast_and_start_brings_the_data_back(slapd: Slapd) -> None:
    slapd.add_person(*ALICE)
    slapd.add_group("web", ["alice"])
    port = slapd.port
    slapd.stop()
    started = time.perf_counter()
    with pytest.raises(ldap.SERVER_DOWN):
        slapd.connect(*ALICE)
    assert time.perf_counter() - started < 0.5
    slapd.start()
    assert slapd.port == port
    assert binds(slapd, *ALICE)
    assert slapd.members("web") == [slapd.person_dn("alice")]


def test_a_slapd_that_cannot_start_raises_with_its_log(tmp_path: Path) -> None:
    require_slapd()
    server = Slapd(binary="/bin/false", workdir=tmp_path)
    with pytest.raises(SlapdError, match="exited early with status 1\n--- slapd log ---"):
        server.start()
    assert not server.running


def test_populate_loads_people_in_groups_that_a_paged_search_finds(slapd: Slapd) -> None:
    population = slapd.populate(500, 20)
    assert len(population.uids) == 500 and len(population.groups) == 20
    assert all(len(members) == 25 for members in population.groups.values())
    assert binds(slapd, population.uids[-1], population.password)
    assert member_of(slapd, population.uids[21]) == {slapd.group_dn("group0001")}

    control = ldap.controls.SimplePagedResultsControl(True, size=100, cookie="")
    pages, found = 0, []
    while True:
        msgid = slapd.admin.search_ext(
            slapd.people_base, ldap.SCOPE_ONELEVEL, "(objectClass=inetOrgPerson)", ["uid"], serverctrls=[control]
        )
        _, data, _, controls = slapd.admin.result3(msgid)
        pages += 1
        found += [entry["uid"][0].decode() for _, entry in data]
        [control.cookie] = [c.cookie for c in controls if c.controlType == control.controlType]
        if not control.cookie:
            break
    assert pages == 5 and sorted(found) == population.uids
    assert len(list(slapd.search_people(page_size=64))) == 500
