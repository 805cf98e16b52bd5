"""`python -m bench --scale N`: both systems with N znodes, side by side.

For each system, a fresh 3-server ensemble (fsync on, tickTime 2000 ms, snapCount 100,000):

1. fill: N znodes of 100 bytes, 300 creates in flight from our Trio client (the same client
   for both), while a reader on the leader measures its worst read latency (periodic
   snapshots happen during the fill);
2. snapshot: 110,000 setData on the full tree (past one snapCount, so every server takes a
   periodic snapshot of all of it), with the reader on the leader again;
3. memory: each server's resident set (VmRSS), and per znode;
4. resync: a follower is killed, its data dir emptied, and restarted; how long until it
   serves the last znode, and the leader's worst read latency meanwhile;
5. restart: every server killed (SIGKILL) and restarted; how long until the last znode can
   be read again.

Progress goes to stderr; the table (with ratios ccore/ZooKeeper) to stdout.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs
import trio

from ccore.client import connect
from chaos.data_loss import wipe_data_dir

from .systems import System, followers, leader

VALUE = b"x" * 100
IN_FLIGHT = 300
READ_EVERY_S = 0.005
SYNC_TIMEOUT_S = 300.0
SNAPSHOT_WRITES = 110_000  # the ensembles' snapCount (100,000) and a margin
# What a wiped server keeps: its identity, its config and its log file.
KEEP = ("myid", "zoo.cfg", "server.log", "zookeeper.log")


FAILED = math.nan  # a figure whose phase failed (the run goes on; the table says "failed")


def zookeeper_heap_mb(znodes: int) -> int:
    """ZooKeeper's heap for a tree of `znodes`: zkServer.sh's 1000 MB, or 2 GB per million
    znodes if more. With 1000 MB at a million znodes (865-1,122 MB RSS after the fill) its
    whole-ensemble restart had not served the last znode after several minutes in three
    attempts of five; with 2 GB it came back in 9-10 s in three of three. An operator sizes
    the heap to the tree, and so does the benchmark."""
    return max(1000, math.ceil(znodes / 1_000_000 * 2000))


@attrs.define
class ScaleResult:
    creates_per_s: float = FAILED
    fill_worst_read_ms: float = FAILED
    snapshot_writes_per_s: float = FAILED
    snapshot_worst_read_ms: float = FAILED
    rss_mb: float = FAILED  # the largest server's
    resync_s: float = FAILED
    resync_worst_read_ms: float = FAILED
    restart_s: float = FAILED


FIGURES: list[tuple[str, str]] = [  # (attribute, label)
    ("creates_per_s", "pipelined creates, ops/s"),
    ("fill_worst_read_ms", "leader's worst read during the fill (snapshots included), ms"),
    ("snapshot_writes_per_s", "pipelined setData on the full tree across a periodic snapshot, ops/s"),
    ("snapshot_worst_read_ms", "leader's worst read during those setData (a periodic snapshot included), ms"),
    ("rss_mb", "largest server RSS after the fill and the setData, MB"),
    ("resync_s", "wiped follower resync until it serves the last znode, s"),
    ("resync_worst_read_ms", "leader's worst read during that resync, ms"),
    ("restart_s", "whole-ensemble kill -9 and restart until the last znode reads, s"),
]


class Reader:
    """Reads one znode on the leader every few milliseconds, keeping the worst latency. Its
    own session: a session's requests are answered in order, and the writer's queue of 300
    creates would be measured instead of the server."""

    def __init__(self, hosts: str) -> None:
        self.hosts = hosts
        self.worst = 0.0
        self.running = True

    async def run(self) -> None:
        async with connect(self.hosts) as zk:
            while self.running:
                start = time.perf_counter()
                await zk.get("/scale")
                self.worst = max(self.worst, time.perf_counter() - start)
                await trio.sleep(READ_EVERY_S)


def rss_mb(pid: int | None) -> float:
    if pid is None:
        return 0.0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def wipe(data_dir: Path) -> None:
    wipe_data_dir(data_dir, KEEP)


async def _pipelined(count: int, op: Callable[[int], Awaitable[object]], on_done: Callable[[int], None]) -> float:
    """`op(0)` ... `op(count - 1)`, IN_FLIGHT at a time; `on_done(n)` after each; seconds taken."""
    next_index = 0
    done = 0

    async def worker() -> None:
        nonlocal next_index, done
        while next_index < count:
            i = next_index
            next_index += 1
            await op(i)
            done += 1
            on_done(done)

    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(IN_FLIGHT):
            nursery.start_soon(worker)
    return time.perf_counter() - start


async def _fill(zk: Any, znodes: int, progress: Callable[[str], None]) -> float:
    report_every = max(1, znodes // 10)

    def reported(done: int) -> None:
        if done % report_every == 0:
            progress(f"  {done:,} of {znodes:,} znodes")

    return await _pipelined(znodes, lambda i: zk.create(f"/scale/n{i:08d}", VALUE), reported)


async def _rewrite(zk: Any, znodes: int, writes: int) -> float:
    """`writes` setData calls over the first znodes, IN_FLIGHT at a time; returns seconds."""
    return await _pipelined(writes, lambda i: zk.set(f"/scale/n{i % znodes:08d}", VALUE), lambda done: None)


async def _until_readable(hosts: str, path: str, timeout_s: float) -> None:
    with trio.fail_after(timeout_s):
        while True:
            try:
                async with connect(hosts, connect_timeout=2) as zk:
                    await zk.get(path)
                    return
            except Exception:  # noqa: BLE001 - not serving or not synced yet: try again
                await trio.sleep(0.1)


async def _measure(system: System, znodes: int, progress: Callable[[str], None], result: ScaleResult) -> None:
    """Fill `result`, phase by phase: a phase that fails leaves its figures FAILED."""
    lead = leader(system)
    assert lead is not None
    last = f"/scale/n{znodes - 1:08d}"
    on_leader = system.connect_string([lead])
    async with connect(on_leader) as zk:
        await zk.create("/scale")
        reader = Reader(on_leader)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader.run)
            took = await _fill(zk, znodes, progress)
            reader.running = False
        result.creates_per_s = znodes / took
        result.fill_worst_read_ms = reader.worst * 1000
        progress(f"  filled in {took:.1f} s ({result.creates_per_s:,.0f}/s); worst read {result.fill_worst_read_ms:.0f} ms")
        # One snapCount of setData on the full tree: at least one periodic snapshot of all of
        # it on every server (ZooKeeper takes its snapshot between snapCount/2 and snapCount).
        reader = Reader(on_leader)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader.run)
            took = await _rewrite(zk, znodes, SNAPSHOT_WRITES)
            reader.running = False
        result.snapshot_writes_per_s = SNAPSHOT_WRITES / took
        result.snapshot_worst_read_ms = reader.worst * 1000
        progress(
            f"  {SNAPSHOT_WRITES:,} setData across a snapshot in {took:.1f} s; worst read {result.snapshot_worst_read_ms:.0f} ms"
        )
        await trio.sleep(2)  # let the followers apply the tail
        result.rss_mb = max(rss_mb(system.pid(sid)) for sid in system.servers)
        progress(f"  largest RSS {result.rss_mb:,.0f} MB")

        victim = followers(system)[0]
        system.kill(victim)
        wipe(system.data_dir(victim))
        reader = Reader(on_leader)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader.run)
            start = time.perf_counter()
            await trio.to_thread.run_sync(lambda: system.start(victim, wait=False))
            await _until_readable(system.connect_string([victim]), last, SYNC_TIMEOUT_S)
            result.resync_s = time.perf_counter() - start
            reader.running = False
        result.resync_worst_read_ms = reader.worst * 1000
        progress(
            f"  wiped follower resynced in {result.resync_s:.1f} s; leader's worst read {result.resync_worst_read_ms:.0f} ms"
        )

    for sid in system.servers:
        system.kill(sid)
    start = time.perf_counter()
    for sid in system.servers:
        await trio.to_thread.run_sync(lambda sid=sid: system.start(sid, wait=False))
    await _until_readable(system.connect_string(), last, SYNC_TIMEOUT_S)
    result.restart_s = time.perf_counter() - start
    progress(f"  whole ensemble restarted, last znode readable after {result.restart_s:.1f} s")


def run_scale(
    systems: dict[str, System], znodes: int, runs: int, progress: Callable[[str], None], fresh: Callable[[str], System]
) -> dict[str, list[ScaleResult]]:
    """`runs` runs per system, each on a fresh ensemble made by `fresh(name)`."""
    results: dict[str, list[ScaleResult]] = {name: [] for name in systems}
    for run in range(runs):
        for name in systems:
            system = systems[name] if run == 0 else fresh(name)
            systems[name] = system
            progress(f"run {run + 1}/{runs}: {name} with {znodes:,} znodes")
            result = ScaleResult()
            results[name].append(result)
            try:
                trio.run(_measure, system, znodes, progress, result)
            except Exception as e:  # noqa: BLE001 - reported; the other figures and runs go on
                progress(f"  {name} failed: {type(e).__name__}: {e}".rstrip(": "))
            finally:
                system.stop_all()
    return results


def report(results: dict[str, list[ScaleResult]], znodes: int) -> str:
    ours, theirs = results["ccore"], results["zookeeper"]
    runs = len(ours)
    lines = [
        f"{znodes:,} znodes of 100 B, 3-server ensembles on 127.0.0.1, fsync on; "
        f"{'median of ' + str(runs) + ' runs' if runs > 1 else 'one run'}; {os.cpu_count()} CPUs",
        "",
        "| figure | ccore | ZooKeeper | ccore/ZooKeeper |",
        "|---|--:|--:|--:|",
    ]
    for attr, label in FIGURES:
        a, b = _median(ours, attr), _median(theirs, attr)
        lines.append(f"| {label} | {_cell(a, 1)} | {_cell(b, 1)} | {_ratio(a, b)} |")
    a, b = (_median(rs, "rss_mb") * 1024 * 1024 / znodes for rs in (ours, theirs))
    lines.append(f"| largest server RSS per znode, bytes | {_cell(a, 0)} | {_cell(b, 0)} | {_ratio(a, b)} |")
    failed = sum(math.isnan(getattr(r, attr)) for rs in (ours, theirs) for r in rs for attr, _ in FIGURES)
    if failed:
        lines += ["", f"{failed} figures failed (see the progress lines); medians are of the runs that gave one."]
    return "\n".join(lines)


def _median(results: list[ScaleResult], attr: str) -> float:
    values = [v for r in results if not math.isnan(v := getattr(r, attr))]
    return statistics.median(values) if values else FAILED


def _cell(value: float, decimals: int) -> str:
    return "failed" if math.isnan(value) else f"{value:,.{decimals}f}"


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b and not (math.isnan(a) or math.isnan(b)) else "—"
