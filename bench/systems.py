"""The two systems under test, each a 3-server ensemble of real processes on 127.0.0.1 with its
data on the same disk and fsync on: ours (`chaos.ensemble.LocalEnsemble`) and Apache ZooKeeper
(the Debian package's jars, run with `java ... QuorumPeerMain`, as tests/compat/servers.py
runs it standalone).

Both have one interface (`System`): start_all, stop_all, kill (SIGKILL), start, leader,
followers, connect_string, pid. Every server pid goes to the reaper, which kills what is left
if the benchmark dies before its `finally`.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Protocol

from ccore.server.ensemble import mode as srvr_mode
from chaos.ensemble import LocalEnsemble
from tests.compat.servers import ZK_NOT_INSTALLED, zookeeper_classpath

from .reaper import Reaper

HOST = "127.0.0.1"
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
SERVING_MODES = ("leader", "follower")


class System(Protocol):
    name: str
    tick_ms: int

    @property
    def servers(self) -> list[int]: ...
    def start_all(self) -> None: ...
    def stop_all(self) -> None: ...
    def kill(self, sid: int) -> None: ...
    def start(self, sid: int, wait: bool = True) -> None: ...
    def mode(self, sid: int) -> str | None: ...
    def pid(self, sid: int) -> int | None: ...
    def client_port(self, sid: int) -> int: ...
    def connect_string(self, sids: list[int] | None = None) -> str: ...
    def log_path(self, sid: int) -> Path: ...
    def data_dir(self, sid: int) -> Path: ...


def leader(system: System) -> int | None:
    for sid in system.servers:
        if system.mode(sid) == "leader":
            return sid
    return None


def followers(system: System) -> list[int]:
    return [sid for sid in system.servers if system.mode(sid) == "follower"]


def wait_healthy(system: System, timeout_s: float = READY_TIMEOUT_S) -> int:
    """Until every server serves and one of them leads; the leader's id."""
    deadline = time.monotonic() + timeout_s
    while True:
        modes = {sid: system.mode(sid) for sid in system.servers}
        leaders = [sid for sid, m in modes.items() if m == "leader"]
        if len(leaders) == 1 and all(m in SERVING_MODES for m in modes.values()):
            return leaders[0]
        if time.monotonic() > deadline:
            raise RuntimeError(f"{system.name}: ensemble not healthy after {timeout_s:.0f} s: {modes}")
        time.sleep(0.1)


class Ours:
    """Our ensemble: LocalEnsemble with ZooKeeper's tickTime, its pids given to the reaper."""

    name = "ccore"

    def __init__(
        self,
        base_dir: Path,
        reaper: Reaper,
        *,
        tick_ms: int,
        snap_count: int = 100_000,
        log_level: str = "INFO",
    ) -> None:
        self.tick_ms = tick_ms
        self.reaper = reaper
        self.ensemble = LocalEnsemble(
            base_dir,
            nodes=3,
            tick_ms=tick_ms,
            snap_count=snap_count,
            log_level=log_level,
        )

    @property
    def servers(self) -> list[int]:
        return self.ensemble.servers

    def start_all(self) -> None:
        for sid in self.servers:
            self.ensemble.start(sid, wait=False)
            self.reaper.add(self.ensemble.pid(sid))
        self.ensemble.wait_serving(self.servers, READY_TIMEOUT_S)

    def stop_all(self) -> None:
        pids = [self.ensemble.pid(sid) for sid in self.servers]
        self.ensemble.close()
        for pid in pids:
            self.reaper.forget(pid)

    def kill(self, sid: int) -> None:
        pid = self.ensemble.pid(sid)
        self.ensemble.kill(sid)
        self.reaper.forget(pid)

    def start(self, sid: int, wait: bool = True) -> None:
        self.ensemble.start(sid, wait=False)
        self.reaper.add(self.ensemble.pid(sid))
        if wait:
            self.ensemble.wait_serving([sid], READY_TIMEOUT_S)

    def mode(self, sid: int) -> str | None:
        return self.ensemble.mode(sid)

    def pid(self, sid: int) -> int | None:
        return self.ensemble.pid(sid)

    def client_port(self, sid: int) -> int:
        return self.ensemble.client_ports[sid]

    def connect_string(self, sids: list[int] | None = None) -> str:
        return self.ensemble.connect_string(sids)

    def log_path(self, sid: int) -> Path:
        return self.ensemble.data_dir(sid) / "server.log"

    def data_dir(self, sid: int) -> Path:
        return self.ensemble.data_dir(sid)


