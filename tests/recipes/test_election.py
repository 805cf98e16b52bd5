"""Election: one leader at a time, in campaign order; resign; observe; a leadership scope that
ends the moment leadership may be lost."""

from __future__ import annotations

import itertools

import anyio
import pytest

from ccore.recipes import Election, LostError
from tests.polling import wait_for

# Every async test on Trio and on asyncio (see tests/client/conftest.py).
pytestmark = pytest.mark.anyio

PATH = "/election"


async def test_leaders_in_campaign_order(connect_zk):
    terms: list[tuple[bytes, int, float, float]] = []
    async with connect_zk() as a, connect_zk() as b:
        observer = Election(a, PATH)
        assert await observer.leader() is None
        go = anyio.Event()
        async with anyio.create_task_group() as tasks:

            async def candidate(zk, name: bytes) -> None:
                async with Election(zk, PATH, name).leadership() as token:
                    start = anyio.current_time()
                    assert await observer.leader() == name
                    await go.wait()
                    await anyio.sleep(0.05)
                    terms.append((name, token, start, anyio.current_time()))

            async def queued(n: int) -> bool:
                return len(await observer.candidates()) >= n

            for i, zk in enumerate((a, b, a)):
                tasks.start_soon(candidate, zk, f"node-{i}".encode())
                await wait_for(queued, i + 1)  # queued in this order
            assert await observer.candidates() == [b"node-0", b"node-1", b"node-2"]
            go.set()
        assert [t[0] for t in terms] == [b"node-0", b"node-1", b"node-2"]
        for (_, t1, _, e1), (_, t2, s2, _) in itertools.pairwise(terms):
            assert t1 < t2 and e1 <= s2
        assert await observer.leader() is None


async def test_campaign_resign_and_observe(connect_zk):
    async with connect_zk() as a, connect_zk() as b:
        ea, eb = Election(a, PATH, b"A"), Election(b, PATH, b"B")
        seen: list[bytes | None] = []
        async with Election(a, PATH).observe() as leaders, anyio.create_task_group() as tasks:

            async def watch() -> None:
                async for leader in leaders:
                    seen.append(leader)

            tasks.start_soon(watch)
            await anyio.sleep(0.1)
            await ea.campaign()
            assert ea.is_leader
            with pytest.raises(TimeoutError):
                await eb.campaign(timeout=0.2)
            tasks.start_soon(eb.campaign)

            async def both_candidates() -> bool:
                return len(await ea.candidates()) >= 2

            await wait_for(both_candidates)
            await ea.resign()
            await wait_for(lambda: eb.is_leader and seen[-1:] == [b"B"])
            await eb.resign()
            await wait_for(lambda: seen[-1:] == [None] and len(seen) >= 4)
            tasks.cancel_scope.cancel()
        assert seen == [None, b"A", b"B", None]


async def test_leadership_ends_when_the_session_expires(connect_zk, doomed):
    """The session is closed behind the leader's back: the scope is cancelled, and a rival
    leads with a higher token."""
    async with doomed(session_timeout=4) as (leader_zk, expire), connect_zk() as rival_zk:
        t: dict[str, float] = {}
        old_leads = anyio.Event()
        with anyio.fail_after(20):
            async with anyio.create_task_group() as tasks:

                async def leader() -> None:
                    with pytest.raises(LostError):
                        async with Election(leader_zk, PATH, b"old").leadership() as token:
                            t["old_token"] = token
                            old_leads.set()
                            await expire()
                            t["closed"] = anyio.current_time()
                            try:
                                await anyio.sleep_forever()
                            finally:
                                t["old_stopped"] = anyio.current_time()

                async def rival() -> None:
                    await old_leads.wait()
                    async with Election(rival_zk, PATH, b"new").leadership() as token:
                        t["new_token"] = token
                        t["new_started"] = anyio.current_time()

                tasks.start_soon(leader)
                tasks.start_soon(rival)
    assert t["new_token"] > t["old_token"]
    assert t["old_stopped"] - t["closed"] < 2  # told LOST at the reconnection


async def test_leadership_cancel_on_suspend(zk_server, connect_zk, open_proxy):
    proxy = await open_proxy(zk_server.port)
    async with connect_zk(via=proxy.connect_string) as zk, anyio.create_task_group() as tasks:

        async def restore_soon() -> None:
            await anyio.sleep(0.3)
            proxy.restore()

        with anyio.fail_after(10):
            with pytest.raises(LostError, match="suspended"):
                async with Election(zk, PATH, b"x").leadership(cancel_on_suspend=True):
                    proxy.cut()
                    tasks.start_soon(restore_soon)
                    await anyio.sleep_forever()
            assert await Election(zk, PATH).candidates() == []
