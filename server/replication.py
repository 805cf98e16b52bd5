"""The Trio driver of the Zab core: peer links, timers, persistence, forwarding, sessions.

It carries out each `Ready` of `ccore.server.zab.ZabPeer` as its contract allows: send its
messages first (the core never puts an acknowledgement in the Ready whose persistence it
depends on, so a leader's proposals may leave before its own fsync, as in Raft), persist
(appends and epoch files fsynced on the loop, one fsync per Ready; truncations and snapshot
installs in a worker thread), then apply the committed transactions through the server.
Writes from clients of a follower travel to the leader as `ForwardWrite` frames on the same
FIFO link as the Zab messages; session touches follow every quarter tick as `Touches`
frames, and a question about a session this server does not know goes to the leader as
`CheckSession`.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from ccore.znodes import paths
from ccore.znodes.acl import Id
from ccore.znodes.codec import decode_snapshot, decode_txn, encode_txn
from ccore.znodes.dynconfig import DynamicConfig
from ccore.znodes.groups import unwrap_single
from ccore.znodes.tree import DataTree
from ccore.znodes.txn import Op, Reconfigure, Txn

from .commit import OnDone, StateMachine
from .config import ConfigError, ServerConfig
from .database import Database
from .forwarding import ROUTER_FRAMES, PeerFrame, SessionOwner, WriteRouter
from .forwarding import Role as WriteRole
from .membership import (
    ENSEMBLE_FILE,
    config_from_text,
    config_of,
    peer_addresses,
    plan_on_leader,
    static_membership,
    write_active,
)
from .peer_frames import decode_peer_frame, encode_peer_frame
from .peers import Membership, PeerNetwork, address_digest
from .readonly import Change, ReadOnlyMode
from .snap_stream import PipedSnapshot, ReceivedSnapshot, SnapAssembler, SnapBegin, SnapChunk, SnapStart, Spool, snapshot_messages
from .stats import TimeSummary
from .storage._fsutil import atomic_write
from .tls import PeerTls
from .zab import NotLeader, Ready, Role, Status, Timing, ZabPeer
from .zab.config import Config
from .zab.messages import Snap
from .zabstorage import ZabStorage

log = logging.getLogger(__name__)

SLOW_PERSIST_S = 0.02


def check_ensemble_id(data_dir: Path, membership: Membership, addresses: dict[int, tuple[str, int]]) -> None:
    """A data dir remembers the membership of its ensemble: server ids and observers, not
    addresses, which servers may see differently. A data dir of another membership is refused,
    so it cannot vote with a history it never had (like ZooKeeper, nothing tells apart two
    ensembles with the same ids). Older versions recorded a digest of the ids and this server's
    view of the addresses: one matching this config is upgraded in place, any other refused,
    as nothing then says which membership it had."""
    marker = data_dir / ENSEMBLE_FILE
    try:
        recorded = marker.read_text().strip()
    except FileNotFoundError:
        recorded = ""
    if recorded == membership.text:
        return
    # Written atomically: a torn record would lock this server out of its data dir. (An empty
    # one is from a torn write of an older version, right after its first start.)
    if not recorded or recorded == address_digest(addresses):
        atomic_write(marker, [membership.text.encode() + b"\n"])
        if recorded:
            log.debug("data dir %s: ensemble record upgraded to %s", data_dir, membership.text)
        return
    theirs = Membership.parse(recorded)
    if theirs is not None:
        raise ConfigError(
            f"data dir {data_dir} belongs to another ensemble: it was used with members {theirs.describe()}, this "
            f"config lists {membership.describe()} ({membership.difference(theirs, 'the data dir', 'this config')}); "
            "fix the server.N lines or give this server an empty data dir"
        )
    raise ConfigError(
        f"data dir {data_dir} belongs to another ensemble or was used with other server.N addresses (its {ENSEMBLE_FILE} "
        f"{recorded!r} is an address digest of an older version, this config's is {address_digest(addresses)!r}); "
        "start it once with the server.N lines it ran with to upgrade it, or give this server an empty data dir"
    )


class Replicator:
    """The `Committer` of an ensemble member (see the module docstring)."""

    def __init__(
        self,
        config: ServerConfig,
        db: Database,
        state: StateMachine,
        sessions: SessionOwner,
        wall_clock: Callable[[], float] = time.time,
        *,
        peer_tls: PeerTls | None = None,
        on_read_only: Callable[[Change], None] = lambda change: None,
    ) -> None:
        """`peer_tls`: mutual TLS on the peer links (sslQuorum=true), else plain TCP.
        `on_read_only`: told when read-only mode starts and stops (readonlymode.enabled)."""
        self.db = db
        self.state = state
        self.wall_clock = wall_clock
        self.config = config
        self.my_id = config.server_id
        # The membership: the newest configuration known committed (server/membership.py):
        # zoo.cfg's until `run` has read the tree, which may hold a newer one.
        self.active = static_membership(config)
        self.pending: Config | None = None
        self.voters, self.observers = self.active.voters, self.active.observers
        overrides = config.dial_overrides
        self.net = PeerNetwork(
            self.my_id,
            peer_addresses(self.active, self.my_id, config),
            encode=encode_peer_frame,
            decode=decode_peer_frame,
            on_message=self._on_message,
            on_connected=self._on_connected,
            on_disconnected=self._on_disconnected,
            dial_address=lambda peer: overrides[peer] if peer in overrides else self.net.members[peer],
            observers=self.observers,
            tls=peer_tls,
            dynamic=config.reconfig_enabled,
        )
        # Before anything runs (and outside any nursery, so that a refusal is one line).
        self.check_ensemble_id()
        tick_s = config.tick_time_ms / 1000.0
        self.timing = Timing(
            tick_s=tick_s,
            init_limit=config.init_limit,
            sync_limit=config.sync_limit,
            finalize_wait_s=min(0.2, tick_s),
        )
        self.peer: ZabPeer | None = None
        self.status: Status | None = None
        self.read_only_mode = ReadOnlyMode.for_tick(config.read_only_mode, tick_s)
        self._on_read_only = on_read_only
        # Request numbers start from the clock (see WriteRouter).
        self._sessions = sessions
        self.writes = WriteRouter(self.my_id, int(wall_clock() * 1_000_000), self)
        self._proposed: dict[int, Txn] = {}  # on the leader: what it proposed, until applied
        self._snapshots_coming: dict[int, SnapAssembler] = {}  # peer -> a SNAP streamed from it
        self._spool: Spool | None = None  # where SNAPs are received (the snapshot directory)
        self._wake = trio.Event()
        # Counters for mntr: how the pipeline batches.
        self.readies = self.persists = self.persisted_entries = self.applied_entries = 0
        self.persist_s = 0.0
        self._disk_slow = False  # the last persist took over SLOW_PERSIST_S: the next goes to a thread
        # For /metrics: ZooKeeper's election_time (here: from losing a leader, or starting,
        # until serving again under one: election, discovery and sync) and looking_count.
        self.election_time = TimeSummary()
        self.looking_count = 0
        self._looking_since: float | None = None

    # -- state --------------------------------------------------------------------------

    @property
    def serving(self) -> bool:
        return self.status is not None and self.status.serving

    @property
    def read_only(self) -> bool:
        return self.read_only_mode.active

    @property
    def leader_id(self) -> int | None:
        s = self.status
        return s.leader_id if s is not None and s.serving else None

    @property
    def is_leader(self) -> bool:
        return self.peer is not None and self.peer.is_leader

    @property
    def owns_sessions(self) -> bool:
        return self.is_leader

    @property
    def outstanding(self) -> int:
        return self.writes.queued

    @property
    def mode(self) -> str:
        if self.read_only_mode.active:
            return "read-only"  # ZooKeeper's ReadOnlyZooKeeperServer state, as srvr shows it
        if self.status is None or not self.status.serving:
            return "looking"
        return {Role.LEADING: "leader", Role.FOLLOWING: "follower", Role.OBSERVING: "observer"}.get(self.status.role, "looking")

    def metrics(self) -> list[tuple[str, Any]]:
        s = self.status
        out: list[tuple[str, Any]] = [
            ("zk_peer_state", self.mode),
            ("zk_server_id", self.my_id),
            ("zk_epoch", s.epoch if s else 0),
            ("zk_last_committed_zxid", f"{s.last_committed_zxid:#x}" if s else "0x0"),
            ("zk_connected_peers", sum(1 for p in self.voters | self.observers if self.net.is_connected(p))),
            ("zk_outstanding_proposals", self.writes.queued),
            ("zk_readies", self.readies),
            ("zk_persists", self.persists),
            ("zk_persisted_entries", self.persisted_entries),
            ("zk_applied_entries", self.applied_entries),
            ("zk_persist_ms_total", int(self.persist_s * 1000)),
        ]
        if self.is_leader:
            out.append(("zk_followers", sum(1 for p in self.voters | self.observers if self.net.is_connected(p))))
            out.append(("zk_synced_followers", sum(1 for p in self.voters if self.net.is_connected(p))))
        return out

    # -- running ------------------------------------------------------------------------

    def check_ensemble_id(self) -> None:
        check_ensemble_id(self.config.data_dir, self.net.membership, self.net.members)

    def _load_membership(self) -> None:
        """At start, with the tree loaded: a newer committed configuration in the tree than in
        zoo.cfg (a crash came between applying a reconfig and writing its dynamic file) wins;
        /zookeeper/config then shows the one in force (ZooKeeper's initConfigInZKDatabase)."""
        tree = self.db.tree
        applied = tree.nodes[paths.CONFIG].data
        if applied:
            try:
                version = DynamicConfig.parse(applied.decode("utf-8")).version or 0
                if version > self.active.version:
                    log.info("server %d: the tree holds configuration version %#x, newer than zoo.cfg's", self.my_id, version)
                    self._membership_changed(config_from_text(applied, version), None)
            except (UnicodeDecodeError, ValueError) as e:
                log.warning("server %d: /zookeeper/config in the snapshot is unreadable (%s); using zoo.cfg's", self.my_id, e)
        tree.set_config_locally(self.active.data)

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        self._load_membership()
        self.peer = ZabPeer(
            self.my_id,
            self.active.voters,
            self.active.observers,
            ZabStorage(self.db),
            random.Random(),
            self.timing,
            now=trio.current_time(),
            config_version=self.active.version,
            config_data=self.active.data,
            config_of=config_of,
        )
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(self.net.run)
                nursery.start_soon(self._ticker)
                nursery.start_soon(self._pump)
                task_status.started()
        finally:
            self.writes.abandon_all(f"server {self.my_id} is stopping")

    def _kick(self) -> None:
        self._wake.set()

    async def _ticker(self) -> None:
        assert self.peer is not None
        # The core ticks often (its election and discovery timers are a fraction of a tick);
        # session touches go to the leader every quarter tick.
        interval = min(0.05, self.timing.tick_s / 4)
        touch_every = max(1, round(self.timing.tick_s / 4 / interval))
        n = 0
        while True:
            await trio.sleep(interval)
            self.peer.tick(trio.current_time())
            self._watch_read_only()
            n += 1
            if n % touch_every == 0:
                self._send(self.writes.touches_due(trio.current_time()))
            self._kick()

    def _send(self, frames: list[tuple[int, PeerFrame]]) -> None:
        for to, frame in frames:
            self.net.send(to, frame)

    async def _pump(self) -> None:
        peer = self.peer
        assert peer is not None
        while True:
            self._propose_queued()
            if not peer.has_ready():
                self._wake = trio.Event()
                await self._wake.wait()
                continue
            ready = peer.ready()
            self.readies += 1
            for to, message in ready.messages:
                if type(message) is Snap:
                    self._send_snapshot(to, message)
                else:
                    self.net.send(to, message)
            installed: DataTree | None = None
            if ready.must_sync:
                started = trio.current_time()
                if self._persists_on_loop(ready):
                    # Appends and epoch files: fsync here, blocking the loop for a fraction
                    # of a millisecond. A worker thread costs more than that in hand-offs
                    # (and waits for the GIL), and nothing here can proceed before it anyway.
                    # Messages that could not be written at once go out first.
                    if self.net.backlogged:
                        await trio.lowlevel.checkpoint()
                    self._persist(ready)
                else:
                    # A snapshot install or truncation can take long, and so does every fsync
                    # while the disk is slow: off the loop.
                    installed = await self._persist_off_loop(ready)
                took = trio.current_time() - started
                # An fsync queues behind whatever the disk is writing back (a snapshot file
                # of a big tree: 100-300 ms stalls seen at a million znodes). While fsyncs are
                # that slow, or our own snapshot is being written, they run in a worker
                # thread, and the loop serves reads meanwhile.
                self._disk_slow = took > SLOW_PERSIST_S
                self.persists += 1
                self.persisted_entries += len(ready.entries)
                self.persist_s += took
            self.applied_entries += len(ready.committed)
            if ready.snapshot is not None:
                tree = installed if installed is not None else decode_snapshot(ready.snapshot.data)
                self.state.replace_tree(tree, ready.snapshot.zxid)
            for zxid, payload in ready.committed:
                # The leader applies the transactions it built itself: no need to decode them.
                txn = self._proposed.pop(zxid, None) or decode_txn(payload)
                self.state.apply(txn, self.writes.writer_of(txn))
            if ready.committed:
                self._send(self.writes.applied())
            self._on_status(ready.status)
            peer.advance(ready)
            # One Ready per step of the loop: a backlog of committed entries (94,000 after a
            # restart at a million znodes) comes max_apply_batch at a time, and clients are
            # served between them instead of waiting for all of it (775 ms seen).
            await trio.lowlevel.checkpoint()

    def _persists_on_loop(self, ready: Ready) -> bool:
        """Whether `_pump` persists `ready` right on the loop: appends and epochs only, and
        only while the disk answers fast (see there)."""
        if ready.snapshot is not None or ready.truncate_after is not None:
            return False
        return not (self._disk_slow or self.db.snapshot_writing)

    async def _persist_off_loop(self, ready: Ready) -> DataTree | None:
        """`_persist` in a worker thread; for a SNAP, the tree it installs. A snapshot
        received batched was decoded as it came (snap_stream.py): its tree is ready and its
        file written, so the install is an fsync and a rename. One from an older leader is
        decoded on the loop meanwhile: writing it to disk is I/O, which frees the GIL, and
        decoding it is CPU (a syncing follower serves no client, so holding its loop costs
        nothing)."""
        if ready.snapshot is None:
            await trio.to_thread.run_sync(self._persist, ready)
            return None
        data: Any = ready.snapshot.data
        if isinstance(data, ReceivedSnapshot):
            data.claim()  # before any await: the spool must not remove it now
            await trio.to_thread.run_sync(self._persist, ready)
            return data.tree

        async def install(task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
            task_status.started()  # the thread is started before this task next yields
            await trio.to_thread.run_sync(self._persist, ready)

        with unwrap_single():  # a failed install is the StorageError it was on the loop
            async with trio.open_nursery() as nursery:
                await nursery.start(install)
                tree = decode_snapshot(ready.snapshot.data)
        return tree

    def _persist(self, ready: Ready) -> None:
        """Step 1 of a Ready, in its order (on the loop, or in a worker thread when it
        truncates or installs a snapshot)."""
        db = self.db
        d = db.dir
        assert d is not None
        with db.log_lock:
            if ready.truncate_after is not None:
                d.log.truncate_after(ready.truncate_after)
            if ready.snapshot is not None:
                data: Any = ready.snapshot.data
                source = data.path if isinstance(data, ReceivedSnapshot) else data
                d.install_snapshot(ready.snapshot.zxid, source, ready.entries)
            elif ready.entries:
                d.log.append(ready.entries)
                db.sync_log()
            if ready.accepted_epoch is not None:
                d.accepted_epoch.write(ready.accepted_epoch)
            if ready.current_epoch is not None:
                d.current_epoch.write(ready.current_epoch)

    def _watch_read_only(self) -> None:
        """Read-only mode follows LOOKING, after a grace period (server/readonly.py). Before
        the first Ready the peer is looking too: a member started alone goes read-only."""
        s = self.status
        looking = s is None or (s.role == Role.LOOKING and not s.serving)
        change = self.read_only_mode.observe(looking, trio.current_time())
        if change is None:
            return
        if change is Change.STARTED:
            log.info("server %d: no quorum for %.1f s; serving read-only clients", self.my_id, self.read_only_mode.grace_s)
        else:
            log.info("server %d: election over; closing read-only sessions", self.my_id)
        self._on_read_only(change)

    def _on_status(self, status: Status) -> None:
        old, self.status = self.status, status
        if (status.config, status.pending_config) != (self.active, self.pending):
            self._membership_changed(status.config, status.pending_config)
        self._watch_read_only()
        was_serving = old is not None and old.serving
        if was_serving != status.serving or old is None:
            self._time_election(status.serving)
        if old is not None and (old.role, old.leader_id, old.epoch, old.serving) == (
            status.role,
            status.leader_id,
            status.epoch,
            status.serving,
        ):
            return
        log.info(
            "server %d: %s, leader %s, epoch %d, serving %s, last zxid %#x",
            self.my_id,
            status.role.value,
            status.leader_id,
            status.epoch,
            status.serving,
            status.last_zxid,
        )
        # Leadership or the leader changed: requests in flight may or may not commit; the
        # clients hear ConnectionLoss and reconnect, as with ZooKeeper.
        role = WriteRole(status.serving and status.role == Role.LEADING, status.leader_id, status.serving, status.epoch)
        self.writes.set_role(role, f"server {self.my_id} is no longer serving under leader {old.leader_id if old else None}")
        if was_serving:
            self._proposed.clear()
            self.state.leadership_lost()
        if status.serving and status.role == Role.LEADING:
            self.state.became_leader()

    def _membership_changed(self, active: Config, pending: Config | None) -> None:
        """Links to every server of both configurations; a new active one written to disk."""
        if active != self.active:
            log.info("server %d: configuration %s is active", self.my_id, active.describe())
            write_active(active, self.config)
        self.active, self.pending = active, pending
        self.voters = active.voters | (pending.voters if pending is not None else frozenset())
        self.observers = (active.observers | (pending.observers if pending is not None else frozenset())) - self.voters
        addresses = peer_addresses(active, self.my_id, self.config)
        if pending is not None:
            addresses.update(peer_addresses(pending, self.my_id, self.config))
        self.net.set_members(addresses, self.observers)

    def _time_election(self, serving: bool) -> None:
        now = trio.current_time()
        if not serving:
            self._looking_since = now
            self.looking_count += 1
        elif self._looking_since is not None:
            self.election_time.observe((now - self._looking_since) * 1000)
            self._looking_since = None

    # -- writes -------------------------------------------------------------------------

    def submit(self, session: int, op: Op, auth: tuple[Id, ...], on_done: OnDone | None) -> None:
        self._send(self.writes.submit(session, op, auth, on_done))
        if self.writes.queued:
            self._kick()

    def _propose_queued(self) -> None:
        if not self.writes.queued:
            return
        peer = self.peer
        assert peer is not None
        now_ms = int(self.wall_clock() * 1000)
        batch = self.writes.take_proposals()
        try:
            for p in batch:
                zxid = peer.next_zxid()
                op = p.op
                if type(op) is Reconfigure:
                    op = plan_on_leader(peer, op, p.auth, zxid, self.config, self.db.tree.nodes[paths.CONFIG].acl)
                txn = Txn(zxid, now_ms, p.session, op, p.auth, p.origin, p.request_id)
                peer.propose(zxid, encode_txn(txn))
                self._proposed[zxid] = txn
        except NotLeader:
            log.info("server %d lost leadership with %d writes unproposed", self.my_id, len(batch))

    # -- peer events --------------------------------------------------------------------

    def _send_snapshot(self, to: int, snap: Snap) -> None:
        """A SNAP's snapshot goes as a stream of chunks (server/snap_stream.py)."""
        data = snap.data
        discard = data.discard if isinstance(data, PipedSnapshot) else (lambda: None)
        self.net.send_stream(to, snapshot_messages(snap.zxid, data, self.config.snap_chunk_bytes), discard)

    def _on_message(self, sender: int, message: Any) -> None:
        assert self.peer is not None
        if isinstance(message, (SnapStart, SnapChunk, SnapBegin)):
            coming = self._snapshots_coming.get(sender)
            if coming is None:
                coming = self._snapshots_coming[sender] = SnapAssembler(self._receive_spool())
            snap = coming.add(message)
            if snap is not None:
                self.peer.step(sender, snap)
                self._kick()
            return
        if isinstance(message, ROUTER_FRAMES):
            self._send(self.writes.receive(sender, message, trio.current_time()))
        else:
            self.peer.step(sender, message)
        self._kick()

    def _receive_spool(self) -> Spool:
        if self._spool is None:
            assert self.db.dir is not None
            self._spool = Spool(self.db.dir.snapshots.directory)
        return self._spool

    def _on_connected(self, peer: int) -> None:
        assert self.peer is not None
        self.peer.peer_connected(peer)
        self._kick()

    def _on_disconnected(self, peer: int) -> None:
        assert self.peer is not None
        coming = self._snapshots_coming.pop(peer, None)
        if coming is not None and coming.in_progress:
            log.info(
                "server %d: the link to server %d broke during a SNAP stream (%s); the next sync starts over",
                self.my_id,
                peer,
                coming.in_progress,
            )
            coming.reset()
        self.peer.peer_disconnected(peer)
        self._kick()

    def session_touched(self, session: int, now: float) -> None:
        self.writes.touched(session, now)

    def check_session(self, session: int, password: bytes, on_verdict: Callable[[bool], None]) -> None:
        self._send(self.writes.check_session(session, password, on_verdict))

    # -- PeerSessions: the router's view of the session manager ---------------------------

    def touch_from_peer(self, session: int, heard_at: float) -> None:
        self._sessions.touch_from_peer(session, heard_at)

    def surely_expired(self, session: int, password: bytes) -> bool:
        return self._sessions.surely_expired(session, password)

    def committed_zxid(self) -> int:
        return self.peer.last_committed_zxid if self.peer is not None else 0

    def applied_zxid(self) -> int:
        return self.db.tree.last_zxid
