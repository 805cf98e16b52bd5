"""Fixtures for the client tests: our server and Apache ZooKeeper, side by side, and the
client on both event loops anyio supports.

Every async test here runs twice, on Trio and on asyncio: the test modules are marked
`pytest.mark.anyio` (anyio's pytest plugin, parametrized by its `anyio_backend` fixture,
module scope), and `pytest_collection_modifyitems` below takes those tests away from
pytest-trio, whose `trio_mode` (pyproject.toml) claims every async test for the server suites.
The servers are separate processes, so either loop can talk to them.

    anyio_backend  module    "trio" | "asyncio" (the event loop of the test and its async fixtures)
    server_kind    session   "ccore" | "apache" (parametrizes every test using the fixtures below;
                             Apache skips when not installed, fails with CCORE_REQUIRE_ZK=1)
    zk_server      session   a shared running ServerHandle of that kind
    hosts          function  its connection string
    zk             function  a connected Client chrooted to a fresh node, removed afterwards
    fresh_server   function  make(**options) -> a new started ServerHandle, killed at teardown
    task_group     function  an anyio task group for the test's helpers, cancelled at teardown
    serve_tcp      function  serve(handler) -> the port of a TCP server on 127.0.0.1 running
                             `handler(stream)` per connection in `task_group`
    open_proxy     function  make(port) -> a started TCP proxy that can cut or hold traffic

Servers are real processes (`python -m ccore serve`, or Java) on 127.0.0.1, from
tests/compat/servers.py; restarting one blocks, so tests do it in a worker thread.
"""

from __future__ import annotations

import inspect
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import anyio
import anyio.abc
import pytest

from ccore.client import Client, connect
from tests.client.proxy import Proxy
from tests.compat.servers import (
    ZK_NOT_INSTALLED,
    ServerHandle,
    apache_installed,
    make_server,
)

SERVER_KINDS = ["ccore", "apache"]
BACKENDS = ["trio", "asyncio"]


# The suites whose async tests must run on both loops (this hook is registered by both conftests).
TWO_LOOP_SUITES = (Path(__file__).parent, Path(__file__).parent.parent / "recipes")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test marked for anyio is anyio's: drop the `trio` mark pytest-trio's trio_mode put on
    every async test (with it, pytest-trio would run the asyncio variant under trio.run). An
    async test of these suites without the mark would run on Trio only: refuse it."""
    for item in items:
        if item.get_closest_marker("anyio") is not None:
            item.own_markers[:] = [m for m in item.own_markers if m.name != "trio"]
        elif (
            isinstance(item, pytest.Function)
            and inspect.iscoroutinefunction(item.function)
            and any(item.path.is_relative_to(suite) for suite in TWO_LOOP_SUITES)
        ):
            raise pytest.UsageError(f"{item.nodeid}: mark its module `pytestmark = pytest.mark.anyio` (both loops)")


@pytest.fixture(scope="module", params=BACKENDS)
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Trio first, then asyncio (anyio's own fixture has the opposite order)."""
    return str(request.param)


# Container and TTL checks every 200 ms on the shared Apache server, so those tests are quick.
APACHE_PROPERTIES = {"znode.container.checkIntervalMs": "200"}


def require(kind: str) -> None:
    if kind != "apache" or apache_installed():
        return
    if os.environ.get("CCORE_REQUIRE_ZK") == "1":
        pytest.fail(f"{ZK_NOT_INSTALLED} (CCORE_REQUIRE_ZK=1)", pytrace=False)
    pytest.skip(ZK_NOT_INSTALLED)


def start(kind: str, base_dir, **options) -> ServerHandle:
    require(kind)
    if kind == "apache":
        options.setdefault("system_properties", APACHE_PROPERTIES)
    return make_server(kind, base_dir, **options).start()


@pytest.fixture(scope="session", params=SERVER_KINDS)
def server_kind(request) -> str:
    return request.param


@pytest.fixture(scope="session")
def _shared_servers(tmp_path_factory) -> Iterator[dict[str, ServerHandle]]:
    servers: dict[str, ServerHandle] = {}
    try:
        yield servers
    finally:
        for handle in servers.values():
            handle.kill()


@pytest.fixture(scope="session")
def zk_server(server_kind, _shared_servers, tmp_path_factory) -> ServerHandle:
    if server_kind not in _shared_servers:
        _shared_servers[server_kind] = start(server_kind, tmp_path_factory.mktemp(f"shared-{server_kind}"), tick_time_ms=500)
    return _shared_servers[server_kind]


@pytest.fixture
def hosts(zk_server) -> str:
    return zk_server.connect_string


@pytest.fixture
async def zk(hosts) -> AsyncIterator[Client]:
    """A client chrooted to a fresh node, so tests on a shared server do not meet."""
    root = f"/client-test-{uuid.uuid4().hex[:12]}"
    async with connect(hosts) as admin:
        await admin.create(root)
        try:
            async with connect(hosts, chroot=root) as client:
                yield client
        finally:
            with anyio.move_on_after(10):
                await admin.delete(root, recursive=True)


@pytest.fixture
def fresh_server(server_kind, tmp_path_factory) -> Iterator[Callable[..., ServerHandle]]:
    started: list[ServerHandle] = []

    def make(kind: str | None = None, **options) -> ServerHandle:
        kind = kind or server_kind
        handle = start(kind, tmp_path_factory.mktemp(f"fresh-{kind}"), **options)
        started.append(handle)
        return handle

    try:
        yield make
    finally:
        for handle in started:
            handle.kill()


@pytest.fixture
async def task_group() -> AsyncIterator[anyio.abc.TaskGroup]:
    async with anyio.create_task_group() as tasks:
        yield tasks
        tasks.cancel_scope.cancel()


@pytest.fixture
def serve_tcp(task_group: anyio.abc.TaskGroup) -> Callable[..., Awaitable[int]]:
    async def serve(handler: Callable[[anyio.abc.SocketStream], Awaitable[None]]) -> int:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)

        async def one(stream: anyio.abc.SocketStream) -> None:
            async with stream:
                await handler(stream)

        async def run() -> None:
            async with listener:
                await listener.serve(one)

        task_group.start_soon(run)
        return int(listener.extra(anyio.abc.SocketAttribute.local_port))

    return serve


@pytest.fixture
async def open_proxy(task_group: anyio.abc.TaskGroup) -> Callable[[int], Awaitable[Proxy]]:
    async def make(port: int) -> Proxy:
        proxy = Proxy(port)
        await task_group.start(proxy.run)
        return proxy

    return make