def _free_ports(count: int) -> list[int]:
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind((HOST, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class Apache:
    """A 3-server Apache ZooKeeper ensemble from the Debian jars: one zoo.cfg and myid per
    server, forceSync=yes, loopback only, admin server off, every four-letter word allowed.
    The JVM runs with zkServer.sh's heap (1000 MB, unless `heap_mb` says more: `--scale` gives
    it room for the tree, see scale.py) and full JIT: this is a benchmark."""

    name = "zookeeper"

    def __init__(self, base_dir: Path, reaper: Reaper, *, tick_ms: int, snap_count: int = 100_000, heap_mb: int = 1000) -> None:
        self.heap_mb = heap_mb
        classpath = zookeeper_classpath()
        if classpath is None:
            raise FileNotFoundError(ZK_NOT_INSTALLED + " (and java, e.g. openjdk-17-jre-headless)")
        self.classpath = os.pathsep.join(str(p) for p in classpath)
        self.base = Path(base_dir)
        self.reaper = reaper
        self.tick_ms = tick_ms
        self.ids = [1, 2, 3]
        ports = _free_ports(9)
        self.client_ports = dict(zip(self.ids, ports[0:3], strict=True))
        quorum = dict(zip(self.ids, ports[3:6], strict=True))
        election = dict(zip(self.ids, ports[6:9], strict=True))
        self._procs: dict[int, subprocess.Popen] = {}
        self._logs: dict[int, object] = {}
        for sid in self.ids:
            d = self.data_dir(sid)
            d.mkdir(parents=True, exist_ok=True)
            (d / "myid").write_text(f"{sid}\n")
            config = {
                "tickTime": tick_ms,
                "initLimit": 10,
                "syncLimit": 5,
                "dataDir": d,
                "clientPort": self.client_ports[sid],
                "clientPortAddress": HOST,
                "admin.enableServer": "false",
                "4lw.commands.whitelist": "*",
                "forceSync": "yes",
                "snapCount": snap_count,
                "maxClientCnxns": 0,
                "autopurge.purgeInterval": 0,
                "quorumListenOnAllIPs": "false",
            }
            lines = [f"{k}={v}" for k, v in config.items()]
            lines += [f"server.{i}={HOST}:{quorum[i]}:{election[i]}" for i in self.ids]
            (d / "zoo.cfg").write_text("\n".join(lines) + "\n")

    @property
    def servers(self) -> list[int]:
        return list(self.ids)

    def data_dir(self, sid: int) -> Path:
        return self.base / f"server{sid}"

    def log_path(self, sid: int) -> Path:
        return self.data_dir(sid) / "zookeeper.log"

    def _argv(self, sid: int) -> list[str]:
        props = {
            "zookeeper.admin.enableServer": "false",
            "zookeeper.jmx.log4j.disable": "true",
            "org.slf4j.simpleLogger.defaultLogLevel": "info",
            "org.slf4j.simpleLogger.showDateTime": "true",
            "java.net.preferIPv4Stack": "true",
        }
        argv = [
            shutil.which("java") or "java",
            f"-Xmx{self.heap_mb}m",
            *(f"-D{k}={v}" for k, v in props.items()),
            "-cp",
            self.classpath,
            "org.apache.zookeeper.server.quorum.QuorumPeerMain",
            str(self.data_dir(sid) / "zoo.cfg"),
        ]
        setpriv = shutil.which("setpriv")
        # The kernel kills java when we die, where it can (the reaper covers the rest).
        return [setpriv, "--pdeathsig", "KILL", "--", *argv] if setpriv else argv

    def start(self, sid: int, wait: bool = True) -> None:
        proc = self._procs.get(sid)
        if proc is not None and proc.poll() is None:
            return
        log = open(self.log_path(sid), "ab")  # noqa: SIM115 - lives as long as the process
        self._logs[sid] = log
        self._procs[sid] = subprocess.Popen(
            self._argv(sid),
            cwd=self.data_dir(sid),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.reaper.add(self._procs[sid].pid)
        if wait:
            self.wait_serving([sid])

    def start_all(self) -> None:
        for sid in self.ids:
            self.start(sid, wait=False)
        self.wait_serving(self.ids)

    def wait_serving(self, sids: list[int], timeout_s: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            waiting = [sid for sid in sids if self.mode(sid) not in SERVING_MODES]
            if not waiting:
                return
            for sid in waiting:
                proc = self._procs.get(sid)
                if proc is None or proc.poll() is not None:
                    raise RuntimeError(f"zookeeper server {sid} exited: {self.log_tail(sid)}")
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"zookeeper servers {waiting} not serving after {timeout_s:.0f} s: {self.log_tail(waiting[0])}"
                )
            time.sleep(0.1)

    def kill(self, sid: int) -> None:
        proc = self._procs.get(sid)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=STOP_TIMEOUT_S)
        self.reaper.forget(proc.pid)

    def stop_all(self) -> None:
        for sid in self.ids:
            self.kill(sid)
        for log in self._logs.values():
            log.close()  # type: ignore[attr-defined]
        self._logs.clear()

    def mode(self, sid: int) -> str | None:
        if self.pid(sid) is None:
            return None
        return srvr_mode(self.client_ports[sid])

    def pid(self, sid: int) -> int | None:
        proc = self._procs.get(sid)
        return proc.pid if proc is not None and proc.poll() is None else None

    def client_port(self, sid: int) -> int:
        return self.client_ports[sid]

    def connect_string(self, sids: list[int] | None = None) -> str:
        return ",".join(f"{HOST}:{self.client_ports[s]}" for s in (sids or self.ids))

    def log_tail(self, sid: int, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path(sid).read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
