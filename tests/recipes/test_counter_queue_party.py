"""Counter, Queue, LockingQueue and Party."""

from __future__ import annotations

import anyio
import pytest

from ccore.recipes import Counter, LockingQueue, LostError, Party, Queue

# Every async test on Trio and on asyncio (see tests/client/conftest.py).
pytestmark = pytest.mark.anyio


async def test_counter_concurrent_adds(connect_zk):
    async with connect_zk() as a, connect_zk() as b:
        assert await Counter(a, "/c").value() == 0
        async with anyio.create_task_group() as tasks:
            for i in range(20):
                tasks.start_soon(Counter((a, b)[i % 2], "/c").add, 1)
        assert await Counter(a, "/c").value() == 20
        assert await Counter(a, "/c").subtract(5) == 15
        assert (await a.get("/c"))[0] == b"15"
        f = Counter(a, "/f", 0.0)
        assert await f.add(1.5) == 1.5 and await f.value() == 1.5


async def test_queue_priorities_and_blocking_get(zk, connect_zk):
    q = Queue(zk, "/q")
    assert await q.get_nowait() is None
    await q.put_all([b"a", b"b"], priority=50)
    await q.put(b"urgent", priority=1)
    await q.put(b"late", priority=999)
    assert await q.length() == 4
    assert [await q.get() for _ in range(4)] == [b"urgent", b"a", b"b", b"late"]
    with pytest.raises(TimeoutError):
        await q.get(timeout=0.2)
    async with connect_zk() as producer:
        got: list[bytes] = []
        async with anyio.create_task_group() as tasks:

            async def consume() -> None:
                got.append(await q.get(timeout=5))

            tasks.start_soon(consume)
            tasks.start_soon(consume)
            await anyio.sleep(0.2)
            await Queue(producer, "/q").put_all([b"x", b"y"])
        assert sorted(got) == [b"x", b"y"]


async def test_queue_put_with_lost_reply_is_not_doubled(zk, spy):
    await zk.ensure_path("/q")
    s = spy(zk)
    s.lose_create_replies = 1
    await Queue(s, "/q").put(b"once")
    assert await Queue(zk, "/q").length() == 1


async def test_locking_queue_each_item_to_one_consumer(connect_zk):
    async with connect_zk() as a, connect_zk() as b:
        await LockingQueue(a, "/lq").put_all([str(i).encode() for i in range(10)])
        seen: list[bytes] = []
        async with anyio.create_task_group() as tasks:

            async def consumer(zk) -> None:
                q = LockingQueue(zk, "/lq")
                while await q.length():
                    with anyio.move_on_after(1):
                        async with q.take() as item:
                            seen.append(item.data)
                            await anyio.sleep(0.01)

            for zk in (a, b, a, b):
                tasks.start_soon(consumer, zk)
        assert sorted(seen) == sorted(str(i).encode() for i in range(10))
        assert await a.children("/lq/taken") == []


async def test_locking_queue_gives_back_on_error_and_on_death(connect_zk, doomed):
    async with connect_zk() as a, doomed() as (victim, expire):
        q = LockingQueue(a, "/lq")
        await q.put(b"job")
        with pytest.raises(ZeroDivisionError):
            async with q.take() as item:
                assert item.data == b"job"
                raise ZeroDivisionError
        assert await q.length() == 1  # given back
        held = await LockingQueue(victim, "/lq").get()
        with pytest.raises(TimeoutError):
            await q.get(timeout=0.2)  # locked by the doomed consumer
        await expire()  # its session ends: the lock goes, the item comes back
        with anyio.fail_after(5):
            async with q.take() as item:
                assert item.data == b"job" and item.token > held.token
        assert await q.length() == 0


async def test_locking_queue_get_cancelled_after_locking_unlocks(zk, connect_zk, spy):
    """A LockingQueue.get that times out after locking an item (while reading the item's data,
    made to hang here) unlocks it again: a lock left behind would hide the item from every
    consumer for as long as our session lives."""
    await LockingQueue(zk, "/lq").put(b"job")
    s = spy(zk)
    hung: list[str] = []

    def hang(name: str, args: tuple) -> bool:
        if name == "get" and "/lq/entries/" in str(args[0]):
            hung.append(args[0])
            return True
        return False

    s.hang = hang
    with pytest.raises(TimeoutError):
        await LockingQueue(s, "/lq").get(timeout=1)
    assert hung  # it read the item: that comes after locking it
    assert await zk.children("/lq/taken") == []
    async with connect_zk() as other:
        item = await LockingQueue(other, "/lq").get(timeout=5)
        assert item.data == b"job"


async def test_locking_queue_body_cancelled_when_lock_deleted(zk):
    q = LockingQueue(zk, "/lq")
    await q.put(b"job")
    with anyio.fail_after(zk.session_timeout + 3), pytest.raises(LostError):
        async with q.take() as item:
            await zk.delete(f"/lq/taken/{item.name}")
            await anyio.sleep_forever()
    assert await q.length() == 1


async def test_party_membership(connect_zk, doomed):
    from ccore.client import ClientState

    async with connect_zk() as a, doomed() as (b, expire):
        party = Party(a, "/party", b"a")
        assert await party.members() == []
        async with party, Party(b, "/party", b"b") as pb:
            assert sorted(await party.members()) == [b"a", b"b"] and await pb.size() == 2
            old = b.session_id
            await expire()
            with anyio.fail_after(10):  # b joins again on its new session
                while True:
                    if b.session_id != old and b.state is ClientState.CONNECTED:
                        owners = {(await a.exists(f"/party/{n}")).ephemeralOwner for n in await a.children("/party")}
                        if owners == {a.session_id, b.session_id}:
                            break
                    await anyio.sleep(0.05)
            assert sorted(await party.members()) == [b"a", b"b"]
        assert await party.members() == []
