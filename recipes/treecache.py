"""A local copy of a whole subtree, kept current by one persistent recursive watch.

    from ccore.recipes import TreeCache
    async with TreeCache(zk, "/services") as cache:
        cache.get("/services/api/i-1")            # NodeData(data, stat), or None
        cache.children("/services/api")           # sorted names
        async for event in cache.events():        # TreeEvent(ADDED|UPDATED|REMOVED, path, node)
            ...                                   # (call events() before entering to see
                                                  #  the initial ADDED events too)

On entry the subtree is read (the watch is set first, so nothing changes unseen) and every node
is reported ADDED; then each event of the recursive watch updates the copy: a created or
changed node is read again, a deleted one is dropped with everything below it. ZooKeeper does
not replay to persistent watches what changed while the client was disconnected, and a new
session has no watches at all: after either, the subtree is read again and the differences
are reported as events (then SYNCED), so the copy converges to the server's.
"""

from __future__ import annotations

import enum
import logging
import math
from types import TracebackType
from typing import Self

import anyio
import anyio.abc
import attrs
from anyio.streams.memory import MemoryObjectReceiveStream

from ccore.client import Client, ClientClosedError, EventType, KeeperState, Stat, WatchedEvent
from ccore.znodes.errors import ConnectionLossError, NoNodeError, SessionExpiredError
from ccore.znodes.groups import first_error
from ccore.znodes.paths import join

from ._util import RETRY_DELAY_S, Background, retry_loss

log = logging.getLogger(__name__)


class TreeEventType(enum.Enum):
    ADDED = "ADDED"
    UPDATED = "UPDATED"
    REMOVED = "REMOVED"
    SYNCED = "SYNCED"  # the copy matches the server again (after entry or a re-read)


@attrs.frozen
class NodeData:
    data: bytes
    stat: Stat


@attrs.frozen
class TreeEvent:
    type: TreeEventType
    path: str
    node: NodeData | None  # the new value (ADDED, UPDATED), the old one (REMOVED)


class TreeCache(Background):
    """See the module docstring."""

    def __init__(self, zk: Client, path: str) -> None:
        self.zk = zk
        self.path = path
        self._nodes: dict[str, NodeData] = {}
        self._send, self._receive = anyio.create_memory_object_stream[TreeEvent](math.inf)
        self.synced = anyio.Event()  # set once the first full read is done
        self.version = 0  # grows with every change of the copy
        self._changed = anyio.Event()
        self._listening = False

    def __repr__(self) -> str:
        return f"<TreeCache {self.path} {len(self._nodes)} nodes>"

    # --- reading the copy -----------------------------------------------------------------

    def get(self, path: str) -> NodeData | None:
        return self._nodes.get(path)

    def children(self, path: str) -> list[str]:
        prefix = path.rstrip("/") + "/"
        return sorted(p[len(prefix) :] for p in self._nodes if p.startswith(prefix) and "/" not in p[len(prefix) :])

    def paths(self) -> list[str]:
        return sorted(self._nodes)

    def __len__(self) -> int:
        return len(self._nodes)

    def events(self) -> MemoryObjectReceiveStream[TreeEvent]:
        """Every change to the copy from now on, in order (one consumer). Events are kept
        only once this has been called: a cache nobody listens to does not grow a queue.
        The stream ends (after the events still queued) when the cache's block ends."""
        self._listening = True
        return self._receive

    # --- keeping it current ---------------------------------------------------------------

    def _set(self, path: str, node: NodeData | None) -> None:
        old = self._nodes.get(path)
        if node is None:
            if old is not None:
                del self._nodes[path]
                self._emit(TreeEventType.REMOVED, path, old)
            return
        if old is not None and (old.stat.czxid, old.stat.mzxid) == (node.stat.czxid, node.stat.mzxid):
            return
        if old is not None and old.stat.czxid == node.stat.czxid and old.stat.mzxid > node.stat.mzxid:
            return  # never go back to an older version of the same node
        self._nodes[path] = node
        self._emit(TreeEventType.ADDED if old is None else TreeEventType.UPDATED, path, node)

    async def wait_changed(self, version: int) -> int:
        """Wait until the copy is newer than `version` (from `self.version`); the new one."""
        while self.version == version:
            await self._changed.wait()
        return self.version

    def _emit(self, type: TreeEventType, path: str, node: NodeData | None) -> None:
        self.version += 1
        self._changed.set()
        self._changed = anyio.Event()
        if self._listening:
            self._send.send_nowait(TreeEvent(type, path, node))

    def _drop_subtree(self, path: str) -> None:
        prefix = path.rstrip("/") + "/"
        for p in [p for p in self._nodes if p.startswith(prefix)]:
            self._set(p, None)
        self._set(path, None)

    async def _read_node(self, path: str) -> NodeData | None:
        try:
            data, stat = await retry_loss(self.zk.get, path)
            return NodeData(data, stat)
        except NoNodeError:
            return None

    async def _read_all(self) -> dict[str, NodeData]:
        """The subtree as the server has it now (siblings read concurrently, pipelined)."""
        found: dict[str, NodeData] = {}

        async def visit(path: str) -> None:
            node = await self._read_node(path)
            if node is None:
                return
            found[path] = node
            if node.stat.numChildren:
                try:
                    names = await retry_loss(self.zk.children, path)
                except NoNodeError:
                    return
                with first_error():
                    async with anyio.create_task_group() as tasks:
                        for name in names:
                            tasks.start_soon(visit, join(path, name))

        await visit(self.path)
        return found

    async def _resync(self) -> None:
        fresh = await self._read_all()
        for path in sorted(set(self._nodes) - set(fresh), reverse=True):
            self._set(path, None)
        for path in sorted(fresh):
            self._set(path, fresh[path])
        self._emit(TreeEventType.SYNCED, self.path, None)
        self.synced.set()

    async def _apply(self, event: WatchedEvent) -> None:
        if event.type is EventType.NODE_DELETED:
            self._drop_subtree(event.path)
        elif event.type in (EventType.NODE_CREATED, EventType.NODE_DATA_CHANGED):
            node = await self._read_node(event.path)
            if node is None:
                self._drop_subtree(event.path)
            else:
                self._set(event.path, node)

    async def _follow(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        started = False
        while True:
            try:
                async with self.zk.watch(self.path, recursive=True, connection_events=True) as events:
                    await self._resync()
                    if not started:
                        started = True
                        task_status.started()
                    async for event in events:
                        if event.type is EventType.NONE:
                            if event.state is KeeperState.SYNC_CONNECTED:
                                await self._resync()
                        else:
                            await self._apply(event)
            except SessionExpiredError:
                log.info("%r: session expired; reading the subtree again on the new session", self)
            except ConnectionLossError:
                await anyio.sleep(RETRY_DELAY_S)
            except ClientClosedError:
                self._send.close()
                if not started:
                    raise
                return

    # --- the block ------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self._start(self._follow)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        try:
            return await self._stop(exc_type, exc, tb)
        finally:
            # anyio's memory streams warn (ResourceWarning) when collected unclosed. The
            # receiving end is the listener's once events() handed it out.
            self._send.close()
            if not self._listening:
                self._receive.close()
