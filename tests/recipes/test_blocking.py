"""The blocking facade: recipes from plain threads, the client's event loop thread on Trio
(the default) and on asyncio."""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
import uuid

import pytest

from ccore import NoNodeError
from ccore.client import blocking
from ccore.recipes import LostError
from ccore.recipes import blocking as br


@pytest.fixture(params=["trio", "asyncio"])
def bzk(hosts, request):
    root = f"/recipes-blocking-{uuid.uuid4().hex[:12]}"
    with blocking.connect(hosts) as admin:
        admin.create(root)
        with blocking.connect(hosts, chroot=root, session_timeout=4, backend=request.param) as client:
            yield client
        admin.delete(root, recursive=True)


def test_lock_from_threads(bzk):
    spans: list[tuple[float, float, int]] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(5):
                lock = br.Lock(bzk, "/lock")
                with lock as token:
                    start = time.monotonic()
                    lock.check()
                    time.sleep(0.005)
                    spans.append((start, time.monotonic(), token))
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    spans.sort()
    assert len(spans) == 20
    for (_, e1, t1), (s2, _, t2) in itertools.pairwise(spans):
        assert e1 <= s2 and t1 < t2
    # Empty, or gone: Apache ZooKeeper's container sweep may reap the empty lock node.
    with contextlib.suppress(NoNodeError):
        assert bzk.children("/lock") == []


def test_lost_is_reported_to_the_thread(bzk):
    lock = br.Lock(bzk, "/lock")
    with pytest.raises(LostError, match="deleted"), lock:
        (name,) = bzk.children("/lock")
        bzk.delete(f"/lock/{name}")
        assert lock.lost.wait(10)
        with pytest.raises(LostError):
            lock.check()


def test_acquire_timeout_and_manual_release(bzk):
    a, b = br.Lock(bzk, "/lock"), br.Lock(bzk, "/lock")
    token = a.acquire()
    assert a.is_acquired and token == a.token

    with pytest.raises(TimeoutError):
        b.acquire(timeout=0.2)
    a.release()
    assert b.acquire(timeout=5) > token
    b.release()


def test_other_recipes(bzk):
    with br.Lease(bzk, "/lease", b"NodeA", ttl=bzk.session_timeout) as lease:
        assert br.Lease.holder(bzk, "/lease") == b"NodeA" and lease.token > 0
    assert br.Lease.holder(bzk, "/lease") is None
    election = br.Election(bzk, "/election", b"me")
    with election.leadership() as token:
        assert election.leader() == b"me" and token > 0
    assert br.Counter(bzk, "/counter").add(3) == 3
    q = br.Queue(bzk, "/queue")
    q.put(b"x")
    assert q.get(timeout=5) == b"x"
    lq = br.LockingQueue(bzk, "/lq")
    lq.put(b"job")
    with lq.take(timeout=5) as item:
        assert item.data == b"job"
    assert lq.length() == 0
    with br.Semaphore(bzk, "/sem", max_leases=2) as token:
        assert token > 0
    rw = br.ReadWriteLock(bzk, "/rw")
    with rw.read_lock, br.ReadWriteLock(bzk, "/rw").read_lock:
        pass
    with br.Party(bzk, "/party", b"p") as party:
        assert party.members() == [b"p"]
    registry = br.ServiceRegistry(bzk, "/services")
    instance = br.ServiceInstance("api", address="h", port=1)
    with registry.cache("api") as cache, registry.registered(instance):
        assert registry.instances("api") == [instance]
        cache.wait_for(lambda xs: xs == [instance], timeout=5)
        assert cache.choose() == instance
    with br.DataWatch(bzk, "/counter") as data, br.ChildrenWatch(bzk, "/") as children, br.TreeCache(bzk, "/services") as tree:
        assert data.value[0] == b"3"
        assert "counter" in children.value
        assert tree.get("/services") is not None
    barrier = br.Barrier(bzk, "/barrier")
    barrier.create()
    barrier.remove()
    barrier.wait(timeout=1)
    with br.DoubleBarrier(bzk, "/double", 1):
        pass
