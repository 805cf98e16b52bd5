"""One chaos run: a local ensemble behind fault proxies, the workloads, a seeded nemesis
schedule, then the checks and the report (chaos.report).

    cfg = RunConfig(seed=7, minutes=2, servers=3, nemeses=[...], workloads=[...], out=Path(...))
    status = run(cfg, say=print)     # 0 pass, 1 violation, 2 inconclusive or broken

The ensemble is `chaos.ensemble.LocalEnsemble(proxied=True)`: every directed peer link and
every client port goes through its own proxy; clients use a connection string of all the
client proxies. `FaultTarget` adapts it to the nemeses: a restarted server is waited for
until it answers `ruok`, not until it serves (after "kill all", one server alone never
serves), and `heal()` puts everything back: every server running and resumed, every peer and
client link healed, all serving under one leader.

With the `membership` nemesis (chaos.membership) the ensemble has `SPARES` more servers
outside its first configuration, every zoo.cfg has reconfigEnabled and the super digest, and
a `MembershipCycle` reconfigures it beside the schedule. The workloads' host lists name every
server, spares included (a removed server keeps serving as a non-voting follower, a killed one
is replaced by a spare). Parked servers (spares not started, replaced ones) are left alone by
the schedule, by the revival of crashed servers and by the final heal.
"""

from __future__ import annotations

import gzip
import logging
import random
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs

from .ensemble import LocalEnsemble
from .ephemeral import EphemeralWorkload
from .history import History
from .lockload import LockWorkload
from .membership import NAME as MEMBERSHIP
from .membership import RECONFIG_CONFIG, SPARES, MembershipCycle
from .nemesis import Applied, NemesisRunner, Schedule
from .report import FaultWindow, check_and_report, summary
from .watchload import WatchWorkload
from .workload import RegisterWorkload

log = logging.getLogger(__name__)

WORKLOADS = ("register", "register-sync", "lock", "ephemeral", "watch")
START_TIMEOUT_S = 60.0
RUOK_TIMEOUT_S = 30.0
HEAL_TIMEOUT_S = 90.0
PROGRESS_EVERY_S = 10.0
# Snapshots (and the log purges after them) every few hundred writes, so that a wiped or lagging
# server needs a SNAP, and a SNAP of a chaos-sized tree spans many chunks: the streamed SNAP,
# the forked snapshot child and snapshot recovery all run under the faults.
SNAP_COUNT = 300
SNAP_CHUNK_BYTES = 128


@attrs.define
class RunConfig:
    seed: int
    minutes: float
    out: Path
    servers: int = 3
    nemeses: Sequence[str] = ()
    workloads: Sequence[str] = WORKLOADS
    tick_ms: int = 200
    op_timeout_s: float = 2.0
    fault_s: tuple[float, float] = (2.0, 8.0)
    quiet_s: tuple[float, float] = (2.0, 5.0)
    settle_s: float = 5.0  # healed, workloads still running, before they stop
    register_workers: int = 4
    clients: Sequence[str] = ("kazoo", "native")
    lock_workers: int = 3
    expiry_bound_ms: int = 1500
    check_time_limit_s: float = 120.0
    command: str = ""


