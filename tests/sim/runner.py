"""One simulated run per seed: chaos, then heal and require convergence (liveness).

Phase 1 (`chaos_s`): clients write through whoever leads while peers crash (mid-Ready too),
restart, get partitioned and lose connections, and ZooKeeper clients with sessions
(sessions.py) move between servers and get cut off. Phase 2: every fault stops, every peer is
restarted and reconnected; within `liveness_s` one leader must be established, a new write
must commit, every replica must apply the same complete history, and every session client
must be connected with every reply heard. Invariants are checked after every event throughout
(checker.py, sessions.py).
"""

from __future__ import annotations

import time
import traceback
from typing import Any

import attrs

from ccore.server.commit import Abandoned, Committed, Outcome

from .checker import InvariantError
from .cluster import Sim, SimConfig
from .sessions import Clients as SessionClients


@attrs.frozen
class RunResult:
    seed: int
    ok: bool
    events: int
    sim_s: float
    committed: int
    acked: int
    elapsed_s: float
    config: SimConfig
    recovery_s: float = 0.0  # simulated time from healing to convergence
    error: str = ""
    trace: str = ""

    def report(self) -> str:
        c = self.config
        head = (
            f"seed {self.seed} FAILED after {self.events} events, t={self.sim_s:.3f}s "
            f"({c.voters} voters, {c.observers} observers): {self.error}"
        )
        replay = f"replay: python -m tests.sim --seed {self.seed} --trace"
        return f"{head}\n{replay}\n--- last events ---\n{self.trace}\n--- {replay}"


class Faults:
    """Schedules random faults during the chaos phase."""

    def __init__(self, sim: Sim, until: float) -> None:
        self.sim = sim
        self.until = until
        cfg = sim.cfg
        for rate, fn in (
            (cfg.crash_rate, self.crash),
            (cfg.partition_rate, self.partition),
            (cfg.link_break_rate, self.break_link),
        ):
            if rate > 0:
                self._next(rate, fn)

    def _next(self, rate: float, fn) -> None:  # type: ignore[no-untyped-def]
        when = self.sim.now + self.sim.rng.expovariate(rate)
        if when < self.until:
            self.sim.at(when, self._fire, rate, fn)

    def _fire(self, rate: float, fn) -> None:  # type: ignore[no-untyped-def]
        fn()
        self._next(rate, fn)

    def crash(self) -> None:
        """Crash one server (often the leader), or several at once (a power cut)."""
        sim = self.sim
        alive = [n for n in sim.nodes.values() if n.alive]
        if not alive:
            return
        r = sim.rng.random()
        if r < 0.3:
            victims = [n for n in alive if n.peer is not None and n.peer.is_leader] or [sim.rng.choice(alive)]
            why = "fault: the leader"
        elif r < 0.45:
            victims = sim.rng.sample(alive, sim.rng.randint(1, len(alive)))
            why = "fault: power cut"
        else:
            victims = [sim.rng.choice(alive)]
            why = "fault"
        for node in victims:
            node.crash(why)
            sim.at(sim.now + sim.rng.uniform(0.01, sim.cfg.restart_max_s), self._restart, node.id)

    def _restart(self, node_id: int) -> None:
        self.sim.nodes[node_id].restart()

    def partition(self) -> None:
        sim = self.sim
        ids = sorted(sim.nodes)
        sim.rng.shuffle(ids)
        cut = sim.rng.randint(1, len(ids) - 1)
        groups = [sorted(ids[:cut]), sorted(ids[cut:])]
        sim.trace_event("fault", f"partition {groups}")
        sim.net.partition(groups)
        sim.at(sim.now + sim.rng.uniform(0.05, sim.cfg.partition_max_s), self._heal)

    def _heal(self) -> None:
        self.sim.trace_event("fault", "partition healed")
        self.sim.net.heal()

    def break_link(self) -> None:
        sim = self.sim
        a, b = sim.rng.choice(sorted(sim.net.links))
        sim.net.break_link(a, b, "fault")


