"""Many requests in flight on one connection: matched by xid, answered in the order sent."""

from __future__ import annotations

import anyio
import pytest

# Every async test on Trio and on asyncio (see tests/client/conftest.py).
pytestmark = pytest.mark.anyio

N = 500


async def test_hundreds_in_flight_keep_fifo_order(zk):
    await zk.create("/q")
    issued: list[int] = []
    results: dict[int, str] = {}
    peak = 0

    async def create(i: int) -> None:
        nonlocal peak
        # Nothing awaits between this append and the request being queued, so `issued` is
        # the order the requests went on the wire.
        issued.append(i)
        task = zk.create("/q/n-", str(i).encode(), sequence=True)
        peak = max(peak, zk._session.core.in_flight + 1)
        results[i] = await task

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tasks:
            for i in range(N):
                tasks.start_soon(create, i)
    assert len(results) == N
    # Sequence numbers follow the order sent.
    numbers = [int(results[i].rsplit("-", 1)[1]) for i in issued]
    assert numbers == sorted(numbers) == list(range(N))
    assert peak > 100, f"only {peak} requests were ever in flight"
    children = await zk.children("/q")
    assert len(children) == N


async def test_reads_wait_behind_earlier_writes(zk):
    await zk.create("/v", b"0")
    seen: list[tuple[int, int]] = []  # (writes issued before this read, version read)
    writes = 0

    async def write() -> None:
        nonlocal writes
        writes += 1
        await zk.set("/v", b"x")

    async def read() -> None:
        before = writes
        _, stat = await zk.get("/v")
        seen.append((before, stat.version))

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tasks:
            for i in range(300):
                tasks.start_soon(write if i % 3 else read)
    assert len(seen) == 100
    # Read-your-writes: a read sees at least every write queued before it.
    assert all(version >= before for before, version in seen), seen[:10]
    assert (await zk.get("/v"))[1].version == writes
