"""The watcher's windows, driven by a scripted client: where a window starts and ends, and
which events it keeps, around probes and connection events."""

from __future__ import annotations

import collections
from typing import Any

import trio

from ccore.client.protocol import WatchedEvent
from ccore.znodes.constants import EventType, KeeperState
from ccore.znodes.errors import ConnectionLossError, SessionExpiredError
from chaos.watchload import ROOT, WatchWorkload

CREATED = EventType.NODE_CREATED


def ev(path: str, zxid: int = -1) -> WatchedEvent:
    return WatchedEvent(CREATED, KeeperState.SYNC_CONNECTED, path, zxid)


def conn(state: KeeperState) -> WatchedEvent:
    return WatchedEvent(EventType.NONE, state, "")


class FakeStream:
    def __init__(self) -> None:
        self.items: collections.deque[Any] = collections.deque()
        self.error: BaseException | None = None

    async def receive(self) -> Any:
        if self.items:
            return self.items.popleft()
        if self.error is not None:
            raise self.error
        await trio.sleep_forever()

    async def __aenter__(self) -> FakeStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        pass


class FakeZk:
    """Each probe (exists) answers with the next scripted zxid (None: connection loss); the
    events scripted with it arrive before the reply or after it, before the drain."""

    def __init__(self, script: list[tuple[list[Any], int | None, list[Any]]], end: BaseException) -> None:
        self.stream = FakeStream()
        self.script = collections.deque(script)
        self.end = end
        self.last_zxid = 0

    def watch(self, path: str, **kwargs: Any) -> FakeStream:
        assert path == ROOT and kwargs["recursive"]
        return self.stream

    async def exists(self, path: str) -> None:
        await trio.lowlevel.checkpoint()
        if not self.script:
            self.stream.error = self.end
            return
        before, zxid, after = self.script.popleft()
        self.stream.items.extend(before)
        if zxid is None:
            raise ConnectionLossError(path)
        self.last_zxid = max(self.last_zxid, zxid)
        self.stream.items.extend(after)


def run_watcher(script: list[tuple[list[Any], int | None, list[Any]]]) -> WatchWorkload:
    w = WatchWorkload("unused", None, seed=0, probe_s=0)  # type: ignore[arg-type]
    zk = FakeZk(script, SessionExpiredError())
    trio.run(w._watch_once, zk, "watcher-0")
    return w


def test_a_window_opens_at_a_clean_probe_and_keeps_events_that_came_after_its_reply() -> None:
    w = run_watcher([
        ([ev("/a")], 10, [ev("/b")]),  # opens at 10; /b came after the reply: in the window
        ([ev("/c")], 12, []),
    ])  # fmt: skip
    [window] = w.windows
    assert (window.start_zxid, window.end_zxid) == (10, 12)
    assert [e[0] for e in window.events] == ["/a", "/b", "/c"]
    assert window.closed_by == "SessionExpiredError"


def test_a_connection_event_closes_the_window_at_its_last_clean_probe() -> None:
    w = run_watcher([
        ([], 10, []),
        ([ev("/a")], 11, []),
        ([ev("/b"), conn(KeeperState.DISCONNECTED), conn(KeeperState.SYNC_CONNECTED), ev("/x")], 20, []),
        ([ev("/y")], 21, []),  # a clean probe again: a new window from 21
        ([ev("/z")], 22, []),
    ])  # fmt: skip
    first, second = w.windows
    assert (first.start_zxid, first.end_zxid, first.closed_by) == (10, 11, "DISCONNECTED")
    assert [e[0] for e in first.events] == ["/a", "/b"]  # /b came before the disconnection
    assert (second.start_zxid, second.end_zxid) == (21, 22)
    assert [e[0] for e in second.events] == ["/y", "/z"]


def test_a_failed_probe_neither_opens_nor_extends_a_window() -> None:
    w = run_watcher([([], None, []), ([], 5, []), ([ev("/a")], None, []), ([], 7, [])])
    [window] = w.windows
    assert (window.start_zxid, window.end_zxid) == (5, 7) and [e[0] for e in window.events] == ["/a"]