class Clients:
    """Write attempts at random times through random servers. Half go straight into the
    leader's Zab core (only a leader takes them); half are client writes routed as the
    servers route them (queued at a leader, forwarded by a follower), each of which must hear
    exactly one outcome."""

    def __init__(self, sim: Sim) -> None:
        self.sim = sim
        self.running = True
        self.proposed = 0
        self.routed = 0
        self.outcomes: dict[int, str] = {}  # routed write -> "committed" / "abandoned"
        self._schedule()

    def _routed_write(self, node: Any) -> None:
        self.routed += 1
        write = self.routed
        session, op = self.sim.workload.op()

        def heard(outcome: Outcome) -> None:
            if write in self.outcomes:
                raise InvariantError(f"routed write {write} heard twice: {self.outcomes[write]}, then {outcome}")
            self.outcomes[write] = "committed" if isinstance(outcome, Committed) else "abandoned"
            self.sim.stats[f"routed {self.outcomes[write]}"] += 1

        node.submit(session, op, heard)
        if not node.alive:
            heard(Abandoned("the server is down: the client cannot connect"))

    def check_all_heard(self) -> None:
        missing = sorted(set(range(1, self.routed + 1)) - set(self.outcomes))
        if missing:
            raise InvariantError(f"routed writes {missing[:10]} never heard an outcome")

    def _schedule(self) -> None:
        sim = self.sim
        sim.at(sim.now + sim.rng.expovariate(sim.cfg.client_rate), self._write)

    def _write(self) -> None:
        if not self.running:
            return
        sim = self.sim
        node = sim.nodes[sim.rng.choice(sorted(sim.nodes))]
        count = sim.rng.choice((1, 1, 1, 2, 5))
        if sim.rng.random() < 0.5:
            self.proposed += node.write(count)
        else:
            for _ in range(count):
                self._routed_write(node)
        self._schedule()


class Reconfigs:
    """Membership changes asked of whoever leads, at random times during the chaos phase:
    add a server (a spare, or one removed earlier) as voter or observer, remove a voter or
    an observer, swap a role, or a whole new membership at once (ZooKeeper's bulk mode).
    The leader refuses a change while another is pending, or when too few of the new
    voters are synced with it; both are counted, not failures."""

    def __init__(self, sim: Sim, until: float) -> None:
        self.sim = sim
        self.until = until
        if sim.cfg.reconfig_rate > 0:
            self._schedule()

    def _schedule(self) -> None:
        sim = self.sim
        when = sim.now + sim.rng.expovariate(sim.cfg.reconfig_rate)
        if when < self.until:
            sim.at(when, self._fire)

    def _fire(self) -> None:
        sim = self.sim
        leaders = [n for n in sim.nodes.values() if n.alive and n.peer is not None and n.peer.is_leader]
        if leaders:
            node = sim.rng.choice(leaders)
            assert node.peer is not None
            voters, observers = self._change(set(node.peer.config.voters), set(node.peer.config.observers))
            outcome = node.reconfigure(frozenset(voters), frozenset(observers))
            sim.stats[f"reconfig {outcome}"] += 1
        self._schedule()

    def _change(self, voters: set[int], observers: set[int]) -> tuple[set[int], set[int]]:
        rng = self.sim.rng
        everyone = sorted(self.sim.nodes)
        outside = [i for i in everyone if i not in voters | observers]
        kind = rng.choice(("add voter", "add observer", "remove voter", "remove observer", "swap", "bulk"))
        if kind == "add voter" and outside:
            voters.add(rng.choice(outside))
        elif kind == "add observer" and outside:
            observers.add(rng.choice(outside))
        elif kind == "remove voter" and len(voters) > 1:
            voters.discard(rng.choice(sorted(voters)))
        elif kind == "remove observer" and observers:
            observers.discard(rng.choice(sorted(observers)))
        elif kind == "swap":
            sid = rng.choice(sorted(voters | observers))
            if sid in voters and len(voters) > 1:
                voters.discard(sid)
                observers.add(sid)
            elif sid in observers:
                observers.discard(sid)
                voters.add(sid)
        else:  # bulk: any membership of these servers with 1 to 5 voters
            shuffled = rng.sample(everyone, len(everyone))
            count = rng.randint(1, min(5, len(everyone)))
            voters = set(shuffled[:count])
            observers = {i for i in shuffled[count:] if rng.random() < 0.3}
        return voters, observers


