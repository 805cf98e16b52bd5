"""Pipelined create/get throughput of our Trio client vs kazoo, against the same server.

    python bench/client_vs_kazoo.py [--ops 5000] [--in-flight 200] [--value-bytes 100]
                                    [--runs 3] [--servers ccore,apache]

Starts each server (ours: `python -m ccore serve`; Apache ZooKeeper when installed) on a free
loopback port, then for each client runs `ops` creates of `value-bytes`-byte values under a
fresh parent with `in-flight` requests outstanding, then `ops` gets of those nodes. Prints
ops/s per client (median of `runs`) and the ratio ours / kazoo. Not a test.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ccore.client import connect
from tests.compat.servers import apache_installed, make_server


async def ours_run(hosts: str, ops: int, in_flight: int, value: bytes) -> tuple[float, float]:
    root = f"/bench-{uuid.uuid4().hex[:8]}"
    async with connect(hosts) as zk:
        await zk.create(root)
        paths = [f"{root}/n{i}" for i in range(ops)]

        async def run(op) -> float:
            next_index = 0

            async def worker() -> None:
                nonlocal next_index
                while next_index < ops:
                    i = next_index
                    next_index += 1
                    await op(paths[i])

            start = time.perf_counter()
            async with trio.open_nursery() as nursery:
                for _ in range(in_flight):
                    nursery.start_soon(worker)
            return ops / (time.perf_counter() - start)

        create_rate = await run(lambda p: zk.create(p, value))
        get_rate = await run(zk.get)
        await zk.delete(root, recursive=True)
    return create_rate, get_rate


def kazoo_run(hosts: str, ops: int, in_flight: int, value: bytes) -> tuple[float, float]:
    from kazoo.client import KazooClient

    root = f"/bench-{uuid.uuid4().hex[:8]}"
    zk = KazooClient(hosts=hosts, timeout=10.0)
    zk.start(timeout=15)
    try:
        zk.create(root)
        paths = [f"{root}/n{i}" for i in range(ops)]

        def run(submit) -> float:
            window = threading.Semaphore(in_flight)
            done = threading.Event()
            remaining = [ops]
            lock = threading.Lock()
            errors: list[BaseException] = []

            def finished(result) -> None:
                if result.exception is not None:
                    errors.append(result.exception)
                window.release()
                with lock:
                    remaining[0] -= 1
                    if remaining[0] == 0:
                        done.set()

            start = time.perf_counter()
            for path in paths:
                window.acquire()
                submit(path).rawlink(finished)
            done.wait(120)
            if errors:
                raise errors[0]
            return ops / (time.perf_counter() - start)

        create_rate = run(lambda p: zk.create_async(p, value))
        get_rate = run(zk.get_async)
        zk.delete(root, recursive=True)
    finally:
        zk.stop()
        zk.close()
    return create_rate, get_rate


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ops", type=int, default=5000)
    ap.add_argument("--in-flight", type=int, default=200)
    ap.add_argument("--value-bytes", type=int, default=100)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--servers", default="ccore,apache")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    value = b"v" * args.value_bytes
    print(f"{args.ops} ops, {args.in_flight} in flight, {args.value_bytes}-byte values, median of {args.runs} runs")
    for kind in args.servers.split(","):
        if kind == "apache" and not apache_installed():
            print("apache: not installed, skipped")
            continue
        with tempfile.TemporaryDirectory() as tmp:
            handle = make_server(kind, Path(tmp)).start()
            try:
                rates: dict[str, list[tuple[float, float]]] = {"ours": [], "kazoo": []}
                for _ in range(args.runs):  # interleaved, so drift hits both alike
                    rates["ours"].append(trio.run(ours_run, handle.connect_string, args.ops, args.in_flight, value))
                    rates["kazoo"].append(kazoo_run(handle.connect_string, args.ops, args.in_flight, value))
            finally:
                handle.kill()
        med = {who: [statistics.median(r[i] for r in runs) for i in (0, 1)] for who, runs in rates.items()}
        for i, op in enumerate(("create", "get")):
            ours, theirs = med["ours"][i], med["kazoo"][i]
            print(f"{kind:7s} {op:6s}  ours {ours:8.0f} ops/s   kazoo {theirs:8.0f} ops/s   ratio {ours / theirs:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
