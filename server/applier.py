"""The server's state machine: committed transactions applied to the tree, in zxid order.

Applying a transaction fires its watches before the write's own completion runs, so every
watch event leaves ahead of the reply that reflects it; a session's creation and close are
told to the session manager; every snapCount transactions or so a snapshot is written.
Both committers (`LocalCommitter`, `Replicator`) apply through this one object.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable
from typing import Any, Protocol, cast

import trio

from ccore.znodes.acl import ACL
from ccore.znodes.tree import DataTree
from ccore.znodes.txn import CloseSession, CreateSession, Txn
from ccore.znodes.watches import WatchManager

from .commit import Committed, OnDone
from .database import Database
from .snapshot_child import SnapshotChildError, can_fork
from .stats import ServerStats

log = logging.getLogger(__name__)


class Watcher(Protocol):
    """Who registers watches: a client connection."""

    def send_event(self, event_type: int, path: str, acl: tuple[ACL, ...] = ()) -> None: ...


class SessionEvents(Protocol):
    """What the applier tells the session manager."""

    def created(self, session_id: int, timeout_ms: int) -> None: ...

    def closed(self, session_id: int) -> None: ...

    def reload(self, tree: DataTree) -> None:
        """The tree was replaced: track exactly its sessions."""
        ...

    def leadership_lost(self) -> None: ...

    def became_leader(self) -> None: ...


def settle_the_heap() -> None:
    """After start-up: what exists now (modules, classes, the server's own objects) lives as
    long as the process, so move it out of the cyclic GC's reach, once, before any client or
    peer connects (an object frozen alive that later ends in a garbage cycle is never freed,
    so this is not done again later). The tree's nodes are untracked already (see
    ccore.znodes.untracked). And collect the young generation less often: requests allocate
    a lot, nearly all of it freed by reference counting; about 5% less CPU under a write load."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


class Applier:
    def __init__(
        self,
        db: Database,
        watches: WatchManager,
        sessions: SessionEvents,
        stats: ServerStats,
        drop_connections: Callable[[], None],
    ) -> None:
        self.db = db
        self.watches = watches
        self.sessions = sessions
        self.stats = stats
        self._drop_connections = drop_connections
        self.snapshotting = False
        self._nursery: trio.Nursery | None = None

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Hold the nursery snapshots are written in, until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    # -- StateMachine -------------------------------------------------------------------------

    def apply(self, txn: Txn, on_done: OnDone | None) -> None:
        result, triggers = self.db.tree.apply(txn)
        op = txn.op
        if isinstance(op, CreateSession):
            self.sessions.created(txn.session, op.timeout_ms)
        for watcher, event_type, path, acl in self.watches.fire(triggers):
            cast(Watcher, watcher).send_event(event_type, path, acl)  # our watchers are connections
        if on_done is not None:
            on_done(Committed(txn, result))
        if isinstance(op, CloseSession):
            self.sessions.closed(txn.session)
        self.stats.txns += 1
        if self.db.snapshot_due(1):
            self.start_snapshot()

    def replace_tree(self, tree: DataTree, zxid: int) -> None:
        self.db.tree = tree
        self.db.snapshot_zxid = zxid
        self.sessions.reload(tree)

    def leadership_lost(self) -> None:
        self.sessions.leadership_lost()
        self._drop_connections()

    def became_leader(self) -> None:
        self.sessions.became_leader()

    # -- snapshots -------------------------------------------------------------------------------

    def start_snapshot(self) -> None:
        # Flag first: many transactions may pass the threshold before the task first runs,
        # and one snapshot at a time is the rule (two would race on the same temp file).
        if not self.snapshotting and self._nursery is not None:
            self.snapshotting = True
            self._nursery.start_soon(self._snapshot)

    async def _snapshot(self) -> None:
        """Write a snapshot without holding the loop: a forked child encodes the tree (see
        snapshot_child); without fork, encode here and write in a thread. A failure is logged,
        not fatal: the log keeps every transaction, and the next snapshot tries again."""
        try:
            if can_fork():
                child = self.db.fork_snapshot()
                try:
                    await trio.to_thread.run_sync(self.db.finish_snapshot, child, abandon_on_cancel=True)
                except trio.Cancelled:
                    child.kill()  # the server stops: the thread waiting for it is released
                    raise
            else:
                zxid, payload = self.db.take_snapshot()
                await trio.to_thread.run_sync(self.db.write_snapshot, zxid, payload)
        except (SnapshotChildError, OSError) as e:
            log.error("snapshot failed: %s; the log keeps every transaction, the next snapshot tries again", e)
        finally:
            self.snapshotting = False
