"""Connections lost under the client: SUSPENDED then CONNECTED, session and watches kept."""

from __future__ import annotations

import uuid

import anyio
import pytest

from ccore.client import ClientState, EventType, KeeperState, connect
from tests.polling import wait_for

# Every async test on Trio and on asyncio (see tests/client/conftest.py).
pytestmark = pytest.mark.anyio

CONNECTED, SUSPENDED = ClientState.CONNECTED, ClientState.SUSPENDED


async def expect_states(states, expected, timeout_s: float = 20.0):
    with anyio.fail_after(timeout_s):
        got = [await states.receive() for _ in expected]
    assert got == expected


async def next_event(source, timeout_s: float = 10.0):
    with anyio.fail_after(timeout_s):
        ev = await (source.receive() if hasattr(source, "receive") else source)
    return (ev.type, ev.path)


@pytest.mark.slow
async def test_server_restart_keeps_session_and_watches(fresh_server, server_kind, open_proxy):
    server = fresh_server()
    # Apache 3.8.0 mishandles a connection that arrives while it is starting ("ZooKeeperServer
    # not running", then a NullPointerException that leaks the connection and, about ten
    # seconds later, stops the server accepting clients). So Apache's clients reach it through
    # a proxy that refuses connections until the restarted server answers ruok; ours is
    # restarted with the clients hammering it.
    proxy = await open_proxy(server.port) if server_kind == "apache" else None
    hosts = proxy.connect_string if proxy else server.connect_string

    def restart() -> None:
        if proxy is not None:
            anyio.from_thread.run_sync(proxy.cut)
        server.restart()
        if proxy is not None:
            anyio.from_thread.run_sync(proxy.restore)

    with anyio.fail_after(60):
        async with connect(hosts, session_timeout=10) as zk, connect(hosts) as other:
            await restart_under_the_client(restart, zk, other)


async def restart_under_the_client(restart, zk, other) -> None:
    await zk.create("/w", b"0")
    await zk.create("/eph", ephemeral=True)
    session_id = zk.session_id
    _, _, data_watch = await zk.get("/w", watch=True)
    _, child_watch = await zk.children("/w", watch=True)
    async with zk.watch("/w", connection_events=True) as events:
        with zk.states() as states:
            await anyio.to_thread.run_sync(restart)
            await expect_states(states, [SUSPENDED, CONNECTED])
        assert zk.session_id == session_id
        assert await next_event(events) == (EventType.NONE, "/w")  # DISCONNECTED
        ev = await events.receive()
        assert (ev.type, ev.state) == (EventType.NONE, KeeperState.SYNC_CONNECTED)
        assert (await other.exists("/eph")).ephemeralOwner == session_id
        await other.set("/w", b"1")
        await other.create("/w/c")
        assert await next_event(data_watch) == (EventType.NODE_DATA_CHANGED, "/w")
        assert await next_event(child_watch) == (EventType.NODE_CHILDREN_CHANGED, "/w")
        assert await next_event(events) == (EventType.NODE_DATA_CHANGED, "/w")
        assert await next_event(events) == (EventType.NODE_CHILDREN_CHANGED, "/w")


async def test_changes_made_while_disconnected_are_delivered(zk_server, open_proxy):
    proxy = await open_proxy(zk_server.port)
    async with connect(proxy.connect_string, session_timeout=5) as zk, connect(zk_server.connect_string) as other:
        await zk.ensure_path("/dis/w")
        _, _, data_watch = await zk.get("/dis/w", watch=True)
        _, child_watch = await zk.children("/dis/w", watch=True)
        _, exist_watch = await zk.exists("/dis/new", watch=True)
        _, _, deleted_watch = await zk.get("/dis", watch=True)
        _, _, untouched = await zk.get("/dis/w", watch=True)
        await untouched.remove()
        _, _, quiet = await zk.get("/dis/w", watch=True)
        with zk.states() as states:
            proxy.cut()
            await expect_states(states, [SUSPENDED])
            # Changes while the client is away (its session lives on the server).
            await other.set("/dis/w", b"changed")
            await other.create("/dis/w/child")
            await other.create("/dis/new")
            proxy.restore()
            await expect_states(states, [CONNECTED])
        assert await next_event(data_watch) == (EventType.NODE_DATA_CHANGED, "/dis/w")
        assert await next_event(child_watch) == (EventType.NODE_CHILDREN_CHANGED, "/dis/w")
        assert await next_event(exist_watch) == (EventType.NODE_CREATED, "/dis/new")
        assert quiet.fired  # shares the data watch of /dis/w
        assert not deleted_watch.fired
        await other.delete("/dis", recursive=True)
        assert await next_event(deleted_watch) == (EventType.NODE_DELETED, "/dis")


