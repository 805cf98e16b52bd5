"""A scope that is cancelled the moment something held through a session may be lost.

ZooKeeper tells a cut-off client nothing: a lock holder whose network is gone learns that its
session expired only when it reconnects, long after the server deleted its node and granted
the lock to someone else (Curator-465, kazoo #565). So a holder has to stop on its own clock.

The server expires a session `timeout` after it last heard from it, and it heard from us no
earlier than the moment we *sent* a request whose reply came back on that session. Every
timeout/4 the guard sends `sync` then `exists()` of the held node (the sync goes through the
leader, so a follower cut off from its leader cannot answer it from a stale copy; the exists
proves the node is still there and still ours), and keeps the body's cancel-scope deadline at

    send time of the last acknowledged heartbeat + session timeout - safety margin

so the body is cancelled before the server can have expired the session, whatever the network
does. The default margin is a quarter of the timeout: it covers clock-rate differences, the
time the body needs to stop, and -- in an ensemble -- the delay with which a follower relays
its clients' activity to the leader (Apache ZooKeeper: up to tickTime/2, and a session timeout
is at least 2 ticks). The guard also cancels at once when the client reports LOST or CLOSED,
when the node is gone or belongs to another session, and -- with `cancel_on_suspend` -- as soon
as the connection is SUSPENDED.

    async with guarded(zk, node, token=czxid, owner=session_id, acked_at=t) as hold:
        ...   # cancelled as described; LostError is raised when the block ends that way
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import anyio
import attrs

from ccore.client import Client, ClientClosedError, ClientState
from ccore.znodes.errors import ConnectionLossError, SessionExpiredError, ZKError
from ccore.znodes.groups import unwrap_single

from .errors import LostError

log = logging.getLogger(__name__)

DEFAULT_MARGIN_FRACTION = 0.25  # of the session timeout (see the module docstring)
HEARTBEATS_PER_TIMEOUT = 4


def default_margin(timeout_s: float) -> float:
    return DEFAULT_MARGIN_FRACTION * timeout_s


@attrs.define(eq=False)
class Hold:
    """What a guarded body holds: its node, fencing token, and how long it is safe.

    `deadline` (event loop time, anyio.current_time) is when the body will be cancelled unless the server answers again;
    `lost` / `reason` say whether and why the hold was given up.
    """

    path: str
    token: int
    owner: int  # the session id that owns the node
    timeout_s: float
    margin_s: float
    acked_at: float
    reason: str | None = None
    _scope: anyio.CancelScope | None = attrs.field(default=None, repr=False)

    @property
    def deadline(self) -> float:
        return self.acked_at + self.timeout_s - self.margin_s

    @property
    def lost(self) -> bool:
        return self.reason is not None

    def acked(self, sent_at: float) -> None:
        """A request sent at `sent_at` was answered on our session: move the deadline."""
        if sent_at > self.acked_at and not self.lost:
            self.acked_at = sent_at
            if self._scope is not None:
                self._scope.deadline = self.deadline

    def lose(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
            log.warning("%s: giving up the hold: %s", self.path, reason)
        if self._scope is not None:
            self._scope.cancel()


async def _watch_states(zk: Client, hold: Hold, cancel_on_suspend: bool) -> None:
    def check(state: ClientState) -> None:
        if state is ClientState.LOST:
            hold.lose("the session expired")
        elif state is ClientState.CLOSED:
            hold.lose("the client was closed")
        elif state is ClientState.SUSPENDED and cancel_on_suspend:
            hold.lose("the connection was suspended")

    with zk.states() as states:
        check(zk.state)
        if zk.session_id != hold.owner:
            hold.lose("the session expired (the client has a new one)")
        async for state in states:
            check(state)


async def _heartbeat(zk: Client, hold: Hold) -> None:
    interval = hold.timeout_s / HEARTBEATS_PER_TIMEOUT
    next_at = hold.acked_at + interval
    while not hold.lost:
        await anyio.sleep_until(next_at)
        sent_at = anyio.current_time()
        next_at = sent_at + interval
        # An attempt that waits longer than the interval (a reconnect) is abandoned: its send
        # time would be too old to move the deadline much, a fresh one may do better.
        with anyio.move_on_after(interval):
            try:
                await zk.sync(hold.path)
                stat = await zk.exists(hold.path)
            except ConnectionLossError:
                continue
            except (SessionExpiredError, ClientClosedError) as e:
                return hold.lose(f"the session ended ({type(e).__name__})")
            except ZKError as e:  # e.g. NoAuth after an ACL change: we cannot tell, stop
                return hold.lose(f"cannot check the node: {e!r}")
            if zk.session_id != hold.owner:
                return hold.lose("the session expired (the client has a new one)")
            if stat is None:
                return hold.lose("the node was deleted")
            if stat.ephemeralOwner != hold.owner:
                return hold.lose(f"the node now belongs to session {stat.ephemeralOwner:#x}")
            hold.acked(sent_at)


@contextlib.asynccontextmanager
async def guarded(
    zk: Client,
    path: str,
    *,
    token: int,
    owner: int,
    acked_at: float,
    cancel_on_suspend: bool = False,
    margin_s: float | None = None,
) -> AsyncIterator[Hold]:
    """Run the body while `path` (an ephemeral node of session `owner`) is surely held;
    raise LostError after the body if it had to be cancelled. `acked_at` is the loop time at
    which the last request answered on that session was sent."""
    timeout_s = zk.session_timeout
    margin = default_margin(timeout_s) if margin_s is None else margin_s
    if not 0 <= margin < timeout_s:
        raise ValueError(f"safety margin {margin}s must be in [0, session timeout {timeout_s}s)")
    hold = Hold(path, token, owner, timeout_s, margin, acked_at)
    body_scope = anyio.CancelScope(deadline=hold.deadline)
    hold._scope = body_scope
    with unwrap_single():  # the body's own error, not the task group's group
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(_watch_states, zk, hold, cancel_on_suspend)
            tasks.start_soon(_heartbeat, zk, hold)
            try:
                with body_scope:
                    yield hold
            finally:
                tasks.cancel_scope.cancel()
    if body_scope.cancelled_caught:
        if hold.reason is None:
            late = anyio.current_time() - hold.acked_at
            hold.reason = f"no answer on the session for {late:.2f}s: it may expire on the server"
        raise LostError(path, hold.reason)
