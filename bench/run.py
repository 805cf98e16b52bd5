"""`python -m bench [--quick]`: consistent-core and Apache ZooKeeper side by side.

Starts a 3-server ensemble of each on 127.0.0.1 (data dirs in one temporary directory on the
same disk, fsync on for both, tickTime 2000 ms for both: ZooKeeper's default), runs every
workload against both with our Trio client and with kazoo, in interleaved order, `--runs`
times, and prints the medians with the ratio ours/theirs, the issue's targets, and writes
a JSON file for plotting under bench/results/. The servers are killed at the end, on
failure, on Ctrl-C, and (by the reaper) if this process is killed.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from tests.compat.servers import ZK_NOT_INSTALLED, apache_installed, zookeeper_jar

from . import report, scenarios, workloads
from .reaper import Reaper
from .scale import report as scale_report
from .scale import run_scale, zookeeper_heap_mb
from .systems import Apache, Ours, System, followers, wait_healthy

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "bench" / "results"
HEADLINE = (
    ("ccore", "ccore"),
    ("kazoo", "zookeeper"),
)  # (client, system) pairs the targets compare
ALL_PAIRS = tuple((c, s) for c in report.CLIENTS for s in report.SYSTEMS)
WORKLOADS = ("basic", "fanout", "lock", "failover", "outage")


@attrs.frozen
class Params:
    runs: int
    ops: int
    in_flight: int
    latency_samples: int
    watchers: int
    fanout_rounds: int
    lock_seconds: float
    ttl_s: float
    tick_ms: int
    failover_pairs: tuple[tuple[str, str], ...]
    outage_pairs: tuple[tuple[str, str], ...]
    warmup_ops: int


QUICK = Params(
    runs=1, ops=2000, in_flight=200, latency_samples=200, watchers=100, fanout_rounds=5, lock_seconds=3.0,
    ttl_s=4.0, tick_ms=2000, failover_pairs=HEADLINE, outage_pairs=HEADLINE, warmup_ops=1000,
)  # fmt: skip
FULL = Params(
    runs=3, ops=10000, in_flight=200, latency_samples=1000, watchers=100, fanout_rounds=20, lock_seconds=5.0,
    ttl_s=4.0, tick_ms=2000, failover_pairs=ALL_PAIRS, outage_pairs=ALL_PAIRS, warmup_ops=5000,
)  # fmt: skip


class Progress:
    """One line per step and per figure on stderr, with the time since the start."""

    def __init__(self) -> None:
        self.start = time.monotonic()

    def __call__(self, text: str) -> None:
        print(
            f"[{time.monotonic() - self.start:6.1f}s] {text}",
            file=sys.stderr,
            flush=True,
        )


class Bench:
    def __init__(
        self,
        params: Params,
        systems: dict[str, System],
        only: tuple[str, ...],
        seed: int,
        progress: Progress,
    ) -> None:
        self.p = params
        self.systems = systems
        self.only = only
        self.rng = random.Random(seed)
        self.progress = progress
        self.results = report.Results()
        self.broken: set[str] = set()

    def target(self, system: System) -> int:
        """The server a single-session workload talks to: a follower (as 2 of 3 clients are)."""
        return min(followers(system) or system.servers)

    def measure(self, what: str, client: str, system: System, fn: Callable[..., Any], *args: Any) -> Any:
        """Run one measurement; a failure is recorded and reported, and the ensemble made
        healthy again before the next. An ensemble that cannot be healed is skipped from then
        on (its server logs are copied under bench/results/)."""
        label = f"{what}: {report.CLIENT_NAMES[client]} -> {system.name}"
        if system.name in self.broken:
            return None
        try:
            return fn(*args)
        except Exception as e:  # noqa: BLE001 - one failed figure must not lose the others
            self._failed(label, e)
        try:
            heal(system)
        except Exception as e:  # noqa: BLE001
            self.broken.add(system.name)
            self._failed(f"{system.name} ensemble", e)
            kept = keep_logs(system)
            self.progress(f"skipping the rest of {system.name}; its server logs: {kept}")
        return None

    def _failed(self, label: str, error: BaseException) -> None:
        text = f"{label}: {describe(error)}"
        self.results.errors.append(text)
        self.progress(f"FAILED {text}")
        logging.getLogger(__name__).debug("%s", "".join(traceback.format_exception(error)))

    def order(self, run: int) -> list[str]:
        """Systems alternate who goes first, run by run."""
        names = list(report.SYSTEMS)
        return names if run % 2 == 0 else names[::-1]

    def warm_up(self) -> None:
        for name in report.SYSTEMS:
            system = self.systems[name]
            for client in report.CLIENTS:
                hosts = system.connect_string([self.target(system)])
                self.measure(
                    "warm-up",
                    client,
                    system,
                    workloads.BASIC[client],
                    hosts,
                    self.p.warmup_ops,
                    self.p.in_flight,
                    50,
                )
        self.progress("warmed up both systems (JIT, caches); those figures are dropped")

    def run_basic(self, run: int) -> None:
        for client in report.CLIENTS:
            for name in self.order(run):
                system = self.systems[name]
                hosts = system.connect_string([self.target(system)])
                got = self.measure(
                    "creates/reads/setData", client, system,
                    workloads.BASIC[client], hosts, self.p.ops, self.p.in_flight, self.p.latency_samples,
                )  # fmt: skip
                if got is None:
                    continue
                for key in ("creates_per_s", "reads_per_s", "set_p50_ms", "set_p99_ms"):
                    self.results.add(key, client, name, got[key])
                self.progress(
                    f"{report.CLIENT_NAMES[client]:>11} -> {name:<9} creates {got['creates_per_s']:8,.0f}/s  "
                    f"reads {got['reads_per_s']:8,.0f}/s  setData p50 {got['set_p50_ms']:.2f} ms p99 {got['set_p99_ms']:.2f} ms"
                )

    def run_fanout(self, run: int) -> None:
        for client in report.CLIENTS:
            for name in self.order(run):
                system = self.systems[name]
                watcher_hosts = [system.connect_string([sid]) for sid in system.servers]
                writer = system.connect_string([self.target(system)])
                rounds = self.measure(
                    "watch fan-out", client, system,
                    workloads.FANOUT[client], watcher_hosts, writer, self.p.watchers, self.p.fanout_rounds,
                )  # fmt: skip
                if rounds is None:
                    continue
                ms = [r * 1000 for r in rounds]
                self.results.add("fanout_ms", client, name, statistics.median(ms))
                self.results.extra.setdefault("fanout_rounds_ms", {}).setdefault(f"{client}->{name}", []).append(ms)
                self.progress(
                    f"{report.CLIENT_NAMES[client]:>11} -> {name:<9} fan-out to {self.p.watchers} watchers: "
                    f"median {statistics.median(ms):.1f} ms, max {max(ms):.1f} ms over {len(ms)} changes"
                )

    def run_lock(self, run: int) -> None:
        for client in report.CLIENTS:
            for name in self.order(run):
                system = self.systems[name]
                rate = self.measure(
                    "lock hand-offs",
                    client,
                    system,
                    scenarios.lock_handoffs,
                    system,
                    client,
                    self.p.lock_seconds,
                )
                if rate is None:
                    continue
                self.results.add("lock_per_s", client, name, rate)
                self.progress(
                    f"{report.CLIENT_NAMES[client]:>11} -> {name:<9} lock hand-offs {rate:,.0f}/s ({scenarios.LOCK_PROCESSES} processes)"
                )

    def run_failover(self, run: int) -> None:
        for client, name in self._pairs(self.p.failover_pairs, run):
            system = self.systems[name]
            got = self.measure(
                "lease failover",
                client,
                system,
                scenarios.lease_failover,
                system,
                client,
                self.p.ttl_s,
                self.rng,
            )
            if got is None:
                continue
            self.results.add("failover_ratio", client, name, got["ratio"])
            self.results.extra.setdefault("failover", {}).setdefault(f"{client}->{name}", []).append(got)
            self.progress(
                f"{report.CLIENT_NAMES[client]:>11} -> {name:<9} lease failover {got['delay_s']:.2f} s "
                f"= {got['ratio']:.2f} x the {got['ttl_s']:g} s TTL"
            )

    def run_outage(self, run: int) -> None:
        for client, name in self._pairs(self.p.outage_pairs, run):
            system = self.systems[name]
            outage = self.measure(
                "leader-kill outage",
                client,
                system,
                scenarios.leader_kill_outage,
                system,
                client,
            )
            if outage is None:
                continue
            self.results.add("outage_s", client, name, outage)
            self.progress(f"{report.CLIENT_NAMES[client]:>11} -> {name:<9} leader kill -9: writes back after {outage:.2f} s")

    def _pairs(self, pairs: tuple[tuple[str, str], ...], run: int) -> list[tuple[str, str]]:
        order = self.order(run)
        return sorted(
            pairs,
            key=lambda pair: (report.CLIENTS.index(pair[0]), order.index(pair[1])),
        )

    def run(self) -> None:
        if "basic" in self.only:
            self.warm_up()
        steps = {
            "basic": self.run_basic,
            "fanout": self.run_fanout,
            "lock": self.run_lock,
            "failover": self.run_failover,
            "outage": self.run_outage,
        }
        for run in range(self.p.runs):
            for name, step in steps.items():
                if name in self.only:
                    self.progress(f"run {run + 1}/{self.p.runs}: {name}")
                    step(run)


def describe(error: BaseException) -> str:
    """One line for an error; for a group (many pipelined requests failing alike), how many
    and the first."""
    leaves: list[BaseException] = []
    stack = [error]
    while stack:
        e = stack.pop()
        inner = getattr(e, "exceptions", None)
        if inner:
            stack.extend(reversed(inner))
        else:
            leaves.append(e)
    first = leaves[0] if leaves else error
    text = f"{type(first).__name__}: {first}"
    return text if len(leaves) <= 1 else f"{len(leaves)} errors, the first {text}"


def keep_logs(system: System) -> Path:
    """Copy the ensemble's server logs under bench/results/ for a post-mortem."""
    dest = RESULTS_DIR / f"logs-{time.strftime('%Y%m%d-%H%M%S')}-{system.name}"
    dest.mkdir(parents=True, exist_ok=True)
    for sid in system.servers:
        try:
            shutil.copy(system.log_path(sid), dest / f"server{sid}.log")
        except OSError:
            pass
    return dest