async def test_silent_network_is_detected_by_the_read_timeout(zk_server, open_proxy):
    proxy = await open_proxy(zk_server.port)
    async with connect(proxy.connect_string, session_timeout=2) as zk:
        timeout = zk.session_timeout
        with zk.states() as states:
            proxy.hold()
            start = anyio.current_time()
            await expect_states(states, [SUSPENDED], timeout_s=timeout * 2)
            # Read timeout is 2/3 of the session timeout (pings every 1/3 keep it alive).
            assert timeout * 0.5 <= anyio.current_time() - start <= timeout * 1.2
            proxy.restore()
            await expect_states(states, [CONNECTED], timeout_s=timeout * 3)
        await zk.create("/after-hold", ephemeral=True)


@pytest.mark.slow
async def test_idle_session_is_kept_alive_by_pings(zk_server):
    async with connect(zk_server.connect_string, session_timeout=1.5) as zk:
        await zk.create("/idle", ephemeral=True)
        with zk.states() as states:
            await anyio.sleep(zk.session_timeout * 2.5)
            assert states.pending() == 0 and zk.state is CONNECTED
        assert await zk.exists("/idle") is not None


@pytest.mark.slow
async def test_never_connects_to_a_server_that_has_seen_less(fresh_server, server_kind, open_proxy):
    ahead = fresh_server()
    behind = fresh_server()
    behind_proxy = await open_proxy(behind.port)  # counts the client's attempts on it
    # Apache is gated while it starts (see test_server_restart_keeps_session_and_watches).
    ahead_proxy = await open_proxy(ahead.port) if server_kind == "apache" else None
    ahead_hosts = ahead_proxy.connect_string if ahead_proxy else ahead.connect_string
    hosts = f"{ahead_hosts},{behind_proxy.connect_string}"
    async with connect(hosts, randomize_hosts=False, session_timeout=10) as zk:
        for i in range(20):
            await zk.create(f"/n{i}")
        assert zk.server == ahead_hosts
        session_id = zk.session_id
        with zk.states() as states:
            if ahead_proxy:
                ahead_proxy.cut()
            await anyio.to_thread.run_sync(ahead.kill)
            await expect_states(states, [SUSPENDED])
            await wait_for(lambda: behind_proxy.accepted >= 2, timeout_s=10, interval_s=0.05)
            # `behind` was tried and refused us (it has not seen our zxid): still suspended.
            assert zk.state is SUSPENDED and states.pending() == 0
            await anyio.to_thread.run_sync(ahead.start)
            if ahead_proxy:
                ahead_proxy.restore()
            await expect_states(states, [CONNECTED])
        assert zk.server == ahead_hosts and zk.session_id == session_id
        assert len(await zk.children("/")) >= 20


async def test_requests_wait_for_the_connection(zk_server, open_proxy):
    """A request made while SUSPENDED waits for the reconnection (bounded by the caller)."""
    proxy = await open_proxy(zk_server.port)
    async with connect(proxy.connect_string, session_timeout=5) as zk:
        await zk.create("/wait-node", b"x", ephemeral=True)
        with zk.states() as states:
            proxy.cut()
            await expect_states(states, [SUSPENDED])
            with anyio.move_on_after(0.3) as scope:
                await zk.get("/wait-node")
            assert scope.cancelled_caught
            async with anyio.create_task_group() as tasks:
                result = []

                async def read():
                    result.append(await zk.get("/wait-node"))

                tasks.start_soon(read)
                await anyio.sleep(0.2)
                proxy.restore()
            assert result[0][0] == b"x"


async def test_in_flight_requests_fail_with_connection_loss(zk_server, open_proxy):
    from ccore.znodes.errors import ConnectionLossError

    proxy = await open_proxy(zk_server.port)
    path = f"/loss-{uuid.uuid4().hex[:12]}"  # the shared server outlives the test: a fresh node
    async with connect(proxy.connect_string, session_timeout=5) as zk:
        await zk.create(path, b"x")
        proxy.hold()  # the request goes out but no reply comes back
        errors = []

        async def read():
            try:
                await zk.get(path)
            except ConnectionLossError as e:
                errors.append(e)

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(read)
            await anyio.sleep(0.2)
            proxy.cut()
        assert len(errors) == 1 and errors[0].path == path
        proxy.restore()
        assert (await zk.retry(zk.get, path))[0] == b"x"
        await zk.delete(path)
