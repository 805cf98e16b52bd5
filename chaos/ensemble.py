"""A local ensemble of real `ccore serve` processes, for the ensemble tests and chaos runs.

    with LocalEnsemble(tmp_path, nodes=3) as ens:
        ens.start_all()
        zk = KazooClient(ens.connect_string())
        leader = ens.leader(); ens.kill(leader); ...; ens.start(leader)

It implements the `Ensemble` protocol of chaos.nemesis: kill -9, start, SIGSTOP/SIGCONT,
data dirs and pids, and (with `proxied=True`) a fault proxy on every directed peer link and
every client port, wired in through each server's `dial.N=host:port` config lines.

Spares for reconfiguration: with `initial_members`, only those servers make the first
configuration (and `start_all` starts only them); every other server is a spare whose zoo.cfg
lists the initial members plus itself, as ZooKeeper's docs say to start a joiner. Every
server line carries its client address (`;127.0.0.1:<clientPort>`, as clientPort and
clientPortAddress say too), so that `server_line(sid)` is what `reconfig` needs to add it,
and `write_config(sid, members)` makes a server a joiner of another membership.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType

from ccore.server.ensemble import free_ports, mode

from .proxy import FleetThread

READY_TIMEOUT_S = 30.0
REPO_ROOT = Path(__file__).resolve().parent.parent


def _copy_log(proc: subprocess.Popen[bytes], path: Path) -> None:
    """Copy a server's output to `path` until it exits (EOF ends the loop)."""
    assert proc.stdout is not None
    with open(path, "ab") as out, proc.stdout:
        for line in proc.stdout:
            out.write(line)
            out.flush()
        out.write(f"--- server pid {proc.pid} exited with {proc.wait()} ---\n".encode())