def heal(system: System) -> None:
    """Start any server that is down and wait for a healthy ensemble (raises if it cannot)."""
    for sid in system.servers:
        if system.pid(sid) is None:
            system.start(sid)
    wait_healthy(system)


def versions() -> dict[str, str]:
    out = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": str(os.cpu_count()),
    }
    try:
        out["git"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    jar = zookeeper_jar()
    if jar is not None:
        out["zookeeper_jar"] = str(jar.resolve())
    try:
        java = subprocess.run(
            ["java", "-version"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        out["java"] = (java.stderr or java.stdout).splitlines()[0]
    except (OSError, subprocess.TimeoutExpired, IndexError):
        pass
    try:
        import kazoo.version

        out["kazoo"] = kazoo.version.__version__
    except ImportError:
        pass
    return out


class LoadMeter:
    """How busy the machine was with other people's work while we ran: all CPU time (from
    /proc/stat) minus ours (this process and its reaped children: servers, workers)."""

    def __init__(self) -> None:
        self.start_busy, self.start_ours, self.start_wall = (
            self._busy(),
            self._ours(),
            time.monotonic(),
        )

    @staticmethod
    def _busy() -> float:
        try:
            with open("/proc/stat") as stat:
                fields = [int(x) for x in stat.readline().split()[1:]]
        except (OSError, ValueError):
            return 0.0
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _ours() -> float:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    def background_cpus(self) -> float:
        """CPUs' worth of time used by others since we started (call after reaping children)."""
        wall = time.monotonic() - self.start_wall
        others = (self._busy() - self.start_busy) - (self._ours() - self.start_ours)
        return max(0.0, others / wall) if wall > 0 else 0.0


def background_now(seconds: float = 1.0) -> float:
    """CPUs' worth of time other processes use right now (sampled over `seconds`)."""
    meter = LoadMeter()
    time.sleep(seconds)
    return meter.background_cpus()


def check_disk(path: Path) -> str | None:
    """A warning when the data dirs sit on a RAM disk, where fsync costs nothing."""
    try:
        with open("/proc/mounts") as mounts:
            best = ("", "")
            for line in mounts:
                _dev, mount, fstype, *_ = line.split()
                if str(path.resolve()).startswith(mount) and len(mount) >= len(best[0]):
                    best = (mount, fstype)
    except OSError:
        return None
    if best[1] in ("tmpfs", "ramfs"):
        return f"{path} is on {best[1]}: fsync is free there and the figures mean little; use --work-dir on a disk"
    return None


def _scale(
    args: argparse.Namespace, systems: dict[str, System], base: Path, reaper: Reaper, tick_ms: int, progress: Progress
) -> int:
    """`--scale N`: bench/scale.py on both systems; each further run on fresh ensembles."""
    made = 0

    def fresh(name: str) -> System:
        nonlocal made
        made += 1
        system: System
        if name == "ccore":
            system = Ours(base / f"{name}-{made}", reaper, tick_ms=tick_ms, snap_count=args.snap_count)
        else:
            heap_mb = zookeeper_heap_mb(args.scale)
            system = Apache(base / f"{name}-{made}", reaper, tick_ms=tick_ms, snap_count=args.snap_count, heap_mb=heap_mb)
        system.start_all()
        wait_healthy(system)
        return system

    results = run_scale(systems, args.scale, args.runs or 1, progress, fresh)
    sys.stderr.flush()
    print()
    print(scale_report(results, args.scale))
    print(f"\nZooKeeper's JVM heap: -Xmx{zookeeper_heap_mb(args.scale)}m (bench/scale.py, zookeeper_heap_mb)")
    return 0


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument(
        "--quick",
        action="store_true",
        help="one short run of everything (about a minute)",
    )
    p.add_argument(
        "--runs",
        type=int,
        help="runs per figure; the table shows medians (default 3, quick 1)",
    )
    p.add_argument(
        "--ops",
        type=int,
        help="creates and reads per pipelined measurement (default 10000, quick 2000)",
    )
    p.add_argument(
        "--ttl",
        type=float,
        help="lease TTL = session timeout in s (default 4 = 2 x tickTime)",
    )
    p.add_argument(
        "--tick-ms",
        type=int,
        help="tickTime of both ensembles (default 2000, ZooKeeper's)",
    )
    p.add_argument(
        "--snap-count",
        type=int,
        default=100_000,
        help="snapCount of both ensembles: transactions between snapshots (default 100000, ZooKeeper's)",
    )
    p.add_argument("--only", help=f"comma-separated subset of {','.join(WORKLOADS)}")
    p.add_argument(
        "--scale",
        type=int,
        nargs="?",
        const=1_000_000,
        help="instead: both systems with this many znodes (default 1000000): create rate, RSS, "
        "resync and restart times, worst reads (bench/scale.py); one run unless --runs",
    )
    p.add_argument(
        "--work-dir",
        type=Path,
        help="where the data dirs go (default: a temp dir); same disk for both",
    )
    p.add_argument("--keep", action="store_true", help="keep the data dirs and server logs")
    p.add_argument("--seed", type=int, default=0, help="seeds the kill timing of the failover")
    p.add_argument(
        "--json",
        type=Path,
        help="JSON output path (default bench/results/bench-<time>.json)",
    )
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not apache_installed():
        print(
            f"python -m bench needs Apache ZooKeeper to compare with. {ZK_NOT_INSTALLED} (Debian/Ubuntu; it brings java)",
            file=sys.stderr,
        )
        return 2
    params = QUICK if args.quick else FULL
    params = attrs.evolve(
        params,
        runs=args.runs or params.runs,
        ops=args.ops or params.ops,
        ttl_s=args.ttl or params.ttl_s,
        tick_ms=args.tick_ms or params.tick_ms,
    )
    only = tuple(args.only.split(",")) if args.only else WORKLOADS
    if unknown := set(only) - set(WORKLOADS):
        print(
            f"--only: unknown workloads {sorted(unknown)}; choose from {','.join(WORKLOADS)}",
            file=sys.stderr,
        )
        return 2
    progress = Progress()

    def on_sigterm(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)  # unwinds through the finally that stops the servers

    signal.signal(signal.SIGTERM, on_sigterm)
    if args.work_dir:
        args.work_dir.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="ccore-bench-", dir=args.work_dir))
    if warning := check_disk(base):
        progress(f"WARNING: {warning}")
    load_before = background_now()
    progress(f"other processes use {load_before:.1f} of {os.cpu_count()} CPUs right now")
    meter = LoadMeter()
    reaper = Reaper()
    if not args.keep:
        reaper.scratch(base)
    systems: dict[str, System] = {}
    started_at = time.time()
    try:
        systems["ccore"] = Ours(base / "ccore", reaper, tick_ms=params.tick_ms, snap_count=args.snap_count)
        systems["zookeeper"] = Apache(
            base / "zookeeper",
            reaper,
            tick_ms=params.tick_ms,
            snap_count=args.snap_count,
            heap_mb=zookeeper_heap_mb(args.scale or 0),  # zkServer.sh's 1000 MB unless --scale
        )
        for name, system in systems.items():
            system.start_all()
            leader = wait_healthy(system)
            progress(f"{name}: 3 servers up on {system.connect_string()}, leader {leader}")
        if args.scale is not None:
            return _scale(args, systems, base, reaper, params.tick_ms, progress)
        bench = Bench(params, systems, only, args.seed, progress)
        try:
            bench.run()
        except (KeyboardInterrupt, SystemExit) as stop:
            # Stopped (Ctrl-C, SIGTERM): stop the servers, then show what was measured.
            interrupted = f"interrupted ({type(stop).__name__})"
            bench.results.errors.append(interrupted)
            progress(interrupted)
    finally:
        for system in systems.values():
            system.stop_all()
        reaper.close()
        if args.keep:
            progress(f"data dirs and server logs kept in {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    results = bench.results
    load_during = meter.background_cpus()
    meta = {
        "command": " ".join(["python -m bench", *(argv if argv is not None else sys.argv[1:])]),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started_at)),
        "duration_s": round(time.time() - started_at, 1),
        "params": attrs.asdict(params) | {"snap_count": args.snap_count},
        "workloads": list(only),
        "versions": versions(),
        "setup": "3-server ensembles on 127.0.0.1, data dirs on one disk, fsync on (ccore always; ZooKeeper forceSync=yes)",
        "background_cpus_before": round(load_before, 2),
        "background_cpus_during": round(load_during, 2),
    }
    out = args.json or RESULTS_DIR / f"bench-{time.strftime('%Y%m%d-%H%M%S', time.localtime(started_at))}.json"
    report.write_json(out, results.to_json(meta))
    runs_text = f"medians of {params.runs} runs" if params.runs > 1 else "1 run"
    sys.stderr.flush()
    print(
        f"\nconsistent-core vs Apache ZooKeeper, 3-server ensembles on 127.0.0.1, fsync on, tickTime {params.tick_ms} ms; "
        f"{runs_text}; {os.cpu_count()} CPUs, of which other processes used {load_during:.1f} on average\n"
    )
    print(report.table(results, params.runs))
    print()
    print(report.targets_table(results))
    print(f"\nJSON: {out.relative_to(REPO_ROOT) if out.is_relative_to(REPO_ROOT) else out}  ({meta['duration_s']:.0f} s)")
    for error in results.errors:
        print(f"failed: {error}", file=sys.stderr)
    return 1 if results.errors else 0


if __name__ == "__main__":
    sys.exit(main())
