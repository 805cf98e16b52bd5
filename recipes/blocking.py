"""The recipes for threaded code, on `client.blocking`: the same recipes, run on the client's
event loop thread, with `with` blocks instead of `async with`.

    from ccore.client import blocking
    from ccore.recipes import blocking as recipes

    with blocking.connect("127.0.0.1:2181", session_timeout=5) as zk:
        lock = recipes.Lock(zk, "/locks/db")
        with lock as token:
            for chunk in work:
                lock.check()           # raises LostError once the lock may be lost
                store.write(chunk, fencing_token=token)

**A thread cannot be cancelled.** The async side keeps the hold exactly as `async with` does
(heartbeat, deadline, session states); when the hold may be lost it sets `lost` (a
`threading.Event`) instead of cancelling the body, and the `with` block raises LostError when
it ends. A thread body must look: `check()` (or `lost.is_set()`) before every step that needs
the hold, and pass the fencing token along with its writes.

Each held block runs its async context manager in a helper thread that blocks in
`anyio.from_thread.run`, so the block's async side lives in its own task on the client's loop.
"""

from __future__ import annotations

import functools
import inspect
import math
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, Generic, TypeVar

import anyio

from ccore.client.blocking import BlockingClient

from . import (
    barrier,
    counter,
    election,
    lease,
    lock,
    party,
    queue,
    registry,
    semaphore,
    treecache,
    watchers,
)
from .errors import LostError

T = TypeVar("T")


