"""Bad input: connection strings, unreachable ensembles, servers that send garbage."""

from __future__ import annotations

import anyio
import pytest

from ccore.client import InvalidArgumentError, NoServerError, connect
from ccore.client.hosts import HostPort, parse

# Every async test on Trio and on asyncio (see tests/client/conftest.py).
pytestmark = pytest.mark.anyio


def test_connection_strings():
    cs = parse("a:1,b,[::1]:3,::2/app/x")
    assert cs.hosts == (HostPort("a", 1), HostPort("b", 2181), HostPort("::1", 3), HostPort("::2", 2181))
    assert cs.chroot == "/app/x"
    assert parse("h:2181/").chroot is None
    assert str(parse("h:1,[::1]:2/r")) == "h:1,[::1]:2/r"
    for bad in ("", "h:0", "h:x", "h:70000", ",h", "h:1/a//b", "[::1:5", "h:1/bad/"):
        with pytest.raises(InvalidArgumentError):
            parse(bad)


async def test_unreachable_ensemble_fails_after_the_connect_timeout():
    start = anyio.current_time()
    with anyio.fail_after(5), pytest.raises(NoServerError) as e:
        async with connect("127.0.0.1:1,127.0.0.1:2", connect_timeout=0.5):
            pass
    assert anyio.current_time() - start < 2
    assert "127.0.0.1:1" in str(e.value) and "127.0.0.1:2" in str(e.value)


async def test_silent_server_times_out(serve_tcp):
    async def silent(stream):
        await anyio.sleep_forever()

    port = await serve_tcp(silent)
    with anyio.fail_after(5), pytest.raises(NoServerError, match="no session established"):
        async with connect(f"127.0.0.1:{port}", session_timeout=1, connect_timeout=1):
            pass


@pytest.mark.parametrize(
    "garbage",
    [
        b"\xff\xff\xff\xff",  # a negative frame length
        b"\x7f\xff\xff\xff",  # far beyond jute.maxbuffer
        b"\x00\x00\x00\x02hi",  # a frame too short for a ConnectResponse
        b"HTTP/1.1 400 Bad Request\r\n\r\n",
    ],
)
async def test_garbage_server_is_dropped_and_the_next_is_tried(serve_tcp, hosts, garbage):
    contacted = []

    async def liar(stream):
        contacted.append(True)
        await stream.send(garbage)
        await anyio.sleep(5)

    port = await serve_tcp(liar)
    with anyio.fail_after(10):
        async with connect(f"127.0.0.1:{port},{hosts}", randomize_hosts=False) as zk:
            assert contacted and zk.server == hosts
            assert await zk.exists("/") is not None


async def test_bad_arguments_to_connect():
    with pytest.raises(InvalidArgumentError):
        async with connect("127.0.0.1:2181", session_timeout=0):
            pass
    with pytest.raises(InvalidArgumentError):
        async with connect("127.0.0.1:2181", chroot="no-slash"):
            pass
