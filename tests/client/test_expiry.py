"""Session expiry: LOST, ephemerals and watches gone, then a new session (CONNECTED)."""

from __future__ import annotations

import anyio
import pytest

from ccore.client import ClientState, connect
from ccore.znodes.errors import SessionExpiredError
from tests.polling import wait_for

# Every async test on Trio and on asyncio (see tests/client/conftest.py).
pytestmark = pytest.mark.anyio

CONNECTED, SUSPENDED, LOST = ClientState.CONNECTED, ClientState.SUSPENDED, ClientState.LOST


async def wait_gone(client, path: str, timeout_s: float = 15.0) -> None:
    async def gone() -> bool:
        return await client.exists(path) is None

    await wait_for(gone, timeout_s=timeout_s, interval_s=0.05)


async def check_expired(zk, states, old_session, data_watch, stream) -> None:
    with anyio.fail_after(20):
        got = [await states.receive() for _ in range(2)]
    assert got == [LOST, CONNECTED]
    assert zk.session_id not in (0, old_session)
    with pytest.raises(SessionExpiredError):
        await data_watch
    with pytest.raises(SessionExpiredError):
        await stream.receive()
    # The new session works, and the client never went back in time.
    await zk.create("/after-expiry", ephemeral=True)
    assert (await zk.exists("/after-expiry")).ephemeralOwner == zk.session_id


@pytest.mark.slow
async def test_expiry_after_a_partition(fresh_server, open_proxy):
    server = fresh_server(tick_time_ms=200)
    proxy = await open_proxy(server.port)
    async with connect(proxy.connect_string, session_timeout=1.0) as zk, connect(server.connect_string) as other:
        await zk.create("/eph", ephemeral=True)
        await zk.create("/data")
        old = zk.session_id
        _, _, data_watch = await zk.get("/data", watch=True)
        stream = zk.watch("/data")
        await stream.__aenter__()
        with zk.states() as states:
            proxy.hold()
            with anyio.fail_after(5):
                assert await states.receive() is SUSPENDED
            await wait_gone(other, "/eph")  # the server expired the session
            proxy.restore()
            await check_expired(zk, states, old, data_watch, stream)
        await stream.__aexit__(None, None, None)


async def test_expiry_when_another_connection_closes_the_session(zk_server, open_proxy):
    hosts = zk_server.connect_string
    proxy = await open_proxy(zk_server.port)
    async with connect(proxy.connect_string, session_timeout=4) as zk, connect(hosts) as other:
        await zk.create("/eph-takeover", ephemeral=True)
        old = zk.session_id
        _, _, data_watch = await zk.get("/eph-takeover", watch=True)
        stream = zk.watch("/eph-takeover")
        await stream.__aenter__()
        with zk.states() as states:
            proxy.cut()  # keep `zk` away while its session is closed elsewhere
            with anyio.fail_after(5):
                assert await states.receive() is SUSPENDED
            async with connect(hosts, session=(zk.session_id, zk.session_passwd)) as twin:
                assert twin.session_id == old
            await wait_gone(other, "/eph-takeover")
            proxy.restore()
            await check_expired(zk, states, old, data_watch, stream)
        await stream.__aexit__(None, None, None)
