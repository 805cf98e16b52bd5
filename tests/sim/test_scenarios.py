"""Scripted schedules: the dangerous moments of Zab, replayed exactly, invariants checked."""

from __future__ import annotations

import pytest

from ccore.server.zab import Role

from .checker import InvariantError
from .scenarios import Script


def roles(s: Script) -> dict[int, Role | None]:
    return {i: (n.peer.role if n.peer else None) for i, n in s.sim.nodes.items()}


def zk4646(driver_bug: str = "") -> None:
    """A follower syncs the history of a new leader and crashes before its fsync completes.

    Then the leader dies and the follower competes with the holder of acked writes. If it
    wrote its new current epoch before the history (ZOOKEEPER-4646), its epoch wins the
    election and the acked writes are gone.
    """
    s = Script(driver_bug=driver_bug)
    leader = s.leader()
    b, c = (i for i in sorted(s.sim.nodes) if i != leader)
    s.write(2)
    s.run(0.1)
    s.sim.net.partition([[leader, b], [c]])
    s.write(3)  # acked by leader and b; c never saw them
    s.node(b).crash("scripted")
    s.sim.net.heal()  # leader steps down (no quorum), is re-elected with c, syncs c
    s.node(c).crash_in_ready = lambda ready, stage: ready.current_epoch is not None and stage == "before fsync"
    assert s.run(2.0, lambda: not s.node(c).alive), "c never synced"
    s.node(leader).crash("scripted")
    s.node(b).restart()
    s.node(c).restart()
    s.run(1.0)
    s.write(1, within_s=3.0)
    s.settle()


def test_zk4646_history_before_current_epoch() -> None:
    zk4646()


def test_zk4646_the_checker_catches_a_driver_writing_the_epoch_first() -> None:
    with pytest.raises(InvariantError, match="committed history has"):
        zk4646(driver_bug="epochs before fsync")


def test_acked_writes_survive_the_leader_crashing_right_after_acking() -> None:
    s = Script(voters=5)
    for _ in range(3):
        leader = s.leader()
        s.write(5)
        s.node(leader).crash("scripted")
        s.run(0.05)
        s.node(leader).restart()
    s.settle()
    assert len(s.sim.checker.acked) == 15


def test_a_follower_down_for_long_catches_up_by_diff() -> None:
    s = Script(snap_every=10_000)
    leader = s.leader()
    down = next(i for i in sorted(s.sim.nodes) if i != leader)
    s.node(down).crash("scripted")
    for _ in range(5):
        s.write(10)
    s.settle()
    assert s.sim.stats["Diff"] > 0 and s.sim.stats["Snap"] == 0


def test_a_follower_behind_a_purged_log_catches_up_by_snapshot() -> None:
    s = Script(snap_every=5, purge_probability=1.0)
    leader = s.leader()
    down = next(i for i in sorted(s.sim.nodes) if i != leader)
    s.node(down).crash("scripted")
    for _ in range(5):
        s.write(10)
    s.settle()
    assert s.sim.stats["Snap"] > 0 and s.sim.stats["install"] > 0


def test_a_partitioned_leader_commits_nothing_and_truncates_on_return() -> None:
    """A paused / cut-off leader keeps proposing for a while; none of it may survive."""
    s = Script()
    old = s.leader()
    s.write(3)
    s.run(0.05)
    others = [i for i in sorted(s.sim.nodes) if i != old]
    s.sim.net.partition([[old], others])
    taken = s.node(old).write(4)  # it still believes it leads
    assert taken == 4
    s.run(1.0)
    assert s.node(old).peer.role is Role.LOOKING  # type: ignore[union-attr]
    new = s.leader()
    assert new != old
    s.write(2)
    s.settle()
    assert s.sim.stats["truncate"] >= 1 or s.sim.stats["install"] >= 1
    assert len(s.sim.checker.acked) == 5, "only the 3 + 2 acked writes exist"


def test_observers_follow_commits_and_survive_leader_changes() -> None:
    s = Script(voters=3, observers=2)
    s.write(5)
    s.node(s.leader()).crash("scripted")
    s.write(5, within_s=3.0)
    s.settle()
    assert s.sim.stats["Inform"] > 0
    assert {roles(s)[i] for i in (4, 5)} == {Role.OBSERVING}


def test_whole_ensemble_restart_keeps_acked_writes() -> None:
    s = Script(voters=5)
    s.write(7)
    for node in s.sim.nodes.values():
        node.crash("power cut")
    s.run(0.1)
    for node in s.sim.nodes.values():
        node.restart()
    s.write(1, within_s=3.0)
    s.settle()
    assert len(s.sim.checker.acked) == 8
