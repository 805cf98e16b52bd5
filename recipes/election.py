"""Leader election: campaign, resign, see who leads, and lead inside a guarded scope.

    from ccore.recipes import Election
    election = Election(zk, "/election/scheduler", b"node-a")
    async with election.leadership(cancel_on_suspend=True) as token:
        ...   # we lead; cancelled the moment leadership may be lost (then LostError)

    await election.leader()                 # b"node-a", or None while nobody leads
    async with election.observe() as leaders:
        async for leader in leaders: ...    # each change of leader (None: nobody)

Candidates queue as ephemeral sequential nodes `_c_<guid>-latch-<seq>` holding their
identifier (Curator's LeaderLatch names); the first one leads and each candidate watches only
the one before it. A leader never keeps acting after its session could be gone: the
leadership scope is cancelled when the session expires, when no server has answered for
long enough that it might have (see `_guard`), or, with `cancel_on_suspend`, at the first
sign of trouble -- use that when two leaders for a moment would hurt more than a needless
re-election. The token is the czxid of the leader's node: every new term has a higher one,
so pass it along with what a leader writes.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from ccore.client import Client
from ccore.znodes.errors import NoNodeError

from ._util import child, retry_loss
from .lock import _identifiers, _queue, _QueueHold
from .watchers import ChildrenWatch


class _Candidacy(_QueueHold):
    kind = "latch-"


class Election:
    """See the module docstring. One Election object is one candidate."""

    def __init__(self, zk: Client, path: str, identifier: bytes = b"", *, safety_margin: float | None = None) -> None:
        self.zk = zk
        self.path = path
        self.identifier = identifier
        self.safety_margin = safety_margin
        self._candidacy: _Candidacy | None = None

    @property
    def is_leader(self) -> bool:
        return self._candidacy is not None and self._candidacy.is_acquired

    @contextlib.asynccontextmanager
    async def leadership(self, *, timeout: float | None = None, cancel_on_suspend: bool = False) -> AsyncIterator[int]:
        """Campaign (at most `timeout` s: TimeoutError), then lead for the duration of
        the block, which is cancelled if leadership may be lost (LostError); resign after."""
        candidacy = _Candidacy(
            self.zk, self.path, self.identifier, timeout=timeout,
            cancel_on_suspend=cancel_on_suspend, safety_margin=self.safety_margin,
        )  # fmt: skip
        self._candidacy = candidacy
        try:
            async with candidacy as token:
                yield token
        finally:
            self._candidacy = None

    async def campaign(self, timeout: float | None = None) -> int:
        """Wait to lead without a guarded scope (prefer `leadership()`); returns the token."""
        if self.is_leader:
            raise RuntimeError(f"already leading {self.path}")
        self._candidacy = _Candidacy(self.zk, self.path, self.identifier)
        try:
            return await self._candidacy.acquire(timeout)
        except BaseException:
            self._candidacy = None
            raise

    async def resign(self) -> None:
        """Stop leading (or campaigning) after `campaign()`; idempotent."""
        candidacy, self._candidacy = self._candidacy, None
        if candidacy is not None:
            await candidacy.release()

    async def leader(self) -> bytes | None:
        """The current leader's identifier, or None if nobody is campaigning."""
        while True:
            queue = await _queue(self.zk, self.path)
            if not queue:
                return None
            try:
                data, _ = await retry_loss(self.zk.get, child(self.path, queue[0].name))
                return data
            except NoNodeError:
                continue  # it just resigned: look again

    async def candidates(self) -> list[bytes]:
        """Every candidate's identifier, the leader first."""
        return await _identifiers(self.zk, self.path, await _queue(self.zk, self.path))

    @contextlib.asynccontextmanager
    async def observe(self) -> AsyncIterator[AsyncIterator[bytes | None]]:
        """An iterator of leaders: the current one first, then each change (None while
        nobody leads). Consecutive duplicates are dropped."""
        async with ChildrenWatch(self.zk, self.path) as children:

            async def leaders() -> AsyncIterator[bytes | None]:
                last: object = object()
                async for _ in children:
                    leader = await self.leader()
                    if leader != last:
                        last = leader
                        yield leader

            yield leaders()
