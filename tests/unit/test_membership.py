"""Ensemble membership: agreement by server ids and roles (not addresses) in the peer hello,
and the membership a data dir records (older address digests upgraded when they match)."""

from __future__ import annotations

import cbor2
import pytest

from ccore.server.config import ConfigError
from ccore.server.peers import (
    HELLO_MAGIC,
    Membership,
    MembershipMismatch,
    PeerFrameError,
    PeerNetwork,
    address_digest,
    frame,
    membership_digest,
)
from ccore.server.replication import ENSEMBLE_FILE, check_ensemble_id


def one_line(exc: BaseException) -> str:
    assert "\n" not in str(exc)
    return str(exc)


# -- the hello check ---------------------------------------------------------------------------


def network(my_id: int, members: dict[int, tuple[str, int]], observers=()) -> PeerNetwork:
    return PeerNetwork(my_id, members, encode=cbor2.dumps, decode=cbor2.loads, on_message=lambda *a: None, observers=observers)


def hello(net: PeerNetwork) -> bytes:
    """What `net` sends first on every connection it dials (without the length frame)."""
    return cbor2.dumps([HELLO_MAGIC, net.my_id, net.digest])


def test_same_ids_and_roles_at_different_addresses_are_accepted() -> None:
    # How a Docker/Kubernetes config looks: each server names itself 0.0.0.0, the others by
    # name; a proxy or NAT gives yet other addresses.
    one = network(1, {1: ("0.0.0.0", 2888), 2: ("zoo2", 2888), 3: ("10.0.0.3", 2888), 4: ("zoo4", 2888)}, observers=[4])
    two = network(2, {1: ("zoo1", 2888), 2: ("0.0.0.0", 2888), 3: ("127.0.0.1", 9000), 4: ("zoo4", 2888)}, observers=[4])
    assert one._check_hello(hello(two)) == 2
    assert two._check_hello(hello(one)) == 1


def test_different_ids_are_refused_naming_the_difference() -> None:
    ours = network(1, {1: ("h1", 1), 2: ("h2", 1), 3: ("h3", 1)})
    theirs = network(3, {1: ("h1", 1), 2: ("h2", 1), 3: ("h3", 1), 4: ("h4", 1)}, observers=[4])
    with pytest.raises(MembershipMismatch) as e:
        ours._check_hello(hello(theirs))
    assert one_line(e.value) == (
        "server 3 lists members {1,2,3,4} (observers {4}), we list {1,2,3} (no observers): {4} only in theirs; "
        "fix the server.N lines so that every server names the same ids and roles"
    )
    with pytest.raises(MembershipMismatch, match=r"\{4\} only in ours"):
        theirs._check_hello(hello(ours))


def test_different_roles_are_refused_naming_the_difference() -> None:
    ours = network(1, {1: ("h1", 1), 2: ("h2", 1), 3: ("h3", 1), 4: ("h4", 1)}, observers=[4])
    theirs = network(2, {1: ("h1", 1), 2: ("h2", 1), 3: ("h3", 1), 4: ("h4", 1)}, observers=[3])
    with pytest.raises(MembershipMismatch) as e:
        ours._check_hello(hello(theirs))
    message = one_line(e.value)
    assert "server 2 lists members {1,2,3,4} (observers {3}), we list {1,2,3,4} (observers {4})" in message
    assert "server 3 is an observer in theirs and a participant in ours" in message
    assert "server 4 is a participant in theirs and an observer in ours" in message


def test_older_address_digest_and_own_id_are_refused() -> None:
    members = {1: ("h1", 1), 2: ("h2", 1)}
    ours = network(1, members)
    with pytest.raises(MembershipMismatch, match="older version"):
        ours._check_hello(cbor2.dumps([HELLO_MAGIC, 2, address_digest(members)]))
    with pytest.raises(MembershipMismatch, match="two servers have 1 in their myid"):
        ours._check_hello(cbor2.dumps([HELLO_MAGIC, 1, ours.digest]))
    with pytest.raises(MembershipMismatch, match="not a member"):
        ours._check_hello(cbor2.dumps([HELLO_MAGIC, 7, ours.digest]))
    with pytest.raises(PeerFrameError, match="names no server id"):
        ours._check_hello(cbor2.dumps([HELLO_MAGIC, [2], ours.digest]))


def test_membership_text_round_trips() -> None:
    m = Membership.of([3, 1, 2, 10], [10])
    assert m.text == "members=1,2,3,10;observers=10"
    assert Membership.parse(m.text) == m
    assert Membership.parse("0123456789abcdef") is None
    assert Membership.parse(b"members=1;observers=") is None
    assert frame(b"x") == b"\x00\x00\x00\x01x"


# -- the data dir's record of its membership ---------------------------------------------------

ADDRESSES = {1: ("0.0.0.0", 2888), 2: ("zoo2", 2888), 3: ("zoo3", 2888)}
MEMBERSHIP = Membership.of([1, 2, 3])


def test_a_fresh_data_dir_records_the_membership(tmp_path) -> None:
    check_ensemble_id(tmp_path, MEMBERSHIP, ADDRESSES)
    assert (tmp_path / ENSEMBLE_FILE).read_text() == "members=1,2,3;observers=\n"
    # Other addresses for the same members: still this ensemble.
    check_ensemble_id(tmp_path, MEMBERSHIP, {1: ("zoo1", 1), 2: ("0.0.0.0", 2), 3: ("localhost", 3)})


