"""Lease: the seed scenario -- NodeA owns "Migo Group" with a TTL, dies, NodeB is told and takes
over within the TTL (our server) or the TTL plus a tick (Apache's tick-rounded expiry), and
NodeA's body has stopped before NodeB's starts."""

from __future__ import annotations

import anyio
import pytest

from ccore.recipes import Lease, LostError

# Every async test on Trio and on asyncio (see tests/client/conftest.py).
pytestmark = pytest.mark.anyio

NAME = "/leases/migo-group"


async def test_hold_release_and_holder(zk):
    assert await Lease.holder(zk, NAME) is None
    async with Lease(zk, NAME, b"NodeA", ttl=zk.session_timeout) as lease:
        assert await Lease.holder(zk, NAME) == b"NodeA"
        stat = await zk.exists(NAME)
        assert lease.token == stat.czxid and stat.ephemeralOwner == zk.session_id
        assert lease.is_held and lease.hold is not None and lease.hold.deadline > anyio.current_time()
    assert await Lease.holder(zk, NAME) is None


async def test_ttl_is_the_session_timeout(zk):
    with pytest.raises(ValueError, match="session_timeout"):
        Lease(zk, NAME, b"x", ttl=zk.session_timeout + 1)


async def test_a_ttl_the_server_clamped_says_what_it_granted(connect_zk):
    # The shared servers tick every 0.5 s: a 0.5 s session is raised to their minimum, 1 s.
    async with connect_zk(session_timeout=0.5) as zk:
        assert zk.requested_session_timeout == 0.5 and zk.session_timeout == 1.0
        with pytest.raises(ValueError, match=r"asked for 0.5s but the server granted 1s.*use ttl=1"):
            Lease(zk, NAME, b"x", ttl=0.5)
        Lease(zk, NAME, b"x", ttl=1.0)  # what was granted is accepted


async def test_one_lease_per_name_per_client(zk):
    async with Lease(zk, NAME, b"a"):
        with pytest.raises(RuntimeError, match="already held"):
            await Lease(zk, NAME, b"b").acquire()


async def test_waiter_takes_over_at_once_on_release(connect_zk):
    async with connect_zk() as a, connect_zk() as b:
        got: list[tuple[bytes, int, float]] = []
        async with anyio.create_task_group() as tasks:

            async def owner(zk, value: bytes, hold_s: float) -> None:
                async with Lease(zk, NAME, value) as lease:
                    got.append((value, lease.token, anyio.current_time()))
                    await anyio.sleep(hold_s)

            tasks.start_soon(owner, a, b"NodeA", 0.3)
            await anyio.sleep(0.1)
            tasks.start_soon(owner, b, b"NodeB", 0)
        (va, ta, t_a), (vb, tb, t_b) = got
        assert (va, vb) == (b"NodeA", b"NodeB") and tb > ta
        assert t_b - t_a < 0.3 + 0.5


async def test_cancelled_waiter_leaves_nothing(connect_zk):
    async with connect_zk() as a, connect_zk() as b, Lease(a, NAME, b"NodeA"):
        with pytest.raises(TimeoutError):
            async with Lease(b, NAME, b"NodeB", timeout=0.2):
                pytest.fail("two owners")
        assert await Lease.holder(b, NAME) == b"NodeA"
        async with Lease(b, NAME + "-other", b"free", timeout=2):
            pass  # the failed attempt released its claim


async def test_lost_create_reply_is_ours(zk, spy):
    await zk.ensure_path("/leases")
    s = spy(zk)
    s.lose_create_replies = 1
    async with Lease(s, NAME, b"NodeA") as lease:
        assert (await zk.exists(NAME)).czxid == lease.token
    assert await zk.exists(NAME) is None


@pytest.mark.slow
async def test_seed_failover(zk_server, connect_zk, open_proxy):
    """NodeA's connection dies (as when its process is killed); NodeB, waiting, is told the
    name was deleted and takes over."""
    ttl = 2.0
    proxy = await open_proxy(zk_server.port)
    t: dict[str, float] = {}
    a_owns = anyio.Event()
    async with connect_zk(session_timeout=ttl, via=proxy.connect_string) as a, connect_zk(session_timeout=ttl) as b:
        assert a.session_timeout == ttl
        with anyio.fail_after(4 * ttl + 10):
            async with anyio.create_task_group() as tasks:

                async def node_a() -> None:
                    with pytest.raises(LostError):
                        async with Lease(a, NAME, b"NodeA", ttl=ttl) as lease:
                            t["a_token"] = lease.token
                            a_owns.set()
                            await anyio.sleep(ttl)  # heartbeats keep it
                            assert lease.is_held
                            proxy.cut()  # NodeA is gone for the server
                            t["killed"] = anyio.current_time()
                            try:
                                await anyio.sleep_forever()
                            finally:
                                t["a_stopped"] = anyio.current_time()

                async def node_b() -> None:
                    await a_owns.wait()
                    async with Lease(b, NAME, b"NodeB", ttl=ttl) as lease:
                        t["b_started"] = anyio.current_time()
                        t["b_token"] = lease.token
                        assert await Lease.holder(b, NAME) == b"NodeB"
                    proxy.restore()  # NodeA's client finds its session expired and moves on

                tasks.start_soon(node_a)
                tasks.start_soon(node_b)
    assert t["a_stopped"] < t["b_started"]
    assert t["b_token"] > t["a_token"]
    ratio = (t["b_started"] - t["killed"]) / ttl
    limit = 1.1 if zk_server.kind == "ccore" else 1.1 + zk_server.tick_time_ms / 1000 / ttl
    assert ratio < limit, f"takeover took {ratio:.2f} x TTL"
