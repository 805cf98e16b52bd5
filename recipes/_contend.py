"""The queue every fair recipe stands in: one ephemeral sequential node per contender.

Lock, ReadWriteLock, Semaphore and Election all work the same way: a contender creates
`<dir>/_c_<guid>-<kind><sequence>` (ephemeral), lists the directory, and either has its turn
or watches exactly one thing (usually its predecessor) and looks again when that fires. What
differs is only the rule "whom must I wait for", a function of the sorted queue.

The GUID is what makes failures safe (Curator's "protected" mode):
- a create whose reply was lost (connection loss, or the caller cancelled) may or may not have
  made a node; listing the directory and looking for our GUID finds it again, and any second
  node with our GUID is deleted (a guaranteed delete as well, see below), so a lost reply never
  leaves an orphan that would block the queue for as long as our session lives;
- when our node vanishes (the session expired, someone deleted it) we start over under a new
  GUID, so a stale node of the dead session is never mistaken for ours.

Giving up (a timeout, a cancellation, a release) deletes our node with a guaranteed delete
(`_cleanup`): retried until the node is gone or its session is, in a task the client owns, so
that neither a cancelled caller nor a quorum that is down for longer than the session timeout
(the session survives that: a new leader gives it a fresh deadline) leaves an orphan that the
queue would wait behind for as long as the session lives. `leave` waits for the delete, shielded,
at most a session timeout; it carries on in the background after that. And before queueing, a
contender waits for its client's deletions still in progress in the same directory, so it never
queues behind a node of its own client that is on its way out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import anyio
import attrs

from ccore.client import Client, Watch
from ccore.znodes.errors import ConnectionLossError, NoNodeError, SessionExpiredError
from ccore.znodes.stat import Stat

from . import _cleanup
from ._util import (
    Entry,
    child,
    ensure_dir,
    new_guid,
    protected_prefix,
    retry_loss,
    sorted_entries,
)

log = logging.getLogger(__name__)


@attrs.frozen
class WaitFor:
    """What a contender must wait for: the node `name` to change or go (`children=False`),
    or any change of the directory's children (`children=True`)."""

    name: str | None = None
    children: bool = False


# blocker(queue, mine) -> None when it is our turn, else what to wait for.
Blocker = Callable[[list[Entry], Entry], WaitFor | None]


def predecessor(queue: list[Entry], mine: Entry) -> WaitFor | None:
    """The exclusive rule: our turn when we are first; otherwise wait for the one before us."""
    index = queue.index(mine)
    return None if index == 0 else WaitFor(queue[index - 1].name)


