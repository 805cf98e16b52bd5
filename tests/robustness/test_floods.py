"""Many connections at once: thousands from one client, more than the server's file
descriptors, more than maxClientCnxns from one address, and connections that never speak.

Some of these run against servers of their own (a per-address limit, a low RLIMIT_NOFILE);
the rest against the shared standalone server and ensemble members (conftest `target`).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from tests.compat.servers import ServerHandle, ccore_server

from .conftest import Control, Target, assert_still_serving, new_session_works
from .wire import Closed, Conn, connect_request, open_many, parse_connect_response

THOUSANDS = 2000
ZOOKEEPER_MAX_CLIENT_CNXNS = 60  # ZooKeeper's default maxClientCnxns (per client IP)
ZOOKEEPER_SESSIONLESS_TIMEOUT_S = 10.0  # zookeeper.nio.sessionlessCnxnTimeout


def server_nofile(pid: int) -> str:
    try:
        for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
            if line.startswith("Max open files"):
                return " ".join(line.split()[3:5])
    except OSError:
        pass
    return "unknown"


# A `python -m ccore serve` that first sets its own RLIMIT_NOFILE (argv[1]).
_WITH_NOFILE = (
    "import resource, runpy, sys\n"
    "n = int(sys.argv[1])\n"
    "resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))\n"
    "sys.argv = ['ccore'] + sys.argv[2:]\n"
    "runpy.run_module('ccore', run_name='__main__', alter_sys=True)\n"
)


def dedicated_server(base: Path, config_lines: list[str], nofile: int | None = None) -> tuple[ServerHandle, Target]:
    base.mkdir(parents=True, exist_ok=True)
    cfg = base / "zoo.cfg"
    cfg.write_text("".join(f"{line}\n" for line in config_lines))
    handle = ccore_server(base, tick_time_ms=2000, extra_args=["--config", str(cfg)])
    if nofile is not None:
        assert handle.argv[:3] == [sys.executable, "-m", "ccore"], handle.argv
        handle.argv = [sys.executable, "-c", _WITH_NOFILE, str(nofile), *handle.argv[3:]]
    handle.start()
    assert handle.proc is not None
    return handle, Target("standalone", handle.port, handle.proc, handle.log_path, 0)


def handshake_all(conns: list[Conn], within_s: float = 15.0) -> tuple[int, int, int]:
    """Send a ConnectRequest on every connection, then read every answer: (sessions,
    refused (closed or reset by the server), hung (no answer by the deadline))."""
    for c in conns:
        c.try_send(connect_request())
    sessions = refused = hung = 0
    deadline = time.monotonic() + within_s
    for c in conns:
        try:
            timeout_ms, _sid = parse_connect_response(c.recv_frame(max(0.01, deadline - time.monotonic())))
            if timeout_ms > 0:
                sessions += 1
            else:
                refused += 1
        except (Closed, ConnectionError):
            refused += 1
        except TimeoutError:
            hung += 1
    return sessions, refused, hung


def close_all(conns: list[Conn]) -> None:
    for c in conns:
        c.quiet_close()


def wait_new_session(target: Target, control: Control | None, within_s: float = 15.0) -> None:
    deadline = time.monotonic() + within_s
    for _attempt in range(1000):
        try:
            new_session_works(target.client_port, control)
            return
        except Exception:
            target.assert_alive("while waiting for a new session to connect")
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    raise AssertionError(f"no new session on port {target.client_port} in 1000 attempts")


# -- thousands of connections ------------------------------------------------------------------


def test_thousands_of_connections_at_once(target, control) -> None:
    conns = open_many(target.client_port, THOUSANDS, max_s=60.0)
    try:
        assert len(conns) == THOUSANDS, f"opened only {len(conns)} of {THOUSANDS} connections in 60 s"
        sessions, refused, hung = handshake_all(conns[::20])
        assert (sessions, refused, hung) == (THOUSANDS // 20, 0, 0), (
            f"with {THOUSANDS} connections open, {THOUSANDS // 20} handshakes gave sessions={sessions} "
            f"refused={refused} hung={hung} (server RLIMIT_NOFILE {server_nofile(target.proc.pid)})"
        )
        target.assert_alive(f"with {THOUSANDS} connections open")
        latencies = [control.round_trip() for _ in range(5)]
        assert max(latencies) < 5.0, f"round trips with {THOUSANDS} connections open took up to {max(latencies):.2f}s"
        new_session_works(target.client_port, control)
    finally:
        close_all(conns)
    assert_still_serving(target, control, f"{THOUSANDS} connections at once")


def test_more_connections_than_the_server_has_file_descriptors(tmp_path) -> None:
    """A server limited to 256 fds gets 400 connections: accept fails with EMFILE for a
    while; the sessions it has keep working, and it accepts again once the flood is gone."""
    handle, target = dedicated_server(tmp_path / "nofile", ["maxClientCnxns=0"], nofile=256)
    control = Control(target.hosts)
    try:
        assert server_nofile(target.proc.pid).startswith("256"), server_nofile(target.proc.pid)
        conns = open_many(target.client_port, 400, max_s=30.0)
        try:
            time.sleep(0.5)
            target.assert_alive("with 400 connections to a server allowed 256 fds")
            latency = control.round_trip()
            assert latency < 5.0, f"a round trip with the server out of fds took {latency:.2f}s"
        finally:
            close_all(conns)
        log = handle.log_path.read_text(errors="replace")
        assert "EMFILE" in log, "the server never ran out of fds: this test did not test what it says"
        wait_new_session(target, control)
        assert_still_serving(target, control, "running out of file descriptors")
    finally:
        control.close()
        handle.kill()


# -- maxClientCnxns -----------------------------------------------------------------------------


def _check_per_address_limit(target: Target, limit: int, what: str) -> None:
    control = Control(target.hosts)  # one of the `limit` connections from 127.0.0.1
    try:
        flood = 80
        conns = open_many(target.client_port, flood, max_s=30.0)
        try:
            sessions, refused, hung = handshake_all(conns)
            target.assert_alive(f"after {flood} connections from one address")
            assert hung == 0, f"{hung} of {flood} connections got neither a session nor a close"
            assert sessions <= limit - 1 and refused >= flood - (limit - 1), (
                f"{what}: {flood} connections from 127.0.0.1 (plus the control session) gave {sessions} sessions and "
                f"{refused} refusals; ZooKeeper refuses every connection past {limit} from one address"
            )
            assert sessions >= limit - 1 - 5, f"only {sessions} sessions under a limit of {limit}"
            control.round_trip()
        finally:
            close_all(conns)
        wait_new_session(target, control)
        assert_still_serving(target, control, f"a connect flood past maxClientCnxns={limit}")
    finally:
        control.close()


def test_connect_flood_beyond_max_client_cnxns(tmp_path) -> None:
    handle, target = dedicated_server(tmp_path / "cnxns", [f"maxClientCnxns={ZOOKEEPER_MAX_CLIENT_CNXNS}"])
    try:
        _check_per_address_limit(target, ZOOKEEPER_MAX_CLIENT_CNXNS, "maxClientCnxns=60 in zoo.cfg")
    finally:
        handle.kill()


def test_max_client_cnxns_defaults_to_zookeepers_60(tmp_path) -> None:
    """ZooKeeper limits each client address to 60 connections unless told otherwise."""
    handle, target = dedicated_server(tmp_path / "default-cnxns", [])
    try:
        _check_per_address_limit(target, ZOOKEEPER_MAX_CLIENT_CNXNS, "no maxClientCnxns in zoo.cfg (ZooKeeper's default is 60)")
    finally:
        handle.kill()


# -- connections that never speak ----------------------------------------------------------------


def test_silent_connection_is_closed_after_zookeepers_sessionless_timeout(standalone_pool) -> None:
    """ZooKeeper closes a connection that has not completed its handshake after
    zookeeper.nio.sessionlessCnxnTimeout (10 s; its expiry queue may take up to twice that),
    so idle sockets cannot pile up until the server runs out of file descriptors."""
    target = standalone_pool.get()
    c = Conn(target.client_port)
    started = time.monotonic()
    closed = c.closed_by_server(within_s=2 * ZOOKEEPER_SESSIONLESS_TIMEOUT_S + 1)
    waited = time.monotonic() - started
    c.close()
    target.assert_alive("while a silent connection was held")
    assert closed, f"a connection that never sent a byte was still open after {waited:.0f}s (ZooKeeper closes it after 10-20 s)"
