"""Scripted scenarios on the simulator: known-dangerous schedules, replayed exactly.

Random seeds find most bugs; some need a precise schedule (ZooKeeper's own data-loss bugs
did). `Script` runs a quiet simulated ensemble (no random faults) that a test drives step by
step, with every invariant of checker.py still checked after every event.
"""

from __future__ import annotations

from collections.abc import Callable

from .cluster import Node, Sim, SimConfig
from .runner import _converged


def quiet_config(**changes: object) -> SimConfig:
    """No random faults at all: the script decides what goes wrong."""
    values: dict[str, object] = {
        "crash_rate": 0.0,
        "partition_rate": 0.0,
        "link_break_rate": 0.0,
        "stall_probability": 0.0,
        "crash_in_ready_probability": 0.0,
        "crash_on_phase_message": 0.0,
        "slow_node_latency_s": 0.0,
    }
    values.update(changes)
    return SimConfig(**values)  # type: ignore[arg-type]


class Script:
    def __init__(self, seed: int = 1, **config: object) -> None:
        self.sim = Sim(seed, quiet_config(**config))
        for node in self.sim.nodes.values():
            node.start()

    def node(self, node_id: int) -> Node:
        return self.sim.nodes[node_id]

    def run(self, seconds: float, until: Callable[[], bool] | None = None) -> bool:
        return self.sim.run_until(self.sim.now + seconds, until)

    def leader(self, within_s: float = 2.0) -> int:
        """The established leader (waiting for one)."""
        found: list[int] = []

        def one() -> bool:
            found[:] = [n.id for n in self.sim.nodes.values() if n.peer is not None and n.peer.is_leader]
            return len(found) == 1

        if not self.run(within_s, one):
            raise AssertionError(f"no single leader within {within_s}s: {found}")
        return found[0]

    def write(self, count: int, within_s: float = 1.0) -> list[int]:
        """Propose `count` writes at the leader and wait until the leader acks them."""
        leader = self.node(self.leader())
        before = len(self.sim.checker.acked)
        proposed = leader.write(count)
        assert proposed == count, f"leader {leader.id} took {proposed} of {count} writes"
        if not self.run(within_s, lambda: len(self.sim.checker.acked) >= before + count):
            raise AssertionError(f"{count} writes not acked within {within_s}s")
        return sorted(self.sim.checker.acked)[-count:]

    def settle(self, within_s: float = 5.0) -> None:
        """Every server up, one leader, every replica applied everything; final checks."""
        self.sim.faults = False
        self.sim.net.heal()
        for node in self.sim.nodes.values():
            node.restart()
        if not self.run(within_s, lambda: _converged(self.sim)):
            raise AssertionError("ensemble did not converge:\n" + self.sim.format_trace()[-4000:])
        self.sim.checker.final({n.id: n.position for n in self.sim.nodes.values()})
