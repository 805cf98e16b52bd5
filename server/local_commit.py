"""A standalone server's committer: group commit to the local log, then apply.

Writes from every connection meet in one queue; the commit loop takes whatever has gathered,
stamps each with a zxid and the time, appends the batch to the log with one fsync, then
applies the batch in order through the state machine.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import trio

from ccore.znodes.acl import Id
from ccore.znodes.txn import NoOp, Op, Reconfigure, Refused, Result, Txn

from .commit import Committed, OnDone, StateMachine, abandon_all
from .database import Database
from .reconfig import standalone_refusal
from .stats import ServerStats

MAX_BATCH = 1000


@attrs.define(slots=True)
class _Write:
    session: int
    op: Op
    auth: tuple[Id, ...]
    on_done: OnDone | None


class LocalCommitter:
    """The `Committer` of a server without peers."""

    serving = True
    read_only = False  # a standalone server is never cut off from a quorum
    mode = "standalone"
    owns_sessions = True

    def __init__(
        self,
        db: Database,
        state: StateMachine,
        stats: ServerStats,
        wall_clock: Callable[[], float],
        *,
        reconfig_enabled: bool = False,
    ) -> None:
        self.db = db
        self.reconfig_enabled = reconfig_enabled
        self.state = state
        self.stats = stats
        self.wall_clock = wall_clock
        self._writes: list[_Write] = []
        self._writes_ready = trio.Event()
        self._zxid = db.tree.last_zxid

    @property
    def outstanding(self) -> int:
        return len(self._writes)

    def metrics(self) -> list[tuple[str, Any]]:
        return []

    def session_touched(self, session: int, now: float) -> None:
        pass  # this server owns every session: its session table was touched already

    def check_session(self, session: int, password: bytes, on_verdict: Callable[[bool], None]) -> None:
        on_verdict(False)  # never asked: this server owns every session and decides itself

    def submit(self, session: int, op: Op, auth: tuple[Id, ...], on_done: OnDone | None) -> None:
        self._writes.append(_Write(session, op, auth, on_done))
        self._writes_ready.set()

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        self._zxid = self.db.tree.last_zxid
        task_status.started()
        try:
            await self._commit_loop()
        finally:
            writes, self._writes = self._writes, []
            abandon_all([w.on_done for w in writes], "the server is stopping")

    async def _commit_loop(self) -> None:
        while True:
            if not self._writes:
                self._writes_ready = trio.Event()
                await self._writes_ready.wait()
            # Let the connections run first: writes arriving meanwhile join this batch (and
            # a cancellation here leaves every write queued, to be abandoned on the way out).
            await trio.lowlevel.checkpoint()
            batch = self._writes[:MAX_BATCH]
            del self._writes[:MAX_BATCH]
            now_ms = int(self.wall_clock() * 1000)
            # A sync (NoOp) on a single server is only a barrier: it is answered once every
            # write queued before it is applied, without a transaction of its own (as in
            # ZooKeeper, its reply carries the last zxid).
            txns: list[Txn | None] = []
            for w in batch:
                if isinstance(w.op, NoOp):
                    txns.append(None)
                    continue
                if isinstance(w.op, Reconfigure):
                    # ZooKeeper's answer on a standalone server: disabled, or unimplemented.
                    w.op = Refused(standalone_refusal(enabled=self.reconfig_enabled))
                self._zxid += 1
                txns.append(Txn(self._zxid, now_ms, w.session, w.op, w.auth))
            written = [t for t in txns if t is not None]
            if written:
                # fsync on the loop: a worker thread's hand-offs cost more than the fsync
                # itself, and writes arriving meanwhile wait in the socket buffers, to be
                # read and committed together as the next batch (group commit all the same).
                try:
                    self.db.persist(self.db.encode(written))
                except BaseException:
                    # Nothing of this batch is known to be durable; its writers hear so.
                    abandon_all([w.on_done for w in batch], "the write to the log failed")
                    raise
            apply = self.state.apply
            for w, txn in zip(batch, txns, strict=True):
                if txn is not None:
                    apply(txn, w.on_done)
                elif w.on_done is not None:
                    w.on_done(Committed(Txn(self.db.tree.last_zxid, now_ms, w.session, w.op), Result()))
            self.stats.batches += 1
