"""maxClientCnxns: connections per client address, refused past the limit with one log line
per address and minute, however many are refused; a closed connection frees its place."""

from __future__ import annotations

import logging

import trio

from ccore.server.zkserver import ZKServer
from tests.polling import wait_for
from tests.server.helpers import config


async def _closed_by_server(stream: trio.SocketStream) -> bool:
    with trio.move_on_after(5):
        try:
            return await stream.receive_some(1) == b""
        except trio.BrokenResourceError:
            return True
    return False


async def test_a_connect_flood_past_the_limit_is_refused_and_logged_once(nursery, tmp_path, caplog):
    server = await nursery.start(ZKServer(config(tmp_path, max_client_cnxns=2)).run)
    kept = [await trio.open_tcp_stream("127.0.0.1", server.port) for _ in range(2)]
    await wait_for(lambda: len(server.connections) == 2)
    with caplog.at_level(logging.WARNING, logger="ccore.server.zkserver"):
        for _ in range(30):
            extra = await trio.open_tcp_stream("127.0.0.1", server.port)
            assert await _closed_by_server(extra)
            await extra.aclose()
    refusals = [r for r in caplog.records if "too many connections" in r.getMessage()]
    assert len(refusals) == 1 and "maxClientCnxns" in refusals[0].getMessage()
    # A connection that closes frees its place for the next one.
    await kept.pop().aclose()
    await wait_for(lambda: len(server.connections) == 1)
    again = await trio.open_tcp_stream("127.0.0.1", server.port)
    await wait_for(lambda: len(server.connections) == 2)
    for stream in [*kept, again]:
        await stream.aclose()
