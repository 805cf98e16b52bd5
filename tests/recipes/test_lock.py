"""Lock: fairness, fencing tokens, no herd, no orphaned nodes, and a body that stops in time."""

from __future__ import annotations

import itertools

import anyio
import pytest

from ccore import NoNodeError
from ccore.recipes import Lock, LostError
from tests.polling import wait_for

# Every async test on Trio and on asyncio (see tests/client/conftest.py).
pytestmark = pytest.mark.anyio

LOCK = "/locks/db"


async def nodes(zk, path: str = LOCK) -> list[str]:
    try:
        return sorted(await zk.children(path))
    except Exception:  # noqa: BLE001 - NoNode: no nodes
        return []


async def test_acquire_release_and_tokens(zk):
    lock = Lock(zk, LOCK, b"me")
    tokens = []
    for _ in range(3):
        async with lock as token:
            assert lock.is_acquired and lock.token == token
            assert await lock.contenders() == [b"me"]
            (name,) = await nodes(zk)
            assert name.startswith("_c_") and "-lock-" in name
            stat = await zk.exists(f"{LOCK}/{name}")
            assert token == stat.czxid and stat.ephemeralOwner == zk.session_id
            tokens.append(token)
        assert not lock.is_acquired
        assert await nodes(zk) == []
    assert tokens == sorted(set(tokens))


async def test_exclusive_and_fair_in_arrival_order(connect_zk):
    order: list[int] = []
    spans: list[tuple[float, float, int]] = []
    async with connect_zk() as a, connect_zk() as b, connect_zk() as c:
        holder = Lock(a, LOCK, b"0")
        await holder.acquire()
        async with anyio.create_task_group() as tasks:

            async def contend(i: int, zk) -> None:
                async with Lock(zk, LOCK, str(i).encode()) as token:
                    start = anyio.current_time()
                    order.append(i)
                    await anyio.sleep(0.05)
                    spans.append((start, anyio.current_time(), token))

            async def queued(n: int) -> bool:
                return len(await Lock(a, LOCK).contenders()) >= n

            for i, zk in enumerate((b, c, a), start=1):
                tasks.start_soon(contend, i, zk)
                await wait_for(queued, i + 1)  # queue them in this order
            assert await holder.contenders() == [b"0", b"1", b"2", b"3"]
            await holder.release()
    assert order == [1, 2, 3]
    spans.sort()
    for (_, e1, t1), (s2, _, t2) in itertools.pairwise(spans):
        assert e1 <= s2 and t1 < t2


async def test_release_wakes_only_the_next_contender(zk, connect_zk, spy):
    """No herd: when the holder lets go, only its successor sends anything."""
    async with connect_zk() as other:
        holder = Lock(zk, LOCK)
        await holder.acquire()
        spies = [spy(other) for _ in range(4)]
        async with anyio.create_task_group() as tasks:

            async def queued(n: int) -> bool:
                return len(await holder.contenders()) >= n

            for n, s in enumerate(spies, start=2):
                tasks.start_soon(Lock(s, LOCK).acquire)
                await wait_for(queued, n)
            await anyio.sleep(0.2)
            for s in spies:
                s.reset()
            await holder.release()
            await wait_for(lambda: spies[0].total and spies[0].calls.get("children", 0) >= 1)
            await anyio.sleep(0.3)
            assert [s.total for s in spies[1:]] == [0, 0, 0]
            tasks.cancel_scope.cancel()
    assert await nodes(zk) == []  # cancelled waiters removed their nodes


async def test_timeout_leaves_no_node(zk, connect_zk):
    async with connect_zk() as other, Lock(zk, LOCK):
        before = await nodes(zk)
        with pytest.raises(TimeoutError):
            await Lock(other, LOCK).acquire(timeout=0.3)
        with pytest.raises(TimeoutError):
            async with Lock(other, LOCK, timeout=0.2):
                pytest.fail("acquired a held lock")
        assert await nodes(zk) == before


async def test_cancelled_at_any_point_leaves_no_node(zk, connect_zk):
    """Cancel contenders at every moment of acquire -- mid-create included (the reply is then
    abandoned though the node may be made): nothing of theirs may stay in the queue."""
    async with connect_zk() as other:
        async with Lock(zk, LOCK) as _:
            holder_nodes = await nodes(zk)
            for i in range(40):
                with anyio.move_on_after(i * 0.0005):
                    await Lock(other, LOCK).acquire()
            assert await nodes(zk) == holder_nodes
        assert await nodes(zk) == []


async def test_lost_create_reply_is_found_again(zk, spy):
    await zk.ensure_path(LOCK)
    s = spy(zk)
    s.lose_create_replies = 1
    lock = Lock(s, LOCK)
    async with lock as token:
        (name,) = await nodes(zk)
        assert (await zk.exists(f"{LOCK}/{name}")).czxid == token
        assert s.calls["create"] == 1  # found again by its GUID, not created twice
    assert await nodes(zk) == []


