"""Real server processes to abuse, and the checks that they still serve afterwards.

    standalone_pool   session   one `python -m ccore serve`, restarted if a test killed it
    ensemble_pool     session   a 3-server LocalEnsemble, dead or stuck members restarted
    target            function  a Target: the standalone server, or the ensemble's follower or
                                leader (parametrized), alive and serving when the test starts
    control           function  a kazoo session on the target, opened before the abuse

A test abuses one connection, then calls `assert_still_serving(target, control)`: the process
is alive, the control session (opened before the abuse) still answers a create/get round trip
on the same connection and session, its ephemeral node is still there, and a new session can
connect. When the server died, the failure says so with the server's own last error line.

The test process raises its RLIMIT_NOFILE soft limit (the servers inherit it) so that the
flood tests are limited by the server, not by us.
"""

from __future__ import annotations

import contextlib
import re
import resource
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import KazooException, NodeExistsError
from kazoo.retry import KazooRetry

from ccore.server.ensemble import mode
from ccore.server.peers import membership_digest
from chaos.ensemble import LocalEnsemble
from tests.compat import rawzk
from tests.compat.servers import ServerHandle, ccore_server, tail

from .wire import HOST, JUTE_MAX_BUFFER

WANT_NOFILE = 16384
CALL_TIMEOUT_S = 10.0
SETTLE_S = 0.3  # time for a server to act on what we did to a socket before we look
ROOT = "/robustness"


def raise_nofile(want: int = WANT_NOFILE) -> tuple[int, int]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


NOFILE = raise_nofile()


# -- reading a dead server's last words ---------------------------------------------------

_EXC_LINE = re.compile(r"^[\s|+\-]*((?:[A-Za-z_]\w*\.)*[A-Z]\w*(?:Error|Exception|Group|Exit|Interrupt|Reset\w*)\b.*)$")


def last_words(log_path: Path, offset: int = 0) -> str:
    """The exception lines a server wrote since `offset`: the outermost and the innermost."""
    try:
        with open(log_path, "rb") as f:
            f.seek(offset)
            text = f.read().decode("utf-8", "replace")
    except OSError as e:
        return f"<cannot read {log_path}: {e}>"
    lines = [m.group(1).strip() for line in text.splitlines() if (m := _EXC_LINE.match(line))]
    other = [line.strip() for line in text.splitlines() if line.startswith(("ccore serve:", "--- server pid"))]
    picked: list[str] = []
    if lines:
        picked.append(lines[0])
        if lines[-1] != lines[0]:
            picked.append(lines[-1])
    picked += other
    return " | ".join(picked) if picked else "(no exception in the log; last lines:\n" + tail(log_path, 15) + ")"


# -- targets ------------------------------------------------------------------------------


