"""What a caller holds while waiting for the server to tell it something.

- `Watch`: a one-shot watch, returned with the read that set it; `event = await watch`.
- `WatchStream`: a persistent (optionally recursive) watch, an async iterator of events,
  open while its `async with` block runs.
- `StateStream`: the client's connection states, an async iterator.

The session's reader task delivers into these without ever blocking: a one-shot watch is a
`anyio.Event`, the streams are unbounded queues (a slow consumer must not stall replies).
"""

from __future__ import annotations

import collections
import enum
from collections.abc import Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar

import anyio

from ccore.znodes.constants import EventType

from .protocol import WatchedEvent, WatchKind

if TYPE_CHECKING:
    from .session import Session

T = TypeVar("T")


class ClientState(enum.Enum):
    """The client's view of its connection and session.

    CONNECTING: not yet connected for the first time. CONNECTED: requests flow. SUSPENDED: the
    connection was lost, the session may live (reconnecting). LOST: the session expired (its
    ephemerals and watches are gone); a new session is being made. CLOSED: for good.
    """

    CONNECTING = "CONNECTING"
    CONNECTED = "CONNECTED"
    SUSPENDED = "SUSPENDED"
    LOST = "LOST"
    CLOSED = "CLOSED"


class Watch:
    """A one-shot watch: `await watch` (or `await watch.wait()`) returns the WatchedEvent.

    Raises SessionExpiredError if the session expires first, ClientClosedError if the
    client closes. Survives reconnects (the client re-registers it). `await watch.remove()`
    takes it off the server; waiting on a removed watch returns a *_WATCH_REMOVED event.
    """

    __slots__ = ("_done", "_error", "_event", "_remover", "kind", "path")

    def __init__(self, path: str, kind: WatchKind, remover: Callable[[Watch], Awaitable[None]]) -> None:
        self.path = path
        self.kind = kind
        self._done = anyio.Event()
        self._event: WatchedEvent | None = None
        self._error: BaseException | None = None
        self._remover = remover

    def __repr__(self) -> str:
        state = "fired" if self._done.is_set() else "pending"
        return f"<Watch {self.kind.value} {self.path} {state}>"

    @property
    def fired(self) -> bool:
        """True once the watch has an outcome (an event, or an error)."""
        return self._done.is_set()

    @property
    def event(self) -> WatchedEvent | None:
        return self._event

    def _deliver(self, event: WatchedEvent) -> None:
        if not self._done.is_set():
            self._event = event
            self._done.set()

    def _fail(self, error: BaseException) -> None:
        if not self._done.is_set():
            self._error = error
            self._done.set()

    async def wait(self) -> WatchedEvent:
        await self._done.wait()
        if self._error is not None:
            raise self._error
        assert self._event is not None
        return self._event

    def __await__(self) -> Generator[Any, None, WatchedEvent]:
        return self.wait().__await__()

    async def remove(self) -> None:
        """Stop watching: the server forgets the watch unless another Watch shares it."""
        if not self._done.is_set():
            await self._remover(self)


class _Mailbox(Generic[T]):
    """An unbounded queue with one terminal outcome (an error, or a clean end)."""

    def __init__(self) -> None:
        self._items: collections.deque[T] = collections.deque()
        self._wakeup = anyio.Event()
        self._error: BaseException | None = None
        self._ended = False

    def _put(self, item: T) -> None:
        if not self._ended and self._error is None:
            self._items.append(item)
            self._wakeup.set()

    def _fail(self, error: BaseException) -> None:
        if self._error is None and not self._ended:
            self._error = error
            self._wakeup.set()

    def _end(self) -> None:
        self._ended = True
        self._wakeup.set()

    def pending(self) -> int:
        """Items received and not yet consumed."""
        return len(self._items)

    async def receive(self) -> T:
        """The next item; raises the stream's error, or anyio.EndOfStream when it ended."""
        while not self._items:
            if self._error is not None:
                raise self._error
            if self._ended:
                raise anyio.EndOfStream
            self._wakeup = anyio.Event()
            await self._wakeup.wait()
        return self._items.popleft()

    def __aiter__(self) -> _Mailbox[T]:
        return self

    async def __anext__(self) -> T:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None


class WatchStream(_Mailbox[WatchedEvent]):
    """A persistent watch on `path` (every node below it too if `recursive`).

    Use as `async with client.watch(path) as events: async for event in events: ...`.
    Entering sends addWatch; leaving removes the watch from the server (removeWatches).
    Events are node events; with `connection_events=True` the stream also yields events of
    type NONE when the connection is lost (state DISCONNECTED) and back (SYNC_CONNECTED):
    ZooKeeper does not replay changes missed while disconnected to persistent watches, so a
    cache should re-read after SYNC_CONNECTED. Iteration raises SessionExpiredError when the
    session expires and ClientClosedError when the client closes.
    """

    def __init__(self, session: Session, path: str, server_path: str, recursive: bool, connection_events: bool) -> None:
        super().__init__()
        self._session = session
        self.path = path
        self.server_path = server_path
        self.recursive = recursive
        self.connection_events = connection_events
        self.kind = WatchKind.RECURSIVE if recursive else WatchKind.PERSISTENT
        self._open = False

    def __repr__(self) -> str:
        return f"<WatchStream {self.kind.value} {self.path}>"

    def _deliver(self, event: WatchedEvent) -> None:
        self._put(event)

    async def receive(self) -> WatchedEvent:
        if not self._open and not self._ended and self._error is None:
            # Without the block nothing would remove the server's watch: refuse plainly.
            raise RuntimeError(f"open {self!r} first: `async with client.watch(...) as events:`")
        return await super().receive()

    def _connection_event(self, event: WatchedEvent) -> None:
        if self.connection_events:
            self._put(event)

    async def __aenter__(self) -> Self:
        if self._open:
            raise RuntimeError(f"{self!r} is already open")
        await self._session.add_persistent_watch(self)
        self._open = True
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._open = False
        self._end()
        await self._session.remove_persistent_watch(self)


class StateStream(_Mailbox[ClientState]):
    """Every state the client enters from now on; use in a `with` (or `async with`) block."""

    def __init__(self, register: Callable[[StateStream], None], unregister: Callable[[StateStream], None]) -> None:
        super().__init__()
        self._register = register
        self._unregister = unregister

    def __enter__(self) -> Self:
        self._register(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._unregister(self)
        self._end()

    async def __aenter__(self) -> Self:
        return self.__enter__()

    async def __aexit__(self, *exc_info: object) -> None:
        self.__exit__()


REMOVED_EVENT = {
    WatchKind.DATA: EventType.DATA_WATCH_REMOVED,
    WatchKind.EXIST: EventType.DATA_WATCH_REMOVED,
    WatchKind.CHILD: EventType.CHILD_WATCH_REMOVED,
    WatchKind.PERSISTENT: EventType.PERSISTENT_WATCH_REMOVED,
    WatchKind.RECURSIVE: EventType.PERSISTENT_WATCH_REMOVED,
}
