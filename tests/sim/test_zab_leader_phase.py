"""The leader's phase (`LeaderPhase`): it only moves one step forward, and says so when not."""

from __future__ import annotations

import random

import pytest

from ccore.server.zab import Timing, ZabPeer, ZabSafetyError, make_zxid
from ccore.server.zab.leader import LeaderPhase, Leading
from ccore.server.zab.messages import Ack, AckEpoch, FollowerInfo

from .memory import Bus, MemoryStorage

ORDER = list(LeaderPhase)


def leading(peer: ZabPeer) -> Leading:
    role = peer._role
    assert isinstance(role, Leading)
    return role


def new_leader() -> tuple[ZabPeer, MemoryStorage]:
    """Peer 1 of {1, 2, 3}, just elected: nothing heard from the others yet."""
    storage = MemoryStorage()
    peer = ZabPeer(1, frozenset({1, 2, 3}), frozenset(), storage, random.Random(0), Timing(tick_s=1.0))
    peer.peer_connected(2)
    peer.peer_connected(3)
    peer.become_leader()
    return peer, storage


def run(peer: ZabPeer, storage: MemoryStorage) -> None:
    ready = peer.ready()
    storage.persist(ready)
    storage.applied.extend(ready.committed)
    peer.advance(ready)


def test_a_leader_walks_every_phase_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[LeaderPhase] = []
    move_to = Leading._move_to

    def spy(self: Leading, phase: LeaderPhase) -> None:
        move_to(self, phase)
        seen.append(phase)

    monkeypatch.setattr(Leading, "_move_to", spy)
    peer, storage = new_leader()
    role = leading(peer)
    assert role.phase is LeaderPhase.CHOOSING_EPOCH and role.epoch is None
    peer.step(2, FollowerInfo(0, 1))
    assert role.phase is LeaderPhase.EPOCH_PENDING_DURABLE and role.epoch == 1
    run(peer, storage)  # the accepted epoch is written
    assert role.phase is LeaderPhase.AWAITING_EPOCH_QUORUM
    peer.step(2, AckEpoch(1, 1, 0, 0, True))
    assert role.phase is LeaderPhase.SYNCING
    assert not peer.is_leader
    run(peer, storage)  # the current epoch is written
    peer.step(2, Ack(make_zxid(1, 0)))  # ACK of NEWLEADER from 2: with us, a quorum
    assert role.phase is LeaderPhase.ESTABLISHED and peer.is_leader
    assert seen == ORDER[1:]


def test_a_bus_election_ends_established() -> None:
    bus = Bus({1: MemoryStorage(), 2: MemoryStorage(), 3: MemoryStorage()})
    bus.tick(1.0)
    leader = bus.leader()
    assert leader is not None
    assert leading(bus.peers[leader]).phase is LeaderPhase.ESTABLISHED


@pytest.mark.parametrize(
    "start, target",
    [
        (start, target)
        for i, start in enumerate(ORDER)
        for j, target in enumerate(ORDER)
        if j != i + 1  # everything but the one step forward: skips, repeats and going back
    ],
)
def test_an_illegal_move_raises_naming_both_phases(start: LeaderPhase, target: LeaderPhase) -> None:
    peer, _ = new_leader()
    role = leading(peer)
    role.epoch = 1
    role.phase = start
    with pytest.raises(ZabSafetyError, match=rf"phase {start.name} .*phase {target.name}"):
        role._move_to(target)
    assert role.phase is start, "a refused move changes nothing"


def test_no_move_without_an_epoch() -> None:
    peer, _ = new_leader()
    role = leading(peer)
    with pytest.raises(ZabSafetyError, match="CHOOSING_EPOCH .*EPOCH_PENDING_DURABLE"):
        role._move_to(LeaderPhase.EPOCH_PENDING_DURABLE)
