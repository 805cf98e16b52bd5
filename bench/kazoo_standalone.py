"""kazoo's pipelined create and get throughput against our server and Apache ZooKeeper,
both standalone on this machine, in the same run, fsync on for both.

    python -m bench.kazoo_standalone [--ops 5000] [--in-flight 200] [--runs 3]

Prints ops/s per run, the medians and the ratio ours/theirs. Not a test.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

from kazoo.client import KazooClient

from tests.compat.servers import apache_installed, apache_server, ccore_server


def pipelined(zk: KazooClient, submit, n: int, in_flight: int) -> float:
    """ops/s for n async ops with at most `in_flight` outstanding."""
    window: deque = deque()
    start = time.perf_counter()
    for i in range(n):
        if len(window) >= in_flight:
            window.popleft().get(timeout=60)
        window.append(submit(i))
    while window:
        window.popleft().get(timeout=60)
    return n / (time.perf_counter() - start)


def run_once(connect_string: str, ops: int, in_flight: int, tag: str) -> tuple[float, float]:
    zk = KazooClient(hosts=connect_string, timeout=10)
    zk.start(timeout=20)
    try:
        root = f"/bench-{tag}"
        zk.create(root)
        value = b"v" * 100
        creates = pipelined(zk, lambda i: zk.create_async(f"{root}/n{i}", value), ops, in_flight)
        gets = pipelined(zk, lambda i: zk.get_async(f"{root}/n{i}"), ops, in_flight)
        return creates, gets
    finally:
        zk.stop()
        zk.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ops", type=int, default=5000)
    p.add_argument("--in-flight", type=int, default=200)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args(argv)
    if not apache_installed():
        print("Apache ZooKeeper is not installed: apt-get install -y zookeeper", file=sys.stderr)
        return 2
    results: dict[str, list[tuple[float, float]]] = {"ccore": [], "apache": []}
    with tempfile.TemporaryDirectory() as tmp:
        servers = {
            "ccore": ccore_server(Path(tmp) / "ccore").start(),
            "apache": apache_server(Path(tmp) / "apache").start(),
        }
        try:
            for run in range(args.runs):
                for kind, handle in servers.items():  # alternate, so drift hits both alike
                    creates, gets = run_once(handle.connect_string, args.ops, args.in_flight, f"{run}")
                    results[kind].append((creates, gets))
                    print(f"run {run + 1}/{args.runs} {kind:6s}: creates {creates:8.0f}/s  gets {gets:8.0f}/s", flush=True)
        finally:
            for handle in servers.values():
                handle.kill()
    med = {k: (statistics.median(c for c, _ in v), statistics.median(g for _, g in v)) for k, v in results.items()}
    print(f"\nkazoo, {args.ops} ops, {args.in_flight} in flight, median of {args.runs} runs")
    print(f"{'':8s}{'ccore':>10s}{'apache':>10s}{'ratio':>8s}")
    for i, name in enumerate(("creates/s", "gets/s")):
        ours, theirs = med["ccore"][i], med["apache"][i]
        print(f"{name:8s}{ours:10.0f}{theirs:10.0f}{ours / theirs:8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
