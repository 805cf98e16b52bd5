"""Small shared helpers for the compatibility tests: bounded waiting, watch recorders."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from kazoo.protocol.states import WatchedEvent

T = TypeVar("T")

DEFAULT_WAIT_S = 10.0


def wait_until(predicate: Callable[[], T], timeout_s: float = DEFAULT_WAIT_S, interval_s: float = 0.05, what: str = "") -> T:
    """Poll `predicate` until it returns something truthy; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what or predicate}")
        time.sleep(interval_s)


class WatchRecorder:
    """A kazoo watch callback that records (type, path) of every event it gets, thread-safely.

    Call `recorder` itself as the watch function; `recorder.one()` waits for the next event.
    """

    def __init__(self) -> None:
        self._queue: queue.Queue[WatchedEvent] = queue.Queue()
        self.seen: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def __call__(self, event: WatchedEvent) -> None:
        with self._lock:
            self.seen.append((event.type, event.path))
        self._queue.put(event)

    def one(self, timeout_s: float = DEFAULT_WAIT_S) -> tuple[str, str]:
        try:
            event = self._queue.get(timeout=timeout_s)
        except queue.Empty:
            raise AssertionError(f"no watch event within {timeout_s}s (seen so far: {self.seen})") from None
        return (event.type, event.path)

    def none(self, within_s: float = 0.5) -> None:
        """Assert that no (further) event arrives within `within_s`."""
        try:
            event = self._queue.get(timeout=within_s)
        except queue.Empty:
            return
        raise AssertionError(f"unexpected watch event {event.type} {event.path} (all seen: {self.seen})")


def settle(client, path: str = "/") -> None:
    """A round trip through `client`: once `sync` returns, every event the server sent this
    session before its reply has been read (events precede the reply on the wire)."""
    client.sync(path)