def _run(zk: BlockingClient, afn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run `afn` on the client's loop thread; no request timeout (the recipe has its own)."""
    # BlockingClient has no public way to run a coroutine on its thread yet; its private
    # `_run` is that way (see the recipes report).
    # (partial: the recipe's own `timeout=` arguments must not meet `_run`'s.)
    return zk._run(functools.partial(afn, *args, **kwargs), timeout=math.inf)


class Held(Generic[T]):
    """An async context manager of the async client, held for the duration of a `with` block
    of a plain thread. `lost` is set when the async side gave the hold up (LostError)."""

    def __init__(self, zk: BlockingClient, make: Callable[[], Any]) -> None:
        self._zk = zk
        self._make = make
        self.lost = threading.Event()
        self.value: T | None = None
        self._entered = threading.Event()
        self._release: anyio.Event | None = None
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def check(self) -> None:
        """Raise LostError if the hold may be lost."""
        if self.lost.is_set():
            raise self._error if isinstance(self._error, LostError) else LostError("?", "the hold was lost")

    async def _hold(self) -> None:
        self._release = anyio.Event()
        try:
            async with self._make() as value:
                self.value = value
                self._entered.set()
                await self._release.wait()
        except BaseException as e:
            self._error = e
            if isinstance(e, LostError):
                self.lost.set()
            raise
        finally:
            self._entered.set()

    def _hold_in_thread(self) -> None:
        try:
            _run(self._zk, self._hold)
        except BaseException as e:  # noqa: BLE001 - reported to the thread that waits
            self._error = self._error or e

    def __enter__(self) -> T:
        self._thread = threading.Thread(target=self._hold_in_thread, name="recipe hold", daemon=True)
        self._thread.start()
        self._entered.wait()
        if self._error is not None:
            self._thread.join()
            raise self._error
        return self.value  # type: ignore[return-value]

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        assert self._thread is not None

        async def release() -> None:
            if self._release is not None:
                self._release.set()

        _run(self._zk, release)
        self._thread.join()
        if exc_type is None and self._error is not None:
            raise self._error


class _Facade:
    """Forwards an async recipe object's methods: coroutines run on the loop's thread."""

    _target: Any

    def __init__(self, zk: BlockingClient, cls: type, *args: Any, **kwargs: Any) -> None:
        self._zk = zk

        async def make() -> Any:  # made on the loop's thread: some recipes make anyio Events
            return cls(zk.client, *args, **kwargs)

        self._target = _run(zk, make)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if inspect.iscoroutinefunction(attr):
            return functools.partial(_run, self._zk, attr)
        return attr

    def __repr__(self) -> str:
        return f"<blocking {self._target!r}>"


class _HeldFacade(_Facade):
    """A recipe object that is also an async context manager: `with` holds it."""

    _held: Held[Any] | None = None

    @property
    def lost(self) -> threading.Event:
        """Set when the hold may be lost (see the module docstring)."""
        return self._held.lost if self._held is not None else threading.Event()

    def check(self) -> None:
        if self._held is not None:
            self._held.check()

    def __enter__(self) -> Any:
        self._held = Held(self._zk, lambda: self._target)
        value = self._held.__enter__()
        return self if value is self._target else value

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        assert self._held is not None
        self._held.__exit__(exc_type, exc, tb)


def _held_method(name: str) -> Callable[..., Held[Any]]:
    def method(self: _Facade, *args: Any, **kwargs: Any) -> Held[Any]:
        return Held(self._zk, lambda: getattr(self._target, name)(*args, **kwargs))

    method.__name__ = name
    return method


class Lock(_HeldFacade):
    """recipes.Lock for threads: `with Lock(zk, path) as token:`; acquire/release/contenders."""

    def __init__(self, zk: BlockingClient, path: str, identifier: bytes = b"", **options: Any) -> None:
        super().__init__(zk, lock.Lock, path, identifier, **options)


class ReadWriteLock:
    """recipes.ReadWriteLock for threads: `with rw.read_lock as token:` / `rw.write_lock`."""

    def __init__(self, zk: BlockingClient, path: str, identifier: bytes = b"", **options: Any) -> None:
        self.read_lock = _HeldFacade(zk, lock.ReadLock, path, identifier, **options)
        self.write_lock = _HeldFacade(zk, lock.WriteLock, path, identifier, **options)


class Semaphore(_HeldFacade):
    def __init__(self, zk: BlockingClient, path: str, identifier: bytes = b"", *, max_leases: int, **options: Any) -> None:
        super().__init__(zk, semaphore.Semaphore, path, identifier, max_leases=max_leases, **options)


class Lease(_HeldFacade):
    """recipes.Lease for threads: `with Lease(zk, path, b"NodeA", ttl=5) as lease:`."""

    def __init__(self, zk: BlockingClient, path: str, value: bytes = b"", **options: Any) -> None:
        super().__init__(zk, lease.Lease, path, value, **options)

    @staticmethod
    def holder(zk: BlockingClient, path: str) -> bytes | None:
        return _run(zk, lease.Lease.holder, zk.client, path)  # type: ignore[no-any-return]


class Election(_Facade):
    """recipes.Election for threads: `with election.leadership() as token:`, campaign/resign,
    leader, candidates."""

    leadership = _held_method("leadership")

    def __init__(self, zk: BlockingClient, path: str, identifier: bytes = b"", **options: Any) -> None:
        super().__init__(zk, election.Election, path, identifier, **options)


class Barrier(_Facade):
    def __init__(self, zk: BlockingClient, path: str) -> None:
        super().__init__(zk, barrier.Barrier, path)


class DoubleBarrier(_HeldFacade):
    """`with DoubleBarrier(zk, path, 3):` (enter, then leave), or enter()/leave()."""

    def __init__(self, zk: BlockingClient, path: str, num_clients: int, **options: Any) -> None:
        super().__init__(zk, barrier.DoubleBarrier, path, num_clients, **options)


class Counter(_Facade):
    def __init__(self, zk: BlockingClient, path: str, default: float = 0) -> None:
        super().__init__(zk, counter.Counter, path, default)


class Queue(_Facade):
    def __init__(self, zk: BlockingClient, path: str) -> None:
        super().__init__(zk, queue.Queue, path)


class LockingQueue(_Facade):
    """`with q.take() as item:` (consumed on a clean exit), or get/consume/release."""

    take = _held_method("take")

    def __init__(self, zk: BlockingClient, path: str) -> None:
        super().__init__(zk, queue.LockingQueue, path)


class Party(_HeldFacade):
    def __init__(self, zk: BlockingClient, path: str, identifier: bytes = b"") -> None:
        super().__init__(zk, party.Party, path, identifier)


class ServiceRegistry(_Facade):
    """`with registry.registered(instance):`, instances(name), names(), cache(name)."""

    registered = _held_method("registered")

    def __init__(self, zk: BlockingClient, base: str = "/services") -> None:
        super().__init__(zk, registry.ServiceRegistry, base)

    def cache(self, name: str) -> ServiceCache:
        return ServiceCache(self._zk, self._target.cache(name))


class _Followed(_HeldFacade):
    """A cache or watcher: `with` keeps it current; `value`/`get()` read it; `wait_for`."""

    def __init__(self, zk: BlockingClient, target: Any) -> None:
        self._zk = zk
        self._target = target


class ServiceCache(_Followed):
    pass


class DataWatch(_Followed):
    """`with DataWatch(zk, path) as w:` then `w.value` or `w.wait_for(predicate, timeout)`."""

    def __init__(self, zk: BlockingClient, path: str) -> None:
        super().__init__(zk, _run(zk, _make, watchers.DataWatch, zk.client, path))


class ChildrenWatch(_Followed):
    def __init__(self, zk: BlockingClient, path: str) -> None:
        super().__init__(zk, _run(zk, _make, watchers.ChildrenWatch, zk.client, path))


class TreeCache(_Followed):
    """`with TreeCache(zk, path) as cache:` then `cache.get(path)`, `children`, `paths`."""

    def __init__(self, zk: BlockingClient, path: str) -> None:
        super().__init__(zk, _run(zk, _make, treecache.TreeCache, zk.client, path))


async def _make(cls: type, *args: Any) -> Any:
    return cls(*args)


ServiceInstance = registry.ServiceInstance

__all__ = [
    "Barrier",
    "ChildrenWatch",
    "Counter",
    "DataWatch",
    "DoubleBarrier",
    "Election",
    "Held",
    "Lease",
    "Lock",
    "LockingQueue",
    "LostError",
    "Party",
    "Queue",
    "ReadWriteLock",
    "Semaphore",
    "ServiceCache",
    "ServiceInstance",
    "ServiceRegistry",
    "TreeCache",
]
