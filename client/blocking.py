"""The client for plain threaded Python: the async client run on an event loop in a thread.

    from ccore.client import blocking
    with blocking.connect("127.0.0.1:2181") as zk:
        zk.create("/app", b"v1")
        data, stat, watch = zk.get("/app", watch=True)
        event = watch.wait(timeout=10)
        with zk.watch("/app", recursive=True) as events:
            for event in events: ...

Every method of `client.Client` is here with the same arguments and results; each call is
handed to the loop's thread (`anyio.from_thread.run`), so any number of threads may call at
once and their requests are pipelined on the one connection. `request_timeout` (s) bounds
each call (OperationTimeoutError); waits on watches take their own `timeout` (TimeoutError).

The loop is Trio's by default (`backend="asyncio"` to choose asyncio's), the faster of the two
here: `python -m bench.blocking_bench` measured ~15 % less CPU per call and ~15 % more
sequential calls per second from one thread on Trio, and the same throughput from 8 threads
(figures in client/README.md, "Event loops").
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Self, TypeVar

import anyio
import anyio.from_thread
import anyio.lowlevel

from ccore.znodes.errors import OperationTimeoutError

from .client import Client
from .client import connect as aconnect
from .errors import ClientClosedError
from .retry import RETRYABLE
from .transaction import Transaction
from .watches import ClientState, StateStream, Watch, WatchStream

log = logging.getLogger(__name__)
T = TypeVar("T")
CLOSE_JOIN_TIMEOUT_S = 10.0
# The event loop the client's thread runs (see the module docstring for why this one).
DEFAULT_BACKEND = "trio"


def _forward(name: str) -> Callable[..., Any]:
    """A blocking method running `Client.<name>` on the loop's thread: the same arguments and
    results, watches wrapped as BlockingWatch."""
    target = getattr(Client, name)

    @functools.wraps(target)
    def method(self: BlockingClient, *args: Any, **kwargs: Any) -> Any:
        return self._wrap(self._run(getattr(self.client, name), *args, **kwargs))

    return method


class BlockingClient:
    """See the module docstring. Made by `connect`; close with `close()` or a `with` block."""

    def __init__(
        self, hosts: str, *, request_timeout: float | None = None, backend: str = DEFAULT_BACKEND, **options: Any
    ) -> None:
        self.request_timeout = request_timeout
        self.backend = backend
        self._client: Client | None = None
        self._token: anyio.lowlevel.EventLoopToken | None = None
        self._stop: anyio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._closed = False
        # Calls handed to the loop and not yet back (see _run and _main's end).
        self._gate = threading.Lock()
        self._in_flight = 0
        self._thread = threading.Thread(
            target=anyio.run,
            args=(self._main, hosts, options),
            kwargs={"backend": backend},
            name=f"ccore-client {hosts}",
            daemon=True,
        )
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            raise self._error

    async def _main(self, hosts: str, options: dict[str, Any]) -> None:
        try:
            async with aconnect(hosts, **options) as client:
                self._client = client
                self._token = anyio.lowlevel.current_token()
                self._stop = anyio.Event()
                self._ready.set()
                await self._stop.wait()
        except BaseException as e:  # reported to the thread that called connect()
            if not self._ready.is_set():
                self._error = e
                self._ready.set()
            else:
                log.exception("the client's event loop thread failed")
        finally:
            with self._gate:
                self._closed = True
            # A call that got past _run's check just before is handed over now or soon: let
            # the loop run it (the closed client refuses it at once) rather than end under
            # it. asyncio would leave such a call waiting forever on a loop that stopped.
            with anyio.CancelScope(shield=True), anyio.move_on_after(CLOSE_JOIN_TIMEOUT_S):
                while self._in_flight:  # noqa: ASYNC110 - other threads change it: no loop Event for them to set
                    await anyio.sleep(0.005)

    # --- running coroutines on the loop's thread -------------------------------------------

    def _run(self, afn: Callable[..., Awaitable[T]], *args: Any, timeout: float | None = None, **kwargs: Any) -> T:
        with self._gate:
            if self._closed or self._token is None:
                raise ClientClosedError()
            self._in_flight += 1
        limit = self.request_timeout if timeout is None else timeout

        async def call() -> T:
            if limit is None:
                return await afn(*args, **kwargs)
            with anyio.move_on_after(limit):
                return await afn(*args, **kwargs)
            raise OperationTimeoutError(args[0] if args and isinstance(args[0], str) else None, f"no answer within {limit:g}s")

        try:
            return anyio.from_thread.run(call, token=self._token)
        except anyio.RunFinishedError:
            raise ClientClosedError() from None
        finally:
            with self._gate:
                self._in_flight -= 1

    def _wrap(self, result: Any) -> Any:
        if isinstance(result, Watch):
            return BlockingWatch(self, result)
        if isinstance(result, tuple) and any(isinstance(x, Watch) for x in result):
            return tuple(self._wrap(x) for x in result)
        return result

    # --- lifecycle and state --------------------------------------------------------------

    def close(self) -> None:
        """Close the session and stop the loop's thread; idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._stop is not None and self._token is not None:
            try:
                anyio.from_thread.run_sync(self._stop.set, token=self._token)
            except anyio.RunFinishedError:
                pass
        self._thread.join(CLOSE_JOIN_TIMEOUT_S)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def client(self) -> Client:
        """The underlying async client (only for use on its loop's thread)."""
        assert self._client is not None
        return self._client

    @property
    def state(self) -> ClientState:
        return self.client.state if not self._closed else ClientState.CLOSED

    session_id = property(lambda self: self.client.session_id)
    session_passwd = property(lambda self: self.client.session_passwd)
    session_timeout = property(lambda self: self.client.session_timeout)
    requested_session_timeout = property(lambda self: self.client.requested_session_timeout)
    last_zxid = property(lambda self: self.client.last_zxid)
    server = property(lambda self: self.client.server)
    chroot = property(lambda self: self.client.chroot)
    hosts = property(lambda self: self.client.hosts)

    def states(self) -> BlockingStream[ClientState]:
        """`with zk.states() as states: for state in states: ...` (or `states.get(timeout)`)."""
        return BlockingStream(self, self.client.states())

    # --- operations (the async Client's, forwarded) ----------------------------------------

    def transaction(self) -> BlockingTransaction:
        return BlockingTransaction(self, self.client.transaction())

    def watch(self, path: str, *, recursive: bool = False, connection_events: bool = False) -> BlockingStream[Any]:
        """A persistent watch for the duration of a `with` block (see Client.watch)."""
        return BlockingStream(self, self.client.watch(path, recursive=recursive, connection_events=connection_events))

    def retry(self, fn: Callable[..., T], *args: Any, max_tries: int = 20, deadline: float = 60.0, **kwargs: Any) -> T:
        """`fn(*args, **kwargs)` (a blocking call), retried on connection loss with backoff."""
        delay, end = 0.05, time.monotonic() + deadline
        for attempt in range(1, max_tries + 1):
            try:
                return fn(*args, **kwargs)
            except RETRYABLE:
                if attempt == max_tries or time.monotonic() + delay > end:
                    raise
            time.sleep(delay)
            delay = min(2.0, delay * 2)
        raise AssertionError("unreachable")

    # The forwarded operations, assigned in the class body (not set in a loop after it) so that
    # type checkers see them; last, so that `set` names no builtin for the code above.
    create = _forward("create")
    ensure_path = _forward("ensure_path")
    get = _forward("get")
    exists = _forward("exists")
    children = _forward("children")
    set = _forward("set")
    delete = _forward("delete")
    get_acl = _forward("get_acl")
    set_acl = _forward("set_acl")
    sync = _forward("sync")
    ephemerals = _forward("ephemerals")
    descendant_count = _forward("descendant_count")
    whoami = _forward("whoami")
    add_auth = _forward("add_auth")
    multi_read = _forward("multi_read")
    get_config = _forward("get_config")
    reconfig = _forward("reconfig")


