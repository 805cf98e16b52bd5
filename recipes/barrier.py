"""Barriers: `Barrier` (wait until a node is removed) and `DoubleBarrier` (start together,
finish together).

    from ccore.recipes import Barrier, DoubleBarrier
    barrier = Barrier(zk, "/barriers/deploy")
    await barrier.create()                   # the coordinator raises it
    await barrier.wait(timeout=30)           # workers wait...
    await barrier.remove()                   # ...until the coordinator lifts it

    async with DoubleBarrier(zk, "/barriers/round-7", num_clients=3, timeout=30):
        ...   # runs once all 3 have entered; leaving waits until all 3 have left

DoubleBarrier is ZooKeeper's recipe: each participant creates an ephemeral node; the one that
completes the count creates `ready`, which everyone waiting watches (the watch is set before
our node is made, so its creation cannot be missed). Leaving: the lowest node waits for the
highest to go, everyone else deletes its node and waits for the lowest -- one watch each, no
herd. A participant that dies is counted as gone once its session expires, so the others are
not stuck forever on leave; one that never comes makes `enter` wait (bound it with `timeout`:
TimeoutError, and our node is removed). Late comers find `ready` and pass. One barrier
path serves one round: let `leave` finish (it removes `ready`) before the next round's `enter`.

Removing our node (an `enter` given up, a `leave`, a failed body) is a guaranteed delete
(`_cleanup`): retried until the node or our session is gone, in the background once we have
waited a session timeout. Never given up on a timer: when the quorum is down the session
outlives the outage, and a node left behind would count as a participant -- filling a later
round before everyone is there, and holding up everyone's `leave` -- for as long as it lives.
An `enter` first waits for its client's deletions still in progress under the barrier's path.
"""

from __future__ import annotations

import contextlib
from types import TracebackType
from typing import Self

import anyio

from ccore.client import Client
from ccore.znodes.errors import NodeExistsError, NoNodeError, SessionExpiredError

from . import _cleanup
from ._util import child, delete_quietly, ensure_dir, new_guid, retry_loss

READY = "ready"


class Barrier:
    """A node that blocks `wait()` for as long as it exists (kazoo's Barrier)."""

    def __init__(self, zk: Client, path: str) -> None:
        self.zk = zk
        self.path = path

    async def create(self) -> None:
        """Raise the barrier (no error if it is up already)."""
        with contextlib.suppress(NodeExistsError):
            await retry_loss(self.zk.create, self.path, make_parents=True)

    async def remove(self) -> None:
        """Lift the barrier: every waiter goes on."""
        await delete_quietly(self.zk, self.path)

    async def wait(self, timeout: float | None = None) -> None:
        """Return once the barrier is down (at once if it is); TimeoutError on timeout."""
        with anyio.fail_after(timeout):
            while True:
                stat, watch = await retry_loss(lambda: self.zk.exists(self.path, watch=True))
                if stat is None:
                    await watch.remove()
                    return
                try:
                    await watch
                except SessionExpiredError:
                    continue
                finally:
                    if not watch.fired:
                        with anyio.CancelScope(shield=True), anyio.move_on_after(1.0):
                            await watch.remove()


class DoubleBarrier:
    """See the module docstring. `identifier` names our node (default: a GUID)."""

    def __init__(
        self, zk: Client, path: str, num_clients: int, *, identifier: str | None = None, timeout: float | None = None
    ) -> None:
        if num_clients < 1:
            raise ValueError(f"num_clients must be at least 1, not {num_clients}")
        self.zk = zk
        self.path = path
        self.num_clients = num_clients
        self.name = identifier or new_guid()
        self.timeout = timeout
        self.participating = False

    @property
    def _node(self) -> str:
        return child(self.path, self.name)

    async def _participants(self) -> list[str]:
        try:
            names = await retry_loss(self.zk.children, self.path)
        except NoNodeError:
            return []
        return sorted(n for n in names if n != READY)

    async def enter(self, timeout: float | None = None) -> None:
        """Join, then wait until `num_clients` have joined (TimeoutError after `timeout`
        seconds, having left again)."""
        try:
            with anyio.fail_after(timeout):
                await self._enter()
        except BaseException:
            await self._remove()
            raise

    async def _remove(self) -> None:
        """Delete our node: a guaranteed delete (see the module docstring), waited for
        (shielded) at most a session timeout; idempotent."""
        self.participating = False
        await _cleanup.delete_and_wait(self.zk, self.path, self._node, self.zk.session_id, self.zk.session_timeout)

    async def _enter(self) -> None:
        # Not beside a node of ours on its way out (a round we left, an enter we gave up): it
        # would be counted, and a create of the same identifier would take it for ours.
        await _cleanup.settle(self.zk, self.path)
        await ensure_dir(self.zk, self.path, container=True)
        ready = child(self.path, READY)
        while True:
            stat, watch = await retry_loss(lambda: self.zk.exists(ready, watch=True))
            self.participating = True
            try:
                await retry_loss(self.zk.create, self._node, ephemeral=True)
            except NodeExistsError:
                pass  # ours, from a create whose reply was lost (identifiers are unique)
            except NoNodeError:  # the container went away meanwhile
                await watch.remove()
                await ensure_dir(self.zk, self.path, container=True)
                continue
            if stat is not None:
                await watch.remove()
                return
            if len(await self._participants()) >= self.num_clients:
                with contextlib.suppress(NodeExistsError):
                    await retry_loss(self.zk.create, ready)
            try:
                await watch  # `ready` created (by us or the last to come)
                return
            except SessionExpiredError:
                continue  # our node went with the session: join again
            finally:
                if not watch.fired:
                    with anyio.CancelScope(shield=True), anyio.move_on_after(1.0):
                        await watch.remove()

    async def leave(self, timeout: float | None = None) -> None:
        """Leave, then wait until every participant has left (TimeoutError after
        `timeout` seconds; our node is gone, or on its way out, either way)."""
        try:
            with anyio.fail_after(timeout):
                await self._leave()
        finally:
            await self._remove()

    async def _leave(self) -> None:
        while True:
            names = await self._participants()
            if not names or names == [self.name]:
                # The last one out takes `ready` down, so the path can serve a next round.
                await delete_quietly(self.zk, child(self.path, READY))
                await delete_quietly(self.zk, self._node)
                return
            if self.name not in names:
                watch_name = names[0]  # we are out: wait for the lowest, who leaves last
            elif self.name == names[0]:
                watch_name = names[-1]  # the lowest waits for the highest
            else:
                await delete_quietly(self.zk, self._node)
                watch_name = names[0]
            target = child(self.path, watch_name)
            stat, watch = await retry_loss(lambda: self.zk.exists(target, watch=True))  # noqa: B023 - called at once
            if stat is None:
                await watch.remove()
                continue
            try:
                await watch
            except SessionExpiredError:
                pass
            finally:
                if not watch.fired:
                    with anyio.CancelScope(shield=True), anyio.move_on_after(1.0):
                        await watch.remove()

    async def __aenter__(self) -> Self:
        await self.enter(self.timeout)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc_type is None:
            await self.leave(self.timeout)
        else:  # the body failed: leave without waiting for the others
            await self._remove()
