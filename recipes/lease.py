"""A named lease with a time-to-live: the failover the project started from.

    from ccore.client import connect
    from ccore.recipes import Lease

    async with connect(hosts, session_timeout=5.0) as zk:            # the TTL is the session's
        async with Lease(zk, "/leases/migo-group", b"NodeA", ttl=5.0) as lease:
            ...   # we own "Migo Group"; cancelled before the lease can lapse (LostError)

NodeA owns the name while its process heartbeats; when it stops (crash, partition), the lease
lapses after the TTL, NodeB -- waiting in the same `async with` -- is told the name was deleted,
and takes it over. Never are two owners acting at once: NodeA's body is cancelled before the
server can have expired NodeA's session.

**Design: the lease is an ephemeral node of a session whose timeout is the TTL**, not a TTL
node refreshed by a heartbeat. Session expiry is what ZooKeeper is built around: the server
expires a silent session at a deadline it keeps per session (ours exactly at the deadline,
Apache ZooKeeper at the next tick after it), deletes its ephemeral nodes in one replicated
transaction and fires the watchers at once. A TTL node is reaped by a periodic sweep instead
(Apache's `znode.container.checkIntervalMs`, 60 s by default, must be set low and TTL nodes
enabled), so its takeover delay is the TTL plus up to a sweep interval, and a TTL node outlives
a crashed owner exactly as long. With a session, the takeover comes within the TTL of the
owner's last heartbeat: at most 1.0 x TTL plus a notification on our server (plus a tick on
Apache's), against the 1.30-1.46 x measured with kazoo on ZooKeeper's defaults.

The safety side is `_guard`: the owner's body runs in a scope whose deadline is the send time
of the last heartbeat answered on the session + TTL - `safety_margin` (default 25% of the TTL),
moved forward by a heartbeat every TTL/4; the server cannot have expired the session before
that. The token is the czxid of the lease node, higher for every new owner.
"""

from __future__ import annotations

import contextlib
import weakref
from types import TracebackType
from typing import Self

import anyio

from ccore.client import Client, Stat
from ccore.znodes.errors import (
    ConnectionLossError,
    NodeExistsError,
    NoNodeError,
    SessionExpiredError,
)
from ccore.znodes.paths import parent

from . import _cleanup
from ._guard import Hold, guarded
from ._util import ensure_dir, retry_loss

TTL_TOLERANCE_S = 0.001
# Names held (or being acquired) through each client: a second Lease for the same name on the
# same session would be indistinguishable from the first on the server.
_claimed: weakref.WeakKeyDictionary[Client, set[str]] = weakref.WeakKeyDictionary()


