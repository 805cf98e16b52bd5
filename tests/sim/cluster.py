"""The simulated ensemble: an event loop, one driver per peer, seeded faults and clients.

`Node` plays the Trio driver's part for one `ZabPeer`, following the Ready contract to the
letter: persist (on a `SimDisk` that takes simulated time to fsync, during which the peer
keeps receiving messages), then send, then apply to a real `DataTree`, then advance.
`Node` also hosts its server's client side (`sessions.ServerClients`: the real session
manager and connection cores). `Sim` owns time, the network, the faults and the clients;
everything random comes from one `random.Random(seed)`, so a seed replays exactly.
"""

from __future__ import annotations

import heapq
import random
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

import attrs

from ccore.server.commit import Committed, Outcome
from ccore.server.forwarding import ROUTER_FRAMES, PeerFrame, WriteRouter
from ccore.server.forwarding import Role as WriteRole
from ccore.server.membership import config_of
from ccore.server.zab import Ready, Role, Timing, ZabPeer
from ccore.server.zab.api import NotLeader, ReconfigRefused, zx
from ccore.server.zab.config import Config
from ccore.server.zab.messages import (
    Ack,
    AckEpoch,
    Diff,
    FollowerInfo,
    LeaderInfo,
    Message,
    NewLeader,
    Snap,
    Trunc,
    UpToDate,
)
from ccore.znodes.acl import Id
from ccore.znodes.codec import decode_snapshot, decode_txn, encode_snapshot, encode_txn
from ccore.znodes.tree import DataTree
from ccore.znodes.txn import Op, Reconfig, Txn

from .checker import Checker, InvariantError, digest
from .disk import SimDisk
from .network import Network
from .sessions import Clients, ServerClients, SessionChecker
from .workload import Workload

PHASE_MESSAGES = (FollowerInfo, LeaderInfo, AckEpoch, Diff, Trunc, Snap, NewLeader, UpToDate)
# Small storage reads, so that DIFFs and applies from storage take many batches.
SIM_TIMING = Timing(
    tick_s=0.05,
    init_limit=10,
    sync_limit=5,
    finalize_wait_s=0.01,
    committed_window=50,
    max_apply_batch=16,
    read_batch_entries=7,
    read_batch_bytes=1500,
)


@attrs.define
class SimConfig:
    voters: int = 3
    observers: int = 0
    chaos_s: float = 3.0  # faults happen during this much simulated time
    liveness_s: float = 6.0  # then, healed, the ensemble must converge within this (12 initLimits)
    timing: Timing = SIM_TIMING
    tick_every_s: float = 0.0125
    latency_min_s: float = 0.0005
    latency_max_s: float = 0.004
    stall_probability: float = 0.002
    stall_max_s: float = 0.15
    notice_max_s: float = 0.05
    reconnect_max_s: float = 0.05
    fsync_min_s: float = 0.0005
    fsync_max_s: float = 0.004
    crash_rate: float = 0.8  # per simulated second
    restart_max_s: float = 0.8
    partition_rate: float = 0.6
    partition_max_s: float = 0.8
    link_break_rate: float = 1.5
    crash_in_ready_probability: float = 0.002
    crash_on_phase_message: float = 0.0  # chance to crash at each discovery/sync message
    slow_node_latency_s: float = 0.0  # extra latency on every link of one server (a laggard)
    send_during_fsync: bool = False  # the driver sends a Ready's messages before its fsync ends
    driver_bug: str = ""  # a deliberately wrong driver, to show the checker catches it
    session_bug: str = ""  # a deliberately wrong client side of a server (sessions.SESSION_BUGS)
    client_rate: float = 120.0  # write attempts per simulated second
    session_clients: int = 0  # ZooKeeper clients with sessions (sessions.py)
    client_cut_rate: float = 0.5  # per client and simulated second: cut off from every server
    snap_every: int = 40  # applied entries between a node's snapshots
    purge_probability: float = 0.7
    spares: int = 0  # servers outside the first configuration (joiners, for reconfig)
    reconfig_rate: float = 0.0  # membership changes asked of the leader per simulated second

    @classmethod
    def random(cls, rng: random.Random) -> SimConfig:
        """A configuration drawn from the seed: sizes and fault rates vary run to run."""
        return cls(
            chaos_s=rng.choice((2.0, 3.0, 3.0, 8.0)),
            voters=rng.choice((3, 3, 5)),
            observers=rng.choice((0, 0, 1, 2)),
            crash_rate=rng.choice((0.0, 0.5, 1.0, 2.0, 4.0)),
            partition_rate=rng.choice((0.0, 0.5, 1.0)),
            link_break_rate=rng.choice((0.0, 1.0, 3.0)),
            stall_probability=rng.choice((0.0, 0.002, 0.01)),
            crash_in_ready_probability=rng.choice((0.0, 0.002, 0.01, 0.03)),
            crash_on_phase_message=rng.choice((0.0, 0.0, 0.02, 0.1)),
            slow_node_latency_s=rng.choice((0.0, 0.0, 0.02, 0.1)),
            send_during_fsync=rng.random() < 0.5,
            snap_every=rng.choice((10, 40, 200)),
            fsync_max_s=rng.choice((0.001, 0.004, 0.02, 0.05)),
            restart_max_s=rng.choice((0.1, 0.8)),
            session_clients=rng.choice((0, 2, 4)),
            # Learners far behind get a SNAP rather than a DIFF: at times after a few entries.
            timing=attrs.evolve(SIM_TIMING, max_sync_entries=rng.choice((None, 10_000, 30, 5))),
        )

    def with_random_membership_changes(self, rng: random.Random) -> SimConfig:
        """Spare servers and membership changes drawn from `rng`: a random source of their
        own, so that a seed without them runs exactly as it did before reconfig existed
        (seeds that other tests rely on keep their schedules)."""
        return attrs.evolve(self, spares=rng.choice((0, 0, 1, 2)), reconfig_rate=rng.choice((0.0, 0.0, 1.0, 4.0)))