def run_seed(seed: int, cfg: SimConfig | None = None, verbose: bool = False, **overrides: Any) -> RunResult:
    started = time.perf_counter()
    sim = Sim(seed, cfg, **overrides)
    sim.verbose = verbose
    error = ""
    recovery_s = 0.0
    try:
        recovery_s = _run(sim)
    except Exception as exc:  # noqa: BLE001 - any exception is a failed run: report it with the seed
        error = f"{type(exc).__name__}: {exc}"
        if not isinstance(exc, InvariantError):
            error += "\n" + traceback.format_exc(limit=8)
    return RunResult(
        seed=seed,
        ok=not error,
        events=sim.events,
        sim_s=sim.now,
        committed=len(sim.checker.truth),
        acked=len(sim.checker.acked),
        elapsed_s=time.perf_counter() - started,
        config=sim.cfg,
        recovery_s=recovery_s,
        error=error,
        trace=sim.format_trace() if error else "",
    )


def _run(sim: Sim) -> float:
    """Both phases; returns how long recovery took after healing (simulated seconds)."""
    cfg = sim.cfg
    for node in sim.nodes.values():
        node.start()
    Faults(sim, until=cfg.chaos_s)
    Reconfigs(sim, until=cfg.chaos_s)
    clients = Clients(sim)
    sessions = sim.clients = SessionClients(sim, cfg.session_clients, cfg.client_cut_rate, cfg.chaos_s)
    sim.run_until(cfg.chaos_s)

    # Phase 2: heal everything; the ensemble must recover and converge.
    sim.trace_event("phase", "faults stop; healing")
    sim.faults = False
    sim.net.heal()
    for node in sim.nodes.values():
        if not node.alive:
            node.start()
    healed_at = sim.now
    deadline = healed_at + cfg.liveness_s
    acked_before = len(sim.checker.acked)
    if not sim.run_until(deadline, lambda: len(sim.checker.acked) > acked_before):
        raise InvariantError(f"no write committed within {cfg.liveness_s}s after healing ({_roles(sim)})")
    clients.running = False
    sessions.stop_requests()
    if not sim.run_until(deadline, lambda: _converged(sim)):
        raise InvariantError(f"replicas did not converge within {cfg.liveness_s}s after healing ({_roles(sim)})")
    sim.trace_event("phase", f"converged {sim.now - healed_at:.3f}s after healing")
    sim.checker.final({n.id: n.position for n in sim.nodes.values()})
    clients.check_all_heard()
    if not sim.run_until(deadline, sessions.settled):
        raise InvariantError(f"session clients did not settle within {cfg.liveness_s}s after healing: {sessions.describe()}")
    return sim.now - healed_at


def _converged(sim: Sim) -> bool:
    leaders = [n for n in sim.nodes.values() if n.peer is not None and n.peer.is_leader]
    if len(leaders) != 1:
        return False
    leader = leaders[0].peer
    assert leader is not None
    if leader.last_committed_zxid != leader.last_zxid:
        return False
    end = len(sim.checker.truth)
    for node in sim.nodes.values():
        peer = node.peer
        if peer is None or not peer.serving or peer.leader_id != leader.id or node.position != end:
            return False
        if node.in_flight is not None or node.router.in_flight or node.router.queued:
            return False
    return True


def _roles(sim: Sim) -> str:
    return "; ".join(repr(n.peer) if n.peer is not None else f"{n.id} down" for n in sim.nodes.values())