async def test_duplicate_node_from_a_retried_create_is_deleted(zk, connect_zk, spy):
    """A create applied twice (reply lost, retried, first one applied late) would leave a
    node of ours that blocks the queue for the life of our session; the GUID finds it."""
    await zk.create(LOCK, make_parents=True)  # else the duplicate is spent on the directory
    s = spy(zk)
    s.duplicate_creates = 1
    async with Lock(s, LOCK):
        assert s.duplicate_creates == 0 and s.calls["create"] == 1, "no duplicate node was made"
        assert len(await nodes(zk)) == 1
    assert await nodes(zk) == []
    async with connect_zk() as other:
        with anyio.fail_after(5):
            async with Lock(other, LOCK):
                pass


async def test_body_cancelled_when_node_deleted(zk, connect_zk):
    async with connect_zk() as admin:
        with anyio.fail_after(zk.session_timeout + 3):
            with pytest.raises(LostError, match="deleted"):
                async with Lock(zk, LOCK) as _:
                    (name,) = await nodes(zk)
                    await admin.delete(f"{LOCK}/{name}")
                    await anyio.sleep_forever()


async def test_cancel_on_suspend(zk_server, connect_zk, open_proxy):
    proxy = await open_proxy(zk_server.port)
    async with connect_zk(via=proxy.connect_string) as zk, anyio.create_task_group() as tasks:

        async def restore_soon() -> None:
            await anyio.sleep(0.5)
            proxy.restore()

        with anyio.fail_after(5):
            with pytest.raises(LostError, match="suspended"):
                async with Lock(zk, LOCK, cancel_on_suspend=True):
                    proxy.cut()
                    tasks.start_soon(restore_soon)
                    await anyio.sleep_forever()

        async def released() -> bool:
            return not await nodes(zk)

        await wait_for(released, timeout_s=10, interval_s=0.05)  # the session lives on: the release removed the node


@pytest.mark.slow
async def test_partitioned_holder_stops_before_the_next_holder_starts(zk_server, connect_zk, open_proxy):
    """The heart of it (Curator-465, kazoo #565): a holder cut off from the server hears
    nothing, yet its body must be cancelled before its session can expire and the lock pass
    to the next contender; and the next token is higher."""
    proxy = await open_proxy(zk_server.port)
    events: dict[str, float] = {}
    silenced = anyio.Event()
    async with connect_zk(session_timeout=2.0, via=proxy.connect_string) as cut_off, connect_zk() as rival:
        timeout = cut_off.session_timeout
        with anyio.fail_after(4 * timeout + 10):
            async with anyio.create_task_group() as tasks:

                async def old_holder() -> None:
                    with pytest.raises(LostError, match="no answer"):
                        async with Lock(cut_off, LOCK) as token:
                            events["old_token"] = token
                            proxy.hold()  # silence: no error, no close, nothing
                            events["silenced"] = anyio.current_time()
                            silenced.set()
                            try:
                                await anyio.sleep_forever()
                            finally:
                                events["old_stopped"] = anyio.current_time()

                async def new_holder() -> None:
                    await silenced.wait()
                    async with Lock(rival, LOCK) as token:
                        events["new_started"] = anyio.current_time()
                        events["new_token"] = token

                tasks.start_soon(old_holder)
                tasks.start_soon(new_holder)
        proxy.restore()
    assert events["old_stopped"] < events["new_started"]
    assert events["old_stopped"] - events["silenced"] <= timeout  # before the earliest expiry
    assert events["new_token"] > events["old_token"]


@pytest.mark.slow
async def test_server_restart(fresh_server, root):
    """The server restarts while one client holds the lock and another waits: sessions
    survive (the restarted server gives them a fresh deadline), the holder keeps its lock
    through the restart (it heard from the server again before its deadline), the waiter
    keeps its place and gets the lock after, with a higher token."""
    from ccore.client import connect

    server = fresh_server(tick_time_ms=500)
    async with connect(server.connect_string) as admin:
        await admin.create(root)
    hosts = server.connect_string + root
    async with connect(hosts, session_timeout=10) as a, connect(hosts, session_timeout=10) as b:
        got: dict[str, int] = {}
        a_holds = anyio.Event()
        with anyio.fail_after(60):
            async with anyio.create_task_group() as tasks:

                async def both_queued() -> bool:
                    return len(await Lock(a, LOCK).contenders()) >= 2

                async def holder() -> None:
                    async with Lock(a, LOCK) as token:
                        got["a"] = token
                        a_holds.set()
                        await wait_for(both_queued, timeout_s=60)
                        await anyio.to_thread.run_sync(server.restart)
                        await a.sync()  # the holder is heard from again: still ours
                        assert len(await Lock(a, LOCK).contenders()) == 2

                async def waiter() -> None:
                    await a_holds.wait()
                    async with Lock(b, LOCK) as token:
                        got["b"] = token

                tasks.start_soon(holder)
                tasks.start_soon(waiter)
        assert got["b"] > got["a"]
        # Nothing is left: no contender, or not even the lock's container node, which a
        # server may reap once it is empty (Apache ZooKeeper's container manager did so in CI).
        try:
            assert await a.children(LOCK) == []
        except NoNodeError:
            pass
