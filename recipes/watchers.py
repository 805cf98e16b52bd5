"""Follow one node's data, or its children, on a persistent watch: `DataWatch`, `ChildrenWatch`.

    from ccore.recipes import DataWatch, ChildrenWatch
    async with DataWatch(zk, "/config/app") as config:
        print(config.value)                       # (data, stat), or None while absent
        async for value in config:                # the current value, then each change
            ...
    async with ChildrenWatch(zk, "/workers") as workers:
        async for names in workers: ...           # sorted names, or None while absent

Unlike kazoo's watchers (a one-shot watch set again after each event, which misses nothing only
because it re-reads), these use one persistent watch (ZooKeeper 3.6+) for the whole block. A
background task re-reads the node after every event, and also after a reconnection (ZooKeeper
does not replay to persistent watches what changed while we were away) and after the session
expired (the watch is set again on the new session). Iteration coalesces: a slow consumer
sees the latest value, not every intermediate one; consecutive equal values are not repeated.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

import anyio
import anyio.abc

from ccore.client import Client, ClientClosedError, EventType, KeeperState, Stat, WatchedEvent
from ccore.znodes.errors import ConnectionLossError, NoNodeError, SessionExpiredError

from ._util import RETRY_DELAY_S, Background

log = logging.getLogger(__name__)
T = TypeVar("T")


class _Followed(Background, Generic[T]):
    """A value kept current by a background task; iterate for each change."""

    recursive = False

    def __init__(self, zk: Client, path: str) -> None:
        self.zk = zk
        self.path = path
        self.value: T | None = None
        self.version = 0  # how many distinct values have been seen
        self._changed = anyio.Event()
        self._error: BaseException | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path} v{self.version}>"

    # --- what subclasses define -------------------------------------------------------------

    def _relevant(self, event: WatchedEvent) -> bool:
        raise NotImplementedError

    async def _read(self) -> T | None:
        raise NotImplementedError

    def _same(self, a: T | None, b: T | None) -> bool:
        return a == b

    # --- the background task ----------------------------------------------------------------

    def _publish(self, value: T | None) -> None:
        if self.version and self._same(value, self.value):
            return
        self.value = value
        self.version += 1
        self._changed.set()
        self._changed = anyio.Event()

    async def _refresh(self) -> None:
        while True:
            try:
                return self._publish(await self._read())
            except ConnectionLossError:
                await anyio.sleep(RETRY_DELAY_S)

    async def _follow(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        started = False
        while True:
            try:
                async with self.zk.watch(self.path, recursive=self.recursive, connection_events=True) as events:
                    await self._refresh()  # after the watch is set: no change slips between
                    if not started:
                        started = True
                        task_status.started()
                    async for event in events:
                        if event.type is EventType.NONE and event.state is not KeeperState.SYNC_CONNECTED:
                            continue
                        if event.type is not EventType.NONE and not self._relevant(event):
                            continue
                        await self._after(event, events)
            except SessionExpiredError:
                log.info("%r: session expired; watching again on the new session", self)
            except ConnectionLossError:
                await anyio.sleep(RETRY_DELAY_S)
            except ClientClosedError as e:
                self._error = e
                self._changed.set()
                if not started:
                    raise
                return

    async def _after(self, event: WatchedEvent, events: Any) -> None:
        """React to a relevant event: skip to the last queued one, then read once."""
        for _ in range(events.pending()):
            await events.receive()
        await self._refresh()

    # --- the block ----------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self._start(self._follow)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        return await self._stop(exc_type, exc, tb)

    async def wait_for(self, predicate: Any, timeout: float | None = None) -> T | None:
        """The first value (the current one included) for which `predicate(value)` is true;
        TimeoutError after `timeout` seconds."""
        with anyio.fail_after(timeout):
            async for value in self:
                if predicate(value):
                    return value
        raise AssertionError("unreachable")

    def __aiter__(self) -> AsyncIterator[T | None]:
        return _Changes(self)


class _Changes(Generic[T]):
    def __init__(self, followed: _Followed[T]) -> None:
        self._followed = followed
        self._seen = 0

    def __aiter__(self) -> _Changes[T]:
        return self

    async def __anext__(self) -> T | None:
        f = self._followed
        while self._seen == f.version:
            if f._error is not None:
                raise f._error
            await f._changed.wait()
        self._seen = f.version
        return f.value


class DataWatch(_Followed[tuple[bytes, Stat]]):
    """The node's `(data, stat)`, or None while it does not exist (see the module docstring)."""

    def _relevant(self, event: WatchedEvent) -> bool:
        return event.type is not EventType.NODE_CHILDREN_CHANGED

    async def _read(self) -> tuple[bytes, Stat] | None:
        try:
            return await self.zk.get(self.path)
        except NoNodeError:
            return None

    def _same(self, a: tuple[bytes, Stat] | None, b: tuple[bytes, Stat] | None) -> bool:
        if a is None or b is None:
            return a is b
        return (a[1].czxid, a[1].mzxid) == (b[1].czxid, b[1].mzxid)


class ChildrenWatch(_Followed[list[str]]):
    """The node's sorted child names, or None while it does not exist."""

    def _relevant(self, event: WatchedEvent) -> bool:
        return event.type in (EventType.NODE_CHILDREN_CHANGED, EventType.NODE_CREATED, EventType.NODE_DELETED)

    async def _read(self) -> list[str] | None:
        try:
            return sorted(await self.zk.children(self.path))
        except NoNodeError:
            return None