class Contender:
    """One place in the queue of `dir`; see the module docstring."""

    def __init__(self, zk: Client, dir: str, kind: str, data: bytes = b"") -> None:
        self.zk = zk
        self.dir = dir
        self.kind = kind
        self.data = data
        self.name: str | None = None
        self.stat: Stat | None = None
        self.acked_at = 0.0  # when the request that gave us our turn was sent (event loop time, anyio.current_time)
        self.queue: list[Entry] = []  # the listing that gave us our turn
        self._guid = new_guid()
        self._uncertain: set[str] = set()  # GUIDs whose create had no reply

    @property
    def path(self) -> str:
        assert self.name is not None
        return child(self.dir, self.name)

    @property
    def token(self) -> int:
        """The fencing token: our node's czxid (see Lock)."""
        assert self.stat is not None
        return self.stat.czxid

    def _prefix(self, guid: str | None = None) -> str:
        return protected_prefix(guid or self._guid, self.kind)

    async def _create(self) -> None:
        """Create our node, or find the one a lost create reply made."""
        while True:
            self._uncertain.add(self._guid)  # until the reply is in, the outcome is unknown
            try:
                path, stat = await self.zk.create(
                    child(self.dir, self._prefix()), self.data, ephemeral=True, sequence=True, include_stat=True
                )
            except NoNodeError:
                self._uncertain.discard(self._guid)
                await ensure_dir(self.zk, self.dir)
                continue
            except ConnectionLossError:
                if await self._find():
                    return
                continue
            self._uncertain.discard(self._guid)
            self.name, self.stat = path.rsplit("/", 1)[1], stat
            return

    async def _find(self) -> bool:
        """Look for a node with our GUID (made by a create whose reply was lost)."""
        try:
            names = await retry_loss(self.zk.children, self.dir)
        except NoNodeError:
            return False
        prefix = self._prefix()
        mine = [e for e in sorted_entries(names) if e.name.startswith(prefix)]
        for entry in mine:
            stat = await retry_loss(self.zk.exists, child(self.dir, entry.name))
            if stat is not None and stat.ephemeralOwner == self.zk.session_id:
                self.name, self.stat = entry.name, stat
                return True
        return False

    def _vanished(self) -> None:
        """Our node is gone: start over under a fresh GUID (see the module docstring)."""
        self.name = self.stat = None
        self._guid = new_guid()

    async def _list(self, watch: bool) -> tuple[list[Entry], Watch | None, float]:
        sent_at = anyio.current_time()
        try:
            if watch:
                names, w = await retry_loss(lambda: self.zk.children(self.dir, watch=True))
            else:
                names, w = await retry_loss(self.zk.children, self.dir), None
        except NoNodeError:
            names, w = [], None
        return sorted_entries(names), w, sent_at

    async def _dedupe(self, queue: list[Entry]) -> Entry | None:
        """Our entry in `queue`, after deleting duplicates left by lost create replies."""
        assert self.stat is not None
        if self.zk.session_id != self.stat.ephemeralOwner:
            return None  # a new session: our node is gone, or about to be
        prefix = self._prefix()
        mine = None
        for entry in queue:
            if entry.name == self.name:
                mine = entry
            elif entry.name.startswith(prefix):
                log.info("%s: deleting %s, a second node of ours (a create whose reply was lost)", self.dir, entry.name)
                # A guaranteed delete too: given up with us (a timeout), it would be an orphan
                # that `leave` does not know of. A cancellation ends our wait, not the delete.
                path, owner = child(self.dir, entry.name), self.stat.ephemeralOwner
                deletion = _cleanup.start(self.zk, self.dir, path, owner, _cleanup.delete_own(self.zk, path, owner))
                await deletion.done.wait()
        return mine

    async def wait_turn(self, blocker: Blocker) -> None:
        """Create our node (if needed) and return once `blocker` says it is our turn.
        Afterwards `name`, `stat`, `token` and `acked_at` describe the hold."""
        while True:
            if self.name is None:
                # Not behind a node of our own client on its way out (see the module docstring).
                await _cleanup.settle(self.zk, self.dir)
                await self._create()
            queue, _, sent_at = await self._list(watch=False)
            mine = await self._dedupe(queue)
            if mine is None:
                self._vanished()
                continue
            wait = blocker(queue, mine)
            if wait is None:
                self.acked_at, self.queue = sent_at, queue
                return
            w: Watch | None
            if wait.children:
                # List again with a watch; that listing may already settle it.
                queue, w, sent_at = await self._list(watch=True)
                mine = next((e for e in queue if e.name == self.name), None)
                if mine is None or blocker(queue, mine) != wait:
                    if w is not None:
                        await self._unwatch(w)
                    continue
            else:
                assert wait.name is not None
                target = child(self.dir, wait.name)
                stat, w = await retry_loss(lambda: self.zk.exists(target, watch=True))  # noqa: B023 - called at once
                if stat is None:
                    await self._unwatch(w)  # type: ignore[arg-type]
                    continue
            if w is not None:
                await self._await_watch(w)

    async def _await_watch(self, w: Watch) -> None:
        try:
            await w
        except SessionExpiredError:
            self._vanished()
        finally:
            if not w.fired:  # cancelled: take the watch off the server too
                await self._unwatch(w)

    @staticmethod
    async def _unwatch(w: Watch) -> None:
        with anyio.CancelScope(shield=True), anyio.move_on_after(1.0):
            try:
                await w.remove()
            except Exception as e:  # noqa: BLE001 - best effort: a stray one-shot watch costs little
                log.debug("removing %r: %r", w, e)

    async def touch(self) -> None:
        """Bump our node's version: a successor watching it looks at the queue again."""
        assert self.name is not None
        sent_at = anyio.current_time()
        await retry_loss(self.zk.set, self.path, self.data)
        self.acked_at = sent_at

    async def leave(self) -> None:
        """Delete our node (and any node a lost create reply may have made) with a guaranteed
        delete; wait for it, shielded, at most a session timeout (it carries on in the
        background after that, until done or the session is over); idempotent."""
        uncertain, name = set(self._uncertain), self.name
        self._uncertain.clear()
        self._vanished()
        if name is None and not uncertain:
            return
        # Only nodes of the current session can still exist (an earlier session's went with
        # it), so the deletion lasts as long as this one; 0 while a new one is being made.
        owner = self.zk.session_id

        async def attempt() -> bool:
            if name is not None:
                try:
                    await self.zk.delete(child(self.dir, name))
                except NoNodeError:
                    pass
            if uncertain:
                await self._sweep(uncertain)
            return True

        what = name if name is not None else f"nodes of GUIDs {sorted(uncertain)}"
        deletion = _cleanup.start(self.zk, self.dir, what, owner, attempt)
        if not await deletion.wait(self.zk.session_timeout):
            log.warning("%s: could not remove %s yet; still trying in the background", self.dir, what)

    async def _sweep(self, guids: set[str]) -> None:
        """Delete every node with one of `guids` (creates whose reply was lost)."""
        try:
            names = await self.zk.children(self.dir)
        except NoNodeError:
            return
        prefixes = tuple(self._prefix(g) for g in guids)
        for name in names:
            if name.startswith(prefixes):
                try:
                    await self.zk.delete(child(self.dir, name))
                except NoNodeError:
                    pass
