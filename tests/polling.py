"""`wait_for`: a test's wait for a condition that nothing signals (a server's or another
process's state, a log record, a counter in a fake), polled under a timeout (anyio: on Trio,
MockClock included, and on asyncio). Where the code under test offers an event, a stream or a
watch, tests await that instead."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import anyio


async def wait_for(
    predicate: Callable[..., object | Awaitable[object]], *args: Any, timeout_s: float = 5.0, interval_s: float = 0.01
) -> float:
    """Poll `predicate(*args)` (a plain or an async function) until it returns something
    true; returns the time it took. Fails with TimeoutError after `timeout_s`."""
    start = anyio.current_time()
    with anyio.fail_after(timeout_s):
        while True:
            value = predicate(*args)
            if inspect.isawaitable(value):
                value = await value
            if value:
                return anyio.current_time() - start
            await anyio.sleep(interval_s)
