"""The standalone server: wires the tree, storage, sessions, watches and client connections.

Writes from every connection meet in one queue; the commit loop takes whatever has gathered,
stamps each with a zxid and the time, appends the batch to the log with one fsync (group
commit), then applies the batch in order, firing watches before each reply.
"""

from __future__ import annotations

import collections
import functools
import gc
import logging
import math
import os
import time
from collections.abc import Callable
from typing import Any, cast

import attrs
import trio

from ccore.znodes.acl import Id
from ccore.znodes.tree import DataTree
from ccore.znodes.txn import CloseSession, CreateSession, DeleteContainer, NoOp, Op, Result, Txn
from ccore.znodes.watches import WatchManager

from .config import ServerConfig
from .connection import Connection
from .database import Database
from .replication import Replicator
from .requests import Reads
from .sessions import SessionTable
from .stalls import StallDetector

log = logging.getLogger(__name__)

MAX_BATCH = 1000
REFUSAL_LOG_INTERVAL_S = 60.0  # at most one maxClientCnxns warning per address this often
Callback = Callable[[Txn, Result], None]


@attrs.define(slots=True)
class _Write:
    session: int
    op: Op
    auth: tuple[Id, ...]
    on_done: Callback | None


@attrs.define
class ServerStats:
    received: int = 0
    latency_min_ms: float = math.inf
    latency_max_ms: float = 0.0
    latency_total_ms: float = 0.0
    latency_count: int = 0
    batches: int = 0
    txns: int = 0

    def record_latency(self, seconds: float) -> None:
        ms = seconds * 1000.0
        self.latency_min_ms = min(self.latency_min_ms, ms)
        self.latency_max_ms = max(self.latency_max_ms, ms)
        self.latency_total_ms += ms
        self.latency_count += 1

    def reset(self) -> None:
        self.__init__()  # type: ignore[misc]