class FaultTarget:
    """`LocalEnsemble` as the nemeses want it (see the module docstring)."""

    def __init__(self, ens: LocalEnsemble) -> None:
        self.ens = ens
        self.crashes: list[dict[str, Any]] = []
        # Servers out of play (spares not started, replaced ones): nothing here starts them.
        self.parked: set[int] = set(ens.spares)

    def revive(self, at_s: float) -> list[int]:
        """Restart every server that is down although no fault is in force (call between
        faults): it exited on its own. Each crash is recorded with its exit status and last
        log lines (a server bug to look into, or a full disk it stopped on)."""
        revived = []
        for sid in self.servers:
            proc = self.ens._procs.get(sid)
            if proc is None or proc.poll() is None:
                continue
            self.crashes.append(
                {"at_s": round(at_s, 3), "server": sid, "exit": proc.returncode, "log_tail": self.ens.log_tail(sid, 4)}
            )
            try:
                self.start(sid)
                revived.append(sid)
            except RuntimeError as exc:
                self.crashes[-1]["restart_error"] = str(exc)
        return revived

    @property
    def servers(self) -> list[int]:
        """The servers in play: every one not parked."""
        return [sid for sid in self.ens.servers if sid not in self.parked]

    @property
    def proxies(self) -> Any:
        return self.ens.proxies

    def leader(self) -> int | None:
        return self.ens.leader()

    def kill(self, sid: int) -> None:
        self.ens.kill(sid)

    def start(self, sid: int, wait: bool = True) -> None:
        if sid in self.parked:  # parked while a fault had it down (replaced): it stays down
            log.info("server %d is parked; not starting it", sid)
            return
        self.ens.start(sid, wait=False)
        if not wait:
            return
        deadline = time.monotonic() + RUOK_TIMEOUT_S
        while not _ruok(self.ens.client_ports[sid]):
            if sid in self.parked:  # the membership cycle took it out meanwhile (to replace it)
                return
            if self.ens.pid(sid) is None:
                raise RuntimeError(f"server {sid} exited while starting: {self.ens.log_tail(sid, 5)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"server {sid} did not answer ruok within {RUOK_TIMEOUT_S:g}s")
            time.sleep(0.05)

    def wait_serving(self, sids: list[int], timeout_s: float = HEAL_TIMEOUT_S) -> None:
        self.ens.wait_serving(sids, timeout_s)

    def pause(self, sid: int) -> None:
        self.ens.pause(sid)

    def resume(self, sid: int) -> None:
        self.ens.resume(sid)

    def data_dir(self, sid: int) -> Path:
        return self.ens.data_dir(sid)

    def pid(self, sid: int) -> int | None:
        return self.ens.pid(sid)

    # -- for chaos.membership -------------------------------------------------------------

    @property
    def ids(self) -> list[int]:
        return self.ens.servers

    @property
    def initial_members(self) -> list[int]:
        return self.ens.initial_members

    @property
    def client_ports(self) -> dict[int, int]:
        return self.ens.client_ports

    def server_line(self, sid: int, role: str | None = None) -> str:
        return self.ens.server_line(sid, role)

    def write_config(self, sid: int, members: Sequence[int]) -> None:
        self.ens.write_config(sid, members)

    def is_paused(self, sid: int) -> bool:
        return sid in self.ens._paused

    def mode(self, sid: int) -> str | None:
        return self.ens.mode(sid)

    def launch(self, sid: int) -> None:
        self.ens.start(sid, wait=False)

    def park(self, sid: int) -> None:
        self.parked.add(sid)

    def unpark(self, sid: int) -> None:
        self.parked.discard(sid)

    def heal(self, timeout_s: float = HEAL_TIMEOUT_S) -> list[str]:
        """Everything back to normal; returns what had to be done beyond the schedule's own
        heals (each a sentence for the report)."""
        notes = []
        for sid in self.servers:
            if sid in self.ens._paused:
                self.ens.resume(sid)
                notes.append(f"resumed server {sid}")
            if self.ens.pid(sid) is None:
                self.ens.start(sid, wait=False)
                notes.append(f"started server {sid}")
        fleet = self.ens.proxies
        if fleet is not None:
            for name in fleet.names():
                if name[0] in ("peer", "client"):  # owner links stay cut: their sessions must die
                    fleet.heal(name)
        self.ens.wait_serving(None, timeout_s)
        self.ens.wait_leader(timeout_s)
        return notes


def _ruok(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.settimeout(1.0)
            s.sendall(b"ruok")
            return s.recv(16) == b"imok"
    except OSError:
        return False


def run(cfg: RunConfig, say: Callable[[str], None]) -> int:
    cfg.out.mkdir(parents=True, exist_ok=True)
    duration_s = cfg.minutes * 60.0
    schedule = Schedule.generate(cfg.seed, duration_s, list(cfg.nemeses), fault_s=cfg.fault_s, quiet_s=cfg.quiet_s)
    say(
        f"chaos: seed {cfg.seed}, {cfg.minutes:g} min, {cfg.servers} servers behind proxies; workloads "
        f"{', '.join(cfg.workloads)}; nemeses {', '.join(cfg.nemeses) or 'none'}; {len(schedule.steps)} faults "
        f"scheduled; report in {cfg.out}"
    )
    errors: list[str] = []
    spares = SPARES if MEMBERSHIP in cfg.nemeses else 0
    with tempfile.TemporaryDirectory(prefix="ccore-chaos-") as scratch:
        ens = LocalEnsemble(
            Path(scratch),
            nodes=cfg.servers + spares,
            tick_ms=cfg.tick_ms,
            snap_count=SNAP_COUNT,
            snap_chunk_bytes=SNAP_CHUNK_BYTES,
            proxied=True,
            seed=cfg.seed,
            initial_members=range(1, cfg.servers + 1),
            extra_config={sid: RECONFIG_CONFIG for sid in range(1, cfg.servers + spares + 1)} if spares else None,
        )
        try:
            try:
                ens.start_all(START_TIMEOUT_S)
                ens.wait_leader(START_TIMEOUT_S)
            except RuntimeError as exc:
                say(f"python -m chaos: the ensemble did not start: {exc}")
                _keep_logs(ens, cfg.out)
                return 2
            result = _run_workloads(cfg, ens, schedule, duration_s, say, errors)
        finally:
            ens.close()
            _keep_logs(ens, cfg.out)
    report, status = check_and_report(cfg, schedule, result, errors)
    say(summary(report, cfg.out))
    return status


@attrs.define
class RunResult:
    histories: dict[str, History]
    workloads: dict[str, Any]
    nemesis_log: list[Applied]
    faults: list[FaultWindow]
    run_s: float
    watch_changes: list[Any] = attrs.field(factory=list)
    crashes: list[dict[str, Any]] = attrs.field(factory=list)


def _run_workloads(
    cfg: RunConfig, ens: LocalEnsemble, schedule: Schedule, duration_s: float, say: Callable[[str], None], errors: list[str]
) -> RunResult:
    target = FaultTarget(ens)
    t0 = time.monotonic_ns()
    histories = {name: History(start_ns=t0, meta={"seed": cfg.seed, "workload": name}) for name in cfg.workloads}
    workloads = _make_workloads(cfg, ens, histories)
    faults: list[FaultWindow] = []
    open_faults: dict[tuple[str, int], float] = {}
    lock = threading.Lock()  # the schedule's and the membership cycle's events

    def on_event(a: Applied) -> None:
        with lock:
            now_s = (time.monotonic_ns() - t0) / 1e9
            key = (a.nemesis, a.step)
            if a.action == "start":
                open_faults[key] = runner_t0_s + a.at_s  # when the fault began to be put in place
            else:
                faults.append(FaultWindow(a.nemesis, open_faults.pop(key, runner_t0_s + a.at_s), now_s))
            say(_describe(a))
            # No scheduled fault in force: a server down now went down on its own. (The
            # membership cycle leaves no server it took down in play: it parks it first.)
            if a.action == "stop" and a.nemesis != MEMBERSHIP:
                for sid in target.revive(now_s):
                    say(f"  {now_s:6.1f}s  server {sid} had exited on its own (exit {target.crashes[-1]['exit']}); restarted")

    runner = NemesisRunner(target, schedule, on_event=on_event)
    threads = [threading.Thread(target=runner.run, name="chaos-nemesis", daemon=True)]
    cycle: MembershipCycle | None = None
    started = time.monotonic()
    for w in workloads.values():
        w.start()
    runner_t0_s = (time.monotonic_ns() - t0) / 1e9
    if MEMBERSHIP in cfg.nemeses:
        cycle = MembershipCycle(
            target, random.Random(f"{cfg.seed}/membership"), pause_s=cfg.quiet_s, t0=time.monotonic(), on_event=on_event
        )
        threads.append(threading.Thread(target=cycle.run, name="chaos-membership", daemon=True))
    for thread in threads:
        thread.start()
    try:
        _wait_with_progress(histories, started, duration_s, say)
    except KeyboardInterrupt:
        say("interrupted: stopping, healing, checking what was recorded")
    finally:
        runner.stop_event.set()
        if cycle is not None:
            cycle.stop_event.set()
        for thread in threads:
            thread.join(120.0)
            if thread.is_alive():
                errors.append(f"{thread.name} did not finish within 120 s")
        for (name, step), fault_start in open_faults.items():
            faults.append(FaultWindow(f"{name} step {step} (unhealed)", fault_start, (time.monotonic_ns() - t0) / 1e9))
        try:
            notes = target.heal()
            if notes:
                say("healed at the end: " + "; ".join(notes))
        except RuntimeError as exc:
            errors.append(f"the ensemble did not recover after the run: {exc}")
        faults.append(FaultWindow("final heal", faults[-1].end_s if faults else 0.0, (time.monotonic_ns() - t0) / 1e9))
        time.sleep(cfg.settle_s)
        for w in workloads.values():
            w.stop()
    run_s = time.monotonic() - started
    watch_changes: list[Any] = []
    for name, w in workloads.items():
        try:
            if isinstance(w, RegisterWorkload):
                w.final_reads()
            elif isinstance(w, WatchWorkload):
                watch_changes = w.resolve()
            elif isinstance(w, EphemeralWorkload):
                w.final_check()
        except Exception as exc:  # reported: the verdicts are then inconclusive
            log.exception("after the run: %s", name)
            errors.append(f"{name}: reading the final state failed: {exc!r}")
        errors.extend(f"{name}: {e}" for e in w.errors)
    nemesis_log = sorted([*runner.log, *(cycle.log if cycle is not None else [])], key=lambda a: a.at_s)
    return RunResult(histories, workloads, nemesis_log, faults, run_s, watch_changes, target.crashes)


def _make_workloads(cfg: RunConfig, ens: LocalEnsemble, histories: dict[str, History]) -> dict[str, Any]:
    hosts = ens.connect_string()
    out: dict[str, Any] = {}
    for name in cfg.workloads:
        h = histories[name]
        if name in ("register", "register-sync"):
            out[name] = RegisterWorkload(
                hosts, h, seed=cfg.seed, kinds=cfg.clients, workers=cfg.register_workers, op_timeout_s=cfg.op_timeout_s,
                sync_reads=name == "register-sync", root=f"/chaos/{name}", think_s=(0.0, 0.02),
            )  # fmt: skip
        elif name == "lock":
            out[name] = LockWorkload(hosts, h, seed=cfg.seed, workers=cfg.lock_workers, op_timeout_s=cfg.op_timeout_s)
        elif name == "ephemeral":
            upstreams = {sid: ("127.0.0.1", ens.client_ports[sid]) for sid in ens.servers}
            out[name] = EphemeralWorkload(hosts, h, ens.proxies, upstreams, seed=cfg.seed, op_timeout_s=cfg.op_timeout_s)
        elif name == "watch":
            out[name] = WatchWorkload(hosts, h, seed=cfg.seed, op_timeout_s=cfg.op_timeout_s)
        else:
            raise ValueError(f"unknown workload {name!r}; known: {', '.join(WORKLOADS)}")
    return out


def _wait_with_progress(histories: dict[str, History], started: float, duration_s: float, say: Callable[[str], None]) -> None:
    deadline = started + duration_s
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(PROGRESS_EVERY_S, left))
        parts = []
        for name, h in histories.items():
            c = h.counts()
            parts.append(f"{name} {c['ok']}/{c['fail']}/{c['info']}")
        say(f"  {time.monotonic() - started:6.1f}s  ok/fail/unknown: " + "  ".join(parts))


def _describe(a: Applied) -> str:
    detail = " ".join(f"{k}={v}" for k, v in a.detail.items() if k != "links")
    return f"  {a.at_s:6.1f}s  nemesis {a.nemesis} {a.action} {detail}" + (f"  ERROR {a.error}" if a.error else "")


def _keep_logs(ens: LocalEnsemble, out: Path) -> None:
    """Each server's log, gzipped, into the report directory."""
    (out / "servers").mkdir(exist_ok=True)
    for sid in ens.servers:
        src = ens.data_dir(sid) / "server.log"
        if src.exists():
            with open(src, "rb") as f, gzip.open(out / "servers" / f"server{sid}.log.gz", "wb") as g:
                shutil.copyfileobj(f, g)