def test_an_older_address_digest_matching_this_config_is_upgraded(tmp_path) -> None:
    (tmp_path / ENSEMBLE_FILE).write_text(address_digest(ADDRESSES) + "\n")
    check_ensemble_id(tmp_path, MEMBERSHIP, ADDRESSES)
    assert (tmp_path / ENSEMBLE_FILE).read_text() == "members=1,2,3;observers=\n"
    check_ensemble_id(tmp_path, MEMBERSHIP, {**ADDRESSES, 1: ("zoo1", 2888)})  # addresses free from now on


def test_an_older_address_digest_of_other_lines_is_refused(tmp_path) -> None:
    old = address_digest({**ADDRESSES, 3: ("zoo3", 2999)})
    (tmp_path / ENSEMBLE_FILE).write_text(old + "\n")
    with pytest.raises(ConfigError) as e:
        check_ensemble_id(tmp_path, MEMBERSHIP, ADDRESSES)
    assert "belongs to another ensemble or was used with other server.N addresses" in one_line(e.value)
    assert old in str(e.value)
    assert (tmp_path / ENSEMBLE_FILE).read_text() == old + "\n"  # left as it was


def test_a_data_dir_of_another_membership_is_refused(tmp_path) -> None:
    check_ensemble_id(tmp_path, Membership.of([1, 2, 3, 4], [4]), ADDRESSES)
    with pytest.raises(ConfigError) as e:
        check_ensemble_id(tmp_path, MEMBERSHIP, ADDRESSES)
    message = one_line(e.value)
    assert "belongs to another ensemble" in message
    assert "used with members {1,2,3,4} (observers {4}), this config lists {1,2,3} (no observers)" in message
    assert "{4} only in the data dir" in message
    with pytest.raises(ConfigError, match="server 3 is a participant in the data dir and an observer in this config"):
        check_ensemble_id(tmp_path, Membership.of([1, 2, 3, 4], [3, 4]), ADDRESSES)


def test_an_empty_record_is_rewritten(tmp_path) -> None:
    (tmp_path / ENSEMBLE_FILE).write_text("")
    check_ensemble_id(tmp_path, MEMBERSHIP, ADDRESSES)
    assert (tmp_path / ENSEMBLE_FILE).read_text() == "members=1,2,3;observers=\n"


def test_membership_digest_counts_ids_and_roles_only() -> None:
    view = {1: ("0.0.0.0", 2888), 2: ("zoo2", 2888), 3: ("zoo3", 2888)}
    assert membership_digest(view) == membership_digest({1: ("zoo1", 1), 2: ("0.0.0.0", 2), 3: ("x", 3)})
    assert membership_digest(view) == network(1, view).digest == "members=1,2,3;observers="
    assert membership_digest(view, [3]) == network(2, view, observers=[3]).digest != membership_digest(view)


def test_an_unreadable_membership_is_refused_in_a_short_line() -> None:
    ours = network(1, {1: ("h1", 1), 2: ("h2", 1)})
    with pytest.raises(MembershipMismatch) as e:
        ours._check_hello(cbor2.dumps([HELLO_MAGIC, 2, ["x" * 10_000]]))
    assert one_line(e.value).startswith("server 2 sent no membership we can read (['xxx")
    assert len(str(e.value)) < 200


# -- with reconfiguration on: memberships may differ, joiners are dialled back ---------------


def dynamic_network(my_id: int, members: dict[int, tuple[str, int]]) -> PeerNetwork:
    return PeerNetwork(my_id, members, encode=cbor2.dumps, decode=cbor2.loads, on_message=lambda *a: None, dynamic=True)


def test_with_reconfig_a_joiner_is_taken_and_dialled_back_at_the_address_its_hello_gives() -> None:
    ours = dynamic_network(1, {1: ("h1", 1), 2: ("h2", 1), 3: ("h3", 1)})
    joiner = cbor2.dumps([HELLO_MAGIC, 4, "members=1,2,3,4;observers=", ["h4", 2888]])
    assert ours._check_hello(joiner) == 4
    assert ours.members[4] == ("h4", 2888) and 4 in ours._out
    # A different membership from a member is fine too: a change may not have reached it yet.
    assert ours._check_hello(cbor2.dumps([HELLO_MAGIC, 2, "members=1,2;observers=", ["h2", 1]])) == 2


def test_with_reconfig_a_stranger_without_an_address_and_our_own_id_are_still_refused() -> None:
    ours = dynamic_network(1, {1: ("h1", 1), 2: ("h2", 1)})
    with pytest.raises(MembershipMismatch, match="not a member"):
        ours._check_hello(cbor2.dumps([HELLO_MAGIC, 9, "members=1,2,9;observers="]))
    with pytest.raises(MembershipMismatch, match="not a member"):  # a wildcard we cannot resolve here
        ours._check_hello(cbor2.dumps([HELLO_MAGIC, 9, "x", ["0.0.0.0", 5]]))
    with pytest.raises(MembershipMismatch, match="our own id"):
        ours._check_hello(cbor2.dumps([HELLO_MAGIC, 1, "x", ["h1", 1]]))


def test_set_members_dials_new_servers_and_lets_go_of_dropped_ones() -> None:
    net = dynamic_network(1, {1: ("h1", 1), 2: ("h2", 1), 3: ("h3", 1)})
    net.set_members({1: ("elsewhere", 9), 2: ("h2", 1), 4: ("h4", 1)}, observers=[4])
    assert net.members == {1: ("h1", 1), 2: ("h2", 1), 4: ("h4", 1)}  # our own address stays
    assert set(net._out) == {2, 4}
    assert net.digest == "members=1,2,4;observers=4"