class LocalEnsemble:
    def __init__(
        self,
        base_dir: Path,
        nodes: int = 3,
        observers: int = 0,
        *,
        tick_ms: int = 200,
        init_limit: int = 10,
        sync_limit: int = 5,
        snap_count: int = 100_000,
        snap_chunk_bytes: int = 1024 * 1024,
        proxied: bool = False,
        seed: int = 0,
        log_level: str = "INFO",
        extra_config: Mapping[int, Sequence[str]] | None = None,
        initial_members: Iterable[int] | None = None,
    ) -> None:
        """`extra_config`: more zoo.cfg lines per server id (TLS keys, say). `initial_members`:
        the ids of the first configuration (default: every server); the others are spares."""
        self.base = Path(base_dir)
        self.ids = list(range(1, nodes + observers + 1))
        self.observer_ids = set(self.ids[nodes:])
        self.initial_members = sorted(set(initial_members)) if initial_members is not None else list(self.ids)
        if not self.initial_members or not set(self.initial_members) <= set(self.ids):
            raise ValueError(f"initial members {self.initial_members} must be some of the servers {self.ids}")
        self.tick_ms = tick_ms
        self.log_level = log_level
        ports = free_ports(3 * len(self.ids))
        self.client_ports = dict(zip(self.ids, ports[: len(self.ids)], strict=True))
        self.peer_ports = dict(zip(self.ids, ports[len(self.ids) : 2 * len(self.ids)], strict=True))
        self.election_ports = dict(zip(self.ids, ports[2 * len(self.ids) :], strict=True))
        self._procs: dict[int, subprocess.Popen] = {}
        self._logs: dict[int, threading.Thread] = {}
        self._paused: set[int] = set()
        self.fleet: FleetThread | None = None
        if proxied:
            self.fleet = FleetThread(seed=seed).start()
            self.fleet.add_ensemble(
                {i: ("127.0.0.1", self.peer_ports[i]) for i in self.ids},
                {i: ("127.0.0.1", self.client_ports[i]) for i in self.ids},
            )
        # Every zoo.cfg line but the server lines, per server: `write_config` renders the rest.
        self._static_lines: dict[int, list[str]] = {}
        for i in self.ids:
            d = self.data_dir(i)
            d.mkdir(parents=True, exist_ok=True)
            (d / "myid").write_text(f"{i}\n")
            dial = []
            if self.fleet is not None:
                dial = [f"dial.{j}={h}:{p}" for j, (h, p) in self.fleet.dial_map(i, self.ids).items()]
            self._static_lines[i] = [
                f"tickTime={tick_ms}",
                f"initLimit={init_limit}",
                f"syncLimit={sync_limit}",
                f"snapCount={snap_count}",
                f"snapChunkBytes={snap_chunk_bytes}",
                f"dataDir={d}",
                f"clientPort={self.client_ports[i]}",
                "clientPortAddress=127.0.0.1",
                *dial,
                *(extra_config or {}).get(i, ()),
            ]
            self.write_config(i, self.initial_members)

    @property
    def spares(self) -> list[int]:
        """The servers outside the first configuration."""
        return [i for i in self.ids if i not in self.initial_members]

    def server_line(self, sid: int, role: str | None = None) -> str:
        """Server `sid`'s `server.N=` line with its client address, as `reconfig` takes it
        (`joining=[ens.server_line(4)]`). `role`: participant or observer (default: its own)."""
        role = role or ("observer" if sid in self.observer_ids else "participant")
        return (
            f"server.{sid}=127.0.0.1:{self.peer_ports[sid]}:{self.election_ports[sid]}:{role};127.0.0.1:{self.client_ports[sid]}"
        )

    def write_config(self, sid: int, members: Iterable[int]) -> None:
        """Server `sid`'s zoo.cfg with the server lines of `members` plus its own: what a
        server joining that membership is started with. Dynamic config files a previous life
        left beside it (and the zoo.cfg.bak of the first) are removed: they would name an old
        membership. Call it while the server is down."""
        d = self.data_dir(sid)
        for stale in [*d.glob("zoo.cfg.dynamic*"), d / "zoo.cfg.bak"]:
            stale.unlink(missing_ok=True)
        servers = [self.server_line(i) for i in sorted({*members, sid})]
        (d / "zoo.cfg").write_text("\n".join([*self._static_lines[sid], *servers]) + "\n")

    # -- the Ensemble protocol ------------------------------------------------------------

    @property
    def servers(self) -> list[int]:
        return list(self.ids)

    @property
    def proxies(self) -> FleetThread | None:
        return self.fleet

    def data_dir(self, sid: int) -> Path:
        return self.base / f"server{sid}"

    def pid(self, sid: int) -> int | None:
        proc = self._procs.get(sid)
        return proc.pid if proc is not None and proc.poll() is None else None

    def start(self, sid: int, wait: bool = True) -> None:
        proc = self._procs.get(sid)
        if proc is not None and proc.poll() is None:
            return
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        # Output through a pipe, copied to the log by us: a full-disk fault (RLIMIT_FSIZE on
        # the server, chaos.disk) must not silence the server's own last words.
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ccore",
                "serve",
                "--config",
                str(self.data_dir(sid) / "zoo.cfg"),
                "--log-level",
                self.log_level,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
            cwd=REPO_ROOT,
        )
        self._procs[sid] = proc
        self._logs[sid] = threading.Thread(target=_copy_log, args=(proc, self.data_dir(sid) / "server.log"), daemon=True)
        self._logs[sid].start()
        if wait:
            self.wait_serving([sid])

    def kill(self, sid: int) -> None:
        proc = self._procs.get(sid)
        if proc is None or proc.poll() is not None:
            return
        if sid in self._paused:
            self.resume(sid)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def terminate(self, sid: int) -> None:
        proc = self._procs.get(sid)
        if proc is None or proc.poll() is not None:
            return
        if sid in self._paused:
            self.resume(sid)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill(sid)

    def pause(self, sid: int) -> None:
        proc = self._procs[sid]
        os.kill(proc.pid, signal.SIGSTOP)
        self._paused.add(sid)

    def resume(self, sid: int) -> None:
        proc = self._procs[sid]
        os.kill(proc.pid, signal.SIGCONT)
        self._paused.discard(sid)

    def leader(self) -> int | None:
        for sid in self.ids:
            if sid not in self._paused and self.pid(sid) is not None and mode(self.client_ports[sid]) == "leader":
                return sid
        return None

    # -- conveniences ---------------------------------------------------------------------

    def mode(self, sid: int) -> str | None:
        return mode(self.client_ports[sid]) if self.pid(sid) is not None and sid not in self._paused else None

    def client_address(self, sid: int) -> tuple[str, int]:
        if self.fleet is not None:
            return self.fleet.address(("client", sid))
        return ("127.0.0.1", self.client_ports[sid])

    def connect_string(self, sids: list[int] | None = None) -> str:
        return ",".join(f"{host}:{port}" for host, port in map(self.client_address, sids or self.ids))

    def start_all(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Start the servers of the first configuration (not the spares) until they serve."""
        for sid in self.initial_members:
            self.start(sid, wait=False)
        self.wait_serving(self.initial_members, timeout_s)

    def wait_serving(self, sids: list[int] | None = None, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Until each server (default: every running one) is serving (leader/follower/observer)."""
        targets = [s for s in (sids or self.ids) if self.pid(s) is not None]
        deadline = time.monotonic() + timeout_s
        while True:
            waiting = [s for s in targets if mode(self.client_ports[s]) is None]
            if not waiting:
                return
            for s in waiting:
                proc = self._procs[s]
                if proc.poll() is not None:
                    raise RuntimeError(f"server {s} exited with {proc.returncode}: {self.log_tail(s)}")
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"servers {waiting} not serving after {timeout_s:.0f} s; last log lines: {self.log_tail(waiting[0])}"
                )
            time.sleep(0.05)

    def wait_leader(self, timeout_s: float = READY_TIMEOUT_S) -> int:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            leader = self.leader()
            if leader is not None:
                return leader
            time.sleep(0.05)
        raise RuntimeError(f"no leader within {timeout_s:.0f} s")

    def log_tail(self, sid: int, lines: int = 15) -> str:
        path = self.data_dir(sid) / "server.log"
        try:
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop_all(self) -> None:
        for sid in self.ids:
            self.kill(sid)
        for copier in self._logs.values():
            copier.join(5.0)  # EOF once the server is dead
        self._logs.clear()

    def close(self) -> None:
        self.stop_all()
        if self.fleet is not None:
            self.fleet.close()
            self.fleet = None

    def __enter__(self) -> LocalEnsemble:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
