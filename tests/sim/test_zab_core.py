"""The core's contract with its driver: Ready ordering, acknowledgements, commit, errors."""

from __future__ import annotations

import random

import pytest

from ccore.server.zab import NotLeader, Role, Timing, ZabPeer, make_zxid
from ccore.server.zab.messages import (
    Ack,
    AckEpoch,
    Commit,
    Diff,
    FollowerInfo,
    LeaderInfo,
    NewLeader,
    Ping,
    Proposal,
    Trunc,
    UpToDate,
)

from .memory import Bus, MemoryStorage


def follower(storage: MemoryStorage | None = None) -> tuple[ZabPeer, MemoryStorage]:
    """Peer 1 of {1, 2, 3}, told that 2 leads: as if an election had just ended."""
    storage = storage or MemoryStorage()
    peer = ZabPeer(1, frozenset({1, 2, 3}), frozenset(), storage, random.Random(0), Timing(tick_s=1.0))
    peer.peer_connected(2)
    peer.become_learner(2, 1)
    return peer, storage


def run(peer: ZabPeer, storage: MemoryStorage) -> list:  # type: ignore[type-arg]
    """One Ready: persist, apply, advance; returns the messages it carried."""
    ready = peer.ready()
    storage.persist(ready)
    storage.applied.extend(ready.committed)
    peer.advance(ready)
    return [m for _, m in ready.messages]


def synced_follower() -> tuple[ZabPeer, MemoryStorage]:
    peer, storage = follower()
    run(peer, storage)  # FOLLOWERINFO
    peer.step(2, LeaderInfo(1, 1))
    assert run(peer, storage) == [], "no ACKEPOCH before the accepted epoch is written"
    assert storage.accepted == 1
    assert run(peer, storage) == [AckEpoch(1, 1, 0, 0, True)]
    peer.step(2, Diff(0))
    peer.step(2, NewLeader(1, 0))
    ready = peer.ready()
    assert ready.current_epoch == 1 and ready.messages == ()
    storage.persist(ready)
    peer.advance(ready)
    assert run(peer, storage) == [Ack(make_zxid(1, 0))]
    peer.step(2, UpToDate(0))
    run(peer, storage)
    assert peer.serving
    return peer, storage


def test_follower_registers_with_its_accepted_epoch() -> None:
    peer, storage = follower(MemoryStorage(current_epoch=3, accepted_epoch=4))
    assert run(peer, storage)[-1] == FollowerInfo(4, 1)


def test_ack_of_a_proposal_comes_only_after_advance_of_the_ready_that_wrote_it() -> None:
    peer, storage = synced_follower()
    z1, z2 = make_zxid(1, 1), make_zxid(1, 2)
    peer.step(2, Proposal(z1, b"a"))
    peer.step(2, Proposal(z2, b"b"))
    ready = peer.ready()
    assert ready.entries == ((z1, b"a"), (z2, b"b"))
    assert not any(isinstance(m, Ack) for _, m in ready.messages), "acked before written"
    storage.persist(ready)
    peer.advance(ready)
    assert run(peer, storage) == [Ack(z2)], "one cumulative ACK for the batch"


def test_nothing_is_applied_before_commit() -> None:
    peer, storage = synced_follower()
    z1, z2 = make_zxid(1, 1), make_zxid(1, 2)
    peer.step(2, Proposal(z1, b"a"))
    peer.step(2, Proposal(z2, b"b"))
    run(peer, storage)
    run(peer, storage)
    assert storage.applied == []
    peer.step(2, Commit(z1))
    run(peer, storage)
    assert storage.applied == [(z1, b"a")]
    assert peer.last_committed_zxid == z1


def test_newleader_ready_orders_truncate_entries_and_epoch() -> None:
    """ZOOKEEPER-4646/-4685: the synced entries are written (buffered until NEWLEADER, one
    Ready), then the current epoch; ACK of NEWLEADER comes in the Ready after that."""
    peer, storage = follower(MemoryStorage([(make_zxid(1, 1), b"a"), (make_zxid(1, 2), b"stale")], 1))
    run(peer, storage)
    peer.step(2, LeaderInfo(2, 1))
    run(peer, storage)
    run(peer, storage)
    peer.step(2, Trunc(make_zxid(1, 1)))
    peer.step(2, Proposal(make_zxid(1, 3), b"c"))
    assert not peer.has_ready(), "the sync stream is buffered until NEWLEADER"
    peer.step(2, NewLeader(2, make_zxid(1, 3)))
    ready = peer.ready()
    assert ready.truncate_after == make_zxid(1, 1)
    assert ready.entries == ((make_zxid(1, 3), b"c"),)
    assert ready.current_epoch == 2
    assert ready.messages == ()
    storage.persist(ready)
    peer.advance(ready)
    assert run(peer, storage) == [Ack(make_zxid(2, 0))]
    assert storage.log == [(make_zxid(1, 1), b"a"), (make_zxid(1, 3), b"c")]


