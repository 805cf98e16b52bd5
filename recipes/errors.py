"""The one error the recipes add to the client's: something held may have been lost.

Timeouts are the built-in `TimeoutError` (as `anyio.fail_after` raises, on Trio and asyncio
alike); server errors are the znodes exceptions the client raises (`NoNodeError('/a')`, ...).
"""

from __future__ import annotations


class LostError(Exception):
    """A lock, lease, leadership, semaphore slot or queue item may have been lost while held,
    so the body that relied on it was cancelled.

    `path` is the node that carried the hold, `reason` says why it may be gone: the session
    expired, the node was deleted, no server answered before the session could have expired
    on the server (the guard's deadline), or the connection was suspended (when asked to
    give up at once).
    """

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")
