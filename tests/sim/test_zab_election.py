"""Election outcomes: who wins given (current epoch, last zxid, id), and how late peers join."""

from __future__ import annotations

import random

from ccore.server.zab import Role, Timing, ZabPeer, make_zxid
from ccore.server.zab.election import Vote
from ccore.server.zab.messages import FollowerInfo, LeaderInfo, Notification, PeerState

from .memory import Bus, MemoryStorage


def entries(epoch: int, count: int) -> list[tuple[int, bytes]]:
    return [(make_zxid(epoch, i), b"x%d" % i) for i in range(1, count + 1)]


def settle(bus: Bus) -> None:
    bus.drain()
    bus.tick(3.0)


def test_votes_order_by_epoch_then_zxid_then_id() -> None:
    assert Vote(2, 0, 1) > Vote(1, 99, 9)
    assert Vote(1, 5, 1) > Vote(1, 4, 9)
    assert Vote(1, 5, 2) > Vote(1, 5, 1)


def test_fresh_ensemble_elects_the_highest_id() -> None:
    bus = Bus({1: MemoryStorage(), 2: MemoryStorage(), 3: MemoryStorage()})
    settle(bus)
    assert bus.leader() == 3
    assert [bus.peers[i].role for i in (1, 2)] == [Role.FOLLOWING, Role.FOLLOWING]
    assert all(p.serving and p.epoch == 1 for p in bus.peers.values())


def test_longest_history_wins_over_a_higher_id() -> None:
    bus = Bus({1: MemoryStorage(entries(1, 5), 1), 2: MemoryStorage(entries(1, 3), 1), 3: MemoryStorage(entries(1, 4), 1)})
    settle(bus)
    assert bus.leader() == 1
    # Everyone ends with the winner's history, all of it committed (Zab commits the initial history).
    assert all(s.applied == entries(1, 5) for s in bus.storages.values())


def test_current_epoch_beats_a_longer_history() -> None:
    """A peer that synced with a later leader knows more, whatever its zxid (why ZOOKEEPER-4646 matters)."""
    old = entries(1, 9)
    newer = entries(1, 3) + entries(2, 1)
    bus = Bus({1: MemoryStorage(old, 1), 2: MemoryStorage(newer, 2), 3: MemoryStorage(entries(1, 2), 1)})
    settle(bus)
    assert bus.leader() == 2
    assert bus.storages[1].applied == newer  # 1:4..1:9 were never committed: truncated


def test_minority_cannot_elect() -> None:
    bus = Bus({1: MemoryStorage(), 2: MemoryStorage(), 3: MemoryStorage()}, connect=False)
    bus.connect(1, 2)
    bus.disconnect(1, 2)
    settle(bus)
    assert bus.leader() is None
    assert all(p.role is Role.LOOKING for p in bus.peers.values())


def test_two_of_three_elect_and_the_third_joins_later() -> None:
    bus = Bus({1: MemoryStorage(), 2: MemoryStorage(), 3: MemoryStorage()}, connect=False)
    bus.connect(1, 2)
    settle(bus)
    assert bus.leader() == 2
    bus.write(b"a")
    bus.drain()
    bus.connect(1, 3)
    bus.connect(2, 3)
    settle(bus)
    assert bus.leader() == 2, "the late peer joins the established leader instead of electing itself"
    assert bus.peers[3].role is Role.FOLLOWING and bus.peers[3].serving
    assert [z for z, _ in bus.storages[3].applied] == [make_zxid(1, 1)]


def test_single_voter_leads_alone() -> None:
    bus = Bus({7: MemoryStorage(entries(3, 2), 3)})
    settle(bus)
    assert bus.leader() == 7
    assert bus.peers[7].epoch == 4
    assert bus.storages[7].applied == entries(3, 2)


def test_observers_never_lead_and_learn_the_leader() -> None:
    bus = Bus(
        {1: MemoryStorage(), 2: MemoryStorage(), 3: MemoryStorage(), 9: MemoryStorage(entries(5, 5), 5)}, observers=frozenset({9})
    )
    settle(bus)
    assert bus.leader() == 3, "the observer's long history does not make it, or anyone, win"
    assert bus.peers[9].role is Role.OBSERVING and bus.peers[9].serving
    assert bus.storages[9].applied == [], "its uncommitted history was cut away"
    bus.write(b"seen")
    bus.drain()
    assert [p for _, p in bus.storages[9].applied] == [b"seen"]


def test_leader_loss_triggers_a_new_election_with_a_higher_epoch() -> None:
    bus = Bus({1: MemoryStorage(), 2: MemoryStorage(), 3: MemoryStorage()})
    settle(bus)
    assert bus.leader() == 3
    bus.disconnect(1, 3)
    bus.disconnect(2, 3)
    settle(bus)
    assert bus.leader() == 2
    assert bus.peers[2].epoch == 2
    assert bus.peers[3].role is Role.LOOKING, "the old leader stepped down without a quorum"


# -- regressions: liveness bugs the simulator found ------------------------------------------


LOOKING, FOLLOWING, LEADING = PeerState.LOOKING, PeerState.FOLLOWING, PeerState.LEADING