@attrs.define(eq=False)
class Target:
    """One server process under test and how to reach it."""

    name: str  # standalone | follower | leader
    client_port: int
    proc: subprocess.Popen
    log_path: Path
    log_offset: int
    sid: int | None = None
    peer_port: int | None = None
    ensemble: EnsemblePool | None = None
    max_buffer: int = JUTE_MAX_BUFFER  # its jute.maxbuffer

    @property
    def hosts(self) -> str:
        return f"{HOST}:{self.client_port}"

    def exit_status(self) -> int | None:
        return self.proc.poll()

    def death(self) -> str:
        return (
            f"the {self.name} server (pid {self.proc.pid}, client port {self.client_port}) exited with status "
            f"{self.proc.returncode}: {last_words(self.log_path, self.log_offset)}  [log: {self.log_path}]"
        )

    def assert_alive(self, when: str) -> None:
        if self.exit_status() is not None:
            # AssertionError, not pytest.fail(pytrace=False): Hypothesis adds the falsifying
            # example to the exception as a note, which pytest shows only with the trace.
            raise AssertionError(f"{when}: {self.death()}")

    def settle(self, seconds: float = SETTLE_S) -> None:
        """Give the server time to act on the abuse; stop early if it dies."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and self.exit_status() is None:
            time.sleep(0.02)


def _log_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


class StandalonePool:
    """One standalone server, shared by the tests; started again when a test killed it."""

    # jute.maxbuffer set below the default, so "just over the configured limit" is tested
    # against a configured value; no per-address limit (the flood tests have their own servers).
    MAX_BUFFER = 512 * 1024

    def __init__(self, base: Path, config_lines: tuple[str, ...] = ("maxClientCnxns=0", f"jute.maxbuffer={MAX_BUFFER}")) -> None:
        self.base = base
        self.config_lines = config_lines
        self.handle: ServerHandle | None = None
        self.deaths: list[str] = []

    def make_handle(self) -> ServerHandle:
        self.base.mkdir(parents=True, exist_ok=True)
        cfg = self.base / "zoo.cfg"
        cfg.write_text("".join(f"{line}\n" for line in self.config_lines))
        return ccore_server(self.base, tick_time_ms=2000, extra_args=["--config", str(cfg)])

    def get(self) -> Target:
        if self.handle is None:
            self.handle = self.make_handle()
            self.handle.start()
        elif not self.handle.running:
            self.handle.kill()  # closes its log file
            self.handle.start()
        assert self.handle.proc is not None
        return Target(
            "standalone",
            self.handle.port,
            self.handle.proc,
            self.handle.log_path,
            _log_size(self.handle.log_path),
            max_buffer=self.MAX_BUFFER,
        )

    def close(self) -> None:
        if self.handle is not None:
            self.handle.kill()


class EnsemblePool:
    """A 3-server ensemble on loopback, shared by the tests. Before each test every member
    is running and serving: a member that died is started again, one that stays out of the
    ensemble is killed and started again."""

    def __init__(self, base: Path, nodes: int = 3) -> None:
        self.ens = LocalEnsemble(base, nodes=nodes, tick_ms=200)
        # Connection floods from loopback are tests of their own: no per-address limit here.
        for sid in self.ens.ids:
            cfg = self.ens.data_dir(sid) / "zoo.cfg"
            cfg.write_text(cfg.read_text() + "maxClientCnxns=0\n")
        self.members = {sid: (HOST, self.ens.peer_ports[sid]) for sid in self.ens.ids}
        self.digest = membership_digest(self.members)
        self.started = False

    def log_path(self, sid: int) -> Path:
        return self.ens.data_dir(sid) / "server.log"

    def proc(self, sid: int) -> subprocess.Popen:
        return self.ens._procs[sid]  # noqa: SLF001 - the exit status is what we test

    def all_serving(self) -> bool:
        return all(self.ens.pid(s) is not None and mode(self.ens.client_ports[s]) is not None for s in self.ens.ids)

    def wait_all_serving(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.all_serving():
                return True
            time.sleep(0.05)
        return self.all_serving()

    def ready(self) -> None:
        if not self.started:
            self.ens.start_all()
            self.started = True
        for sid in self.ens.ids:
            if self.ens.pid(sid) is None:
                self.ens.start(sid, wait=False)
        if not self.wait_all_serving(10.0):
            for sid in self.ens.ids:
                if mode(self.ens.client_ports[sid]) is None:
                    self.ens.kill(sid)
                    self.ens.start(sid, wait=False)
            self.ens.wait_serving(timeout_s=30.0)
        self.ens.wait_leader()

    def target(self, role: str) -> Target:
        self.ready()
        leader = self.ens.wait_leader()
        sid = leader if role == "leader" else min(s for s in self.ens.ids if s != leader)
        log = self.log_path(sid)
        return Target(
            role,
            self.ens.client_ports[sid],
            self.proc(sid),
            log,
            _log_size(log),
            sid=sid,
            peer_port=self.ens.peer_ports[sid],
            ensemble=self,
        )

    def other(self, target: Target) -> int:
        """A member other than the target (a follower if the target is the leader)."""
        assert target.sid is not None
        return min(s for s in self.ens.ids if s != target.sid)

    def close(self) -> None:
        self.ens.close()


@pytest.fixture(scope="session")
def standalone_pool(tmp_path_factory) -> Iterator[StandalonePool]:
    pool = StandalonePool(tmp_path_factory.mktemp("robust-standalone"))
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture(scope="session")
def ensemble_pool(tmp_path_factory) -> Iterator[EnsemblePool]:
    pool = EnsemblePool(tmp_path_factory.mktemp("robust-ensemble"))
    try:
        yield pool
    finally:
        pool.close()


TARGETS = ["standalone", "follower", "leader"]


@pytest.fixture(params=TARGETS)
def target(request) -> Target:
    if request.param == "standalone":
        return request.getfixturevalue("standalone_pool").get()
    return request.getfixturevalue("ensemble_pool").target(request.param)


# -- the control session --------------------------------------------------------------------


class Control:
    """A kazoo session opened on one server before the abuse. It must come through it on
    the same TCP connection (no SUSPENDED, no LOST), with the same session, its ephemeral
    node intact, answering round trips."""

    def __init__(self, hosts: str, timeout_s: float = 10.0) -> None:
        self.hosts = hosts
        self.states: list[str] = []
        self._lock = threading.Lock()
        self.zk = KazooClient(
            hosts=hosts,
            timeout=timeout_s,
            connection_retry=KazooRetry(max_tries=-1, delay=0.1, max_delay=0.5, deadline=20.0),
            command_retry=None,
        )
        self.zk.add_listener(self._on_state)
        self.zk.start(timeout=20)
        self.session_id = self.zk.client_id[0]
        self.call(self.zk.ensure_path_async(ROOT))
        self.marker = self.call(self.zk.create_async(f"{ROOT}/control-", b"alive", ephemeral=True, sequence=True))
        with self._lock:
            self.states.clear()
        self.round_trips = 0

    def _on_state(self, state: str) -> None:
        with self._lock:
            self.states.append(state)

    @staticmethod
    def call(async_result, timeout_s: float = CALL_TIMEOUT_S):
        return async_result.get(timeout=timeout_s)

    def round_trip(self, payload_size: int = 64) -> float:
        """create + get + delete of a fresh node; returns the seconds it took."""
        started = time.monotonic()
        data = uuid.uuid4().bytes * (payload_size // 16 + 1)
        path = self.call(self.zk.create_async(f"{ROOT}/rt-", data, sequence=True))
        got, _stat = self.call(self.zk.get_async(path))
        assert got == data, f"round trip through {self.hosts}: wrote {len(data)} bytes, read back {len(got)}"
        self.call(self.zk.delete_async(path))
        self.round_trips += 1
        return time.monotonic() - started

    def interruptions(self) -> list[str]:
        with self._lock:
            return [s for s in self.states if s != KazooState.CONNECTED]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.zk.stop()
        with contextlib.suppress(Exception):
            self.zk.close()


@pytest.fixture
def control(target) -> Iterator[Control]:
    c = Control(target.hosts)
    try:
        yield c
    finally:
        c.close()


def new_session_works(port: int, control: Control | None = None) -> None:
    """A brand-new session (raw protocol) on `port` connects, sees the control's ephemeral
    node owned by the control's session, and does a create/get round trip."""
    with rawzk.RawClient(HOST, port, io_timeout_s=CALL_TIMEOUT_S) as raw:
        raw.connect(10000)
        if control is not None:
            stat = raw.exists(control.marker)
            assert stat is not None, f"the control session's ephemeral {control.marker} is gone: its session expired"
            assert stat.ephemeralOwner == control.session_id, (
                f"{control.marker} belongs to session {stat.ephemeralOwner:#x}, not the control's {control.session_id:#x}"
            )
        path = raw.create(f"{ROOT}/new-", b"fresh", flags=rawzk.CreateFlag.PERSISTENT_SEQUENTIAL)
        data, _stat = raw.get(path)
        assert data == b"fresh"
        raw.delete(path)


