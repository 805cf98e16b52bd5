"""Election outcomes: who wins given (current epoch, last zxid, id), and how late peers join."""

from __future__ import annotations

from server.zab import Role, make_zxid
from server.zab.election import Vote

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
    bus = Bus({1: MemoryStorage(), 2: MemoryStorage(), 3: MemoryStorage(), 9: MemoryStorage(entries(5, 5), 5)},
              observers=frozenset({9}))
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
