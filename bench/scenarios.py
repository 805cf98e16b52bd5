"""The workloads that need several processes or a kill: lock hand-offs with 4 contending
processes, the seed's lease failover (kill -9 the owner, time until the waiter owns the name),
and the write outage when the leader is killed. Each drives `bench.workers` processes.
"""

from __future__ import annotations

import json
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from .systems import System, followers, wait_healthy

REPO_ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT_S = 30.0
LOCK_PROCESSES = 4


class WorkerError(RuntimeError):
    """A worker process failed, or said nothing in time; carries its stderr."""


class Worker:
    """One `python -m MODULE ARGS...` process (MODULE: bench.workers); its stdout lines arrive
    on a queue, its stdin takes commands. It dies with us where the kernel allows."""

    def __init__(self, role: str, args: list[str], module: str = "bench.workers") -> None:
        argv = [sys.executable, "-m", module, *args]
        setpriv = shutil.which("setpriv")
        if setpriv:
            argv = [setpriv, "--pdeathsig", "KILL", "--", *argv]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        self.role = role
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO_ROOT,
            env=env,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()
        threading.Thread(target=self._drain_stderr, daemon=True).start()

    @classmethod
    def bench(cls, role: str, client: str, hosts: str, path: str, **options: float) -> Worker:
        """A `bench.workers` process in `role` with `client` against `hosts`."""
        args = [role, "--client", client, "--hosts", hosts, "--path", path]
        for key, value in options.items():
            args += [f"--{key}", str(value)]
        return cls(role, args)

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.strip())
        self.lines.put(None)

    def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)
            del self.stderr[:-40]

    def line(self, timeout_s: float) -> str:
        try:
            line = self.lines.get(timeout=timeout_s)
        except queue.Empty:
            raise WorkerError(
                f"{self.role} worker said nothing for {timeout_s:.0f} s; stderr: {''.join(self.stderr)[-2000:]}"
            ) from None
        if line is None:
            self.proc.wait(timeout=5)
            raise WorkerError(f"{self.role} worker exited ({self.proc.returncode}): {''.join(self.stderr)[-2000:]}")
        return line

    def result(self, timeout_s: float) -> dict:
        line = self.line(timeout_s)
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            raise WorkerError(f"{self.role} worker printed {line!r}, not a result") from None

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def close(self) -> None:
        """Kill it if still running; reap it."""
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                try:
                    pipe.close()
                except OSError:
                    pass


def lock_handoffs(system: System, client: str, seconds: float) -> float:
    """Acquisitions per second of one lock by 4 processes (one session each, spread over the
    servers) that take it, release it and queue again, for `seconds`."""
    path = f"/bench-lock-{uuid.uuid4().hex[:8]}"
    sids = system.servers
    workers = [
        Worker.bench(
            "lock",
            client,
            system.connect_string([sids[i % len(sids)]]),
            path,
            seconds=seconds,
        )
        for i in range(LOCK_PROCESSES)
    ]
    try:
        for w in workers:
            if (line := w.line(READY_TIMEOUT_S)) != "ready":
                raise WorkerError(f"lock worker: {line!r}")
        for w in workers:
            w.send("go")
        results = [w.result(seconds + READY_TIMEOUT_S) for w in workers]
    finally:
        for w in workers:
            w.close()
    return sum(r["count"] for r in results) / seconds


def lease_failover(system: System, client: str, ttl_s: float, rng: random.Random) -> dict[str, float]:
    """The seed's lease failover: NodeA owns the name (an ephemeral node of a session whose
    timeout is the TTL) and is killed with SIGKILL; NodeB, waiting on another server, takes
    it over. Returns the delay from the kill to NodeB's ownership, and that over the TTL."""
    path = f"/bench-lease-{uuid.uuid4().hex[:8]}/migo-group"
    sids = system.servers
    owner = Worker.bench("owner", client, system.connect_string([sids[0]]), path, ttl=ttl_s)
    waiter: Worker | None = None
    try:
        held = owner.result(READY_TIMEOUT_S)
        waiter = Worker.bench("waiter", client, system.connect_string([sids[1]]), path, ttl=ttl_s)
        if (line := waiter.line(READY_TIMEOUT_S)) != "ready":
            raise WorkerError(f"lease waiter: {line!r}")
        # Let the waiter reach its watch, then kill at a random point of the owner's
        # heartbeat cycle (heartbeats come every TTL/3 or so).
        time.sleep(0.5 + rng.uniform(0, ttl_s / 3))
        killed = time.monotonic()
        owner.kill()
        got = waiter.result(ttl_s * 3 + READY_TIMEOUT_S)
    finally:
        owner.close()
        if waiter is not None:
            waiter.close()
    if "acquired" not in got:
        raise WorkerError(f"lease waiter: {got}")
    delay = got["acquired"] - killed
    return {"delay_s": delay, "ttl_s": held["ttl"], "ratio": delay / held["ttl"]}


def leader_kill_outage(system: System, client: str) -> float:
    """Seconds from SIGKILL of the leader until a write sent after it succeeds, for a client
    connected to the two followers (which survive); the killed server is restarted after."""
    leader = wait_healthy(system)
    survivors = followers(system)
    path = f"/bench-outage-{uuid.uuid4().hex[:8]}"
    writer = Worker.bench("writer", client, system.connect_string(survivors), path)
    try:
        if (line := writer.line(READY_TIMEOUT_S)) != "ready":
            raise WorkerError(f"writer: {line!r}")
        time.sleep(1.0)  # writes flowing
        killed = time.monotonic()
        system.kill(leader)
        writer.send(f"killed {killed!r}")
        got = writer.result(60.0)
    finally:
        writer.close()
        system.start(leader)
        wait_healthy(system)
    if "resumed" not in got:
        raise WorkerError(f"writer: {got}")
    return got["resumed"] - killed