def lone_peer(my_id: int = 1, observers: frozenset[int] = frozenset()) -> ZabPeer:
    voters = frozenset({1, 2, 3})
    peer = ZabPeer(my_id, voters, observers, MemoryStorage(), random.Random(0), Timing(tick_s=1.0))
    for other in sorted((voters | observers) - {my_id}):
        peer.peer_connected(other)
    return peer


def test_stale_leading_answer_is_forgotten_once_its_sender_looks() -> None:
    peer = lone_peer(1)
    peer.step(3, Notification(3, 0, 0, 5, LEADING))
    peer.step(3, Notification(3, 0, 0, 6, LOOKING))  # 3 stopped leading (or restarted)
    peer.step(2, Notification(3, 0, 0, 5, FOLLOWING))  # 2's answer was sent before it knew
    assert peer.role is Role.LOOKING, "joined a leader that no longer leads"


def test_disconnect_forgets_what_a_peer_answered() -> None:
    peer = lone_peer(1)
    peer.step(3, Notification(3, 0, 0, 5, LEADING))
    peer.peer_disconnected(3)
    peer.step(2, Notification(3, 0, 0, 5, FOLLOWING))
    assert peer.role is Role.LOOKING


def test_a_leader_learns_it_won_from_followers_that_decided_first() -> None:
    peer = lone_peer(3)
    assert peer.round == 1
    peer.step(1, Notification(3, 0, 0, 1, FOLLOWING))
    peer.step(2, Notification(3, 0, 0, 1, FOLLOWING))
    assert peer.role is Role.LEADING


def test_followers_of_an_older_round_do_not_make_a_leader() -> None:
    peer = lone_peer(3)
    peer.step(1, Notification(3, 0, 0, 0, FOLLOWING))
    peer.step(2, Notification(3, 0, 0, 0, FOLLOWING))
    assert peer.role is Role.LOOKING


def test_the_leaders_own_stale_vote_is_answered_not_taken_for_a_resignation() -> None:
    peer = lone_peer(1)
    peer.become_learner(2, leader_round=4)
    peer.ready()  # drop what is queued
    peer.advance(peer._in_flight)  # type: ignore[arg-type]
    peer.step(2, Notification(2, 0, 0, 4, LOOKING))
    assert peer.role is Role.FOLLOWING
    assert [m.state for _, m in peer.ready().messages if isinstance(m, Notification)] == [FOLLOWING]


def test_the_leaders_vote_of_a_later_round_or_for_another_means_it_gave_up() -> None:
    for vote in (Notification(2, 0, 0, 5, LOOKING), Notification(3, 0, 0, 4, LOOKING)):
        peer = lone_peer(1)
        peer.become_learner(2, leader_round=4)
        peer.step(2, vote)
        assert peer.role is Role.LOOKING


def test_votes_from_the_leader_are_not_heartbeats() -> None:
    peer = lone_peer(1)
    peer.become_learner(2, leader_round=4)
    for t in range(1, 12):
        peer.step(2, Notification(2, 0, 0, 4, LOOKING))
        peer.tick(float(t))
    assert peer.role is Role.LOOKING, "followed a leader that never led, forever"


def test_a_learner_leaves_a_leader_that_follows_someone_else_or_registers_with_it() -> None:
    peer = lone_peer(1)
    peer.become_learner(2, leader_round=4)
    peer.step(2, Notification(3, 0, 0, 4, FOLLOWING))
    assert peer.role is Role.LOOKING
    peer = lone_peer(1)
    peer.become_learner(2, leader_round=4)
    peer.step(2, FollowerInfo(0, 1))
    assert peer.role is Role.LOOKING


def test_a_learner_syncing_for_one_epoch_restarts_on_leaderinfo_of_another() -> None:
    peer = lone_peer(4, observers=frozenset({4}))
    peer.become_learner(2, leader_round=1)
    peer.step(2, LeaderInfo(5, 1, observer=True))
    peer.step(2, LeaderInfo(5, 1, observer=True))  # the answer to a re-sent OBSERVERINFO: fine
    assert peer.role is Role.OBSERVING
    peer.step(2, LeaderInfo(6, 1, observer=True))  # the leader started over and we never saw it look
    assert peer.role is Role.LOOKING


def test_a_promise_to_a_later_epoch_makes_the_leader_re_elect_above_it() -> None:
    bus = Bus({1: MemoryStorage(), 2: MemoryStorage(), 3: MemoryStorage()}, connect=False)
    bus.connect(1, 3)
    settle(bus)
    assert bus.leader() == 3 and bus.peers[3].epoch == 1
    bus.storages[2].accepted = 7  # it promised epoch 7 to a leader that never made it
    bus.peers[2] = ZabPeer(2, bus.voters, frozenset(), bus.storages[2], random.Random(2), bus.timing)
    bus.connect(2, 3)
    bus.connect(1, 2)
    settle(bus)
    assert bus.leader() is not None
    assert bus.peers[bus.leader() or 0].epoch >= 8
    assert all(p.serving for p in bus.peers.values())
