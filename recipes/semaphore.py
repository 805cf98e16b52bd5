"""A counting semaphore: at most N holders at once, fair, and no herd.

    from ccore.recipes import Semaphore
    async with Semaphore(zk, "/semaphores/db-connections", max_leases=3) as token:
        ...   # at most 3 bodies run at once; cancelled if our slot may be lost (LostError)

Contenders queue as ephemeral sequential nodes, as for Lock; the first N hold a slot. A waiter
wakes only when its own position may have improved, so a release wakes one client:

- the first waiter (position N) watches the directory's children: any holder leaving lets it in;
- every later waiter watches only the waiter just before it (its node);
- a waiter that gets in bumps its node's version, which wakes the one behind it, now first.

All contenders must agree on N (it is not stored). The token is our node's czxid: unique and
growing with the order of arrival, but N holders hold at once, so it fences nothing by itself.
"""

from __future__ import annotations

from ccore.client import Client

from ._contend import Blocker, WaitFor
from ._util import Entry
from .lock import _identifiers, _queue, _QueueHold


class Semaphore(_QueueHold):
    """See the module docstring; options as for Lock."""

    kind = "lease-"

    def __init__(self, zk: Client, path: str, identifier: bytes = b"", *, max_leases: int, **options: object) -> None:
        if max_leases < 1:
            raise ValueError(f"max_leases must be at least 1, not {max_leases}")
        super().__init__(zk, path, identifier, **options)  # type: ignore[arg-type]
        self.max_leases = max_leases

    def _blocker(self) -> Blocker:
        n = self.max_leases

        def blocker(queue: list[Entry], mine: Entry) -> WaitFor | None:
            index = queue.index(mine)
            if index < n:
                return None
            if index == n:
                return WaitFor(children=True)
            return WaitFor(queue[index - 1].name)

        return blocker

    async def _granted(self) -> None:
        # Someone queued behind us may have seen us waiting and be watching our node: wake it
        # so that it takes over the watch on the holders. Nobody behind us, nobody to wake.
        contender = self._contender
        queue = contender.queue
        if contender.name is not None and queue and queue[-1].name != contender.name:
            await contender.touch()

    async def holders(self) -> list[bytes]:
        """The identifiers of the current holders, in queue order."""
        return await _identifiers(self.zk, self.path, (await _queue(self.zk, self.path))[: self.max_leases])
