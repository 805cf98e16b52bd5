"""Distributed queues: `Queue` (take and delete) and `LockingQueue` (each item is locked by one
consumer while it works on it, and only then removed).

    from ccore.recipes import Queue, LockingQueue
    queue = Queue(zk, "/queues/mail")
    await queue.put(b"hello", priority=10)       # lower priority values come out first
    data = await queue.get(timeout=5)            # waits for an item; TimeoutError

    jobs = LockingQueue(zk, "/queues/jobs")
    await jobs.put(b"job-1")
    async with jobs.take() as item:              # item.data; the item is locked for us
        ...                                      # a clean exit consumes it; an error (or a
                                                 # LostError: our lock may be gone) gives it back

Items are persistent sequential nodes `entry-<priority:03d>-<guid>-<seq>`, served in
(priority, sequence) order. The GUID lets `put` find its item again when the create's reply
was lost, so a retried put never doubles an item. `Queue.get` is at-least-once under
connection loss (if our delete's reply is lost and the item is gone, we return it, though a
rival may have taken it too). `LockingQueue` hands each item to one consumer at a time: an
ephemeral node `taken/<entry>` is the lock, so an item whose consumer died goes back to the
queue when its session expires; the body of `take()` is guarded like a Lock's. Waiting
consumers all watch the queue's children (a put wakes them all; queues rarely have many).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import anyio
import attrs

from ccore.client import Client, Watch
from ccore.znodes.errors import (
    BadVersionError,
    ConnectionLossError,
    NodeExistsError,
    NoNodeError,
    SessionExpiredError,
)
from ccore.znodes.groups import first_error
from ccore.znodes.stat import Stat

from . import _cleanup
from ._guard import guarded
from ._util import child, ensure_dir, new_guid, parse_entry, retry_loss

log = logging.getLogger(__name__)

PREFIX = "entry-"


def _order(name: str) -> tuple[int, int]:
    entry = parse_entry(name)
    try:
        priority = int(name[len(PREFIX) : len(PREFIX) + 3])
    except ValueError:
        priority = 999
    return priority, entry.seq if entry else 0


def _sorted(names: list[str]) -> list[str]:
    return sorted((n for n in names if n.startswith(PREFIX)), key=_order)


async def _put(zk: Client, path: str, value: bytes, priority: int) -> str:
    """Create one item; find it again if the reply is lost. Returns the node name."""
    if not 0 <= priority <= 999:
        raise ValueError(f"priority must be in [0, 999], not {priority}")
    prefix = f"{PREFIX}{priority:03d}-{new_guid()}-"
    while True:
        try:
            created = await zk.create(child(path, prefix), value, sequence=True)
            return created.rsplit("/", 1)[1]
        except NoNodeError:
            await ensure_dir(zk, path, container=False)
        except ConnectionLossError:
            with contextlib.suppress(NoNodeError):
                names = await retry_loss(zk.children, path)
                found = [n for n in names if n.startswith(prefix)]
                if found:
                    return found[0]


async def _wait_any(watches: list[Watch]) -> None:
    """Until one of the watches fires (or the session expires); then remove the others."""
    with first_error():
        async with anyio.create_task_group() as tasks:

            async def one(w: Watch) -> None:
                with contextlib.suppress(SessionExpiredError):
                    await w
                tasks.cancel_scope.cancel()

            for w in watches:
                tasks.start_soon(one, w)
    with anyio.CancelScope(shield=True), anyio.move_on_after(1.0):
        for w in watches:
            if not w.fired:
                with contextlib.suppress(Exception):
                    await w.remove()


class Queue:
    """See the module docstring."""

    def __init__(self, zk: Client, path: str) -> None:
        self.zk = zk
        self.path = path

    async def put(self, value: bytes, priority: int = 100) -> str:
        """Add an item; returns its node name."""
        return await _put(self.zk, self.path, value, priority)

    async def put_all(self, values: list[bytes], priority: int = 100) -> list[str]:
        return [await self.put(v, priority) for v in values]

    async def length(self) -> int:
        try:
            return len(_sorted(await retry_loss(self.zk.children, self.path)))
        except NoNodeError:
            return 0

    async def _take_one(self, names: list[str]) -> bytes | None:
        for name in _sorted(names):
            path = child(self.path, name)
            try:
                data, _ = await retry_loss(self.zk.get, path)
                await self.zk.delete(path)
                return data
            except NoNodeError:
                continue  # a rival took it
            except ConnectionLossError:
                if await retry_loss(self.zk.exists, path) is None:
                    return data  # gone: most likely our delete (see the module docstring)
        return None

    async def get_nowait(self) -> bytes | None:
        """The first item, removed; None if the queue is empty."""
        try:
            names = await retry_loss(self.zk.children, self.path)
        except NoNodeError:
            return None
        return await self._take_one(names)

    async def get(self, timeout: float | None = None) -> bytes:
        """The first item, removed, waiting for one (TimeoutError after `timeout` s)."""
        with anyio.fail_after(timeout):
            while True:
                try:
                    names, watch = await retry_loss(lambda: self.zk.children(self.path, watch=True))
                except NoNodeError:
                    await ensure_dir(self.zk, self.path, container=False)
                    continue
                data = await self._take_one(names)
                if data is not None:
                    with anyio.CancelScope(shield=True), anyio.move_on_after(1.0):
                        await watch.remove()
                    return data
                await _wait_any([watch])


@attrs.define
class Item:
    """An item taken from a LockingQueue: its data and the lock we hold on it."""

    name: str
    data: bytes
    lock_stat: Stat
    acked_at: float

    @property
    def token(self) -> int:
        """The czxid of our lock node: higher for every consumer that takes this item."""
        return self.lock_stat.czxid


class LockingQueue:
    """See the module docstring."""

    def __init__(self, zk: Client, path: str) -> None:
        self.zk = zk
        self.path = path
        self.entries = child(path, "entries")
        self.taken = child(path, "taken")
        self._guid = new_guid().encode()  # the data of our lock nodes

    async def put(self, value: bytes, priority: int = 100) -> str:
        return await _put(self.zk, self.entries, value, priority)

    async def put_all(self, values: list[bytes], priority: int = 100) -> list[str]:
        return [await self.put(v, priority) for v in values]

    async def length(self) -> int:
        """Items not yet consumed (taken or not)."""
        try:
            return len(_sorted(await retry_loss(self.zk.children, self.entries)))
        except NoNodeError:
            return 0

    async def _lock(self, name: str) -> Item | None:
        """Lock the item `name` for us; None if someone else has it. Whatever stops us half-way
        (the item consumed meanwhile: NoNodeError; a cancellation; a create whose reply was
        lost) unlocks it again (see `_unlock`): a lock left behind would hide the item from
        every consumer for as long as our session lives."""
        lock = child(self.taken, name)
        # An unlock of this item through our client still in progress first: its retries
        # could not tell the lock we are about to make from the one it is deleting.
        await _cleanup.settle(self.zk, lock)
        owner = self.zk.session_id
        sent_at = anyio.current_time()
        try:
            try:
                _, stat = await self.zk.create(lock, self._guid, ephemeral=True, include_stat=True)
            except NodeExistsError:
                return None
            except ConnectionLossError:
                data, stat = await retry_loss(self.zk.get, lock)  # NoNode: nobody locked it
                if data != self._guid or stat.ephemeralOwner != self.zk.session_id:
                    return None
            owner = stat.ephemeralOwner
            data, _ = await retry_loss(self.zk.get, child(self.entries, name))  # NoNode: consumed
        except BaseException:
            await self._unlock(lock, owner)
            raise
        return Item(name, data, stat, sent_at)

    async def get(self, timeout: float | None = None) -> Item:
        """Lock the first free item and return it (waiting for one; TimeoutError).
        Then `consume(item)` or `release(item)`; prefer `take()`."""
        await ensure_dir(self.zk, self.entries, container=False)
        await ensure_dir(self.zk, self.taken, container=False)
        with anyio.fail_after(timeout):
            while True:
                names, entries_watch = await retry_loss(lambda: self.zk.children(self.entries, watch=True))
                taken, taken_watch = await retry_loss(lambda: self.zk.children(self.taken, watch=True))
                for name in _sorted(names):
                    if name in taken:
                        continue
                    with contextlib.suppress(NoNodeError):
                        item = await self._lock(name)
                        if item is not None:
                            with anyio.CancelScope(shield=True), anyio.move_on_after(1.0):
                                await entries_watch.remove()
                                await taken_watch.remove()
                            return item
                await _wait_any([entries_watch, taken_watch])

    async def _owned(self, item: Item) -> Stat | None:
        try:
            data, stat = await retry_loss(self.zk.get, child(self.taken, item.name))
        except NoNodeError:
            return None
        ours = data == self._guid and stat.ephemeralOwner == self.zk.session_id
        return stat if ours else None

    async def consume(self, item: Item) -> bool:
        """Remove the item for good; False if our lock on it was lost (someone else may
        have it now, so it is left alone)."""
        stat = await self._owned(item)
        if stat is None:
            return False
        txn = self.zk.transaction()
        txn.check(child(self.taken, item.name), stat.version)
        txn.delete(child(self.taken, item.name)).delete(child(self.entries, item.name))
        try:
            await txn.commit()
        except (BadVersionError, NoNodeError):
            return False  # our lock went (session expired) between the check and the commit
        except ConnectionLossError:  # outcome unknown: the entry tells
            return await retry_loss(self.zk.exists, child(self.entries, item.name)) is None
        return True

    async def release(self, item: Item) -> None:
        """Give the item back to the queue (unlock it; see `_unlock`)."""
        await self._unlock(child(self.taken, item.name), item.lock_stat.ephemeralOwner)

    async def _unlock(self, lock: str, owner: int) -> None:
        """Delete our lock node `lock` (session `owner`'s, with our GUID as its data). A
        guaranteed delete (see `_cleanup`): waited for at most a session timeout, retried in
        the background after that until done or the session is over -- an orphaned lock
        would hide the item from every consumer for as long as our session lives."""
        zk, guid = self.zk, self._guid

        async def attempt() -> bool:
            data, stat = await zk.get(lock)  # NoNode: done
            if data != guid or stat.ephemeralOwner != owner:
                return True  # not our lock (any more): not ours to delete
            try:
                await zk.delete(lock, version=stat.version)
            except BadVersionError:
                return False  # changed meanwhile: look again
            return True

        deletion = _cleanup.start(zk, lock, lock, owner, attempt)
        if not await deletion.wait(zk.session_timeout):
            log.warning("%s: could not unlock the item yet; still trying in the background", lock)

    @contextlib.asynccontextmanager
    async def take(self, timeout: float | None = None, *, cancel_on_suspend: bool = False) -> AsyncIterator[Item]:
        """Lock an item for the block (guarded like a Lock: LostError if the lock may be
        lost); consume it on a clean exit, give it back otherwise."""
        item = await self.get(timeout)
        done = False
        try:
            async with guarded(
                self.zk, child(self.taken, item.name), token=item.token, owner=item.lock_stat.ephemeralOwner,
                acked_at=item.acked_at, cancel_on_suspend=cancel_on_suspend,
            ):  # fmt: skip
                yield item
            with anyio.CancelScope(shield=True):
                done = await self.consume(item)
        finally:
            if not done:
                await self.release(item)  # shielded and bounded itself
