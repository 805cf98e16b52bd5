"""Fixtures for the recipe tests: every test runs against our server and Apache ZooKeeper, on
Trio and on asyncio.

The servers, the TCP proxy and the two-loop wiring are the client tests' (tests/client/conftest.py),
imported here rather than copied:

    anyio_backend, server_kind, zk_server, hosts, fresh_server, task_group, serve_tcp,
    open_proxy   see tests/client/conftest.py
    root         function  a fresh node that the test's clients are chrooted to
    connect_zk   function  connect_zk(session_timeout=4, via=None) -> client.connect(...) chrooted
                           to `root`, to `via` (a proxy's connect string) if given
    zk           function  a connected client from connect_zk()
    doomed       function  doomed(session_timeout=2) -> async CM yielding (client, expire): the
                           client goes through its own proxy, and `await expire()` closes its
                           session behind its back (as if it had expired) while the proxy keeps
                           it from resuming the session first
    spy          function  Spy(zk): a client stand-in that counts requests and injects faults
                           (lost create replies, duplicate creates, deletes that cannot get
                           through, calls that hang)
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import pytest

from ccore.client import Client, ClientState, connect
from tests.client.conftest import (  # noqa: F401 - fixtures and the two-loop hook reused, not copied
    _shared_servers,
    anyio_backend,
    fresh_server,
    hosts,
    open_proxy,
    pytest_collection_modifyitems,
    serve_tcp,
    server_kind,
    task_group,
    zk_server,
)
from tests.polling import wait_for

DEFAULT_SESSION_TIMEOUT_S = 4.0


@pytest.fixture
async def root(hosts: str) -> AsyncIterator[str]:  # noqa: F811 - the imported fixture
    path = f"/recipes-test-{uuid.uuid4().hex[:12]}"
    async with connect(hosts) as admin:
        await admin.create(path)
        try:
            yield path
        finally:
            with anyio.move_on_after(10):
                await admin.delete(path, recursive=True)


@pytest.fixture
def connect_zk(hosts: str, root: str) -> Callable[..., Any]:  # noqa: F811 - the imported fixture
    def make(session_timeout: float = DEFAULT_SESSION_TIMEOUT_S, via: str | None = None, **options: Any) -> Any:
        return connect(via or hosts, chroot=root, session_timeout=session_timeout, **options)

    return make


@pytest.fixture
async def zk(connect_zk: Callable[..., Any]) -> AsyncIterator[Client]:
    async with connect_zk() as client:
        yield client


@pytest.fixture
def doomed(hosts: str, connect_zk: Callable[..., Any], open_proxy: Any, zk_server: Any) -> Callable[..., Any]:  # noqa: F811
    @contextlib.asynccontextmanager
    async def make(session_timeout: float = 2.0) -> AsyncIterator[tuple[Client, Callable[[], Any]]]:
        proxy = await open_proxy(zk_server.port)
        async with connect_zk(session_timeout=session_timeout, via=proxy.connect_string) as client:

            async def expire() -> None:
                proxy.cut()
                with anyio.fail_after(10):
                    await wait_for(lambda: client.state is ClientState.SUSPENDED, timeout_s=10)
                    # The same timeout: a resumed session takes the timeout its new connection asks.
                    twin = connect(hosts, session=(client.session_id, client.session_passwd), session_timeout=session_timeout)
                    async with twin:
                        pass  # closing it closes the session on the server
                proxy.restore()

            yield client, expire

    return make


class Spy:
    """Stands in for a Client: forwards everything, counts calls by method name, and can
    make the next `create` lose its reply (applied on the server, ConnectionLossError here)
    or apply twice (a duplicate node, as a create retried after a lost reply would make), and
    -- while `fail_deletes` is set -- fail every `delete` with ConnectionLossError unsent (a
    delete that cannot reach any server while the session lives on), and -- while `hang` is
    set -- leave every call for which `hang(method name, args)` is true waiting until it is
    cancelled, unsent (to stop a recipe at a chosen point and cancel it there)."""

    def __init__(self, zk: Client) -> None:
        self._zk = zk
        self.calls: dict[str, int] = {}
        self.lose_create_replies = 0
        self.duplicate_creates = 0
        self.fail_deletes = False
        self.hang: Callable[[str, tuple[Any, ...]], bool] | None = None

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._zk, name)
        if not callable(target) or name in ("states", "transaction", "watch", "start_background"):
            return target

        async def call(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] = self.calls.get(name, 0) + 1
            if self.hang is not None and self.hang(name, args):
                await anyio.sleep_forever()
            if name == "delete" and self.fail_deletes:
                from ccore.znodes.errors import ConnectionLossError

                await anyio.sleep(0.05)  # as a failed attempt takes a moment
                raise ConnectionLossError(args[0] if args else None, "no server (injected)")
            result = await target(*args, **kwargs)
            if name == "create" and self.duplicate_creates:
                self.duplicate_creates -= 1
                await target(*args, **kwargs)
            if name == "create" and self.lose_create_replies:
                self.lose_create_replies -= 1
                from ccore.znodes.errors import ConnectionLossError

                raise ConnectionLossError(args[0] if args else None, "reply lost (injected)")
            return result

        return call

    def reset(self) -> None:
        self.calls.clear()

    @property
    def total(self) -> int:
        return sum(self.calls.values())


@pytest.fixture
def spy() -> type[Spy]:
    return Spy
