"""ReadWriteLock (readers share, writers exclude) and Semaphore (N holders, no herd)."""

from __future__ import annotations

import anyio
import pytest

from ccore.recipes import ReadWriteLock, Semaphore
from tests.polling import wait_for

# Every async test on Trio and on asyncio (see tests/client/conftest.py).
pytestmark = pytest.mark.anyio

PATH = "/rw"


async def test_readers_share_writers_exclude(connect_zk):
    log: list[tuple[str, str, float]] = []
    async with connect_zk() as a, connect_zk() as b:

        async def reader(zk, name: str) -> None:
            async with ReadWriteLock(zk, PATH).read_lock:
                log.append(("start", name, anyio.current_time()))
                await anyio.sleep(0.2)
                log.append(("end", name, anyio.current_time()))

        async def writer(zk, name: str) -> None:
            async with ReadWriteLock(zk, PATH).write_lock:
                log.append(("start", name, anyio.current_time()))
                await anyio.sleep(0.1)
                log.append(("end", name, anyio.current_time()))

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(reader, a, "r1")
                tasks.start_soon(reader, b, "r2")
                await anyio.sleep(0.05)
                tasks.start_soon(writer, a, "w1")  # waits for both readers
                await anyio.sleep(0.05)
                tasks.start_soon(reader, b, "r3")  # queued behind the writer
    active: set[str] = set()
    most_readers = 0
    for kind, name, _ in sorted(log, key=lambda e: (e[2], e[0] == "start")):
        if kind == "start":
            if name.startswith("w"):
                assert not active, f"writer {name} started while {active} held"
            else:
                assert not any(n.startswith("w") for n in active)
            active.add(name)
            most_readers = max(most_readers, sum(n.startswith("r") for n in active))
        else:
            active.remove(name)
    assert most_readers == 2
    starts = [name for kind, name, _ in sorted(log, key=lambda e: e[2]) if kind == "start"]
    assert starts.index("w1") < starts.index("r3")  # fair: the later reader waits its turn


async def test_write_tokens_fence_reads(zk):
    rw = ReadWriteLock(zk, PATH)
    async with rw.write_lock as w1:
        pass
    async with rw.read_lock as r1:
        pass
    async with rw.write_lock as w2:
        pass
    assert w1 < r1 < w2


async def test_semaphore_admits_n(connect_zk):
    running = 0
    most = 0
    async with connect_zk() as a, connect_zk() as b:

        async def worker(zk, i: int) -> None:
            nonlocal running, most
            async with Semaphore(zk, "/sem", str(i).encode(), max_leases=3):
                running += 1
                most = max(most, running)
                await anyio.sleep(0.05)
                running -= 1

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tasks:
                for i in range(10):
                    tasks.start_soon(worker, a if i % 2 else b, i)
        assert most == 3
        assert await a.children("/sem") == []


async def test_semaphore_release_wakes_one(zk, connect_zk, spy):
    """Holders leave one by one; each departure wakes only the first waiter, which then
    wakes the next by touching its node -- never the whole queue."""
    async with connect_zk() as other:
        holders = [Semaphore(zk, "/sem", max_leases=2) for _ in range(2)]
        for h in holders:
            await h.acquire()
        spies = [spy(other) for _ in range(4)]
        waiters = [Semaphore(s, "/sem", max_leases=2) for s in spies]
        async with anyio.create_task_group() as tasks:

            async def queued(n: int) -> bool:
                return len(await zk.children("/sem")) >= n

            for i, w in enumerate(waiters):
                tasks.start_soon(w.acquire)
                await wait_for(queued, 3 + i)
            await anyio.sleep(0.2)
            for s in spies:
                s.reset()
            await holders[0].release()
            await wait_for(lambda: waiters[0].is_acquired)
            await anyio.sleep(0.3)
            assert spies[2].total == 0 and spies[3].total == 0  # the rest of the queue slept
            assert not waiters[1].is_acquired  # still one slot, held by holders[1]
            await holders[1].release()
            await wait_for(lambda: waiters[1].is_acquired)
            assert await waiters[0].holders() == [b"", b""]
            tasks.cancel_scope.cancel()
        for w in waiters:
            await w.release()
        assert await zk.children("/sem") == []


async def test_semaphore_timeout_leaves_no_node(zk):
    async with Semaphore(zk, "/sem", max_leases=1):
        with pytest.raises(TimeoutError):
            await Semaphore(zk, "/sem", max_leases=1).acquire(timeout=0.2)
        assert len(await zk.children("/sem")) == 1


async def test_semaphore_needs_a_positive_size(zk):
    with pytest.raises(ValueError):
        Semaphore(zk, "/sem", max_leases=0)