def ensure_root(port: int) -> None:
    with rawzk.RawClient(HOST, port, io_timeout_s=CALL_TIMEOUT_S) as raw:
        raw.connect(10000)
        if raw.exists(ROOT) is None:
            with contextlib.suppress(NodeExistsError):
                raw.create(ROOT, b"")


def assert_still_serving(target: Target, control: Control | None, what: str = "the abuse") -> None:
    """After the abuse: alive, the control session intact and answering, a new session
    possible. Fails with the server's last error line when it died."""
    target.settle()
    target.assert_alive(f"after {what}")
    if control is not None:
        try:
            control.round_trip()
        except Exception as e:
            target.assert_alive(f"after {what} (the control round trip failed: {e!r})")
            raise AssertionError(
                f"after {what}, the control session on the {target.name} server failed a round trip: {e!r}"
            ) from e
        assert control.zk.client_id is not None and control.zk.client_id[0] == control.session_id, (
            f"after {what}, the control session changed: {control.session_id:#x} -> {control.zk.client_id}"
        )
        lost = control.interruptions()
        assert not lost, f"after {what}, the control session's connection to the {target.name} server was interrupted: {lost}"
    try:
        new_session_works(target.client_port, control)
    except Exception as e:
        target.assert_alive(f"after {what} (a new session failed: {e!r})")
        raise
    target.assert_alive(f"after {what} (at the end of the checks)")