class SimStorage:
    """ReadOnlyStorage over a node's SimDisk and its tree (the driver's side of the contract)."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def accepted_epoch(self) -> int:
        return self.node.disk.accepted_epoch

    def current_epoch(self) -> int:
        return self.node.disk.current_epoch

    def last_zxid(self) -> int:
        return self.node.disk.last_zxid

    def first_zxid(self) -> int:
        return self.node.disk.base

    def applied_zxid(self) -> int:
        return self.node.tree.last_zxid

    def entries_after(self, zxid: int, max_entries: int, max_bytes: int) -> list[tuple[int, bytes]] | None:
        return self.node.disk.entries_after(zxid, max_entries, max_bytes)

    def snapshot(self) -> tuple[int, bytes]:
        tree = self.node.tree
        return tree.last_zxid, encode_snapshot(tree)


class Node:
    """One server: its disk survives crashes, everything else is rebuilt on restart."""

    def __init__(self, sim: Sim, node_id: int) -> None:
        self.sim = sim
        self.id = node_id
        self.disk = SimDisk()
        # The newest configuration this server saw committed (the server's dynamic config
        # file): durable, written when the core reports a new active configuration.
        self.config_file = sim.initial_config
        self.alive = False
        self.incarnation = 0
        self.peer: ZabPeer | None = None
        self.tree = DataTree()
        self.position = 0  # entries of the committed history applied to self.tree
        self.proposed: dict[int, bytes] = {}
        self.router = WriteRouter(node_id, 0, self)
        self.clients: ServerClients | None = None  # its client side (sessions, connections)
        self.in_flight: Ready | None = None
        self.since_snapshot = 0
        self.last_status: Any = None
        # Scripted scenarios: crash on receiving one of these, or when this says so mid-Ready.
        self.crash_on_receive: tuple[type, ...] = ()
        self.crash_in_ready: Callable[[Ready, str], bool] | None = None

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        sim = self.sim
        self.alive = True
        self.incarnation += 1
        snap = self.disk.snapshot
        self.tree = decode_snapshot(snap[1]) if snap is not None else DataTree()
        self.position = sim.checker.position_after(self.tree.last_zxid)
        config = self.config_file
        self.peer = ZabPeer(
            self.id,
            config.voters,
            config.observers,
            SimStorage(self),
            random.Random(sim.rng.getrandbits(64)),
            sim.cfg.timing,
            now=sim.now,
            config_version=config.version,
            config_data=config.data,
            config_of=config_of,
        )
        self.proposed = {}
        self.clients = ServerClients(self)
        # Request numbers of a new life never meet those of an old one (the server starts
        # them from the clock).
        self.router = WriteRouter(self.id, self.incarnation << 40, self)
        self.in_flight = None
        self.last_status = None
        sim.trace_event(
            "start",
            f"{self.id} starts: epochs {self.disk.accepted_epoch}/{self.disk.current_epoch} "
            f"log ({zx(self.disk.base)}, {zx(self.disk.last_zxid)}] tree {zx(self.tree.last_zxid)}",
        )
        sim.at(sim.now + sim.rng.uniform(0, sim.cfg.tick_every_s), self._tick, self.incarnation)
        sim.net.node_up(self.id)
        self.pump()

    def crash(self, why: str) -> None:
        if not self.alive:
            return
        kept = self.disk.crash(self.sim.rng)
        # Its clients lose their connections: what they wrote may or may not commit.
        if self.clients is not None:
            self.clients.crashed()
            self.clients = None
        self.router.abandon_all("the server crashed")
        self.alive = False
        self.peer = None
        self.in_flight = None
        self.sim.trace_event("crash", f"{self.id} crashes ({why}); {kept} unsynced records survive")
        self.sim.net.node_down(self.id)

    # -- inputs -----------------------------------------------------------------------------

    def receive(self, sender: int, message: Message | PeerFrame) -> None:
        if not self.alive or self.peer is None:
            return
        sim = self.sim
        sim.trace_msg(sender, self.id, message)
        if isinstance(message, ROUTER_FRAMES):
            for to, frame in self.router.receive(sender, message, sim.now):
                sim.net.send(self.id, to, frame)
            self.pump()
            return
        if isinstance(message, self.crash_on_receive):
            self.crash_on_receive = ()
            self.crash(f"scripted, on receiving {type(message).__name__}")
            return
        # Protocol-aware faults: crashing right at a phase boundary finds ordering bugs
        # (what was written before the crash?) far more often than crashes at random times.
        at_boundary = isinstance(message, PHASE_MESSAGES) and sim.faults
        if at_boundary and sim.rng.random() < sim.cfg.crash_on_phase_message:
            self.crash(f"on receiving {type(message).__name__}, before handling it")
            sim.at(sim.now + sim.rng.uniform(0.01, sim.cfg.restart_max_s), self.restart)
            return
        self.peer.step(sender, message)
        self.pump()
        if at_boundary and sim.rng.random() < sim.cfg.crash_on_phase_message:
            self.crash(f"after handling {type(message).__name__}")
            sim.at(sim.now + sim.rng.uniform(0.01, sim.cfg.restart_max_s), self.restart)

    def connected(self, other: int) -> None:
        if self.alive and self.peer is not None:
            self.peer.peer_connected(other)
            self.pump()

    def disconnected(self, other: int) -> None:
        if self.alive and self.peer is not None:
            self.peer.peer_disconnected(other)
            self.pump()

    def _tick(self, incarnation: int) -> None:
        if incarnation != self.incarnation or not self.alive or self.peer is None:
            return
        now = self.sim.now
        self.peer.tick(now)
        # Every quarter tick or so, as the server: touches to the leader, expiry if it leads.
        for to, frame in self.router.touches_due(now):
            self.sim.net.send(self.id, to, frame)
        if self.clients is not None:
            self.clients.sessions.expire_due()
        self.pump()
        jitter = self.sim.rng.uniform(0.8, 1.2)
        self.sim.at(self.sim.now + self.sim.cfg.tick_every_s * jitter, self._tick, incarnation)

    # -- the driver loop --------------------------------------------------------------------

    def pump(self) -> None:
        self._propose_routed()
        while self.alive and self.peer is not None and self.in_flight is None and self.peer.has_ready():
            ready = self.peer.ready()
            self.in_flight = ready
            self._status(ready)
            self._persist(ready)
            if self.sim.cfg.send_during_fsync:
                self._send(ready)  # allowed: no message depends on its own Ready's writes
            if ready.must_sync:
                cfg = self.sim.cfg
                done = self.sim.now + self.sim.rng.uniform(cfg.fsync_min_s, cfg.fsync_max_s)
                self.sim.at(done, self._finish, ready, self.incarnation)
                return
            self._finish(ready, self.incarnation)

    def _status(self, ready: Ready) -> None:
        status = ready.status
        established = status.role is Role.LEADING and status.serving
        if established and self.sim.checker.established(self.id, status.epoch):
            self.sim.stats["epochs established"] += 1
        if self.last_status is None or (status.role, status.leader_id, status.epoch, status.serving) != (
            self.last_status.role,
            self.last_status.leader_id,
            self.last_status.epoch,
            self.last_status.serving,
        ):
            self.sim.trace_event(
                "role",
                f"{self.id} {status.role.value} leader={status.leader_id} epoch={status.epoch} "
                f"serving={status.serving} last={zx(status.last_zxid)} committed={zx(status.last_committed_zxid)}",
            )
        if status.config != self.config_file:
            self.config_file = status.config
            self.sim.trace_event("config", f"{self.id} writes configuration {status.config.describe()}")
        old, self.last_status = self.last_status, status
        leading = status.role is Role.LEADING and status.serving
        self.router.set_role(WriteRole(leading, status.leader_id, status.serving, status.epoch), "the leader changed")
        key = (status.role, status.leader_id, status.epoch, status.serving)
        if self.clients is not None and (old is None or key != (old.role, old.leader_id, old.epoch, old.serving)):
            self.clients.role_changed(old is not None and old.serving, leading)

    def _persist(self, ready: Ready) -> None:
        """Step 1 up to the fsync: truncate or install (durable at once), append (volatile)."""
        disk = self.disk
        if ready.truncate_after is not None:
            disk.truncate_after(ready.truncate_after)
            self.sim.trace_event("truncate", f"{self.id} truncates after {zx(ready.truncate_after)}")
        if ready.snapshot is not None:
            disk.install(ready.snapshot.zxid, ready.snapshot.data, ready.entries)
            self.tree = decode_snapshot(ready.snapshot.data)
            if self.clients is not None:
                self.clients.tree_replaced(self.tree)
            self.position = self.sim.checker.position_after(ready.snapshot.zxid)
            self.sim.checker.tree_at(self.id, self.tree.last_zxid, digest(ready.snapshot.data))
            self.sim.trace_event("install", f"{self.id} installs snapshot at {zx(ready.snapshot.zxid)}")
        else:
            disk.append(ready.entries)

    def _maybe_crash(self, stage: str, ready: Ready) -> bool:
        sim = self.sim
        if self.crash_in_ready is not None and self.crash_in_ready(ready, stage):
            self.crash_in_ready = None
            self.crash(f"scripted, in the middle of a Ready, {stage}")
            return True
        if sim.faults and ready.must_sync and sim.rng.random() < sim.cfg.crash_in_ready_probability:
            self.crash(f"in the middle of a Ready, {stage}")
            sim.at(sim.now + sim.rng.uniform(0.01, sim.cfg.restart_max_s), self.restart)
            return True
        return False

    def restart(self) -> None:
        if not self.alive:
            self.start()

    def _finish(self, ready: Ready, incarnation: int) -> None:
        """The fsync completed: epochs, then send, then apply, then advance."""
        if incarnation != self.incarnation or not self.alive:
            return
        bug = self.sim.cfg.driver_bug
        if bug == "epochs before fsync":  # what ZOOKEEPER-4646 amounted to
            self.disk.write_epochs(ready.accepted_epoch, ready.current_epoch)
        if self._maybe_crash("before fsync", ready):
            return
        self.disk.sync()
        if self._maybe_crash("after fsync", ready):
            return
        self.disk.write_epochs(ready.accepted_epoch, ready.current_epoch)
        if self._maybe_crash("after the epochs", ready):
            return
        if not self.sim.cfg.send_during_fsync:
            self._send(ready)
        self._apply(ready)
        assert self.peer is not None
        self.peer.advance(ready)
        self.in_flight = None
        self._maybe_snapshot()
        self.pump()

    def _send(self, ready: Ready) -> None:
        for to, message in ready.messages:
            self._check_outgoing(message)
            self.sim.net.send(self.id, to, message)

    def _check_outgoing(self, message: Message) -> None:
        if isinstance(message, Ack):
            self.sim.checker.ack_sent(self.id, message.zxid, self.disk)
        elif isinstance(message, AckEpoch) and self.peer is not None:
            self.sim.checker.ack_epoch_sent(self.id, self.peer.accepted_epoch, self.disk.accepted_epoch)

    def _apply(self, ready: Ready) -> None:
        checker = self.sim.checker
        for zxid, payload in ready.committed:
            if not self.disk.holds_durably(zxid):
                raise InvariantError(f"server {self.id} applies {zx(zxid)} that is not durable here")
            txn = decode_txn(payload)
            if txn.zxid != zxid:
                raise InvariantError(f"entry {zx(zxid)} carries a transaction for {zx(txn.zxid)}")
            if self.position == len(checker.truth):  # the first replica to apply it
                self._check_commit_quorum(zxid, payload)
            result, triggers = self.tree.apply(txn)
            checker.applied(self.id, self.position, zxid, payload)
            checker.request_committed(txn, zxid)
            self.sim.session_checker.applied(txn, result)
            self.position += 1
            if self.proposed.pop(zxid, None) is not None:
                checker.acknowledged(self.id, zxid, payload)
            writer = self.router.writer_of(txn)
            if writer is not None:
                checker.acknowledged(self.id, zxid, payload)  # its client hears it committed
            if self.clients is not None:
                self.clients.applied(txn, result, triggers, writer)
            elif writer is not None:
                writer(Committed(txn, result))
        if ready.committed:
            for to, frame in self.router.applied():
                self.sim.net.send(self.id, to, frame)
            self.since_snapshot += len(ready.committed)
            self.sim.trace_event("apply", f"{self.id} applied up to {zx(self.tree.last_zxid)} ({len(ready.committed)} entries)")
            if self.sim.rng.random() < 0.25:
                checker.tree_at(self.id, self.tree.last_zxid, digest(encode_snapshot(self.tree)))

    def _check_commit_quorum(self, zxid: int, payload: bytes) -> None:
        """An entry being applied for the first time anywhere is committed: it must be durable
        on a quorum of the configuration in force before it (the last committed change), and
        a change also on a quorum of the configuration it makes. The core decides commits
        from acks with its own view of membership; this checks that view against the truth."""
        sim = self.sim
        holders = {n.id for n in sim.nodes.values() if n.disk.holds_durably(zxid)}
        configs = [sim.checker_configs[-1]]
        made = config_of(zxid, payload)
        if made is not None:
            configs.append(made)
        for config in configs:
            if not config.is_quorum(holders):
                raise InvariantError(
                    f"{zx(zxid)} committed while durable only on {sorted(holders)}: no quorum of {config.describe()}"
                )
        if made is not None:
            sim.checker_configs.append(made)
            sim.trace_event("config", f"configuration {made.describe()} committed")

    def reconfigure(self, voters: frozenset[int], observers: frozenset[int]) -> str:
        """A client asks this server, if it leads, to change the membership; returns what happened."""
        peer = self.peer
        if not self.alive or peer is None or not peer.is_leader:
            return "not leader"
        try:
            peer.check_reconfig(voters, observers)
        except (ReconfigRefused, NotLeader) as exc:
            return type(exc).__name__
        zxid = peer.next_zxid()
        text = config_text(voters, observers, zxid)
        payload = encode_txn(Txn(zxid, int(self.sim.now * 1000), 0, Reconfig(text)))
        peer.propose(zxid, payload)
        self.proposed[zxid] = payload
        self.sim.trace_event("reconfig", f"{self.id} proposes {zx(zxid)}: voters {sorted(voters)} observers {sorted(observers)}")
        self.pump()
        return "proposed"

    def _maybe_snapshot(self) -> None:
        if self.since_snapshot < self.sim.cfg.snap_every:
            return
        self.since_snapshot = 0
        data = encode_snapshot(self.tree)
        purge = self.sim.rng.random() < self.sim.cfg.purge_probability
        self.disk.write_snapshot(self.tree.last_zxid, data, purge)
        self.sim.trace_event("snapshot", f"{self.id} snapshot at {zx(self.tree.last_zxid)} purge={purge}")

    # -- clients ----------------------------------------------------------------------------

    def submit(self, session: int, op: Op, on_done: Callable[[Outcome], None] | None, auth: tuple[Id, ...] = ()) -> None:
        """A client of this server writes: through the write router, as the real server does
        (queued here if we lead, forwarded to the leader otherwise)."""
        if not self.alive:
            return
        for to, frame in self.router.submit(session, op, auth, on_done):
            self.sim.net.send(self.id, to, frame)
        self.pump()

    # -- what the write router tells and asks (PeerSessions), as the Replicator answers -----

    def touch_from_peer(self, session: int, heard_at: float) -> None:
        if self.clients is not None:
            self.clients.sessions.touch_from_peer(session, heard_at)

    def surely_expired(self, session: int, password: bytes) -> bool:
        return self.clients is not None and self.clients.sessions.surely_expired(session, password)

    def committed_zxid(self) -> int:
        return self.peer.last_committed_zxid if self.peer is not None else 0

    def applied_zxid(self) -> int:
        return self.tree.last_zxid

    def _propose_routed(self) -> None:
        peer = self.peer
        if not self.alive or peer is None or not self.router.queued:
            return
        for p in self.router.take_proposals():
            try:
                zxid = peer.next_zxid()
            except NotLeader:
                break  # the rest are dropped: their writers hear when the role changes
            payload = encode_txn(Txn(zxid, int(self.sim.now * 1000), p.session, p.op, p.auth, p.origin, p.request_id))
            peer.propose(zxid, payload)
            self.proposed[zxid] = payload

    def write(self, count: int) -> int:
        """A client writes through this server if it leads; returns how many were proposed."""
        peer = self.peer
        if not self.alive or peer is None:
            return 0
        done = 0
        for _ in range(count):
            try:
                zxid = peer.next_zxid()
            except NotLeader:
                break
            payload = self.sim.workload.payload(zxid, int(self.sim.now * 1000))
            peer.propose(zxid, payload)
            self.proposed[zxid] = payload
            done += 1
        if done:
            self.sim.trace_event("write", f"client proposes {done} at {self.id}, up to {zx(peer.last_zxid)}")
            self.pump()
        return done


class Sim:
    def __init__(self, seed: int, cfg: SimConfig | None = None, trace_len: int = 300, **overrides: Any) -> None:
        """`cfg` fixes the configuration; otherwise it is drawn from the seed, then `overrides`."""
        self.seed = seed
        self.rng = random.Random(seed)
        if cfg is None:
            cfg = SimConfig.random(self.rng).with_random_membership_changes(random.Random(seed ^ 0x5EC0F16))
        self.cfg = cfg
        if overrides:
            self.cfg = attrs.evolve(self.cfg, **overrides)
        n = self.cfg.voters + self.cfg.observers
        self.voters = frozenset(range(1, self.cfg.voters + 1))
        self.observers = frozenset(range(self.cfg.voters + 1, n + 1))
        self.initial_config = Config(0, self.voters, self.observers, config_text(self.voters, self.observers, 0))
        self.checker_configs = [self.initial_config]  # the committed configurations, in order
        # Spares are servers outside the first configuration, started with it (joiners).
        self.nodes = {i: Node(self, i) for i in range(1, n + self.cfg.spares + 1)}
        self.slow_node = self.rng.randint(1, n) if self.cfg.slow_node_latency_s else None
        self.net = Network(self)
        self.checker = Checker()
        self.session_checker = SessionChecker()
        self.clients: Clients | None = None  # started by the runner
        self.workload = Workload(random.Random(self.rng.getrandbits(64)))
        self.now = 0.0
        self.events = 0
        self._queue: list[tuple[float, int, Callable[..., None], tuple[Any, ...]]] = []
        self._seq = 0
        self.trace: deque[tuple[float, str, Any]] = deque(maxlen=trace_len)
        self.verbose = False
        self.faults = True  # cleared when the chaos phase ends
        self.stats: Counter[str] = Counter()

    # -- events -----------------------------------------------------------------------------

    def at(self, when: float, fn: Callable[..., None], *args: Any) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (when, self._seq, fn, args))

    def run_until(self, end: float, done: Callable[[], bool] | None = None) -> bool:
        """Process events up to time `end`; stop early (returning True) once `done()` holds."""
        queue = self._queue
        while queue and queue[0][0] <= end:
            when, _, fn, args = heapq.heappop(queue)
            self.now = when
            self.events += 1
            fn(*args)
            if done is not None and done():
                return True
        self.now = max(self.now, end)
        return done is not None and done()

    # -- tracing ----------------------------------------------------------------------------

    def trace_event(self, kind: str, text: str) -> None:
        self.stats[kind] += 1
        self.trace.append((self.now, kind, text))
        if self.verbose:
            print(f"{self.now:9.4f} {kind:8} {text}")

    def trace_msg(self, sender: int, to: int, message: Message) -> None:
        self.trace.append((self.now, "msg", (sender, to, message)))
        if self.verbose:
            print(f"{self.now:9.4f} msg      {sender}->{to} {_show(message)}")

    def format_trace(self) -> str:
        lines = []
        for when, kind, what in self.trace:
            if kind == "msg":
                sender, to, message = what
                what = f"{sender}->{to} {_show(message)}"
            lines.append(f"{when:9.4f} {kind:8} {what}")
        return "\n".join(lines)


def config_text(voters: frozenset[int], observers: frozenset[int], version: int) -> bytes:
    """A `/zookeeper/config` text for simulated servers (addresses are not simulated)."""
    lines = [
        f"server.{i}=127.0.0.1:{2000 + i}:{3000 + i}:{'observer' if i in observers else 'participant'};127.0.0.1:{4000 + i}"
        for i in sorted(voters | observers)
    ]
    return "\n".join([*lines, f"version={version:x}"]).encode()


def _show(message: Message) -> str:
    text = repr(message)
    return text if len(text) <= 120 else text[:117] + "..."
