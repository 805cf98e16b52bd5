"""Small shared helpers for the compatibility tests: starting servers (skipping when Apache
ZooKeeper is missing), bounded waiting, watch recorders, kazoo clients whose every wait is
bounded."""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import pytest
from kazoo.client import KazooClient
from kazoo.protocol.states import WatchedEvent
from kazoo.retry import KazooRetry

from tests.compat.servers import (
    ZK_NOT_INSTALLED,
    ServerHandle,
    ServerStartError,
    apache_installed,
    make_server,
)

T = TypeVar("T")

DEFAULT_WAIT_S = 10.0
KAZOO_START_TIMEOUT_S = 15.0
KAZOO_SESSION_TIMEOUT_S = 10.0


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


def new_kazoo(hosts: str, **kwargs) -> KazooClient:
    kwargs.setdefault("timeout", KAZOO_SESSION_TIMEOUT_S)
    # Retry connecting for a bounded time only, so a dead server fails the test instead of hanging.
    kwargs.setdefault("connection_retry", KazooRetry(max_tries=-1, delay=0.1, max_delay=1.0, deadline=30.0))
    kwargs.setdefault("command_retry", None)
    client = KazooClient(hosts=hosts, **kwargs)
    client.start(timeout=KAZOO_START_TIMEOUT_S)
    return client


def close_kazoo(client: KazooClient) -> None:
    with contextlib.suppress(Exception):
        client.stop()
    with contextlib.suppress(Exception):
        client.close()


def require_apache() -> None:
    """Skip (or, with CCORE_REQUIRE_ZK=1, fail) when Apache ZooKeeper is not installed."""
    if apache_installed():
        return
    if os.environ.get("CCORE_REQUIRE_ZK") == "1":
        pytest.fail(f"{ZK_NOT_INSTALLED} (CCORE_REQUIRE_ZK=1)", pytrace=False)
    pytest.skip(ZK_NOT_INSTALLED)


def start_server(kind: str, base_dir, attempts: int = 3, **options) -> ServerHandle:
    """Start a server of `kind` under `base_dir` (see servers.make_server for the options).
    A server that dies at once is retried on a fresh port: the free port we picked may have
    been taken in between."""
    if kind == "apache":
        require_apache()
    for attempt in range(attempts):
        handle = make_server(kind, base_dir, **options)
        try:
            return handle.start()
        except ServerStartError as exc:
            exited_early = "exited with status" in str(exc)
            if attempt == attempts - 1 or "port" in options or not exited_early:
                raise
    raise AssertionError("unreachable")