class Lease:
    """See the module docstring.

    `ttl` must be the client's session timeout as granted by the server (None: whatever it
    is); connect with `session_timeout=ttl`. `timeout` bounds the wait in `async with`
    (TimeoutError); `cancel_on_suspend` gives the lease up at the first disconnection.
    """

    def __init__(
        self,
        zk: Client,
        path: str,
        value: bytes = b"",
        *,
        ttl: float | None = None,
        timeout: float | None = None,
        cancel_on_suspend: bool = False,
        safety_margin: float | None = None,
    ) -> None:
        granted = zk.session_timeout
        if ttl is not None and abs(ttl - granted) > TTL_TOLERANCE_S:
            asked = zk.requested_session_timeout
            if abs(ttl - asked) <= TTL_TOLERANCE_S:
                # The client did ask for it: the server clamped it to its own limits.
                raise ValueError(
                    f"a lease's TTL is its session's timeout: the client asked for {asked:g}s but the "
                    f"server granted {granted:g}s (its min/maxSessionTimeout, by default 2 and 20 "
                    f"ticks); use ttl={granted:g}, or widen the server's limits"
                )
            raise ValueError(
                f"a lease's TTL is its session's timeout: the client's is {granted:g}s, "
                f"not {ttl:g}s; connect with session_timeout={ttl:g} (within the server's limits)"
            )
        self.zk = zk
        self.path = path
        self.value = value
        self.ttl = zk.session_timeout
        self.timeout = timeout
        self.cancel_on_suspend = cancel_on_suspend
        self.safety_margin = safety_margin
        self.stat: Stat | None = None
        self.hold: Hold | None = None
        self._acked_at = 0.0
        self._stack: contextlib.AsyncExitStack | None = None

    def __repr__(self) -> str:
        return f"<Lease {self.path} {'held' if self.stat else 'not held'}>"

    @property
    def token(self) -> int:
        """The fencing token: the czxid of the lease node (grows with every new owner)."""
        if self.stat is None:
            raise RuntimeError(f"{self!r} is not held")
        return self.stat.czxid

    @property
    def is_held(self) -> bool:
        return self.stat is not None and not (self.hold is not None and self.hold.lost)

    @staticmethod
    async def holder(zk: Client, path: str) -> bytes | None:
        """The value of whoever holds the lease now, or None."""
        try:
            data, _ = await retry_loss(zk.get, path)
            return data
        except NoNodeError:
            return None

    async def acquire(self, timeout: float | None = None) -> int:
        """Wait until the name is ours (at most `timeout` s: TimeoutError); the token."""
        with anyio.fail_after(timeout):
            # A release through this client whose delete is still in progress first: else we
            # would take its node for ours, and then see it deleted under us.
            await _cleanup.settle(self.zk, self.path)
            claimed = _claimed.setdefault(self.zk, set())
            if self.path in claimed:
                raise RuntimeError(f"{self.path} is already held or sought through this client")
            claimed.add(self.path)
            try:
                await self._take()
            except BaseException:
                await self._delete_if_ours()
                claimed.discard(self.path)
                raise
        assert self.stat is not None
        return self.stat.czxid

    async def _take(self) -> None:
        while True:
            sent_at = anyio.current_time()
            try:
                _, self.stat = await self.zk.create(self.path, self.value, ephemeral=True, include_stat=True)
                self._acked_at = sent_at
                return
            except NoNodeError:
                await ensure_dir(self.zk, parent(self.path), container=False)
                continue
            except (NodeExistsError, ConnectionLossError):
                pass  # held by someone -- perhaps us, if a create reply was lost
            sent_at = anyio.current_time()
            stat, watch = await retry_loss(lambda: self.zk.exists(self.path, watch=True))
            if stat is not None and stat.ephemeralOwner == self.zk.session_id:
                await watch.remove()
                self.stat, self._acked_at = stat, sent_at  # ours: only this object claims it here
                return
            if stat is None:
                await watch.remove()
                continue
            try:
                await watch  # deleted (the owner's session expired or it released): try again
            except SessionExpiredError:
                continue
            finally:
                if not watch.fired:
                    with anyio.CancelScope(shield=True), anyio.move_on_after(1.0):
                        await watch.remove()

    async def _delete_if_ours(self) -> None:
        """Delete the lease node if our session owns it: a guaranteed delete (see `_cleanup`),
        waited for (shielded) at most a TTL, carrying on in the background after that."""
        self.stat = None
        await _cleanup.delete_and_wait(self.zk, self.path, self.path, self.zk.session_id, self.ttl)

    async def release(self) -> None:
        """Give the name up now (the next owner takes over at once); idempotent."""
        await self._delete_if_ours()
        _claimed.get(self.zk, set()).discard(self.path)

    async def __aenter__(self) -> Self:
        token = await self.acquire(self.timeout)
        stack = contextlib.AsyncExitStack()
        try:
            assert self.stat is not None
            self.hold = await stack.enter_async_context(
                guarded(
                    self.zk, self.path, token=token, owner=self.stat.ephemeralOwner, acked_at=self._acked_at,
                    cancel_on_suspend=self.cancel_on_suspend, margin_s=self.safety_margin,
                )
            )  # fmt: skip
        except BaseException:
            await self.release()
            raise
        self._stack = stack
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> bool:
        stack, self._stack = self._stack, None
        try:
            assert stack is not None
            return bool(await stack.__aexit__(exc_type, exc, tb))
        finally:
            await self.release()
