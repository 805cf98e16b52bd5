"""The one thing the client's hot path takes from the running event loop directly: its Event.

Everything else in the client is anyio (task groups, cancel scopes, streams, timeouts), so it
runs on Trio and asyncio alike. But every request makes an Event, and the writer makes one
each time it runs dry: `anyio.Event()` first asks which loop is running (~0.7 us, five times
a `trio.Event()`), and each of its methods then calls the loop's own Event one level down.
Measured on Trio that is ~0.5 us of the client's ~13-15 us of CPU per pipelined get. The
loop's own Event has the same three methods, and a task waiting on it is cancelled all the
same (anyio cancels through the loop's own mechanism), so the session makes those Events with
the class this returns, looked up once per session.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import sniffio


class Flag(Protocol):
    """What `trio.Event` and `asyncio.Event` (and `anyio.Event`) have in common."""

    def set(self) -> Any: ...

    def is_set(self) -> bool: ...

    async def wait(self) -> Any: ...


def event_class() -> Callable[[], Flag]:
    """The running loop's own Event class; call it inside the loop (anyio runs Trio or asyncio)."""
    if sniffio.current_async_library() == "trio":
        import trio

        return trio.Event
    import asyncio

    return asyncio.Event