def _spare_the_tree_from_gc() -> None:
    """The tree is long-lived and cycle-free: move what exists now out of the cyclic GC's
    reach (a full collection would walk every node, a pause of seconds for a big tree), and
    collect the young generation less often (requests allocate a lot, nearly all of it freed
    by reference counting): about 5% less CPU under a write load. Garbage is collected first,
    so that none of it is frozen with the tree."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


class ZKServer:
    def __init__(self, config: ServerConfig) -> None:
        config.validate()
        self.config = config
        self.db = Database(config.data_dir, config.snap_count, config.snap_retain_count)
        self.watches = WatchManager()
        self.sessions = SessionTable()
        self.reads = Reads(lambda: self.db.tree, self.watches)
        self.stats = ServerStats()
        self.stalls = StallDetector()
        self.connections: set[Connection] = set()
        self._per_address: collections.Counter[str] = collections.Counter()  # connections per client address
        self._refusals: dict[str, tuple[float, int]] = {}  # address -> (last logged, refused since)
        self._by_session: dict[int, Connection] = {}
        self._closing: set[int] = set()
        self._writes: list[_Write] = []
        self._writes_ready = trio.Event()
        self._sessions_changed = trio.Event()
        self._reaping: set[str] = set()
        self._next_session_id = ((int(time.time() * 1000) << 16) & ((1 << 56) - 1)) | (config.server_id << 56)
        self._zxid = 0
        self._snapshotting = False
        self.port: int | None = None
        self.started = trio.Event()
        self.replicator = Replicator(self, config) if config.replicated else None

    # -- state -----------------------------------------------------------------------------

    @property
    def tree(self) -> DataTree:
        return self.db.tree

    @property
    def last_zxid(self) -> int:
        return self.db.tree.last_zxid

    @property
    def outstanding(self) -> int:
        return len(self._writes)

    @property
    def serving(self) -> bool:
        return self.replicator is None or self.replicator.serving

    @property
    def mode(self) -> str:
        return "standalone" if self.replicator is None else self.replicator.mode

    @property
    def owns_sessions(self) -> bool:
        """Whether this server expires sessions: the standalone server, or the leader."""
        return self.replicator is None or self.replicator.is_leader

    def extra_metrics(self) -> list[tuple[str, Any]]:
        return [] if self.replicator is None else self.replicator.metrics()

    # -- running ---------------------------------------------------------------------------

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Open the data dir, listen on the client port and serve until cancelled."""
        tree = await trio.to_thread.run_sync(self.db.open, self.replicator is None)
        _spare_the_tree_from_gc()
        try:
            self._zxid = tree.last_zxid
            now = trio.current_time()
            # Sessions that were live when we stopped get a fresh deadline to reconnect in.
            for session_id, info in tree.sessions.items():
                self.sessions.add(session_id, info.timeout_ms, now)
            listeners = await trio.open_tcp_listeners(self.config.client_port, host=self.config.client_port_address)
            self.port = listeners[0].socket.getsockname()[1]
            log.info(
                "serving ZooKeeper clients on %s:%d, data dir %s",
                self.config.client_port_address,
                self.port,
                self.config.data_dir,
            )
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                await nursery.start(self.stalls.run)
                if self.replicator is None:
                    nursery.start_soon(self._commit_loop)
                else:
                    await nursery.start(self.replicator.run)
                nursery.start_soon(self._expire_loop)
                nursery.start_soon(self._reap_loop)
                nursery.start_soon(trio.serve_listeners, self._serve_connection, listeners)
                self.started.set()
                task_status.started(self)
        finally:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(self.db.close)

    async def _serve_connection(self, stream: trio.SocketStream) -> None:
        conn = Connection(self, stream)
        address = conn.peer[0]
        limit = self.config.max_client_cnxns
        if limit and self._per_address[address] >= limit:
            self._refused(address, limit)
            await stream.aclose()
            return
        self.connections.add(conn)
        self._per_address[address] += 1
        try:
            await conn.run()
        except Exception:
            # A bug met by one connection costs that connection, never the server.
            log.exception("connection from %s:%d failed unexpectedly; it is closed", *conn.peer)

    def _refused(self, address: str, limit: int) -> None:
        """Log a refusal past maxClientCnxns: once a minute per address at most, with how
        many were refused, so that a connect flood cannot fill the disk with log lines."""
        now = trio.current_time()
        last, count = self._refusals.get(address, (-math.inf, 0))
        if now - last < REFUSAL_LOG_INTERVAL_S:
            self._refusals[address] = (last, count + 1)
            return
        if len(self._refusals) >= 1024:
            self._refusals.clear()  # bounded, however many addresses flood us
        self._refusals[address] = (now, 0)
        also = f" ({count} more refused since the last report)" if count else ""
        log.warning("too many connections from %s (max %d, maxClientCnxns); refusing%s", address, limit, also)

    def connection_closed(self, conn: Connection) -> None:
        if conn in self.connections:
            self.connections.discard(conn)
            address = conn.peer[0]
            self._per_address[address] -= 1
            if not self._per_address[address]:
                del self._per_address[address]
        self.watches.remove_watcher(conn)
        if self._by_session.get(conn.session_id) is conn:
            del self._by_session[conn.session_id]

    # -- sessions --------------------------------------------------------------------------

    async def create_session(self, timeout_ms: int) -> tuple[int, bytes]:
        """Commit a new session; returns (id, password) once it is durable."""
        while True:
            self._next_session_id += 1
            session_id = self._next_session_id
            if session_id not in self.tree.sessions:
                break
        password = os.urandom(16)
        done = trio.Event()
        self.submit(session_id, CreateSession(timeout_ms, password), (), lambda txn, result: done.set())
        await done.wait()
        return session_id, password

    def resume_session(self, session_id: int, password: bytes, timeout_ms: int, conn: Connection) -> bool:
        info = self.tree.sessions.get(session_id)
        if info is None or info.password != password or session_id in self._closing:
            return False
        if session_id not in self.sessions:
            return False
        old = self._by_session.get(session_id)
        if old is not None and old is not conn:
            log.info("session %#x moved to %s:%d; closing its old connection", session_id, *conn.peer)
            old.abort()
        self.sessions.add(session_id, timeout_ms, trio.current_time())
        return True

    def attach(self, session_id: int, conn: Connection) -> None:
        self._by_session[session_id] = conn

    def touch(self, session_id: int) -> None:
        self.sessions.touch(session_id, trio.current_time())
        if self.replicator is not None:
            self.replicator.touched(session_id)

    def touch_from_peer(self, session_id: int, heard_at: float) -> None:
        """A follower heard from one of its clients' sessions at `heard_at` (our clock)."""
        self.sessions.touch(session_id, heard_at)

    def is_closing(self, session_id: int) -> bool:
        return session_id in self._closing or session_id not in self.tree.sessions

    async def _expire_loop(self) -> None:
        while True:
            if self.owns_sessions:
                for session_id in self.sessions.expired(trio.current_time()):
                    log.info("session %#x expired", session_id)
                    self._closing.add(session_id)
                    self.submit(session_id, CloseSession(), (), None)
                deadline = self.sessions.next_deadline()
            else:
                deadline = trio.current_time() + self.config.tick_time_ms / 1000.0
            with trio.move_on_at(deadline if deadline is not None else math.inf):
                await self._sessions_changed.wait()
            self._sessions_changed = trio.Event()

    async def _reap_loop(self) -> None:
        """Delete empty containers and expired TTL nodes (ZooKeeper's ContainerManager)."""
        interval = self.config.container_check_interval_ms / 1000.0
        while True:
            await trio.sleep(interval)
            if not self.owns_sessions:
                continue
            now_ms = int(time.time() * 1000)
            for path in self.tree.due_for_deletion(now_ms):
                if path not in self._reaping:
                    self._reaping.add(path)
                    self.submit(0, DeleteContainer(path), (), functools.partial(self._reaped, path))

    def _reaped(self, path: str, txn: Txn, result: Result) -> None:
        self._reaping.discard(path)

    # -- writes ----------------------------------------------------------------------------

    def submit(self, session: int, op: Op, auth: tuple[Id, ...], on_done: Callback | None) -> None:
        """Queue a write; `on_done(txn, result)` runs once it is committed and applied here."""
        if self.replicator is not None:
            self.replicator.submit(session, op, auth, on_done)
            return
        self._writes.append(_Write(session, op, auth, on_done))
        self._writes_ready.set()

    async def _commit_loop(self) -> None:
        while True:
            if not self._writes:
                self._writes_ready = trio.Event()
                await self._writes_ready.wait()
            batch = self._writes[:MAX_BATCH]
            del self._writes[:MAX_BATCH]
            now_ms = int(time.time() * 1000)
            # A sync (NoOp) on a single server is only a barrier: it is answered once every
            # write queued before it is applied, without a transaction of its own (as in
            # ZooKeeper, its reply carries the last zxid).
            txns: list[Txn | None] = []
            for w in batch:
                if isinstance(w.op, NoOp):
                    txns.append(None)
                else:
                    self._zxid += 1
                    txns.append(Txn(self._zxid, now_ms, w.session, w.op, w.auth))
            written = [t for t in txns if t is not None]
            if written:
                # fsync on the loop: a worker thread's hand-offs cost more than the fsync
                # itself, and writes arriving meanwhile wait in the socket buffers, to be
                # read and committed together as the next batch (group commit all the same).
                await trio.lowlevel.checkpoint()
                self.db.persist(self.db.encode(written))
            for w, txn in zip(batch, txns, strict=True):
                if txn is not None:
                    self._apply(txn, w.on_done)
                elif w.on_done is not None:
                    w.on_done(Txn(self.last_zxid, now_ms, w.session, w.op), Result())
            self.stats.batches += 1
            self.stats.txns += len(written)
            if self.db.snapshot_due(len(written)):
                self._start_snapshot()

    def _apply(self, txn: Txn, on_done: Callback | None) -> None:
        result, triggers = self.db.tree.apply(txn)
        op = txn.op
        if isinstance(op, CreateSession):
            self.sessions.add(txn.session, op.timeout_ms, trio.current_time())
            self._sessions_changed.set()
        for watcher, event_type, path, acl in self.watches.fire(triggers):
            cast(Connection, watcher).send_event(txn.zxid, event_type, path, acl)  # our watchers are connections
        if on_done is not None:
            on_done(txn, result)
        if isinstance(op, CloseSession):
            self.sessions.remove(txn.session)
            self._closing.discard(txn.session)
            conn = self._by_session.pop(txn.session, None)
            if conn is not None:
                conn.close_after_flush()

    # -- replication hooks (called by the Replicator) -------------------------------------

    def apply_committed(self, txn: Txn, on_done: Callback | None) -> None:
        self._apply(txn, on_done)
        self.stats.txns += 1
        if self.db.snapshot_due(1):
            self._start_snapshot()

    def replace_tree(self, tree: DataTree, zxid: int) -> None:
        """A SNAP sync installed the leader's tree (we are not serving meanwhile)."""
        self.db.tree = tree
        self.db.snapshot_zxid = zxid
        _spare_the_tree_from_gc()
        self.sessions = SessionTable()
        now = trio.current_time()
        for session_id, info in tree.sessions.items():
            self.sessions.add(session_id, info.timeout_ms, now)

    def stop_serving(self) -> None:
        """Leadership changed: drop every client connection (they reconnect elsewhere). Writes
        in flight may never complete here: forget the reaps among them, so that a later
        leadership tries those nodes again."""
        self._closing.clear()
        self._reaping.clear()
        for conn in list(self.connections):
            conn.abort()

    def became_leader(self) -> None:
        """A new leader gives every session a fresh deadline and starts expiring them."""
        now = trio.current_time()
        for session_id, info in self.tree.sessions.items():
            if session_id in self.sessions:
                self.sessions.touch(session_id, now)
            else:
                self.sessions.add(session_id, info.timeout_ms, now)
        self._sessions_changed.set()

    def _start_snapshot(self) -> None:
        # Flag first: many transactions may pass the threshold before the task first runs,
        # and one snapshot at a time is the rule (two would race on the same temp file).
        if not self._snapshotting:
            self._snapshotting = True
            self._nursery.start_soon(self._snapshot)

    async def _snapshot(self) -> None:
        try:
            zxid, payload = self.db.take_snapshot()
            await trio.to_thread.run_sync(self.db.write_snapshot, zxid, payload)
        finally:
            self._snapshotting = False