def test_a_bad_sync_stream_sends_the_follower_back_to_looking() -> None:
    peer, storage = follower()
    run(peer, storage)
    peer.step(2, LeaderInfo(1, 1))
    run(peer, storage)
    run(peer, storage)
    peer.step(2, Diff(0))
    peer.step(2, NewLeader(1, make_zxid(1, 5)))  # claims entries it never sent
    assert peer.role is Role.LOOKING
    assert storage.current == 0


def test_leader_epoch_below_our_promise_is_refused() -> None:
    peer, storage = follower(MemoryStorage(current_epoch=3, accepted_epoch=5))
    run(peer, storage)
    peer.step(2, LeaderInfo(4, 1))
    assert peer.role is Role.LOOKING


def test_followers_answer_pings() -> None:
    peer, storage = synced_follower()
    peer.step(2, Ping())
    assert run(peer, storage) == [Ping()]


def test_propose_and_next_zxid_only_on_an_established_leader() -> None:
    peer, _ = follower()
    with pytest.raises(NotLeader) as info:
        peer.next_zxid()
    assert info.value.leader_id == 2
    with pytest.raises(NotLeader):
        peer.propose(make_zxid(1, 1), b"x")


def test_single_server_commits_after_its_own_fsync() -> None:
    bus = Bus({1: MemoryStorage()})
    bus.drain()
    peer = bus.peers[1]
    assert peer.is_leader and peer.epoch == 1
    zxid = peer.next_zxid()
    assert zxid == make_zxid(1, 1)
    peer.propose(zxid, b"x")
    ready = peer.ready()
    assert ready.entries == ((zxid, b"x"),) and ready.committed == ()
    bus.storages[1].persist(ready)
    peer.advance(ready)
    assert peer.ready().committed == ((zxid, b"x"),)


def test_proposals_must_follow_allocation_order() -> None:
    bus = Bus({1: MemoryStorage()})
    bus.drain()
    peer = bus.peers[1]
    first, second = peer.next_zxid(), peer.next_zxid()
    with pytest.raises(ValueError, match="expected"):
        peer.propose(second, b"x")
    peer.propose(first, b"x")
    peer.propose(second, b"y")


def test_ready_and_advance_pair_up() -> None:
    bus = Bus({1: MemoryStorage()}, connect=False)
    peer = bus.peers[1]
    ready = peer.ready()
    with pytest.raises(RuntimeError):
        peer.ready()
    assert not peer.has_ready(), "nothing more until advance"
    other = ZabPeer(1, frozenset({1}), frozenset(), MemoryStorage(), random.Random(0))
    with pytest.raises(RuntimeError):
        peer.advance(other.ready())
    peer.advance(ready)


def test_a_restarted_peer_reapplies_its_log_only_once_committed() -> None:
    entries = [(make_zxid(1, i), b"e%d" % i) for i in range(1, 4)]
    storages = {1: MemoryStorage(entries, 1), 2: MemoryStorage(entries[:2], 1), 3: MemoryStorage(entries[:1], 1)}
    bus = Bus(storages, connect=False)
    bus.drain()
    assert all(s.applied == [] for s in storages.values()), "nothing applied while looking"
    bus.connect(1, 2)
    bus.tick(2.0)
    assert bus.leader() == 1
    assert storages[1].applied == entries and storages[2].applied == entries


def test_leader_steps_down_when_a_quorum_goes_silent() -> None:
    bus = Bus({1: MemoryStorage(), 2: MemoryStorage(), 3: MemoryStorage()})
    bus.tick(1.0)
    assert bus.leader() == 3
    # The links stay up but nothing arrives from the followers any more.
    bus.peers[1].step = bus.peers[2].step = lambda *a: None  # type: ignore[method-assign]
    bus.peers[1].tick = bus.peers[2].tick = lambda *a: None  # type: ignore[method-assign]
    bus.tick(bus.timing.sync_timeout_s + 2 * bus.timing.tick_s)
    assert bus.peers[3].role is Role.LOOKING


