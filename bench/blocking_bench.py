"""`python -m bench.blocking_bench`: which event loop the blocking facade should run on.

`client.blocking` runs the async client on an event loop in a thread of its own, and every
call of a user's thread crosses into that loop and back (`anyio.from_thread.run`). This
measures that facade on each loop anyio offers, against one local `ccore serve` (fsync on):

- sequential reads: one thread, one `get` at a time (the crossing's latency dominates), and
  the CPU time this process spends per such read (both threads: less sensitive than rates to
  what else the machine runs);
- threaded reads: 8 threads calling `get` at once (pipelined on the one connection);
- sequential writes: one thread, one `set` at a time (a real fsync per call).

The loops alternate run by run; medians of `--runs` runs are printed as a Markdown table.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
BACKENDS = ("trio", "asyncio")
THREADS = 8
START_TIMEOUT_S = 20.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def server() -> Iterator[str]:
    """A throwaway `ccore serve` on a free loopback port; its connection string."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="ccore-blocking-bench-") as data:
        argv = [sys.executable, "-m", "ccore", "serve", "--client-port", str(port), "--data-dir", data, "--log-level", "WARNING"]
        proc = subprocess.Popen(argv, cwd=REPO_ROOT)
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while time.monotonic() < deadline:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                    sock.sendall(b"ruok")
                    if sock.recv(16) == b"imok":
                        break
                time.sleep(0.1)
            else:
                raise RuntimeError("the server did not start")
            yield f"127.0.0.1:{port}"
        finally:
            proc.kill()
            proc.wait()


def measure(hosts: str, backend: str, ops: int) -> dict[str, float]:
    from ccore.client import blocking

    with blocking.connect(hosts, backend=backend, request_timeout=30) as zk:
        path = zk.create("/bench-", b"v" * 100, sequence=True, ephemeral=True)
        for _ in range(200):  # warm up
            zk.get(path)
        start, cpu = time.perf_counter(), time.process_time()
        for _ in range(ops):
            zk.get(path)
        sequential = ops / (time.perf_counter() - start)
        cpu_us = (time.process_time() - cpu) / ops * 1e6

        def reader(n: int) -> None:
            for _ in range(n):
                zk.get(path)

        threads = [threading.Thread(target=reader, args=(ops // THREADS,)) for _ in range(THREADS)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        threaded = (ops // THREADS * THREADS) / (time.perf_counter() - start)

        writes = max(1, ops // 10)
        latencies = []
        for _ in range(writes):
            t0 = time.perf_counter()
            zk.set(path, b"w")
            latencies.append(time.perf_counter() - t0)
    return {
        "sequential_reads_per_s": sequential,
        "cpu_us_per_sequential_read": cpu_us,
        "threaded_reads_per_s": threaded,
        "set_p50_ms": statistics.median(latencies) * 1000,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.blocking_bench", description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--ops", type=int, default=4000)
    args = p.parse_args(argv)
    samples: dict[str, dict[str, list[float]]] = {b: {} for b in BACKENDS}
    with server() as hosts:
        for run in range(args.runs):
            order = BACKENDS if run % 2 == 0 else BACKENDS[::-1]
            for backend in order:
                got = measure(hosts, backend, args.ops)
                for key, value in got.items():
                    samples[backend].setdefault(key, []).append(value)
                print(
                    f"run {run + 1}/{args.runs} {backend:>7}: " + ", ".join(f"{k} {v:,.2f}" for k, v in got.items()),
                    file=sys.stderr,
                )
    keys = list(samples[BACKENDS[0]])
    print(f"\nblocking facade, one local ccore server, medians of {args.runs} runs, {args.ops} ops each\n")
    print("| figure | " + " | ".join(BACKENDS) + " |")
    print("|---|" + "--:|" * len(BACKENDS))
    for key in keys:
        print(f"| {key} | " + " | ".join(f"{statistics.median(samples[b][key]):,.2f}" for b in BACKENDS) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
