"""DataWatch, ChildrenWatch, TreeCache and the service registry, on persistent watches --
including after a disconnection and after the session expired."""

from __future__ import annotations

import anyio
import pytest

from ccore.recipes import (
    ChildrenWatch,
    DataWatch,
    ServiceInstance,
    ServiceRegistry,
    TreeCache,
    TreeEventType,
)
from tests.polling import wait_for

# Every async test on Trio and on asyncio (see tests/client/conftest.py).
pytestmark = pytest.mark.anyio


async def test_data_watch(zk, connect_zk):
    async with connect_zk() as writer, DataWatch(zk, "/cfg") as cfg:
        assert cfg.value is None
        await writer.create("/cfg", b"v1")
        assert (await cfg.wait_for(lambda v: v is not None, timeout=5))[0] == b"v1"
        await writer.create("/cfg/child")  # not a data change: no new value
        await writer.set("/cfg", b"v2")
        value = await cfg.wait_for(lambda v: v is not None and v[0] == b"v2", timeout=5)
        assert value[1].version == 1
        await writer.delete("/cfg", recursive=True)
        assert await cfg.wait_for(lambda v: v is None, timeout=5) is None


async def test_data_watch_iteration_coalesces(zk):
    await zk.create("/n", b"0")
    async with DataWatch(zk, "/n") as n:
        it = n.__aiter__()
        assert (await it.__anext__())[0] == b"0"
        for i in range(1, 20):
            await zk.set("/n", str(i).encode())
        with anyio.fail_after(5):
            while (value := await it.__anext__())[0] != b"19":
                pass
        assert value[1].version == 19


async def test_children_watch(zk, connect_zk):
    async with connect_zk() as writer, ChildrenWatch(zk, "/workers") as workers:
        assert workers.value is None
        await writer.create("/workers")
        await workers.wait_for(lambda v: v == [], timeout=5)
        await writer.create("/workers/b")
        await writer.create("/workers/a", ephemeral=True)
        await workers.wait_for(lambda v: v == ["a", "b"], timeout=5)
        await writer.delete("/workers/b")
        await workers.wait_for(lambda v: v == ["a"], timeout=5)


async def test_tree_cache_follows_the_subtree(zk, connect_zk):
    await zk.create("/app/x/y", b"deep", make_parents=True)
    cache = TreeCache(zk, "/app")
    events = cache.events()  # before entering: the initial ADDED events too
    async with connect_zk() as writer, cache:
        assert cache.paths() == ["/app", "/app/x", "/app/x/y"] and cache.get("/app/x/y").data == b"deep"
        initial = [events.receive_nowait() for _ in range(4)]
        assert [e.type for e in initial][-1] is TreeEventType.SYNCED
        await writer.create("/app/z", b"1")
        await writer.set("/app/x/y", b"deeper")
        await writer.delete("/app/x", recursive=True)
        seen = []
        with anyio.fail_after(5):
            while len(seen) < 4:
                event = await events.receive()
                seen.append((event.type, event.path))
        assert seen == [
            (TreeEventType.ADDED, "/app/z"),
            (TreeEventType.UPDATED, "/app/x/y"),
            (TreeEventType.REMOVED, "/app/x/y"),
            (TreeEventType.REMOVED, "/app/x"),
        ]
        assert cache.paths() == ["/app", "/app/z"] and cache.children("/app") == ["z"]


async def test_tree_cache_after_disconnection_and_expiry(connect_zk, doomed):
    # (Not a DataWatch on /t as well: Apache ZooKeeper keeps one watch mode per connection
    # and path, so a persistent watch would turn the cache's recursive one into a plain one.)
    async with connect_zk() as writer, doomed() as (zk, expire):
        await writer.create("/t", b"")
        await writer.create("/d", b"")
        async with TreeCache(zk, "/t") as cache, DataWatch(zk, "/d") as data:
            await expire()  # changes while it was away, then a new session
            await writer.create("/t/during", b"x")
            await writer.set("/t", b"changed")
            await writer.set("/d", b"changed")
            await wait_for(
                lambda: cache.get("/t/during") is not None and cache.get("/t").data == b"changed", timeout_s=10, interval_s=0.05
            )
            await data.wait_for(lambda v: v is not None and v[0] == b"changed", timeout=10)
            await writer.create("/t/after", b"y")  # and the new session's watch works
            await wait_for(lambda: cache.get("/t/after") is not None, timeout_s=10, interval_s=0.05)


async def test_service_registry(connect_zk, doomed):
    api1 = ServiceInstance("api", address="10.0.0.1", port=8080, payload={"zone": "a"})
    api2 = ServiceInstance("api", address="10.0.0.2", port=8080)
    async with connect_zk() as client, doomed() as (server_zk, expire):
        registry = ServiceRegistry(client, "/services")
        assert await registry.instances("api") == []
        async with registry.cache("api") as cache:
            assert cache.choose() is None
            async with ServiceRegistry(server_zk, "/services").registered(api1):
                assert await registry.instances("api") == [api1]
                async with ServiceRegistry(client, "/services").registered(api2):
                    await cache.wait_for(lambda xs: len(xs) == 2, timeout=5)
                    assert await registry.names() == ["api"]
                    assert {cache.choose("round_robin").id for _ in range(2)} == {api1.id, api2.id}
                    assert cache.choose("random") in (api1, api2)
                    old = server_zk.session_id
                    await expire()  # api1's session expires; it registers again by itself
                    await wait_for(
                        lambda: server_zk.session_id != old and len(cache.instances) == 2, timeout_s=10, interval_s=0.05
                    )
                    stat = await client.exists(f"/services/api/{api1.id}")
                    assert stat.ephemeralOwner == server_zk.session_id
                await cache.wait_for(lambda xs: xs == [api1], timeout=5)
            await cache.wait_for(lambda xs: xs == [], timeout=5)
        raw = (await client.exists("/services/api")) is not None
        assert raw


async def test_instance_json_is_curators():
    instance = ServiceInstance("api", address="h", port=1, payload={"k": [1]}, id="abc")
    import json

    obj = json.loads(instance.to_json())
    assert obj["name"] == "api" and obj["id"] == "abc" and obj["serviceType"] == "DYNAMIC"
    assert "registrationTimeUTC" in obj and "sslPort" in obj
    assert ServiceInstance.from_json(instance.to_json()) == instance


def test_instance_payload_must_be_json_where_it_is_made():
    with pytest.raises(TypeError, match="payload must be a JSON value.*not bytes"):
        ServiceInstance("api", payload=b"raw bytes")
    ServiceInstance("api", payload={"zone": "a", "weights": [1, 2.5], "tls": None})
