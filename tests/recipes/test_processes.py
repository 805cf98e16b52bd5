"""Contention from several processes, checked from outside: every holder reports its fencing
token and the time span it held (one machine-wide clock); no two spans of an exclusive hold
overlap, tokens grow with every grant, and a semaphore never has more than N at once.

The workers run the event loop of the test (`trio.run` or `asyncio.run`, tests/recipes/worker.py),
and one test mixes both loops on one lock."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time

import anyio
import pytest

from tests.compat.servers import REPO_ROOT

# Every async test on Trio and on asyncio (see tests/client/conftest.py).
pytestmark = pytest.mark.anyio

PROCESSES = 4


def spawn(recipe: str, hosts: str, root: str, rounds: int, *options: str, backend: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    return subprocess.Popen(
        [sys.executable, "-m", "tests.recipes.worker", recipe, hosts, root, str(rounds), *options, "--backend", backend],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def collect(procs: list[subprocess.Popen], timeout_s: float) -> list[dict]:
    records = []
    deadline = time.monotonic() + timeout_s
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            pytest.fail("a worker did not finish in time")
        assert proc.returncode in (0, -signal.SIGKILL), err[-3000:]
        records += [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return records


def spans(records: list[dict], killed_at: dict[int, float] | None = None) -> list[tuple[float, float, int, int]]:
    """(start, end, token, pid) per hold; a hold cut short by a kill ends at the kill."""
    open_: dict[tuple[int, int], float] = {}
    out = []
    for r in sorted(records, key=lambda r: r["t"]):
        if r["event"] == "start":
            open_[(r["pid"], r["token"])] = r["t"]
        elif r["event"] == "end":
            out.append((open_.pop((r["pid"], r["token"])), r["t"], r["token"], r["pid"]))
    for (pid, token), start in open_.items():
        out.append((start, (killed_at or {}).get(pid, float("inf")), token, pid))
    return sorted(out)


def assert_exclusive(held: list[tuple[float, float, int, int]]) -> None:
    for (_, e1, t1, p1), (s2, _, t2, p2) in itertools.pairwise(held):
        assert e1 <= s2, f"pid {p1} held until {e1} but pid {p2} started at {s2}"
        assert t1 < t2, f"token {t2} of pid {p2} is not above {t1} of pid {p1}"


@pytest.mark.slow
async def test_lock_across_processes(hosts, root, anyio_backend):
    procs = [spawn("lock", hosts, root, 25, backend=anyio_backend) for _ in range(PROCESSES)]
    records = await anyio.to_thread.run_sync(collect, procs, 90)
    held = spans(records)
    assert len(held) == PROCESSES * 25
    assert_exclusive(held)
    assert len({pid for *_, pid in held}) == PROCESSES


@pytest.mark.slow
@pytest.mark.parametrize("anyio_backend", ["trio"])  # the workers mix the loops; this test only waits
async def test_lock_across_trio_and_asyncio_processes(hosts, root, anyio_backend):
    """Three programs on `asyncio.run` and three on `trio.run` contend for one lock: one
    holder at a time, every token above the last, whichever loop the holder runs."""
    backends = ["asyncio"] * 3 + ["trio"] * 3
    procs = [spawn("lock", hosts, root, 10, backend=backend) for backend in backends]
    records = await anyio.to_thread.run_sync(collect, procs, 120)
    held = spans(records)
    assert len(held) == len(backends) * 10
    assert_exclusive(held)
    loop_of = {r["pid"]: r["backend"] for r in records if r["event"] == "ready"}
    assert sorted(loop_of.values()) == sorted(backends)
    assert {loop_of[pid] for *_, pid in held} == {"asyncio", "trio"}


@pytest.mark.slow
async def test_semaphore_across_processes(hosts, root, anyio_backend):
    procs = [spawn("semaphore", hosts, root, 10, "--hold", "0.02", backend=anyio_backend) for _ in range(PROCESSES)]
    records = await anyio.to_thread.run_sync(collect, procs, 90)
    points = sorted((r["t"], 1 if r["event"] == "start" else -1) for r in records if r["event"] in ("start", "end"))
    running = most = 0
    for _, step in sorted(points, key=lambda p: (p[0], p[1])):
        running += step
        most = max(most, running)
    assert most == 2


@pytest.mark.slow
async def test_killed_holder(hosts, root, anyio_backend):
    """kill -9 a holder: the others go on once its session has expired, never before, and
    the next token is higher."""
    ttl = 2.0
    victim = spawn("lock", hosts, root, 1, "--hold", "60", "--ttl", str(ttl), backend=anyio_backend)
    line = await anyio.to_thread.run_sync(victim.stdout.readline)
    assert json.loads(line)["event"] == "ready"
    line = await anyio.to_thread.run_sync(victim.stdout.readline)
    first = json.loads(line)
    assert first["event"] == "start"
    others = [spawn("lock", hosts, root, 5, "--ttl", str(ttl), backend=anyio_backend) for _ in range(PROCESSES - 1)]
    await anyio.sleep(0.5)
    victim.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    records = await anyio.to_thread.run_sync(collect, [victim, *others], 60)
    records.append(first)
    held = spans(records, {victim.pid: killed})
    assert_exclusive(held)
    after = [s for s in held if s[3] != victim.pid]
    assert len(after) == (PROCESSES - 1) * 5
    assert after[0][0] >= killed + ttl * 0.5  # waited for the session, not just the TCP close


@pytest.mark.slow
async def test_lease_across_processes(hosts, root, anyio_backend):
    procs = [spawn("lease", hosts, root, 5, "--hold", "0.01", backend=anyio_backend) for _ in range(3)]
    records = await anyio.to_thread.run_sync(collect, procs, 60)
    held = spans(records)
    assert len(held) == 15
    assert_exclusive(held)