def assert_ensemble_commits(pool: EnsemblePool, within_s: float = 15.0) -> None:
    """Within `within_s`: every member serves, each takes a write, and after a sync each sees
    every one of those writes. A link that flaps and comes back passes; one that stays down
    (a member out of the ensemble for good) fails with each member's state and last lines."""
    deadline = time.monotonic() + within_s
    last_error: BaseException | None = None
    for _attempt in range(1000):
        if pool.wait_all_serving(max(0.0, deadline - time.monotonic())):
            try:
                _commit_round(pool)
                return
            except (KazooException, OSError, AssertionError) as e:
                last_error = e
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    states = {s: (pool.ens.pid(s) is not None, mode(pool.ens.client_ports[s])) for s in pool.ens.ids}
    dead = [s for s in pool.ens.ids if pool.proc(s).poll() is not None]
    words = "; ".join(f"server {s}: {last_words(pool.log_path(s))}" for s in dead)
    tails = "\n".join(f"--- server {s} ---\n{pool.ens.log_tail(s, 6)}" for s in pool.ens.ids if s not in dead)
    raise AssertionError(
        f"the ensemble does not commit and serve everywhere {within_s:.0f}s after the abuse: (running, mode) {states}; "
        f"last error {last_error!r}. {words}\n{tails}"
    )


def _commit_round(pool: EnsemblePool) -> None:
    tag = uuid.uuid4().hex[:8]
    ensure_root(pool.ens.client_ports[pool.ens.ids[0]])
    written = []
    for sid in pool.ens.ids:
        with rawzk.RawClient(HOST, pool.ens.client_ports[sid], io_timeout_s=CALL_TIMEOUT_S) as raw:
            raw.connect(10000)
            written.append(raw.create(f"{ROOT}/commit-{tag}-{sid}", b"x").rsplit("/", 1)[1])
    for sid in pool.ens.ids:
        with rawzk.RawClient(HOST, pool.ens.client_ports[sid], io_timeout_s=CALL_TIMEOUT_S) as raw:
            raw.connect(10000)
            raw.sync(ROOT)
            children = set(raw.get_children(ROOT))
            missing = [w for w in written if w not in children]
            assert not missing, f"server {sid} does not see the committed writes {missing}"
