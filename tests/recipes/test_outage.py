"""No orphaned nodes when no server answers for longer than a session timeout, yet the session
lives: a recipe's delete is retried until it goes through (a guaranteed delete), never given up
on a timer, and a contender never queues behind a node of its own client on its way out.

The chaos suite found it (3 lock workers, 3 servers, all killed for 3-6 s): the quorum is down,
so nobody expires sessions, and a new leader gives every session a fresh deadline; the delete
of a released lock's node had given up after session timeout + 1 s, and every later acquire by
that client queued behind its own orphan. Here a standalone server behind a proxy plays the
ensemble: killed (no server, no expiry) for longer than that, then restarted (fresh deadlines).
DoubleBarrier and Party/Presence (so ServiceRegistry) had the same timer: a participant or
member that had gone stayed counted. A Spy whose deletes fail plays the same without a server
restart, and shows that a recipe making a node again on a path waits for its client's delete
in progress there first.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import pytest

from ccore.client import Client, connect
from ccore.recipes import (
    DoubleBarrier,
    Election,
    Lease,
    Lock,
    LockingQueue,
    Party,
    ReadWriteLock,
    Semaphore,
    ServiceInstance,
    ServiceRegistry,
)
from tests.polling import wait_for

# Every async test on Trio and on asyncio (see tests/client/conftest.py).
pytestmark = pytest.mark.anyio

SESSION_TIMEOUT_S = 4.0
# The old cleanup gave up after session timeout + 1 s; the outage lasts longer than that.
OUTAGE_S = SESSION_TIMEOUT_S + 2.0
REACQUIRE_S = 15.0  # after the outage: reconnect, the delete goes through, our turn comes
POLL_S = 0.05


async def names(zk: Client, path: str) -> list[str]:
    try:
        return sorted(await zk.children(path))
    except Exception:  # noqa: BLE001 - NoNode: no nodes
        return []


async def until(done: Callable[[], Awaitable[bool]], timeout_s: float = REACQUIRE_S) -> None:
    """Poll `done()` until it is true: TooSlowError after `timeout_s` (or that many polls)."""
    with anyio.fail_after(timeout_s):
        for _ in range(int(timeout_s / POLL_S) + 1):
            if await done():
                return
            await anyio.sleep(POLL_S)
    raise TimeoutError


class Outage:
    """A standalone server behind a proxy, made unreachable without expiring any session: the
    proxy refuses connections and the server is killed (so nothing expires), then restarted
    (its sessions get fresh deadlines) and the proxy opened again -- what a lost quorum does."""

    def __init__(self, server: Any, proxy: Any) -> None:
        self.server = server
        self.proxy = proxy
        self.began_at = 0.0

    async def begin(self) -> None:
        self.proxy.cut()
        await anyio.to_thread.run_sync(self.server.kill)
        self.began_at = anyio.current_time()

    async def end(self) -> None:
        await anyio.sleep_until(self.began_at + OUTAGE_S)
        await anyio.to_thread.run_sync(self.server.restart)  # the kill is done: this starts it
        self.proxy.restore()


@pytest.fixture
async def outage(fresh_server, open_proxy, root) -> AsyncIterator[tuple[Any, Outage]]:
    """(connect, outage): `connect()` makes a client of a fresh server through a proxy,
    chrooted to `root`; `outage` makes that server unreachable and back (see Outage)."""
    server = fresh_server(tick_time_ms=500)
    proxy = await open_proxy(server.port)
    async with connect(server.connect_string) as admin:
        await admin.create(root)

    def make() -> Any:
        return connect(proxy.connect_string + root, session_timeout=SESSION_TIMEOUT_S)

    yield make, Outage(server, proxy)


async def survived(zk: Client, session_id: int) -> None:
    """The test is only a test of the bug if the session lived through the outage."""
    with anyio.fail_after(REACQUIRE_S):
        await zk.sync()
    assert zk.session_id == session_id, "the session expired: the outage did not keep it alive"


class GiveBack(Exception):
    """Raised in a LockingQueue.take() block: the item goes back to the queue."""


async def stuck(attempts: dict[str, Any]) -> list[str]:
    """Run every `name: async fn() -> truthy` at once, each for at most REACQUIRE_S; the names
    of those that did not succeed in time (all of them reported, not just the first)."""
    failed: list[str] = []

    async def run(name: str, fn: Any) -> None:
        with anyio.move_on_after(REACQUIRE_S):
            if await fn():
                return
        failed.append(name)

    async with anyio.create_task_group() as tasks:
        for name, fn in attempts.items():
            tasks.start_soon(run, name, fn)
    return sorted(failed)


@pytest.mark.slow
async def test_release_during_outage_leaves_no_orphan(outage):
    """Lock, ReadWriteLock, Semaphore, Election, Lease and LockingQueue.take each let go while
    no server answers for longer than the session timeout; once the server is back, the same
    client queues again behind nothing of its own, and another client takes the lease and item."""
    make, out = outage
    async with make() as a, make() as b:
        lock, rw = Lock(a, "/lock"), ReadWriteLock(a, "/rw")
        sem = Semaphore(a, "/sem", max_leases=1)
        election = Election(a, "/election", b"a")
        lease = Lease(a, "/lease", b"a")
        queue = LockingQueue(a, "/queue")
        await queue.put(b"job")
        for held in (lock, rw.write_lock, sem, lease):
            await held.acquire(timeout=5)
        await election.campaign(timeout=5)
        sessions = (a.session_id, b.session_id)
        began = anyio.Event()

        async def take_and_give_back(*, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
            with pytest.raises(GiveBack):
                async with queue.take(timeout=5):
                    task_status.started()
                    await began.wait()
                    raise GiveBack

        with anyio.fail_after(OUTAGE_S + 20):
            async with anyio.create_task_group() as tasks:
                await tasks.start(take_and_give_back)
                await out.begin()
                began.set()
                for release in (lock.release, rw.write_lock.release, sem.release, lease.release, election.resign):
                    tasks.start_soon(release)
                await out.end()  # whether or not the releases have given up by then
        await survived(a, sessions[0])
        await survived(b, sessions[1])

        async def lease_for_b() -> int:
            return await Lease(b, "/lease", b"b").acquire()

        async def item_for_b() -> bool:
            return (await LockingQueue(b, "/queue").get()).data == b"job"

        assert await stuck({
            "Lock": Lock(a, "/lock").acquire,
            "WriteLock": ReadWriteLock(a, "/rw").write_lock.acquire,
            "Semaphore": Semaphore(a, "/sem", max_leases=1).acquire,
            "Election": Election(a, "/election", b"a").campaign,
            "Lease": lease_for_b,
            "LockingQueue": item_for_b,
        }) == []  # fmt: skip
        for path in ("/lock", "/rw", "/sem", "/election"):
            assert len(await names(a, path)) == 1, path  # only the new contender's node


@pytest.mark.slow
async def test_cancelled_wait_during_outage_leaves_no_orphan(outage):
    """Waiters cancelled while no server answers (so leave() runs in a cancelled scope): their
    nodes go once the server is back, and the queue moves on past them."""
    make, out = outage
    async with make() as a, make() as b:
        holders = [Lock(b, "/lock"), Semaphore(b, "/sem", max_leases=1), Election(b, "/election", b"b")]
        await holders[0].acquire(timeout=5)
        await holders[1].acquire(timeout=5)
        await holders[2].campaign(timeout=5)
        waiters = [Lock(a, "/lock").acquire, Semaphore(a, "/sem", max_leases=1).acquire, Election(a, "/election", b"a").campaign]
        paths = ["/lock", "/sem", "/election"]
        sessions = (a.session_id, b.session_id)
        scopes = [anyio.CancelScope() for _ in waiters]
        cancelled: list[str] = []

        async def wait(acquire: Any, scope: anyio.CancelScope, path: str) -> None:
            with scope:
                await acquire()
                pytest.fail(f"{path}: acquired what b holds")
            cancelled.append(path)

        with anyio.fail_after(OUTAGE_S + 10):
            async with anyio.create_task_group() as tasks:
                for acquire, scope, path in zip(waiters, scopes, paths, strict=True):
                    tasks.start_soon(wait, acquire, scope, path)

                async def all_queued() -> bool:
                    return all([len(await names(b, p)) == 2 for p in paths])

                await wait_for(all_queued)  # all three queued behind b
                await out.begin()
                for scope in scopes:
                    scope.cancel()
        assert sorted(cancelled) == sorted(paths)
        await out.end()
        await survived(a, sessions[0])
        await survived(b, sessions[1])

        with anyio.fail_after(REACQUIRE_S):
            await holders[0].release()
            await holders[1].release()
            await holders[2].resign()
            # Nothing of a's is left in front: b gets each again, then a does.
            for path, again in (("/lock", Lock(b, "/lock")), ("/sem", Semaphore(b, "/sem", max_leases=1))):
                assert await again.acquire() > 0, path
                await again.release()
            assert await Election(b, "/election", b"b").campaign() > 0
            assert await Lock(a, "/lock").acquire() > 0


@pytest.mark.slow
async def test_failed_delete_is_retried_until_it_succeeds(zk, connect_zk, spy):
    """A release whose delete cannot get through for longer than the session timeout (the
    session living on) does not give up: the delete carries on in the background, and the
    client's next contender waits for it instead of queueing behind its own orphan -- while a
    contender of the same client that is legitimately waiting keeps its node."""
    s = spy(zk)
    lock = Lock(s, "/lock")
    await lock.acquire(timeout=5)
    (held,) = await names(zk, "/lock")
    got: dict[str, int] = {}
    queued = Lock(zk, "/lock", b"queued")  # the same client, queued behind the holder for real
    again = Lock(s, "/lock", b"again")
    async with anyio.create_task_group() as tasks:

        async def acquire(name: str, lock: Lock) -> None:
            got[name] = await lock.acquire(timeout=30)

        async def two_nodes() -> bool:
            return len(await names(zk, "/lock")) >= 2

        tasks.start_soon(acquire, "queued", queued)
        await wait_for(two_nodes)
        s.fail_deletes = True
        started = anyio.current_time()
        await lock.release()  # waits a session timeout for the delete, then leaves it running
        assert anyio.current_time() - started >= zk.session_timeout - 0.1
        await anyio.sleep(1.5)  # past the old give-up point (session timeout + 1 s)
        assert held in await names(zk, "/lock")

        # The same client's next contender waits for that delete rather than queue behind it.
        tasks.start_soon(acquire, "again", again)
        await anyio.sleep(0.5)
        assert len(await names(zk, "/lock")) == 2  # the node on its way out and `queued`'s
        s.fail_deletes = False
        with anyio.fail_after(10):  # the delete goes through: `queued` (not deleted) is next
            await wait_for(lambda: "queued" in got, timeout_s=10)
            await wait_for(two_nodes, timeout_s=10)
        assert held not in await names(zk, "/lock")
        assert await queued.contenders() == [b"queued", b"again"]
        assert "again" not in got
        await queued.release()
        await wait_for(lambda: "again" in got, timeout_s=10)
        await again.release()
    assert await names(zk, "/lock") == []


async def lingering(checks: dict[str, Callable[[], Awaitable[bool]]]) -> list[str]:
    """Poll every `name: async fn() -> bool` at once until it is true, each for at most
    REACQUIRE_S; the names of those that never were (all of them, not just the first)."""
    failed: list[str] = []

    async def run(name: str, done: Callable[[], Awaitable[bool]]) -> None:
        try:
            await until(done)
        except TimeoutError:
            failed.append(name)

    async with anyio.create_task_group() as tasks:
        for name, done in checks.items():
            tasks.start_soon(run, name, done)
    return sorted(failed)


@pytest.mark.slow
async def test_leaving_during_outage_leaves_no_participant_or_member(outage):
    """A DoubleBarrier enter given up, a Party and a ServiceRegistry registration left, while no
    server answers for longer than the session timeout: once the server is back their nodes go,
    so nobody counts a participant or member that has left, and the next round starts clean."""
    make, out = outage
    async with make() as a, make() as b:
        barrier = DoubleBarrier(a, "/barrier", 2, identifier="a")
        party = Party(a, "/party", b"a")
        registry = ServiceRegistry(a, "/services")
        sessions = (a.session_id, b.session_id)
        leave = anyio.Event()

        async def wait_at_barrier(*, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
            with anyio.CancelScope() as scope:
                task_status.started(scope)
                await barrier.enter()  # alone of 2: waits until cancelled
                pytest.fail("entered a barrier of 2 alone")

        async def member(*, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
            async with party:
                task_status.started()
                await leave.wait()

        async def registered(*, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
            async with registry.registered(ServiceInstance("api", address="10.0.0.1", port=80)):
                task_status.started()
                await leave.wait()

        async def barrier_joined() -> bool:
            return await names(b, "/barrier") == ["a"]

        with anyio.fail_after(OUTAGE_S + 20):
            async with anyio.create_task_group() as tasks:
                waiting = await tasks.start(wait_at_barrier)
                await tasks.start(member)
                await tasks.start(registered)
                await until(barrier_joined, 5)
                assert await Party(b, "/party").members() == [b"a"]
                await out.begin()
                waiting.cancel()
                leave.set()
            await out.end()  # whether or not the deletes have given up by then
        await survived(a, sessions[0])
        await survived(b, sessions[1])

        async def barrier_empty() -> bool:
            return await names(b, "/barrier") == []

        async def party_empty() -> bool:
            return await Party(b, "/party").members() == []

        async def registry_empty() -> bool:
            return await ServiceRegistry(b, "/services").instances("api") == []

        assert await lingering({
            "DoubleBarrier": barrier_empty, "Party": party_empty, "ServiceRegistry": registry_empty,
        }) == []  # fmt: skip
        # The next round needs both: a's last node does not stand in for b (nor for a).
        with pytest.raises(TimeoutError):
            await DoubleBarrier(b, "/barrier", 2, identifier="b").enter(timeout=1)
        with anyio.fail_after(REACQUIRE_S):
            async with anyio.create_task_group() as tasks:
                for zk, name in ((a, "a"), (b, "b")):
                    tasks.start_soon(DoubleBarrier(zk, "/barrier", 2, identifier=name).enter)
        assert await names(b, "/barrier") == ["a", "b", "ready"]


@pytest.mark.slow
async def test_barrier_delete_is_retried_and_waited_for(zk, spy):
    """A DoubleBarrier enter given up while its delete cannot get through for longer than the
    session timeout: the node goes once it can (else it counts as a participant for as long as
    the session lives), and an enter again with the same identifier waits for that delete
    rather than take the node on its way out for its own (and then lose it)."""
    s = spy(zk)
    barrier = DoubleBarrier(s, "/barrier", 2, identifier="a")

    async def give_up() -> None:
        s.fail_deletes = True
        started = anyio.current_time()
        with pytest.raises(TimeoutError):
            await barrier.enter(timeout=0.5)  # waits a session timeout for the delete
        assert anyio.current_time() - started >= zk.session_timeout - 0.1
        await anyio.sleep(1.5)  # past the old give-up point (session timeout + 1 s)
        assert await names(zk, "/barrier") == ["a"]

    async def barrier_empty() -> bool:
        return await names(zk, "/barrier") == []

    await give_up()
    s.fail_deletes = False
    await until(barrier_empty, 10)

    await give_up()
    old = await zk.exists("/barrier/a")
    assert old is not None
    entered: list[str] = []

    async def enter(name: str, barrier: DoubleBarrier) -> None:
        await barrier.enter(timeout=20)
        entered.append(name)

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(enter, "a", barrier)
            await anyio.sleep(0.5)
            assert (await zk.exists("/barrier/a")).czxid == old.czxid  # not taken for ours
            s.fail_deletes = False
            tasks.start_soon(enter, "b", DoubleBarrier(zk, "/barrier", 2, identifier="b"))
    assert sorted(entered) == ["a", "b"]
    assert (await zk.exists("/barrier/a")).czxid != old.czxid


@pytest.mark.slow
async def test_party_delete_is_retried_and_waited_for(zk, spy):
    """A Party left while its delete cannot get through for longer than the session timeout:
    the member goes once the delete can (else it stays listed for as long as the session
    lives), and entering the same Party again (the same node) waits for that delete rather than
    take the node on its way out for its own, and see it deleted under it."""
    s = spy(zk)
    party = Party(s, "/party", b"a")
    async with party:
        (node,) = await names(zk, "/party")
        first = await zk.exists(f"/party/{node}")
        s.fail_deletes = True
        started = anyio.current_time()
    assert anyio.current_time() - started >= zk.session_timeout - 0.1
    await anyio.sleep(1.5)  # past the old give-up point (session timeout + 1 s)
    assert await names(zk, "/party") == [node]

    entered, leave = anyio.Event(), anyio.Event()

    async def member() -> None:
        async with party:
            entered.set()
            await leave.wait()

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(member)
            await anyio.sleep(0.5)
            assert not entered.is_set()  # waiting for our delete in progress
            s.fail_deletes = False
            await entered.wait()
            again = await zk.exists(f"/party/{node}")
            assert again is not None and again.czxid != first.czxid
            await anyio.sleep(0.5)  # nothing of ours deletes it now
            assert (await zk.exists(f"/party/{node}")).czxid == again.czxid
            assert await Party(zk, "/party").members() == [b"a"]
            leave.set()
    assert await names(zk, "/party") == []


@pytest.mark.slow
async def test_duplicate_node_delete_is_retried_until_it_succeeds(zk, spy):
    """A contender that finds a second node of its own (a create applied twice) and times out
    while the delete of that duplicate cannot get through: the duplicate goes once it can, as
    the contender's own node does (it would otherwise block the lock's queue for good)."""
    await zk.create("/lock")  # else the directory's create would be the one made twice
    s = spy(zk)
    s.duplicate_creates = 1
    s.fail_deletes = True
    with pytest.raises(TimeoutError):
        await Lock(s, "/lock").acquire(timeout=1)
    assert len(await names(zk, "/lock")) == 2
    s.fail_deletes = False

    async def lock_empty() -> bool:
        return await names(zk, "/lock") == []

    await until(lock_empty, 10)
    assert await Lock(zk, "/lock").acquire(timeout=5) > 0
