"""The workloads that run inside the benchmark process, one implementation per client:
pipelined creates and reads, single-outstanding setData latency, and watch fan-out.

Each function connects, measures, and closes; every wait is bounded. Figures come back as a
plain dict of floats (ops/s, ms). The pipelined ones keep exactly `in_flight` requests
outstanding on one session (ZooKeeper answers a session in order, so waiting on the oldest
is waiting on the first to finish).
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import threading
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable

import anyio
import anyio.lowlevel
import trio

VALUE = b"v" * 100
WORKLOAD_TIMEOUT_S = 120.0
CONNECT_TIMEOUT_S = 15.0
FANOUT_ROUND_TIMEOUT_S = 10.0


def percentile(samples: list[float], q: float) -> float:
    """The q-th percentile (0..100) by nearest rank."""
    ordered = sorted(samples)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def latency_summary(samples_s: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in samples_s]
    return {
        "p50_ms": percentile(ms, 50),
        "p99_ms": percentile(ms, 99),
        "mean_ms": statistics.fmean(ms),
    }


def fresh_root(tag: str) -> str:
    return f"/bench-{tag}-{uuid.uuid4().hex[:8]}"


# --- our client (anyio: run on Trio by `ours_*`, on asyncio by `ours_*_asyncio`) ---------------


async def _ours_pipelined(op: Callable[[int], Awaitable[object]], ops: int, in_flight: int) -> float:
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        while next_index < ops:
            i = next_index
            next_index += 1
            await op(i)

    start = time.perf_counter()
    async with anyio.create_task_group() as tasks:
        for _ in range(min(in_flight, ops)):
            tasks.start_soon(worker)
    return ops / (time.perf_counter() - start)


async def _ours_basic(hosts: str, ops: int, in_flight: int, latency_samples: int) -> dict[str, float]:
    from ccore.client import connect

    root = fresh_root("ours")
    async with connect(hosts, connect_timeout=CONNECT_TIMEOUT_S) as zk:
        with anyio.fail_after(WORKLOAD_TIMEOUT_S):
            await zk.create(root)
            paths = [f"{root}/n{i:07d}" for i in range(ops)]
            creates = await _ours_pipelined(lambda i: zk.create(paths[i], VALUE), ops, in_flight)
            reads = await _ours_pipelined(lambda i: zk.get(paths[i]), ops, in_flight)
            samples = []
            for _ in range(latency_samples):
                start = time.perf_counter()
                await zk.set(root, VALUE)
                samples.append(time.perf_counter() - start)
    return {
        "creates_per_s": creates,
        "reads_per_s": reads,
        **{f"set_{k}": v for k, v in latency_summary(samples).items()},
    }


async def _ours_fanout(watcher_hosts: list[str], writer_hosts: str, watchers: int, rounds: int) -> list[float]:
    from ccore.client import connect

    path = fresh_root("fanout")
    results: list[float] = []
    # No cancel scope around the entries: each client's task group lives on the exit stack, and
    # a scope opened here would close inside them. connect_timeout bounds each connection.
    async with contextlib.AsyncExitStack() as stack:
        writer = await stack.enter_async_context(connect(writer_hosts, connect_timeout=CONNECT_TIMEOUT_S))
        with anyio.fail_after(FANOUT_ROUND_TIMEOUT_S):
            await writer.create(path, VALUE)
        clients = [
            await stack.enter_async_context(
                connect(
                    watcher_hosts[i % len(watcher_hosts)],
                    connect_timeout=CONNECT_TIMEOUT_S,
                )
            )
            for i in range(watchers)
        ]
        for _ in range(rounds):
            told: list[float] = []
            with anyio.fail_after(FANOUT_ROUND_TIMEOUT_S):
                armed = []

                async def arm(zk, armed=armed) -> None:
                    await zk.sync(path)  # the watcher's server has the node: get cannot fail
                    _, _, watch = await zk.get(path, watch=True)
                    armed.append(watch)

                async with anyio.create_task_group() as tasks:
                    for zk in clients:
                        tasks.start_soon(arm, zk)

                async def wait(watch, told=told) -> None:
                    await watch
                    told.append(time.perf_counter())

                async with anyio.create_task_group() as tasks:
                    for watch in armed:
                        tasks.start_soon(wait, watch)
                    await anyio.lowlevel.checkpoint()  # the waiters are waiting
                    start = time.perf_counter()
                    await writer.set(path, VALUE)
            results.append(max(told) - start)
    return results


def ours_basic(hosts: str, ops: int, in_flight: int, latency_samples: int) -> dict[str, float]:
    return trio.run(_ours_basic, hosts, ops, in_flight, latency_samples)


def ours_fanout(watcher_hosts: list[str], writer_hosts: str, watchers: int, rounds: int) -> list[float]:
    return trio.run(_ours_fanout, watcher_hosts, writer_hosts, watchers, rounds)


def ours_basic_asyncio(hosts: str, ops: int, in_flight: int, latency_samples: int) -> dict[str, float]:
    return asyncio.run(_ours_basic(hosts, ops, in_flight, latency_samples))


def ours_fanout_asyncio(watcher_hosts: list[str], writer_hosts: str, watchers: int, rounds: int) -> list[float]:
    return asyncio.run(_ours_fanout(watcher_hosts, writer_hosts, watchers, rounds))


# --- kazoo ----------------------------------------------------------------------------------


def _kazoo(hosts: str, **options):
    from kazoo.client import KazooClient

    zk = KazooClient(hosts=hosts, timeout=10.0, **options)
    zk.start(timeout=CONNECT_TIMEOUT_S)
    return zk


def _kazoo_close(zk) -> None:
    try:
        zk.stop()
    finally:
        zk.close()


def _kazoo_pipelined(submit: Callable[[int], object], ops: int, in_flight: int) -> float:
    window: deque = deque()
    start = time.perf_counter()
    for i in range(ops):
        if len(window) >= in_flight:
            window.popleft().get(timeout=WORKLOAD_TIMEOUT_S)
        window.append(submit(i))
    while window:
        window.popleft().get(timeout=WORKLOAD_TIMEOUT_S)
    return ops / (time.perf_counter() - start)


def kazoo_basic(hosts: str, ops: int, in_flight: int, latency_samples: int) -> dict[str, float]:
    root = fresh_root("kazoo")
    zk = _kazoo(hosts)
    try:
        zk.create(root)
        paths = [f"{root}/n{i:07d}" for i in range(ops)]
        creates = _kazoo_pipelined(lambda i: zk.create_async(paths[i], VALUE), ops, in_flight)
        reads = _kazoo_pipelined(lambda i: zk.get_async(paths[i]), ops, in_flight)
        samples = []
        for _ in range(latency_samples):
            start = time.perf_counter()
            zk.set(root, VALUE)
            samples.append(time.perf_counter() - start)
    finally:
        _kazoo_close(zk)
    return {
        "creates_per_s": creates,
        "reads_per_s": reads,
        **{f"set_{k}": v for k, v in latency_summary(samples).items()},
    }


def kazoo_fanout(watcher_hosts: list[str], writer_hosts: str, watchers: int, rounds: int) -> list[float]:
    path = fresh_root("fanout")
    writer = _kazoo(writer_hosts)
    clients = []
    results: list[float] = []
    try:
        writer.create(path, VALUE)
        for i in range(watchers):
            clients.append(_kazoo(watcher_hosts[i % len(watcher_hosts)]))
        for _ in range(rounds):
            lock = threading.Lock()
            told: list[float] = []
            everyone = threading.Event()

            def on_event(_event, told=told, everyone=everyone, lock=lock) -> None:
                now = time.perf_counter()
                with lock:
                    told.append(now)
                    if len(told) == watchers:
                        everyone.set()

            pending = []
            for zk in clients:
                pending.append((zk, zk.sync_async(path)))
            for _, sync in pending:
                sync.get(timeout=FANOUT_ROUND_TIMEOUT_S)
            gets = [zk.get_async(path, watch=on_event) for zk in clients]
            for get in gets:
                get.get(timeout=FANOUT_ROUND_TIMEOUT_S)
            start = time.perf_counter()
            writer.set(path, VALUE)
            if not everyone.wait(FANOUT_ROUND_TIMEOUT_S):
                raise TimeoutError(f"only {len(told)} of {watchers} kazoo watchers told within {FANOUT_ROUND_TIMEOUT_S} s")
            results.append(max(told) - start)
    finally:
        for zk in [writer, *clients]:
            with contextlib.suppress(Exception):
                _kazoo_close(zk)
    return results


BASIC = {"ccore": ours_basic, "ccore-asyncio": ours_basic_asyncio, "kazoo": kazoo_basic}
FANOUT = {"ccore": ours_fanout, "ccore-asyncio": ours_fanout_asyncio, "kazoo": kazoo_fanout}
