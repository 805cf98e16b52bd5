"""Every kind of watch: one-shot (data, exists, children), persistent, recursive, removal."""

from __future__ import annotations

import re

import anyio
import pytest

from ccore.client import EventType, connect
from ccore.client.watches import ClientState

# Every async test on Trio and on asyncio (see tests/client/conftest.py).
pytestmark = pytest.mark.anyio

WAIT_S = 5


async def next_event(source):
    with anyio.fail_after(WAIT_S):
        ev = await (source.receive() if hasattr(source, "receive") else source)
    return (ev.type, ev.path)


async def assert_quiet(stream, within_s: float = 0.3):
    with anyio.move_on_after(within_s):
        ev = await stream.receive()
        raise AssertionError(f"unexpected event {ev}")


async def test_data_watch(zk):
    await zk.create("/d", b"1")
    _, _, watch = await zk.get("/d", watch=True)
    assert not watch.fired
    await zk.set("/d", b"2")
    assert await next_event(watch) == (EventType.NODE_DATA_CHANGED, "/d")
    assert watch.fired and watch.event.path == "/d"
    _, _, watch = await zk.get("/d", watch=True)
    await zk.delete("/d")
    assert await next_event(watch) == (EventType.NODE_DELETED, "/d")


async def test_exists_watches(zk):
    stat, watch = await zk.exists("/e", watch=True)
    assert stat is None
    await zk.create("/e")
    assert await next_event(watch) == (EventType.NODE_CREATED, "/e")
    stat, watch = await zk.exists("/e", watch=True)
    assert stat is not None
    await zk.delete("/e")
    assert await next_event(watch) == (EventType.NODE_DELETED, "/e")


async def test_child_watch(zk):
    await zk.create("/c")
    children, watch = await zk.children("/c", watch=True)
    assert children == []
    await zk.set("/c", b"data changes do not fire child watches")
    await zk.create("/c/x")
    assert await next_event(watch) == (EventType.NODE_CHILDREN_CHANGED, "/c")
    children, stat, watch = await zk.children("/c", watch=True, include_stat=True)
    assert children == ["x"] and stat.numChildren == 1
    await zk.delete("/c", recursive=True)
    assert await next_event(watch) == (EventType.NODE_CHILDREN_CHANGED, "/c")


async def test_one_event_fires_every_watch_on_the_path(zk):
    await zk.create("/m")
    watches = [(await zk.get("/m", watch=True))[2] for _ in range(3)]
    watches.append((await zk.exists("/m", watch=True))[1])
    await zk.set("/m", b"x")
    for w in watches:
        assert await next_event(w) == (EventType.NODE_DATA_CHANGED, "/m")
    # One-shot: a second change fires nothing (new watches are needed).
    _, _, fresh = await zk.get("/m", watch=True)
    await zk.set("/m", b"y")
    await zk.set("/m", b"z")
    assert await next_event(fresh) == (EventType.NODE_DATA_CHANGED, "/m")


async def test_remove_one_shot_watch(zk, zk_server):
    await zk.create("/r")
    _, _, a = await zk.get("/r", watch=True)
    _, _, b = await zk.get("/r", watch=True)
    await a.remove()
    assert await next_event(a) == (EventType.DATA_WATCH_REMOVED, "/r")
    await zk.set("/r", b"x")  # b still holds the server's watch
    assert await next_event(b) == (EventType.NODE_DATA_CHANGED, "/r")
    _, watch = await zk.children("/r", watch=True)
    await watch.remove()
    assert await next_event(watch) == (EventType.CHILD_WATCH_REMOVED, "/r")


def total_watches(handle) -> int:
    text = handle.four_letter("wchs")
    match = re.search(r"Total watches:\s*(\d+)", text)
    assert match, text
    return int(match.group(1))


