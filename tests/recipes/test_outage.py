"""No orphaned nodes when no server answers for longer than a session timeout, yet the session
lives: a recipe's delete is retried until it goes through (a guaranteed delete), never given up
on a timer, and a contender never queues behind a node of its own client on its way out.

The chaos suite found it (3 lock workers, 3 servers, all killed for 3-6 s): the quorum is down,
so nobody expires sessions, and a new leader gives every session a fresh deadline; the delete
of a released lock's node had given up after session timeout + 1 s, and every later acquire by
that client queued behind its own orphan. Here a standalone server behind a proxy plays the
ensemble: killed (no server, no expiry) for longer than that, then restarted (fresh deadlines).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio

from client import Client, connect
from recipes import Election, Lease, Lock, LockingQueue, ReadWriteLock, Semaphore

SESSION_TIMEOUT_S = 4.0
# The old cleanup gave up after session timeout + 1 s; the outage lasts longer than that.
OUTAGE_S = SESSION_TIMEOUT_S + 2.0
REACQUIRE_S = 15.0  # after the outage: reconnect, the delete goes through, our turn comes


async def names(zk: Client, path: str) -> list[str]:
    try:
        return sorted(await zk.children(path))
    except Exception:  # noqa: BLE001 - NoNode: no nodes
        return []


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
        await trio.to_thread.run_sync(self.server.kill)
        self.began_at = trio.current_time()

    async def end(self) -> None:
        await trio.sleep_until(self.began_at + OUTAGE_S)
        await trio.to_thread.run_sync(self.server.restart)  # the kill is done: this starts it
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
    with trio.fail_after(REACQUIRE_S):
        await zk.sync()
    assert zk.session_id == session_id, "the session expired: the outage did not keep it alive"


class GiveBack(Exception):
    """Raised in a LockingQueue.take() block: the item goes back to the queue."""


async def stuck(attempts: dict[str, Any]) -> list[str]:
    """Run every `name: async fn() -> truthy` at once, each for at most REACQUIRE_S; the names
    of those that did not succeed in time (all of them reported, not just the first)."""
    failed: list[str] = []

    async def run(name: str, fn: Any) -> None:
        with trio.move_on_after(REACQUIRE_S):
            if await fn():
                return
        failed.append(name)

    async with trio.open_nursery() as nursery:
        for name, fn in attempts.items():
            nursery.start_soon(run, name, fn)
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
        began = trio.Event()

        async def take_and_give_back(*, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
            with pytest.raises(GiveBack):
                async with queue.take(timeout=5):
                    task_status.started()
                    await began.wait()
                    raise GiveBack

        with trio.fail_after(OUTAGE_S + 20):
            async with trio.open_nursery() as nursery:
                await nursery.start(take_and_give_back)
                await out.begin()
                began.set()
                for release in (lock.release, rw.write_lock.release, sem.release, lease.release, election.resign):
                    nursery.start_soon(release)
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
        scopes = [trio.CancelScope() for _ in waiters]
        cancelled: list[str] = []

        async def wait(acquire: Any, scope: trio.CancelScope, path: str) -> None:
            with scope:
                await acquire()
                pytest.fail(f"{path}: acquired what b holds")
            cancelled.append(path)

        with trio.fail_after(OUTAGE_S + 10):
            async with trio.open_nursery() as nursery:
                for acquire, scope, path in zip(waiters, scopes, paths):
                    nursery.start_soon(wait, acquire, scope, path)
                with trio.fail_after(5):  # all three queued behind b
                    while not all([len(await names(b, p)) == 2 for p in paths]):
                        await trio.sleep(0.01)
                await out.begin()
                for scope in scopes:
                    scope.cancel()
        assert sorted(cancelled) == sorted(paths)
        await out.end()
        await survived(a, sessions[0])
        await survived(b, sessions[1])

        with trio.fail_after(REACQUIRE_S):
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
    async with trio.open_nursery() as nursery:

        async def acquire(name: str, lock: Lock) -> None:
            got[name] = await lock.acquire(timeout=30)

        nursery.start_soon(acquire, "queued", queued)
        with trio.fail_after(5):
            while len(await names(zk, "/lock")) < 2:
                await trio.sleep(0.01)
        s.fail_deletes = True
        started = trio.current_time()
        await lock.release()  # waits a session timeout for the delete, then leaves it running
        assert trio.current_time() - started >= zk.session_timeout - 0.1
        await trio.sleep(1.5)  # past the old give-up point (session timeout + 1 s)
        assert held in await names(zk, "/lock")

        # The same client's next contender waits for that delete rather than queue behind it.
        nursery.start_soon(acquire, "again", again)
        await trio.sleep(0.5)
        assert len(await names(zk, "/lock")) == 2  # the node on its way out and `queued`'s
        s.fail_deletes = False
        with trio.fail_after(10):  # the delete goes through: `queued` (not deleted) is next
            while "queued" not in got:
                await trio.sleep(0.01)
            while len(await names(zk, "/lock")) < 2:
                await trio.sleep(0.01)
        assert held not in await names(zk, "/lock")
        assert await queued.contenders() == [b"queued", b"again"]
        assert "again" not in got
        await queued.release()
        with trio.fail_after(10):
            while "again" not in got:
                await trio.sleep(0.01)
        await again.release()
    assert await names(zk, "/lock") == []
