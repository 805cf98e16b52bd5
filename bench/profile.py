"""Where our servers spend their time under the pipelined workloads.

    python -m bench.profile [--ops 20000] [--reads 100000] [--rate 200] [--no-apache] [--no-strace]

Starts our 3-server ensemble (and Apache ZooKeeper's, for the CPU comparison) and runs
pipelined creates, then pipelined reads, from a client process (our client, 200 in flight,
connected to a follower, as `python -m bench` does). While each runs it records, per server:

- process CPU (/proc/PID/stat) and, per thread, CPU time and time spent runnable but waiting
  for a CPU (/proc/PID/task/TID/schedstat): the machine has 2 cores for 3 servers and a client;
- py-spy samples of the threads *holding the GIL* (`py-spy record --gil -f raw`): Python work
  only, so a thread blocked in a syscall or waiting for a CPU after one is not counted; each
  sample goes to one category by its innermost recognised frame (RULES), and a category's
  CPU is its share of the Trio thread's samples times that thread's CPU time;
- in a second creates pass under `strace -c -f`, the syscalls per 1000 ops (fdatasync count
  = group-commit batches).

Raw stacks (flame-graph ready) and profile.json go to bench/results/profile-<time>/.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .reaper import Reaper
from .scenarios import Worker, WorkerError
from .systems import Apache, Ours, System, followers, wait_healthy

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "bench" / "results"
CLK_TCK = os.sysconf("SC_CLK_TCK")
SPY_ATTACH_S = 1.0
PHASE_TIMEOUT_S = 300.0
SYSCALLS = (
    "fdatasync",
    "fsync",
    "sendto",
    "sendmsg",
    "write",
    "recvfrom",
    "read",
    "epoll_wait",
    "futex",
)

# (category, regex on one frame "function (file:line)"), tried from the innermost frame out:
# the first frame that matches names the sample. More specific rules come first.
RULES: list[tuple[str, str]] = [
    ("fsync", r"^(datasync|fsync|fsync_dir) "),
    ("log append (persist thread)", r"^(TxnLog\.|write_all|Replicator\._persist)"),
    ("socket send", r"_nonblocking_helper|SocketStream\.send_all"),
    ("socket recv", r"SocketStream\.receive_some"),
    ("txn decode (CBOR)", r"^decode_txn "),
    ("txn encode (CBOR)", r"^encode_txn "),
    ("forwarded op decode, leader (CBOR)", r"^decode_value "),
    ("forward op encode, follower (CBOR)", r"^encode_value "),
    ("peer message encode", r"^(_encode_frame|encode_message) "),
    ("peer message decode", r"^(_decode_frame|decode_message) "),
    ("client request decode (jute)", r"^(decode_request|decode_connect) "),
    (
        "reply encode (jute)",
        r"^(encode_reply|encode_response|encode_watch_event|Connection\._answer|write_response) ",
    ),
    ("watch bookkeeping", r"^WatchManager\."),
    (
        "tree apply",
        r"^DataTree\.(apply|_apply_op|_create|_delete|_set_data|_link|_unlink)",
    ),
    (
        "read (tree lookup)",
        r"^(Reads\.|DataTree\.(get_data|get_children|node|exists)|Node\.stat)",
    ),
    (
        "sessions",
        r"^(SessionManager\.|Reaper\.|SessionTable\.|WriteRouter\.(touched|touches_due))",
    ),
    (
        "zab core",
        r"^(ZabPeer\.|Leading\.|Learning\.|Election\.|History\.|Replicator\.(_propose_queued|_on_message|_on_status))",
    ),
    ("frame splitting (client and peer sockets)", r"^(read_frames|FrameReader\.)"),
    (
        "client connection (dispatch, FIFO queue)",
        r"^(Connection\.|ServerConnection\.|ClientPort\.|Applier\.apply|LocalCommitter\.|Replicator\.submit|WriteRouter\.(submit|receive|writer_of))",
    ),
    ("peer network", r"^PeerNetwork\."),
    ("replication pump", r"^Replicator\._pump"),
    ("garbage collector", r"^(gc_collect|collect) |<gc>"),
    (
        "Trio scheduler, tasks, threads",
        (
            r"^(unrolled_run|Runner\.|EpollIOManager\.|wait_task_rescheduled|checkpoint|to_thread_run_sync|start_thread_soon|"
            r"ThreadCache\.|WorkerThread\.|current_time|SystemClock|_ki_protection|Event\.|EntryQueue|run_sync_soon|spawn_impl|"
            r"Memory(Send|Receive)Channel|ParkingLot|_public|CancelScope|Nursery|NurseryManager|open_nursery|_try_sync|"
            r"checkpoint_if_cancelled|cancel_shielded_checkpoint|TrioToken|Deadlines|capture|to_thread_run_sync)"
        ),
    ),
]
_COMPILED = [(name, re.compile(rx)) for name, rx in RULES]

# The pipeline stages the lead asked about, each a list of categories.
STAGES: dict[str, tuple[str, ...]] = {
    "decode": (
        "client request decode (jute)",
        "forwarded op decode, leader (CBOR)",
        "txn decode (CBOR)",
        "peer message decode",
        "frame splitting (client and peer sockets)",
        "socket recv",
    ),
    "apply": ("tree apply", "watch bookkeeping", "read (tree lookup)"),
    "replicate": (
        "zab core",
        "txn encode (CBOR)",
        "forward op encode, follower (CBOR)",
        "peer message encode",
        "peer network",
        "replication pump",
    ),
    "persist": ("log append (persist thread)", "fsync"),
    "reply": (
        "reply encode (jute)",
        "client connection (dispatch, FIFO queue)",
        "socket send",
    ),
    "sessions": ("sessions",),
    "Trio overhead": ("Trio scheduler, tasks, threads",),
    "other": ("garbage collector", "other"),
}


def categorise(frames: list[str]) -> str:
    for frame in reversed(frames):
        for name, rx in _COMPILED:
            if rx.search(frame):
                return name
    return "other"


def parse_raw(path: Path) -> dict[str, dict[str, Any]]:
    """py-spy raw output -> {"trio": ..., "workers": ...}: sample counts by category, and the
    innermost frames of what fell in "other"."""
    out: dict[str, dict[str, Any]] = {
        k: {
            "samples": 0,
            "categories": collections.Counter(),
            "other": collections.Counter(),
        }
        for k in ("trio", "workers")
    }
    for line in path.read_text().splitlines():
        stack, _, count = line.rstrip().rpartition(" ")
        if not count.isdigit():
            continue
        n, frames = int(count), stack.split(";")
        kind = "workers" if any(f.startswith("Thread._bootstrap") for f in frames) else "trio"
        name = categorise(frames)
        out[kind]["samples"] += n
        out[kind]["categories"][name] += n
        if name == "other":
            out[kind]["other"][re.sub(r" \(.*\)$", "", frames[-1])] += n
        if name == TRIO:
            out[kind].setdefault("trio_parts", collections.Counter())[trio_part(frames)] += n
    return out


TRIO = "Trio scheduler, tasks, threads"
# What the Trio overhead is made of. A stack under to_thread_run_sync (or the worker-thread
# cache and its wake-up queue) is thread hand-off; otherwise its innermost Trio frame decides.
HANDOFF = re.compile(r"to_thread_run_sync|_thread_cache|EntryQueue|TrioToken|run_sync_soon")
TRIO_PARTS: list[tuple[str, re.Pattern[str]]] = [
    (
        "socket I/O wrappers (_try_sync, wait_readable/writable, epoll registration)",
        re.compile(r"^(_try_sync|wait_(readable|writable)|_nonblocking_helper|EpollIOManager\.(_update|wait|notify))"),
    ),
    (
        "task wake-ups (Event, ParkingLot, checkpoints, cancel scopes, nurseries)",
        re.compile(
            r"^(Event\.|ParkingLot|checkpoint|cancel_shielded|CancelScope|wait_task_rescheduled|Nursery|spawn_impl|Task\.)"
        ),
    ),
    (
        "event loop (epoll poll, run queue, reschedule)",
        re.compile(r"^(unrolled_run|EpollIOManager\.|Runner\.|reschedule|current_time)"),
    ),
]


def trio_part(frames: list[str]) -> str:
    if any(HANDOFF.search(f) for f in frames):
        return "thread hand-off (to_thread for fsync/snapshots)"
    for frame in reversed(frames):
        for name, rx in TRIO_PARTS:
            if rx.search(frame):
                return name
    return "other Trio internals"


def cpu_seconds(pid: int | None) -> float:
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def thread_times(pid: int | None) -> dict[str, tuple[str, float, float]]:
    """tid -> (thread name, s on a CPU, s runnable waiting for a CPU)."""
    out: dict[str, tuple[str, float, float]] = {}
    if pid is None:
        return out
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return out
    for task in tasks:
        try:
            name = (task / "comm").read_text().strip()
            on_cpu, waiting, _ = (int(x) for x in (task / "schedstat").read_text().split())
        except (OSError, ValueError):
            continue
        out[task.name] = (name, on_cpu / 1e9, waiting / 1e9)
    return out


def thread_deltas(before: dict, after: dict, main_tid: str) -> dict[str, dict[str, float]]:
    """CPU and run-queue wait of the main (Trio) thread and of all other threads together."""
    out = {
        "trio": {"cpu_s": 0.0, "wait_s": 0.0},
        "workers": {"cpu_s": 0.0, "wait_s": 0.0},
    }
    for tid, (_, cpu, wait) in after.items():
        _, cpu0, wait0 = before.get(tid, ("", 0.0, 0.0))
        kind = "trio" if tid == main_tid else "workers"
        out[kind]["cpu_s"] += cpu - cpu0
        out[kind]["wait_s"] += wait - wait0
    return out


def parse_strace(path: Path) -> dict[str, int]:
    calls: dict[str, int] = {}
    try:
        text = path.read_text()
    except OSError:
        return calls
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[-1] in SYSCALLS and parts[3].isdigit():
            calls[parts[-1]] = int(parts[3])
    return calls


# --- the client process ---------------------------------------------------------------------


def client_main(argv: list[str]) -> int:
    """`python -m bench.profile client HOSTS OPS READS IN_FLIGHT`: on each `go PHASE` line runs
    that phase and prints its rate: creates (OPS new nodes) and reads (READS gets of them),
    IN_FLIGHT outstanding; setdata (OPS/10 setData, one at a time)."""
    import trio

    from ccore.client import connect

    from .workloads import VALUE, _ours_pipelined, fresh_root

    hosts, ops, reads, in_flight = argv[0], int(argv[1]), int(argv[2]), int(argv[3])

    async def phase(zk: Any, name: str, root: str, made: list[str]) -> int:
        if name == "setdata":
            for _ in range(ops // 10):
                await zk.set(root, VALUE)
            return ops // 10
        if name == "creates":
            paths = [f"{root}/b{len(made)}-{i:07d}" for i in range(ops)]
            await _ours_pipelined(lambda i: zk.create(paths[i], VALUE), ops, in_flight)
            made += paths
            return ops
        await _ours_pipelined(lambda i: zk.get(made[i % len(made)]), reads, in_flight)
        return reads

    async def run() -> None:
        root = fresh_root("profile")
        async with connect(hosts, connect_timeout=15) as zk:
            await zk.create(root)
            print("ready", flush=True)
            made: list[str] = []
            while True:
                command = (await trio.to_thread.run_sync(sys.stdin.readline)).split()
                if len(command) != 2 or command[0] != "go":
                    return
                cpu0, wall0 = time.process_time(), time.perf_counter()
                with trio.fail_after(PHASE_TIMEOUT_S):
                    n = await phase(zk, command[1], root, made)
                rate = n / (time.perf_counter() - wall0)
                print(
                    json.dumps(
                        {
                            "ops": n,
                            "rate": rate,
                            "client_cpu_s": time.process_time() - cpu0,
                        }
                    ),
                    flush=True,
                )

    trio.run(run)
    return 0


# --- driving ----------------------------------------------------------------------------------


class Profiler:
    def __init__(self, out_dir: Path, rate_hz: int, progress: Callable[[str], None]) -> None:
        self.out_dir = out_dir
        self.rate_hz = rate_hz
        self.progress = progress

    def run(
        self,
        system: System,
        ops: int,
        reads: int,
        in_flight: int,
        *,
        spy: bool,
        strace: bool,
    ) -> dict[str, dict]:
        leader = wait_healthy(system)
        target = min(followers(system))
        roles = {
            sid: "leader" if sid == leader else "follower (client's)" if sid == target else "follower (other)"
            for sid in system.servers
        }
        client = Worker(
            "profile client",
            [
                "client",
                system.connect_string([target]),
                str(ops),
                str(reads),
                str(in_flight),
            ],
            module="bench.profile",
        )
        results: dict[str, dict] = {}
        try:
            if (line := client.line(30)) != "ready":
                raise WorkerError(f"profile client: {line!r}")
            for phase in ("creates", "reads", "setdata"):
                results[phase] = self._phase(system, client, phase, roles, spy=spy)
            if strace and shutil.which("strace"):
                results["creates"]["syscalls"] = self._strace_pass(system, client, roles)
        finally:
            client.close()
        return results

    def _phase(
        self,
        system: System,
        client: Worker,
        phase: str,
        roles: dict[int, str],
        *,
        spy: bool,
    ) -> dict:
        spies: dict[int, tuple[Path, subprocess.Popen]] = {}
        try:
            if spy:
                for sid in system.servers:
                    raw = self.out_dir / f"{system.name}-{phase}-{roles[sid].split()[0]}{sid}.txt"
                    argv = [
                        "py-spy",
                        "record",
                        "--gil",
                        "-f",
                        "raw",
                        "-r",
                        str(self.rate_hz),
                        "-p",
                        str(system.pid(sid)),
                        "-o",
                        str(raw),
                    ]
                    spies[sid] = (
                        raw,
                        subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
                    )
                time.sleep(SPY_ATTACH_S)
            cpu0 = {sid: cpu_seconds(system.pid(sid)) for sid in system.servers}
            threads0 = {sid: thread_times(system.pid(sid)) for sid in system.servers}
            wall0 = time.monotonic()
            client.send(f"go {phase}")
            got = client.result(PHASE_TIMEOUT_S)
            wall = time.monotonic() - wall0
            cpu = {sid: cpu_seconds(system.pid(sid)) - cpu0[sid] for sid in system.servers}
            threads = {
                sid: thread_deltas(threads0[sid], thread_times(system.pid(sid)), str(system.pid(sid))) for sid in system.servers
            }
        finally:
            _stop_all([proc for _, proc in spies.values()])
        servers = {}
        for sid in system.servers:
            entry: dict[str, Any] = {
                "role": roles[sid],
                "cpu_s": cpu[sid],
                "threads": threads[sid],
            }
            if sid in spies and spies[sid][0].exists():
                entry["samples"] = parse_raw(spies[sid][0])
            servers[str(sid)] = entry
        cpu_text = ", ".join(f"{roles[s]} {cpu[s]:.2f}s" for s in system.servers)
        self.progress(
            f"{system.name} {phase}: {got['rate']:,.0f} ops/s in {wall:.1f}s; server CPU {cpu_text}; client CPU {got['client_cpu_s']:.2f}s"
        )
        return {
            "ops": got["ops"],
            "rate": got["rate"],
            "wall_s": wall,
            "client_cpu_s": got["client_cpu_s"],
            "servers": servers,
            "rate_hz": self.rate_hz,
        }

    def _strace_pass(self, system: System, client: Worker, roles: dict[int, str]) -> dict[str, Any]:
        """Another creates pass under strace -c (slower: only the counts are used)."""
        outs: dict[int, tuple[Path, subprocess.Popen]] = {}
        try:
            for sid in system.servers:
                out = self.out_dir / f"{system.name}-creates-strace-{sid}.txt"
                argv = [
                    "strace",
                    "-c",
                    "-f",
                    "-p",
                    str(system.pid(sid)),
                    "-o",
                    str(out),
                ]
                outs[sid] = (
                    out,
                    subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
                )
            time.sleep(SPY_ATTACH_S)
            client.send("go creates")
            got = client.result(PHASE_TIMEOUT_S)
        finally:
            _stop_all([proc for _, proc in outs.values()])
        counts = {str(sid): {"role": roles[sid], "calls": parse_strace(out)} for sid, (out, _) in outs.items()}
        self.progress(f"{system.name} creates under strace: {got['rate']:,.0f} ops/s")
        return {"ops": got["ops"], "servers": counts}


def _stop_all(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # py-spy and strace write their output on SIGINT
    for proc in procs:
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


# --- the report -----------------------------------------------------------------------------


def _ms_per_1000(seconds: float, ops: int) -> float:
    return seconds / ops * 1e6


def _server_section(sid: str, s: dict, ops: int) -> list[str]:
    trio_t, workers = s["threads"]["trio"], s["threads"]["workers"]
    lines = [
        f"\n### server {sid}, {s['role']}: process CPU {_ms_per_1000(s['cpu_s'], ops):.0f} ms per 1000 ops",
        (
            f"Trio thread: on a CPU {_ms_per_1000(trio_t['cpu_s'], ops):.0f} ms, runnable but waiting for a CPU "
            f"{_ms_per_1000(trio_t['wait_s'], ops):.0f} ms; other threads (persist, thread cache): on a CPU "
            f"{_ms_per_1000(workers['cpu_s'], ops):.0f} ms, waiting for a CPU {_ms_per_1000(workers['wait_s'], ops):.0f} ms"
            " (per 1000 ops)"
        ),
    ]
    samples = s.get("samples")
    if not samples or not samples["trio"]["samples"]:
        return lines
    cats = samples["trio"]["categories"]
    total = samples["trio"]["samples"]
    lines += [
        "",
        "| stage | category (Trio thread, GIL held) | share | CPU ms / 1000 ops |",
        "|---|---|--:|--:|",
    ]
    stage_totals = []
    for stage, members in STAGES.items():
        stage_n = 0
        for cat in members:
            n = cats.get(cat, 0)
            if n:
                stage_n += n
                lines.append(f"| {stage} | {cat} | {n / total:.0%} | {_ms_per_1000(trio_t['cpu_s'] * n / total, ops):.1f} |")
        if stage_n:
            stage_totals.append(f"{stage} {stage_n / total:.0%}")
    lines.append("by stage: " + ", ".join(stage_totals))
    parts = collections.Counter(samples["trio"].get("trio_parts", {}))
    if parts:
        lines.append(
            "Trio overhead made of: "
            + ", ".join(f"{k} {_ms_per_1000(trio_t['cpu_s'] * v / total, ops):.1f} ms" for k, v in parts.most_common())
        )
    others = collections.Counter(samples["trio"]["other"]).most_common(5)
    if others:
        lines.append("'other', by innermost frame: " + ", ".join(f"{k} {v / total:.1%}" for k, v in others))
    w = samples["workers"]
    if w["samples"]:
        lines.append(
            "other threads, GIL held: " + ", ".join(f"{k} {v / w['samples']:.0%}" for k, v in w["categories"].most_common(4))
        )
    return lines


def _totals(res: dict, ops: int) -> list[str]:
    """CPU ms per 1000 ops by category, the three servers' Trio threads added up."""
    totals: collections.Counter = collections.Counter()
    for s in res["servers"].values():
        samples = s.get("samples")
        if not samples or not samples["trio"]["samples"]:
            continue
        n_all = samples["trio"]["samples"]
        for cat, n in samples["trio"]["categories"].items():
            totals[cat] += s["threads"]["trio"]["cpu_s"] * n / n_all
    if not totals:
        return []
    whole = sum(totals.values())
    lines = [
        "",
        "| all 3 servers: stage | category | CPU ms / 1000 ops | share |",
        "|---|---|--:|--:|",
    ]
    for stage, members in STAGES.items():
        for cat in members:
            if totals.get(cat):
                lines.append(f"| {stage} | {cat} | {_ms_per_1000(totals[cat], ops):.1f} | {totals[cat] / whole:.0%} |")
    return lines


