"""Guaranteed deletes (Curator's `delete().guaranteed()`): a recipe's ephemeral node is removed
for as long as its session lives, never given up on a timer, even if the caller is cancelled.

Why no timer: "no server answered for the session timeout, so the session has expired and took
the node with it" is false when the *quorum* is down (every server killed, a long election).
The session then survives -- a new leader gives every session a fresh deadline -- and so does
the node. A lock contender's node left that way is an orphan that every later contender of the
same client queues behind, for as long as the client lives (found by the chaos suite: kill all
servers for 3-6 s and a client's every later acquire timed out).

So a deletion is retried until the node is gone (NoNode is success), the session that owned it
is over (the server deletes an ephemeral node with its session), or the client is closed. It
runs as a task the client owns (`Client.start_background`): a caller may wait for it, bounded
and shielded, but the deletion carries on when the caller stops waiting or is cancelled.

Deletions in progress are registered per client and *key* (a contender's or a DoubleBarrier's
directory; a lease's, a Presence's or a LockingQueue lock's own path): a recipe about to queue
or create a node under a key first waits for them (`settle`), so it never queues behind a node
of its own client that is on its way out, nor takes such a node for the one it just made.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Awaitable, Callable

import anyio
import attrs

from ccore.client import Client, ClientClosedError, ClientState
from ccore.znodes.errors import (
    BadVersionError,
    ConnectionLossError,
    NoNodeError,
    SessionExpiredError,
    ZKError,
)

from ._util import RETRY_DELAY_MAX_S, RETRY_DELAY_S

log = logging.getLogger(__name__)

# attempt() -> True when done (the node is gone or no longer ours), False to try again later;
# ConnectionLossError also means "again", NoNodeError means done.
Attempt = Callable[[], Awaitable[bool]]


@attrs.define(eq=False)
class Deletion:
    """One guaranteed deletion: under which key, of what (for logs), and when it is over."""

    key: str
    what: str
    owner: int  # the session whose ephemeral node(s) this deletes
    done: anyio.Event = attrs.field(factory=anyio.Event)

    async def wait(self, timeout_s: float) -> bool:
        """Wait (shielded: this is cleanup) at most `timeout_s` for the deletion to be over;
        whether it is. It carries on in the background either way."""
        with anyio.CancelScope(shield=True), anyio.move_on_after(timeout_s):
            await self.done.wait()
        return self.done.is_set()


# Per client, per key: the deletions still in progress.
_pending: weakref.WeakKeyDictionary[Client, dict[str, set[Deletion]]] = weakref.WeakKeyDictionary()


def start(zk: Client, key: str, what: str, owner: int, attempt: Attempt) -> Deletion:
    """Start deleting `what` (one try is `attempt`, see Attempt) in a task `zk` owns, retried
    until it succeeds or session `owner` is over; registered under `key` until then."""
    deletion = Deletion(key, what, owner)
    by_key = _pending.setdefault(zk, {})
    by_key.setdefault(key, set()).add(deletion)
    try:
        zk.start_background(_run, zk, deletion, attempt, name=f"guaranteed delete of {what}")
    except ClientClosedError:
        _finish(zk, deletion)  # closing the session removed its ephemeral nodes
    return deletion


def delete_own(zk: Client, path: str, owner: int) -> Attempt:
    """An Attempt that deletes the ephemeral node `path` if session `owner` still owns it (a
    node of the same name made by anyone else, or by a later session of ours, is left alone)."""

    async def attempt() -> bool:
        stat = await zk.exists(path)
        if stat is None or stat.ephemeralOwner != owner:
            return True  # gone, or someone else's now: not ours to delete
        # No checkpoint between the check and queueing the delete: it goes out on the
        # connection of the session that owns the node, or not at all (then: again).
        if zk.state is not ClientState.CONNECTED or zk.session_id != owner:
            return False
        try:
            await zk.delete(path, version=stat.version)
        except BadVersionError:
            return False  # changed meanwhile: look again
        return True

    return attempt


async def delete_and_wait(zk: Client, key: str, path: str, owner: int, wait_s: float) -> Deletion:
    """Start the guaranteed delete of our ephemeral node `path` (see `delete_own`) under `key`
    and wait for it (shielded) at most `wait_s`; it carries on in the background after that."""
    deletion = start(zk, key, path, owner, delete_own(zk, path, owner))
    if not await deletion.wait(wait_s):
        log.warning("%s: could not delete %s yet; still trying in the background", key, path)
    return deletion


async def settle(zk: Client, key: str) -> None:
    """Wait until every deletion `zk` has in progress under `key` is over (each is bounded by
    its session's life). Cancellable: the caller's own timeout applies."""
    while deletions := _pending.get(zk, {}).get(key):
        deletion = next(iter(deletions))
        log.debug("%s: waiting for our deletion of %s first", key, deletion.what)
        await deletion.done.wait()


def _finish(zk: Client, deletion: Deletion) -> None:
    by_key = _pending.get(zk, {})
    deletions = by_key.get(deletion.key, set())
    deletions.discard(deletion)
    if not deletions:
        by_key.pop(deletion.key, None)
    deletion.done.set()


async def _run(zk: Client, deletion: Deletion, attempt: Attempt) -> None:
    delay = RETRY_DELAY_S
    tries = 0
    try:
        while True:
            # A session that is over took its ephemeral nodes with it (the id is 0 while the
            # client makes a new session, then the new one's).
            if zk.session_id != deletion.owner:
                log.info("%s: session %#x is over, and %s with it", deletion.key, deletion.owner, deletion.what)
                return
            tries += 1
            try:
                if await attempt():
                    if tries > 1:
                        log.info("%s: deleted %s after %d tries", deletion.key, deletion.what, tries)
                    return
            except NoNodeError:
                return  # gone: what we wanted
            except ConnectionLossError:
                pass  # the outcome is unknown: the next try tells (NoNode if it went through)
            except (SessionExpiredError, ClientClosedError):
                return  # the session is over: the server deleted its ephemeral nodes
            except ZKError as e:
                # Not something time mends (e.g. NoAuth after an ACL change): say so loudly,
                # the node stays until its session ends.
                log.error(
                    "%s: cannot delete %s: %r; it stays until session %#x ends", deletion.key, deletion.what, e, deletion.owner
                )
                return
            if tries == 1:
                log.info("%s: could not delete %s yet; retrying until done or the session ends", deletion.key, deletion.what)
            # While the client is disconnected a request waits for the next connection, so
            # this sleep only paces retries after a connection that dropped mid-request.
            await anyio.sleep(delay)
            delay = min(RETRY_DELAY_MAX_S, delay * 2)
    finally:
        _finish(zk, deletion)
