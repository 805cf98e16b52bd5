"""One `python -m ccore serve` process behind the `Ensemble` interface, clients through a proxy.

This is what `python -m chaos` runs against until `ccore ensemble` can route peer links
through proxies: a single server, so only the nemeses that act on one process apply (kill -9
and restart, pause, torn tail, full disk); there is no replication to break. The server
process lives in its own process group and is killed at the end, however the run ends.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from .proxy import FleetThread

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


class ServerStartError(RuntimeError):
    """The server did not answer `ruok` in time, or exited while starting."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def ruok(port: int, timeout_s: float = 1.0) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=timeout_s) as s:
            s.settimeout(timeout_s)
            s.sendall(b"ruok")
            return s.recv(16) == b"imok"
    except OSError:
        return False


class ServerProcess:
    """A `ccore serve` child on a fixed client port (kept across restarts, so a proxy in
    front of it stays valid), logging to `log_path`."""

    def __init__(self, data_dir: Path, log_path: Path, *, client_port: int | None = None, tick_ms: int = 200) -> None:
        self.data_dir = Path(data_dir)
        self.log_path = Path(log_path)
        self.client_port = client_port or free_port()
        self.tick_ms = tick_ms
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def argv(self) -> list[str]:
        return [
            sys.executable, "-m", "ccore", "serve",
            "--client-port", str(self.client_port), "--data-dir", str(self.data_dir),
            "--tick-time", str(self.tick_ms), "--log-level", "WARNING",
        ]  # fmt: skip

    def start(self, timeout_s: float = START_TIMEOUT_S) -> None:
        if self.running():
            raise ServerStartError(f"server on port {self.client_port} is already running")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # Through a pipe, copied to the file by us: a full-disk fault (RLIMIT_FSIZE on the
        # server) must not silence the server's own last words.
        self.proc = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            cwd=_repo_root(), start_new_session=True,
        )  # fmt: skip
        threading.Thread(target=_copy_log, args=(self.proc, self.log_path), name="chaos-server-log", daemon=True).start()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerStartError(f"server exited with {self.proc.returncode} while starting; see {self.log_path}")
            if ruok(self.client_port, timeout_s=0.5):
                return
            time.sleep(0.05)
        self.kill()
        raise ServerStartError(f"server on port {self.client_port} did not answer ruok in {timeout_s}s")

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL (a paused process dies too) and reap, bounded."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        try:
            self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            log.error("server pid %s did not die within %ss of SIGKILL", self.proc.pid, STOP_TIMEOUT_S)

    def stop(self) -> None:
        """SIGTERM (the server stops cleanly), SIGKILL past the timeout."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGCONT)  # a paused server cannot act on SIGTERM
        self.proc.terminate()
        try:
            self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()

    def signal(self, signum: int) -> None:
        if self.proc is None or self.proc.poll() is not None:
            raise ProcessLookupError(f"server on port {self.client_port} is not running")
        os.kill(self.proc.pid, signum)


def _copy_log(proc: subprocess.Popen[bytes], path: Path) -> None:
    """Copy the server's output to `path` until it exits (EOF ends the loop)."""
    assert proc.stdout is not None
    with open(path, "ab") as out, proc.stdout:
        for line in proc.stdout:
            out.write(line)
            out.flush()
        out.write(f"--- server pid {proc.pid} exited with {proc.wait()} ---\n".encode())


def _repo_root() -> Path:
    return Path(__file__).resolve().parents[1]


class Standalone:
    """`Ensemble` of one server, id 1; clients reach it through the proxy ``("client", 1)``."""

    def __init__(self, root: Path, fleet: FleetThread, *, tick_ms: int = 200) -> None:
        self.root = Path(root)
        self.fleet = fleet
        self.server = ServerProcess(self.root / "s1" / "data", self.root / "s1" / "server.log", tick_ms=tick_ms)
        self._paused = False

    def open(self) -> Standalone:
        self.server.start()
        self.fleet.add(("client", 1), (HOST, self.server.client_port))
        return self

    def close(self) -> None:
        self.server.stop()

    @property
    def connect_string(self) -> str:
        """Through the proxy, so a test could cut clients off (all clients use this)."""
        return f"{HOST}:{self.fleet.port(('client', 1))}"

    # -- Ensemble -------------------------------------------------------------------------

    @property
    def servers(self) -> Sequence[int]:
        return [1]

    @property
    def proxies(self) -> None:
        return None  # no peer links; the client proxy is reached through `fleet`

    def leader(self) -> int | None:
        return 1 if self.server.running() and not self._paused else None

    def kill(self, sid: int) -> None:
        self._check(sid)
        self.server.kill()
        self._paused = False

    def start(self, sid: int) -> None:
        self._check(sid)
        self.server.start()

    def pause(self, sid: int) -> None:
        self._check(sid)
        self.server.signal(signal.SIGSTOP)
        self._paused = True

    def resume(self, sid: int) -> None:
        self._check(sid)
        self.server.signal(signal.SIGCONT)
        self._paused = False

    def data_dir(self, sid: int) -> Path:
        self._check(sid)
        return self.server.data_dir

    def pid(self, sid: int) -> int | None:
        self._check(sid)
        return self.server.proc.pid if self.server.running() and self.server.proc else None

    @staticmethod
    def _check(sid: int) -> None:
        if sid != 1:
            raise KeyError(f"the standalone ensemble has only server 1, not {sid}")
