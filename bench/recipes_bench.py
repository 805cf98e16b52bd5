"""Recipes side by side: lock hand-offs per second, and the lease takeover delay over the TTL.

    python bench/recipes_bench.py [--servers ccore,apache] [--clients ours,kazoo]
                                  [--processes 4] [--seconds 5] [--runs 3]
                                  [--ttl 4] [--takeovers 5] [--tick-ms 2000]
                                  [--only lock|lease]

Lock: `processes` processes contend for one lock (ours: recipes.Lock; kazoo: kazoo's Lock)
for `seconds` after a common start instant; every grant is counted (with several contenders
nearly every grant is a hand-off from another process). Prints grants/s, median of `runs`.

Lease (the seed scenario): NodeA (a process) owns "/leases/migo-group" through a session whose
timeout is the TTL, NodeB (another process) waits for it; NodeA is killed with SIGKILL and
NodeB reports when it owns the name. Prints (takeover time - kill time) / TTL, median of
`takeovers`. Ours is recipes.Lease; kazoo's is the classic recipe on kazoo (ephemeral node,
NodeB watches it with exists() and creates it when deleted).

Both servers run with the same `tick-ms` (ZooKeeper's default 2000 ms unless told): Apache
ZooKeeper rounds session expiry up to the next tick, ours expires at the deadline. Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.compat.servers import ServerHandle, apache_installed, make_server  # noqa: E402 - needs REPO on sys.path (run as a script)

LEASE = "/leases/migo-group"


# --- the processes ------------------------------------------------------------------------


def lock_worker(client: str, hosts: str, path: str, start_at: float, seconds: float) -> None:
    """Wait for `start_at` (time.monotonic, machine-wide), then count grants until the end."""
    grants = 0
    if client == "ours":
        import trio

        from ccore.client import connect
        from ccore.recipes import Lock

        async def run() -> int:
            n = 0
            async with connect(hosts, session_timeout=10) as zk:
                await zk.ensure_path(path)
                await trio.sleep(max(0.0, start_at - time.monotonic()))
                end = start_at + seconds
                while time.monotonic() < end:
                    async with Lock(zk, path):
                        n += 1
            return n

        grants = trio.run(run)
    else:
        from kazoo.client import KazooClient

        zk = KazooClient(hosts=hosts, timeout=10)
        zk.start()
        zk.ensure_path(path)
        lock = zk.Lock(path)
        time.sleep(max(0.0, start_at - time.monotonic()))
        end = start_at + seconds
        while time.monotonic() < end:
            with lock:
                grants += 1
        zk.stop()
        zk.close()
    print(json.dumps({"grants": grants}), flush=True)


def lease_node(client: str, hosts: str, name: str, ttl: float) -> None:
    """Own the lease (waiting for it if need be), say so, and hold it until killed."""

    def owns() -> None:
        print(json.dumps({"event": "owns", "name": name, "t": time.monotonic()}), flush=True)

    def waiting() -> None:
        print(json.dumps({"event": "waiting", "name": name}), flush=True)

    if client == "ours":
        import trio

        from ccore.client import connect
        from ccore.recipes import Lease

        async def run() -> None:
            async with connect(hosts, session_timeout=ttl) as zk:
                if await Lease.holder(zk, LEASE) is not None:
                    waiting()
                async with Lease(zk, LEASE, name.encode(), ttl=ttl):
                    owns()
                    await trio.sleep_forever()

        trio.run(run)
    else:
        import threading

        from kazoo.client import KazooClient
        from kazoo.exceptions import NodeExistsError

        zk = KazooClient(hosts=hosts, timeout=ttl)
        zk.start()
        zk.ensure_path("/leases")
        while True:
            try:
                zk.create(LEASE, name.encode(), ephemeral=True)
                owns()
                break
            except NodeExistsError:
                gone = threading.Event()
                if zk.exists(LEASE, watch=lambda event, gone=gone: gone.set()) is not None:
                    waiting()
                    gone.wait()
        threading.Event().wait()


# --- the driver ---------------------------------------------------------------------------


def spawn(*args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, __file__, *args], env=env, stdout=subprocess.PIPE, text=True)


def read_event(proc: subprocess.Popen, event: str, timeout_s: float) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        if not line:
            raise RuntimeError(f"process {proc.pid} ended before {event!r}")
        record = json.loads(line)
        if record.get("event") == event:
            return record
    raise TimeoutError(event)


def lock_rate(client: str, hosts: str, processes: int, seconds: float) -> float:
    path = f"/bench-lock-{uuid.uuid4().hex[:8]}"
    start_at = time.monotonic() + 3.0  # time for every process to start and connect
    procs = [spawn("lock-worker", client, hosts, path, repr(start_at), repr(seconds)) for _ in range(processes)]
    grants = 0
    for proc in procs:
        out, _ = proc.communicate(timeout=seconds + 60)
        grants += json.loads(out.strip().splitlines()[-1])["grants"]
    return grants / seconds


def takeover_ratio(client: str, hosts: str, ttl: float) -> float:
    a = spawn("lease-node", client, hosts, "NodeA", repr(ttl))
    b = None
    try:
        read_event(a, "owns", 30)
        b = spawn("lease-node", client, hosts, "NodeB", repr(ttl))
        read_event(b, "waiting", 30)
        time.sleep(ttl / 2)  # an owner that has been heartbeating a while, as in real life
        a.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        owned = read_event(b, "owns", 5 * ttl + 30)
        return (owned["t"] - killed) / ttl
    finally:
        for proc in (a, b):
            if proc is not None:
                proc.kill()
                proc.wait()
        time.sleep(0.2)


def start_server(kind: str, base: Path, tick_ms: int) -> ServerHandle:
    options: dict = {"tick_time_ms": tick_ms}
    if kind == "apache":
        options["system_properties"] = {"org.slf4j.simpleLogger.defaultLogLevel": "warn"}
    handle = make_server(kind, base / kind, **options)
    # The test harness starts the JVM with C1 only (quick start-up); a benchmark wants the
    # server as it runs in production.
    handle.argv = [a for a in handle.argv if a != "-XX:TieredStopAtLevel=1"]
    return handle.start()


def warm_up(hosts: str, clients: list[str], processes: int) -> None:
    """A discarded round per client: JIT-compiled server, warm page cache, created paths."""
    for client in clients:
        lock_rate(client, hosts, processes, 2.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", default="ccore,apache")
    parser.add_argument("--clients", default="ours,kazoo")
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--ttl", type=float, default=4.0)
    parser.add_argument("--takeovers", type=int, default=5)
    parser.add_argument("--tick-ms", type=int, default=2000)
    parser.add_argument("--only", choices=["lock", "lease"])
    args = parser.parse_args()
    servers = [s for s in args.servers.split(",") if s != "apache" or apache_installed()]
    clients = args.clients.split(",")
    lock_results: dict[tuple[str, str], float] = {}
    lease_results: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="recipes-bench-") as tmp:
        for kind in servers:
            server = start_server(kind, Path(tmp), args.tick_ms)
            try:
                if args.only != "lease":
                    warm_up(server.connect_string, clients, args.processes)
                # Runs of the two clients alternate, so a load change on the machine hits both.
                if args.only != "lease":
                    rates: dict[str, list[float]] = {c: [] for c in clients}
                    for _ in range(args.runs):
                        for client in clients:
                            rates[client].append(lock_rate(client, server.connect_string, args.processes, args.seconds))
                    for client in clients:
                        lock_results[kind, client] = statistics.median(rates[client])
                        print(
                            f"lock  {kind:6} {client:5}: {lock_results[kind, client]:7.0f} grants/s  runs {[round(r) for r in rates[client]]}",
                            flush=True,
                        )
                if args.only != "lock":
                    ratios: dict[str, list[float]] = {c: [] for c in clients}
                    for _ in range(args.takeovers):
                        for client in clients:
                            ratios[client].append(takeover_ratio(client, server.connect_string, args.ttl))
                    for client in clients:
                        lease_results[kind, client] = ratios[client]
                        print(
                            f"lease {kind:6} {client:5}: takeover {statistics.median(ratios[client]):.2f} x TTL (median)  runs {[round(r, 2) for r in ratios[client]]}",
                            flush=True,
                        )
            finally:
                server.kill()
    print(f"\nlock hand-offs/s, {args.processes} processes, median of {args.runs} x {args.seconds:g}s:")
    for kind in servers:
        row = {c: lock_results.get((kind, c)) for c in clients}
        ratio = f"  ours/kazoo {row['ours'] / row['kazoo']:.2f}" if row.get("ours") and row.get("kazoo") else ""
        print(f"  {kind:6} " + "  ".join(f"{c} {v:.0f}" for c, v in row.items() if v) + ratio)
    print(f"lease takeover delay / TTL (TTL {args.ttl:g}s, tick {args.tick_ms} ms), median of {args.takeovers}:")
    for (kind, client), ratios in lease_results.items():
        print(f"  {kind:6} {client:5} {statistics.median(ratios):.2f}  (min {min(ratios):.2f}, max {max(ratios):.2f})")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "lock-worker":
        _, _, client, hosts, path, start_at, seconds = sys.argv
        lock_worker(client, hosts, path, float(start_at), float(seconds))
    elif len(sys.argv) > 1 and sys.argv[1] == "lease-node":
        _, _, client, hosts, name, ttl = sys.argv
        lease_node(client, hosts, name, float(ttl))
    else:
        main()