def test_leader_reports_learners_and_outstanding_proposals() -> None:
    bus = Bus({1: MemoryStorage(), 2: MemoryStorage(), 3: MemoryStorage(), 4: MemoryStorage()}, observers=frozenset({4}))
    bus.tick(1.0)
    leader = bus.peers[3]
    stats = leader.learners()
    assert [(s.id, s.observer, s.synced) for s in stats] == [(1, False, True), (2, False, True), (4, True, True)]
    assert bus.peers[1].learners() == ()
    zxid = leader.next_zxid()
    leader.propose(zxid, b"x")
    assert leader.outstanding_proposals == 1
    bus.drain()
    assert leader.outstanding_proposals == 0


def syncing_leader() -> tuple[ZabPeer, MemoryStorage]:
    """Peer 1 leads {1, 2, 3}: it has heard FOLLOWERINFO (registration 1) and ACKEPOCH from
    2 and 3 and sent both their sync (DIFF + NEWLEADER); no ACK of NEWLEADER yet."""
    storage = MemoryStorage()
    peer = ZabPeer(1, frozenset({1, 2, 3}), frozenset(), storage, random.Random(0), Timing(tick_s=1.0))
    peer.peer_connected(2)
    peer.peer_connected(3)
    peer.become_leader()
    while peer.has_ready():
        run(peer, storage)  # the election's votes
    peer.step(2, FollowerInfo(0, 1))
    peer.step(3, FollowerInfo(0, 1))
    assert run(peer, storage) == [], "LEADERINFO waits for the accepted epoch on disk"
    assert run(peer, storage) == [LeaderInfo(1, 1, peer.config), LeaderInfo(1, 1, peer.config)]
    peer.step(2, AckEpoch(1, 1, 0, 0, True))
    peer.step(3, AckEpoch(1, 1, 0, 0, True))
    sent = run(peer, storage)
    assert sent.count(NewLeader(1, 0)) == 2
    return peer, storage


def test_a_late_copy_of_followerinfo_does_not_restart_a_syncing_learner() -> None:
    """Simulator seed 1222: a learner re-sends FOLLOWERINFO until answered, so copies can
    arrive after the leader has sent it its sync. Restarting its handshake then paired the
    learner's ACK of the first NEWLEADER with a second, longer sync it never received, and
    the leader committed entries on that learner's word (later lost in an election)."""
    peer, storage = syncing_leader()
    peer.step(3, Ack(make_zxid(1, 0)))
    run(peer, storage)
    assert peer.is_leader
    zxid = peer.next_zxid()
    peer.propose(zxid, b"x")
    peer.step(2, FollowerInfo(0, 1))  # the late copy
    sent = run(peer, storage)
    assert not any(isinstance(m, LeaderInfo) for m in sent), "the handshake restarted"
    peer.step(2, AckEpoch(1, 1, 0, 0, True))  # a copy of its answer to a copy of LEADERINFO
    peer.step(2, Ack(make_zxid(1, 0)))  # its ACK of the NEWLEADER it did receive
    (two,) = [learner for learner in peer.learners() if learner.id == 2]
    assert two.synced and two.acked_zxid < zxid, "counted as holding a proposal it was never sent"


def test_leader_ignores_older_registrations_and_restarts_on_a_newer_one() -> None:
    peer, storage = syncing_leader()
    peer.step(2, FollowerInfo(0, 2))  # 2 went back to discovery (same link): a new handshake
    peer.step(3, FollowerInfo(0, 0))  # older than what 3 registered with: stale
    assert run(peer, storage) == [LeaderInfo(1, 2, peer.config)]
    peer.step(2, AckEpoch(1, 1, 0, 0, True))  # an ack of the old handshake
    peer.step(2, Ack(make_zxid(1, 0)))  # and of the old sync
    peer.step(3, Ack(make_zxid(1, 0)))
    sent = run(peer, storage)
    assert UpToDate(0) in sent and len([m for m in sent if isinstance(m, UpToDate)]) == 1, "only 3 is synced"
    peer.step(2, AckEpoch(1, 2, 0, 0, True))
    assert NewLeader(1, 0) in run(peer, storage), "the new handshake goes on"


def test_learner_takes_only_the_answer_to_its_current_registration() -> None:
    peer, storage = follower()
    assert run(peer, storage)[-1] == FollowerInfo(0, 1)
    peer.step(2, LeaderInfo(1, 0))  # answers a registration we no longer hold
    assert not peer.has_ready() and peer.role is Role.FOLLOWING
    peer.step(2, LeaderInfo(1, 1))
    run(peer, storage)
    assert run(peer, storage) == [AckEpoch(1, 1, 0, 0, True)]