class BlockingWatch:
    """A one-shot watch for threads: `event = watch.wait(timeout=...)` (TimeoutError if none)."""

    def __init__(self, owner: BlockingClient, watch: Watch) -> None:
        self._owner = owner
        self._watch = watch
        self.path = watch.path

    def __repr__(self) -> str:
        return repr(self._watch).replace("<Watch", "<BlockingWatch", 1)

    @property
    def fired(self) -> bool:
        return self._watch.fired

    @property
    def event(self) -> Any:
        return self._watch.event

    def wait(self, timeout: float | None = None) -> Any:
        return self._owner._run(_wait_or_timeout, self._watch.wait, timeout)

    def remove(self) -> None:
        self._owner._run(self._watch.remove)


async def _wait_or_timeout(afn: Callable[[], Awaitable[T]], timeout: float | None) -> T:
    with anyio.move_on_after(timeout):
        return await afn()
    raise TimeoutError(f"nothing within {timeout:g}s")


class BlockingStream(Iterator[T]):
    """A WatchStream or StateStream for threads: a `with` block, then iterate or `get()`."""

    def __init__(self, owner: BlockingClient, stream: WatchStream | StateStream) -> None:
        self._owner = owner
        self._stream = stream

    def __enter__(self) -> BlockingStream[T]:
        self._owner._run(self._stream.__aenter__, timeout=math.inf)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if not self._owner._closed:
            self._owner._run(self._stream.__aexit__, None, None, None, timeout=math.inf)

    def get(self, timeout: float | None = None) -> T:
        """The next item; TimeoutError if none within `timeout`; StopIteration at the end."""
        try:
            item: T = self._owner._run(_wait_or_timeout, self._stream.receive, timeout, timeout=math.inf)
        except anyio.EndOfStream:
            raise StopIteration from None
        return item

    def __next__(self) -> T:
        return self.get()


class BlockingTransaction:
    """Transaction's builder methods, with a blocking `commit()`."""

    def __init__(self, owner: BlockingClient, txn: Transaction) -> None:
        self._owner = owner
        self._txn = txn

    def create(self, *args: Any, **kwargs: Any) -> BlockingTransaction:
        self._txn.create(*args, **kwargs)
        return self

    def delete(self, *args: Any, **kwargs: Any) -> BlockingTransaction:
        self._txn.delete(*args, **kwargs)
        return self

    def set(self, *args: Any, **kwargs: Any) -> BlockingTransaction:
        self._txn.set(*args, **kwargs)
        return self

    def check(self, *args: Any, **kwargs: Any) -> BlockingTransaction:
        self._txn.check(*args, **kwargs)
        return self

    def commit(self) -> list[Any]:
        return self._owner._run(self._txn.commit)


def connect(
    hosts: str, *, request_timeout: float | None = None, backend: str = DEFAULT_BACKEND, **options: Any
) -> BlockingClient:
    """Connect (blocking until connected, or raising as `client.connect` does) and return a
    BlockingClient. `backend` is the event loop its thread runs ("trio" or "asyncio"); the
    other options are `client.connect`'s."""
    return BlockingClient(hosts, request_timeout=request_timeout, backend=backend, **options)
