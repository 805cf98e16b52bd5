"""Barrier and DoubleBarrier, with late, missing and dying participants."""

from __future__ import annotations

import anyio
import pytest

from ccore.recipes import Barrier, DoubleBarrier
from ccore.znodes.errors import NoNodeError

# Every async test on Trio and on asyncio (see tests/client/conftest.py).
pytestmark = pytest.mark.anyio

PATH = "/barrier"


async def children_or_none(zk) -> list[str]:
    """The barrier's children; [] once its (container) node was reaped after the last left,
    which Apache ZooKeeper's container sweep may do at any moment."""
    try:
        return await zk.children(PATH)
    except NoNodeError:
        return []


async def test_barrier_blocks_until_removed(connect_zk):
    async with connect_zk() as a, connect_zk() as b:
        await Barrier(a, PATH).wait(timeout=1)  # not raised: passes at once
        await Barrier(a, PATH).create()
        await Barrier(a, PATH).create()  # idempotent
        with pytest.raises(TimeoutError):
            await Barrier(b, PATH).wait(timeout=0.2)
        passed: list[float] = []
        async with anyio.create_task_group() as tasks:

            async def waiter() -> None:
                await Barrier(b, PATH).wait(timeout=5)
                passed.append(anyio.current_time())

            for _ in range(3):
                tasks.start_soon(waiter)
            await anyio.sleep(0.2)
            assert not passed
            lifted = anyio.current_time()
            await Barrier(a, PATH).remove()
        assert len(passed) == 3 and all(t >= lifted for t in passed)


async def run_round(clients, n: int, log: list[tuple[str, int, float]], *, delays=None) -> None:
    async with anyio.create_task_group() as tasks:

        async def participant(i: int) -> None:
            await anyio.sleep((delays or {}).get(i, 0))
            log.append(("arrive", i, anyio.current_time()))
            async with DoubleBarrier(clients[i % len(clients)], PATH, n, timeout=10):
                log.append(("in", i, anyio.current_time()))
                await anyio.sleep(0.05 * i)
                log.append(("out", i, anyio.current_time()))
            log.append(("left", i, anyio.current_time()))

        for i in range(n):
            tasks.start_soon(participant, i)


async def test_double_barrier_with_a_late_participant(connect_zk):
    log: list[tuple[str, int, float]] = []
    async with connect_zk() as a, connect_zk() as b:
        with anyio.fail_after(15):
            await run_round([a, b], 3, log, delays={2: 0.5})
        ins = [t for kind, _, t in log if kind == "in"]
        outs = [t for kind, _, t in log if kind == "out"]
        lefts = [t for kind, _, t in log if kind == "left"]
        late_arrival = next(t for kind, i, t in log if kind == "arrive" and i == 2)
        assert len(ins) == 3 and min(ins) >= late_arrival  # everyone waited for the late one
        assert max(outs) <= min(lefts)  # nobody finished leaving before everyone left
        assert await children_or_none(a) == []  # `ready` went with the last one
        with anyio.fail_after(15):  # the path serves a next round
            await run_round([a, b], 2, log)


async def test_double_barrier_missing_participant_times_out_cleanly(zk):
    with pytest.raises(TimeoutError):
        await DoubleBarrier(zk, PATH, 3).enter(timeout=0.3)
    assert await children_or_none(zk) == []


async def test_double_barrier_leave_when_a_participant_dies(zk, doomed):
    """A participant whose session ends while the others leave does not hold them up."""
    async with doomed() as (victim, expire):
        b1, b2 = DoubleBarrier(zk, PATH, 2), DoubleBarrier(victim, PATH, 2, identifier="zzz-doomed")
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(b1.enter)
                tasks.start_soon(b2.enter)
            await expire()  # its node goes with its session
            await b1.leave(timeout=5)
        assert await children_or_none(zk) == []