async def test_persistent_watch(zk, zk_server):
    await zk.create("/p", b"0")
    before = await anyio.to_thread.run_sync(total_watches, zk_server)
    async with zk.watch("/p") as events:
        assert await anyio.to_thread.run_sync(total_watches, zk_server) > before
        await zk.set("/p", b"1")
        await zk.create("/p/child")
        await zk.set("/p/child", b"not seen: not recursive")
        await zk.delete("/p/child")
        await zk.set("/p", b"2")
        assert [await next_event(events) for _ in range(4)] == [
            (EventType.NODE_DATA_CHANGED, "/p"),
            (EventType.NODE_CHILDREN_CHANGED, "/p"),
            (EventType.NODE_CHILDREN_CHANGED, "/p"),
            (EventType.NODE_DATA_CHANGED, "/p"),
        ]
        await zk.delete("/p")
        await zk.create("/p")
        assert [await next_event(events) for _ in range(2)] == [
            (EventType.NODE_DELETED, "/p"),
            (EventType.NODE_CREATED, "/p"),
        ]
        await assert_quiet(events)
    # Leaving the block removed the watch from the server.
    assert await anyio.to_thread.run_sync(total_watches, zk_server) == before


async def test_recursive_watch(zk, zk_server):
    before = await anyio.to_thread.run_sync(total_watches, zk_server)
    async with zk.watch("/tree", recursive=True) as events:
        await zk.create("/tree")
        await zk.create("/tree/a")
        await zk.create("/tree/a/b", b"x")
        await zk.set("/tree/a/b", b"y")
        await zk.delete("/tree/a/b")
        await zk.create("/treeish")  # a sibling with the same prefix is not below /tree
        assert [await next_event(events) for _ in range(5)] == [
            (EventType.NODE_CREATED, "/tree"),
            (EventType.NODE_CREATED, "/tree/a"),
            (EventType.NODE_CREATED, "/tree/a/b"),
            (EventType.NODE_DATA_CHANGED, "/tree/a/b"),
            (EventType.NODE_DELETED, "/tree/a/b"),
        ]
        await assert_quiet(events)  # no NODE_CHILDREN_CHANGED for recursive watches
    assert await anyio.to_thread.run_sync(total_watches, zk_server) == before


async def test_streams_share_a_server_watch(zk):
    await zk.create("/s")
    async with zk.watch("/s") as first:
        async with zk.watch("/s") as second:
            await zk.set("/s", b"1")
            assert await next_event(first) == await next_event(second) == (EventType.NODE_DATA_CHANGED, "/s")
        await zk.set("/s", b"2")  # leaving `second` kept the watch `first` needs
        assert await next_event(first) == (EventType.NODE_DATA_CHANGED, "/s")


async def test_leaving_a_persistent_watch_keeps_one_shot_watches(zk):
    """ZooKeeper 3.8 cannot remove only a persistent watch; the client puts the others back."""
    await zk.create("/k")
    _, _, data_watch = await zk.get("/k", watch=True)
    _, child_watch = await zk.children("/k", watch=True)
    async with zk.watch("/k", recursive=True), zk.watch("/k"):
        pass
    await zk.set("/k", b"1")
    assert await next_event(data_watch) == (EventType.NODE_DATA_CHANGED, "/k")
    await zk.create("/k/c")
    assert await next_event(child_watch) == (EventType.NODE_CHILDREN_CHANGED, "/k")


async def test_watch_of_root_and_chroot(hosts, zk):
    async with zk.watch("/", recursive=True) as events:
        await zk.create("/under-root")
        assert await next_event(events) == (EventType.NODE_CREATED, "/under-root")


async def test_close_ends_watches(hosts):
    async with connect(hosts) as zk:
        _, watch = await zk.exists("/never-created-close-test", watch=True)
        stream = zk.watch("/never-created-close-test")
        await stream.__aenter__()
    from ccore.client import ClientClosedError

    with pytest.raises(ClientClosedError):
        await watch
    with pytest.raises(ClientClosedError):
        await stream.receive()
    assert zk.state is ClientState.CLOSED
    with pytest.raises(ClientClosedError):
        await zk.get("/")


async def test_a_stream_must_be_opened_first(zk):
    with pytest.raises(RuntimeError, match="async with"):
        async for _ in zk.watch("/unopened"):
            pass
