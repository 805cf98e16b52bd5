"""Membership changes in the Zab core (server/zab/config.py), scripted on the instant bus: a
change commits only with a quorum of the old voters and of the new, then the new alone
counts; a leader outside the new voters steps down; a peer that missed a change learns it;
the leader refuses a change it could not commit."""

from __future__ import annotations

import pytest

from ccore.server.zab import Role
from ccore.server.zab.api import NewConfigNoQuorum, ReconfigInProgress

from .memory import Bus, MemoryStorage, config_entry


def ensemble(voters: int = 3, spares: int = 2) -> Bus:
    ids = range(1, voters + spares + 1)
    bus = Bus({i: MemoryStorage() for i in ids}, spares=frozenset(range(voters + 1, voters + spares + 1)))
    bus.tick(3.0)
    assert bus.leader() is not None
    return bus


def synced(bus: Bus) -> None:
    """Every peer serving under the one leader."""
    leader = bus.leader()
    assert leader is not None
    for i, peer in bus.peers.items():
        assert peer.serving and peer.leader_id == leader, (i, peer)


def propose_change(bus: Bus, voters: set[int], observers: set[int] = set()) -> int:  # noqa: B006
    leader = bus.peers[bus.leader() or 0]
    leader.check_reconfig(voters, observers)
    zxid = leader.next_zxid()
    leader.propose(zxid, config_entry(voters, observers))
    return zxid


def test_spares_follow_without_a_vote_until_a_change_adds_them() -> None:
    bus = ensemble()
    synced(bus)
    assert {bus.peers[i].role for i in (4, 5)} == {Role.FOLLOWING}
    assert not bus.peers[4].is_voter and bus.peers[4].config.voters == {1, 2, 3}
    version = propose_change(bus, {1, 2, 3, 4, 5})
    bus.drain()
    for peer in bus.peers.values():
        assert peer.config.version == version and peer.config.voters == {1, 2, 3, 4, 5} and peer.pending is None
    assert bus.peers[4].is_voter


def test_a_change_waits_for_a_quorum_of_the_new_voters_and_then_needs_only_them() -> None:
    bus = ensemble()
    leader = bus.leader()
    assert leader is not None
    old = sorted({1, 2, 3} - {leader})
    new_voters = {leader, 4, 5}
    version = propose_change(bus, new_voters)
    for spare in (4, 5):  # the new voters drop out before they acknowledge it
        bus.disconnect(leader, spare)
    bus.drain()
    lead = bus.peers[leader]
    assert lead.last_committed_zxid < version, "committed by the old voters alone"
    assert lead.pending is not None and lead.pending.version == version
    bus.connect(leader, 4)  # a quorum of the new voters (the leader and 4) holds it now
    bus.tick(2.0)
    assert lead.last_committed_zxid >= version and lead.config.voters == new_voters
    # From here the old voters do not count: the leader commits with 4 alone.
    for other in old:
        bus.disconnect(leader, other)
    zxid = bus.write(b"after")
    bus.drain()
    assert lead.last_committed_zxid >= zxid


def test_the_leader_left_out_steps_down_and_the_new_voters_elect_one() -> None:
    bus = ensemble()
    leader = bus.leader()
    assert leader is not None
    rest = {1, 2, 3, 4, 5} - {leader}
    propose_change(bus, rest)
    bus.tick(3.0)
    new_leader = bus.leader()
    assert new_leader is not None and new_leader != leader
    old = bus.peers[leader]
    assert old.role is Role.FOLLOWING and not old.is_voter, "it stays as a non-voting follower"
    zxid = bus.write(b"under the new leader")
    bus.drain()
    assert all(p.last_committed_zxid >= zxid for p in bus.peers.values())


def test_the_leader_refuses_a_change_it_could_not_commit() -> None:
    bus = ensemble()
    leader = bus.leader()
    assert leader is not None
    lead = bus.peers[leader]
    bus.disconnect(leader, 4)
    bus.disconnect(leader, 5)
    bus.drain()
    with pytest.raises(NewConfigNoQuorum):
        lead.check_reconfig({leader, 4, 5})
    lead.check_reconfig({1, 2, 3, 4})  # three of four synced: fine
    bus.connect(leader, 4)
    bus.tick(2.0)
    propose_change(bus, {1, 2, 3, 4})
    with pytest.raises(ReconfigInProgress):
        lead.check_reconfig({1, 2, 3})


def test_a_restarted_peer_finds_a_pending_change_in_its_log() -> None:
    bus = ensemble()
    leader = bus.leader()
    assert leader is not None
    follower = min({1, 2, 3} - {leader})
    version = propose_change(bus, {1, 2, 3, 4, 5})
    for other in set(bus.peers) - {leader, follower}:
        bus.disconnect(leader, other)  # only the follower gets it: pending everywhere it is
    bus.drain()
    assert bus.storages[follower].last_zxid() == version
    restarted = bus.make_peer(follower)
    assert restarted.pending is not None and restarted.pending.voters == {1, 2, 3, 4, 5}
    assert restarted.config.voters == {1, 2, 3}


def test_a_peer_that_missed_a_change_gets_it_when_it_syncs() -> None:
    bus = ensemble()
    leader = bus.leader()
    assert leader is not None
    left_behind = min({1, 2, 3} - {leader})
    for other in set(bus.peers) - {left_behind}:
        bus.disconnect(left_behind, other)
    version = propose_change(bus, {1, 2, 3, 4, 5})
    bus.drain()
    assert bus.peers[leader].config.version == version
    assert bus.peers[left_behind].config.version == 0
    for other in set(bus.peers) - {left_behind}:
        bus.connect(left_behind, other)
    bus.tick(3.0)
    assert bus.peers[left_behind].config.version == version
    synced(bus)


def test_a_peer_whose_voters_are_all_gone_adopts_the_new_configuration_from_an_answer() -> None:
    """Spare 5 misses the change that makes {3, 4, 5} the voters; then 1 and 2 go away. By
    its own view it would wait for a quorum of {1, 2, 3} forever: server 3's answer to its
    vote carries the committed configuration, which it adopts, and it joins."""
    bus = ensemble()
    for other in (1, 2, 3, 4):
        bus.disconnect(5, other)
    bus.drain()
    version = propose_change(bus, {3, 4, 5})
    bus.drain()
    for gone in (1, 2):
        for other in set(bus.peers) - {gone}:
            if (min(gone, other), max(gone, other)) in bus.links:
                bus.disconnect(gone, other)
    bus.tick(3.0)
    assert bus.leader() in (3, 4)
    assert bus.peers[5].config.version == 0
    bus.connect(5, 3)
    bus.connect(5, 4)
    bus.tick(3.0)
    five = bus.peers[5]
    assert five.config.version == version and five.is_voter
    assert five.serving and five.leader_id == bus.leader()
