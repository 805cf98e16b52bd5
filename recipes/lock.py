"""Fair distributed locks with fencing tokens: `Lock` and `ReadWriteLock`.

    from ccore.recipes import Lock
    async with Lock(zk, "/locks/db", b"worker-1", timeout=10) as token:
        await storage.write(data, fencing_token=token)   # storage refuses tokens below the last

Each contender creates an ephemeral sequential node `_c_<guid>-lock-<seq>` in the lock's
directory (Curator's InterProcessMutex names, so the two interoperate) and watches only the
node just before its own: releasing the lock wakes exactly one waiter, never a herd.

**The fencing token** is the czxid of the holder's node, the zxid of the transaction that
created it. It grows with every grant: the lock is granted in sequence order, a node with a
higher sequence number in the same directory was created by a later transaction, and zxids
only grow, for the whole life of the ensemble (epoch << 32 | counter, across restarts and
leader changes). Unlike the sequence number it keeps growing if the lock's directory (a
container) is deleted and made again, and it can be compared across locks of one ensemble.

**The body is cancelled when the lock may be lost**: when the session expires, the node is
deleted, or no server has answered for so long that the session could have expired on the
server (see `_guard`), and -- with `cancel_on_suspend=True` -- as soon as the connection is
suspended. The block then raises `LostError`. Cancellation is cooperative: a body that blocks
in C code or a thread for longer than the safety margin outlives its lock; pass the token to
whatever you write to.
"""

from __future__ import annotations

import contextlib
from types import TracebackType

import anyio

from ccore.client import Client
from ccore.znodes.errors import NoNodeError

from ._contend import Blocker, Contender, WaitFor, predecessor
from ._guard import Hold, guarded
from ._util import Entry, child, retry_loss, sorted_entries


class _QueueHold:
    """What Lock, ReadLock, WriteLock, Semaphore and Election share: acquire a place in the
    queue, hold it in a guarded block, release it."""

    kind = "lock-"

    def __init__(
        self,
        zk: Client,
        path: str,
        identifier: bytes = b"",
        *,
        timeout: float | None = None,
        cancel_on_suspend: bool = False,
        safety_margin: float | None = None,
    ) -> None:
        self.zk = zk
        self.path = path
        self.identifier = identifier
        self.timeout = timeout
        self.cancel_on_suspend = cancel_on_suspend
        self.safety_margin = safety_margin
        self.hold: Hold | None = None
        self._contender = Contender(zk, path, self.kind, identifier)
        self._acquired = False
        self._stack: contextlib.AsyncExitStack | None = None

    def __repr__(self) -> str:
        state = f"held, token {self.token}" if self._acquired else "not held"
        return f"<{type(self).__name__} {self.path} {state}>"

    def _blocker(self) -> Blocker:
        return predecessor

    async def _granted(self) -> None:
        """Called once our turn has come, before acquire() returns."""

    @property
    def is_acquired(self) -> bool:
        return self._acquired

    @property
    def token(self) -> int:
        """The fencing token of the current hold (the czxid of our node)."""
        if not self._acquired:
            raise RuntimeError(f"{self!r} is not held")
        return self._contender.token

    @property
    def node(self) -> str | None:
        """The path of our node while we hold (or wait)."""
        return self._contender.path if self._contender.name else None

    async def acquire(self, timeout: float | None = None) -> int:
        """Wait for our turn (at most `timeout` seconds: TimeoutError) and return the
        fencing token. Whatever ends the wait early, our node is removed. Prefer `async with`,
        which also cancels the body when the hold may be lost."""
        if self._acquired:
            raise RuntimeError(f"{self!r} is already held; it is not reentrant")
        try:
            with anyio.fail_after(timeout):
                while True:
                    await self._contender.wait_turn(self._blocker())
                    try:
                        await self._granted()
                        break
                    except NoNodeError:  # our node went (session expired) as our turn came
                        self._contender._vanished()
        except BaseException:
            await self._contender.leave()
            raise
        self._acquired = True
        return self._contender.token

    async def release(self) -> None:
        """Give the hold up (delete our node; shielded); idempotent."""
        self._acquired = False
        await self._contender.leave()

    async def __aenter__(self) -> int:
        token = await self.acquire(self.timeout)
        stack = contextlib.AsyncExitStack()
        try:
            self.hold = await stack.enter_async_context(
                guarded(
                    self.zk,
                    self._contender.path,
                    token=token,
                    owner=self._contender.stat.ephemeralOwner,  # type: ignore[union-attr]
                    acked_at=self._contender.acked_at,
                    cancel_on_suspend=self.cancel_on_suspend,
                    margin_s=self.safety_margin,
                )
            )
        except BaseException:
            await self.release()
            raise
        self._stack = stack
        return token

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> bool:
        stack, self._stack = self._stack, None
        try:
            assert stack is not None
            return bool(await stack.__aexit__(exc_type, exc, tb))
        finally:
            await self.release()

    async def contenders(self) -> list[bytes]:
        """The identifiers of everyone queued (holders first), in order."""
        return await _identifiers(self.zk, self.path, await _queue(self.zk, self.path))


async def _queue(zk: Client, path: str) -> list[Entry]:
    try:
        return sorted_entries(await retry_loss(zk.children, path))
    except NoNodeError:
        return []


async def _identifiers(zk: Client, path: str, queue: list[Entry]) -> list[bytes]:
    out = []
    for entry in queue:
        with contextlib.suppress(NoNodeError):
            data, _ = await retry_loss(zk.get, child(path, entry.name))
            out.append(data)
    return out


class Lock(_QueueHold):
    """A fair, exclusive lock; `async with Lock(zk, path) as token:` (see the module docstring).

    Options: `identifier` (stored in our node, shown by `contenders()`), `timeout` for
    `async with` (TimeoutError), `cancel_on_suspend`, `safety_margin` (seconds before
    the earliest possible session expiry at which the body is cancelled; default 25% of the
    session timeout, see `_guard`).
    """

    kind = "lock-"


READ = "__READ__"
WRITE = "__WRIT__"


def _last_writer_before(queue: list[Entry], mine: Entry) -> WaitFor | None:
    index = queue.index(mine)
    for entry in reversed(queue[:index]):
        if entry.has_kind(WRITE):
            return WaitFor(entry.name)
    return None


class ReadLock(_QueueHold):
    """Shared with other readers; waits for the last writer queued before it."""

    kind = READ

    def _blocker(self) -> Blocker:
        return _last_writer_before


class WriteLock(_QueueHold):
    """Exclusive; waits for whoever is queued just before it (reader or writer)."""

    kind = WRITE


class ReadWriteLock:
    """A fair readers-writer lock (Curator's InterProcessReadWriteLock node names).

        rw = ReadWriteLock(zk, "/locks/table")
        async with rw.read_lock as token: ...     # many readers at once
        async with rw.write_lock as token: ...    # one writer, no reader

    Write tokens grow with every write grant; a read token is above every write token granted
    before it and below every one granted after it -- what a store needs to fence writers.
    A waiting reader watches only the last writer before it, a writer only its predecessor.
    """

    def __init__(self, zk: Client, path: str, identifier: bytes = b"", **options: object) -> None:
        self.path = path
        self.read_lock = ReadLock(zk, path, identifier, **options)  # type: ignore[arg-type]
        self.write_lock = WriteLock(zk, path, identifier, **options)  # type: ignore[arg-type]