PHASE_TITLES = {
    "creates": "pipelined creates (100 B values, 200 in flight)",
    "reads": "pipelined reads (200 in flight)",
    "setdata": "setData, one outstanding (the latency path)",
}


def report(all_results: dict[str, dict[str, dict]]) -> str:
    lines: list[str] = []
    theirs = all_results.get("zookeeper", {})
    for phase, res in all_results.get("ccore", {}).items():
        ops = res["ops"]
        lines.append(f"\n## {PHASE_TITLES[phase]}: {ops:,} ops at {res['rate']:,.0f} ops/s (our client, connected to a follower)")
        ours_cpu = sum(s["cpu_s"] for s in res["servers"].values())
        cpu = f"CPU per 1000 ops, 3 servers together: ccore {_ms_per_1000(ours_cpu, ops):.0f} ms"
        if phase in theirs:
            t = theirs[phase]
            t_cpu = sum(s["cpu_s"] for s in t["servers"].values())
            cpu += f", ZooKeeper {_ms_per_1000(t_cpu, t['ops']):.0f} ms (at {t['rate']:,.0f} ops/s)"
        lines.append(cpu + f"; the client process {_ms_per_1000(res['client_cpu_s'], ops):.0f} ms")
        lines += _totals(res, ops)
        for sid, s in res["servers"].items():
            lines += _server_section(sid, s, ops)
        for name, r in (("ccore", res), ("ZooKeeper", theirs.get(phase, {}))):
            sc = r.get("syscalls")
            if not sc:
                continue
            lines.append(f"\nsyscalls per 1000 creates, {name} (strace -c pass):")
            for sid, entry in sc["servers"].items():
                calls = entry["calls"]
                fsyncs = calls.get("fdatasync", 0) + calls.get("fsync", 0)
                batch = f", {sc['ops'] / fsyncs:.0f} txns per fsync" if fsyncs else ""
                counts = ", ".join(f"{k} {v / sc['ops'] * 1000:.0f}" for k, v in sorted(calls.items()))
                lines.append(f"- server {sid} ({entry['role']}): {counts}{batch}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "client":
        return client_main(argv[1:])
    p = argparse.ArgumentParser(
        prog="python -m bench.profile",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    p.add_argument("--ops", type=int, default=20000, help="pipelined creates (default 20000)")
    p.add_argument("--reads", type=int, default=100000, help="pipelined reads (default 100000)")
    p.add_argument("--in-flight", type=int, default=200)
    p.add_argument("--rate", type=int, default=200, help="py-spy samples per second (default 200)")
    p.add_argument("--tick-ms", type=int, default=2000)
    p.add_argument("--no-apache", action="store_true", help="skip ZooKeeper's CPU figures")
    p.add_argument("--no-strace", action="store_true", help="skip the syscall-count pass")
    args = p.parse_args(argv)
    if shutil.which("py-spy") is None:
        print("py-spy not found: pip install py-spy", file=sys.stderr)
        return 2
    start = time.monotonic()

    def progress(text: str) -> None:
        print(f"[{time.monotonic() - start:6.1f}s] {text}", file=sys.stderr, flush=True)

    out_dir = RESULTS_DIR / f"profile-{time.strftime('%Y%m%d-%H%M%S')}"
    out_dir.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="ccore-profile-"))
    reaper = Reaper()
    reaper.scratch(base)
    systems: list[System] = []
    results: dict[str, dict[str, dict]] = {}
    profiler = Profiler(out_dir, args.rate, progress)
    try:
        systems.append(Ours(base / "ccore", reaper, tick_ms=args.tick_ms))
        if not args.no_apache:
            systems.append(Apache(base / "zookeeper", reaper, tick_ms=args.tick_ms))
        for system in systems:
            system.start_all()
            wait_healthy(system)
            progress(f"{system.name} up; warming up")
            Profiler(out_dir, args.rate, lambda _text: None).run(
                system,
                max(2000, args.ops // 4),
                max(5000, args.reads // 10),
                args.in_flight,
                spy=False,
                strace=False,
            )
            results[system.name] = profiler.run(
                system,
                args.ops,
                args.reads,
                args.in_flight,
                spy=system.name == "ccore",
                strace=system.name == "ccore" and not args.no_strace,  # strace slows Java 5x: no figures
            )
    finally:
        for system in systems:
            system.stop_all()
        reaper.close()
        shutil.rmtree(base, ignore_errors=True)
    (out_dir / "profile.json").write_text(json.dumps(results, indent=1))
    print(report(results))
    print(f"\nraw py-spy stacks, strace counts and profile.json: {out_dir.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
