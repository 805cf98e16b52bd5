"""The fault proxy: pass-through, cut, blackhole (drop and hold), delay with order kept, heal,
and the bounded blocking control API of `FleetThread`."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest

from chaos.proxy import FleetThread, ProxyControlError, link_label

HOST = "127.0.0.1"


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while True:
            try:
                data = self.request.recv(65536)
            except OSError:
                return
            if not data:
                return
            self.request.sendall(data)


@pytest.fixture
def echo() -> Iterator[tuple[str, int]]:
    server = socketserver.ThreadingTCPServer((HOST, 0), _Echo)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.server_address
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def fleet() -> Iterator[FleetThread]:
    with FleetThread(seed=1, command_timeout_s=5.0) as f:
        yield f


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection((HOST, port), timeout=2.0)
    sock.settimeout(2.0)
    return sock


def _recv_exactly(sock: socket.socket, n: int, timeout_s: float = 2.0) -> bytes:
    sock.settimeout(timeout_s)
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            break
        out += chunk
    return out


def _nothing_arrives(sock: socket.socket, wait_s: float) -> bool:
    """True if the socket neither delivers bytes nor closes within `wait_s`."""
    sock.settimeout(wait_s)
    try:
        sock.recv(1)
    except TimeoutError:
        return True
    return False


def _is_closed(sock: socket.socket, timeout_s: float = 2.0) -> bool:
    sock.settimeout(timeout_s)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_passes_bytes_both_ways_and_counts(fleet: FleetThread, echo) -> None:
    port = fleet.add(("client", 1), echo)
    with _connect(port) as sock:
        sock.sendall(b"hello")
        assert _recv_exactly(sock, 5) == b"hello"
    stats = fleet.stats(("client", 1))
    assert stats.accepted == 1 and stats.bytes_forwarded == 10 and stats.mode == "pass"


def test_cut_closes_connections_and_refuses_new_ones_until_heal(fleet: FleetThread, echo) -> None:
    name = ("peer", 1, 2)
    port = fleet.add(name, echo)
    sock = _connect(port)
    sock.sendall(b"x")
    assert _recv_exactly(sock, 1) == b"x"
    fleet.cut(name)
    assert _is_closed(sock)  # the cut has happened when cut() returns
    sock.close()
    with _connect(port) as again:  # connect succeeds (accept) and is closed at once
        assert _is_closed(again)
    assert fleet.stats(name).refused == 1
    fleet.heal(name)
    with _connect(port) as healed:
        healed.sendall(b"back")
        assert _recv_exactly(healed, 4) == b"back"


def test_blackhole_drops_bytes_keeps_connections_and_heal_closes_broken_ones(fleet: FleetThread, echo) -> None:
    name = ("peer", 2, 1)
    port = fleet.add(name, echo)
    old = _connect(port)
    untouched = _connect(port)
    fleet.blackhole(name)
    old.sendall(b"lost")
    fresh = _connect(port)  # connect succeeds in a blackhole
    fresh.sendall(b"also lost")
    assert _nothing_arrives(old, 0.3) and _nothing_arrives(fresh, 0.1) and _nothing_arrives(untouched, 0.1)
    assert fleet.stats(name).bytes_dropped == len(b"lost") + len(b"also lost")
    fleet.heal(name)
    # Streams that lost bytes are broken for good: closed. A quiet one flows again.
    assert _is_closed(old) and _is_closed(fresh)
    untouched.sendall(b"ok")
    assert _recv_exactly(untouched, 2) == b"ok"
    for s in (old, fresh, untouched):
        s.close()


def test_blackhole_hold_delivers_held_bytes_in_order_after_heal(fleet: FleetThread, echo) -> None:
    name = ("peer", 1, 3)
    port = fleet.add(name, echo)
    sock = _connect(port)
    fresh_during = None
    fleet.blackhole(name, hold=True)
    sock.sendall(b"first-")
    sock.sendall(b"second")
    fresh_during = _connect(port)
    fresh_during.sendall(b"new")
    assert _nothing_arrives(sock, 0.3) and _nothing_arrives(fresh_during, 0.05)
    fleet.heal(name)
    assert _recv_exactly(sock, 12) == b"first-second"
    assert _recv_exactly(fresh_during, 3) == b"new"
    sock.close()
    fresh_during.close()


def test_delay_keeps_order_under_jitter(fleet: FleetThread, echo) -> None:
    name = ("client", 2)
    port = fleet.add(name, echo)
    fleet.delay(name, 0.05, jitter=0.05)
    with _connect(port) as sock:
        start = time.monotonic()
        sock.sendall(b"ping")
        assert _recv_exactly(sock, 4) == b"ping"
        assert time.monotonic() - start >= 0.1  # one delay each way
        payload = b"".join(b"%04d" % i for i in range(300))
        for i in range(0, len(payload), 4):  # many small writes, each may be its own chunk
            sock.sendall(payload[i : i + 4])
        assert _recv_exactly(sock, len(payload), timeout_s=5.0) == payload
    fleet.heal(name)
    assert fleet.stats(name).delay_s == 0.0


def test_upstream_down_closes_the_accepted_connection(fleet: FleetThread) -> None:
    with socket.socket() as s:  # a port that was free: nothing listens there
        s.bind((HOST, 0))
        dead = s.getsockname()
    port = fleet.add(("client", 9), dead)
    with _connect(port) as sock:
        assert _is_closed(sock)
    assert fleet.stats(("client", 9)).upstream_failures == 1


def test_fleet_names_errors_and_ensemble_wiring(fleet: FleetThread, echo) -> None:
    fleet.add_ensemble({1: echo, 2: echo, 3: echo}, {1: echo})
    assert len(fleet.names()) == 3 * 2 + 1
    dial = fleet.dial_map(1, [1, 2, 3])
    assert set(dial) == {2, 3} and dial[2] == (HOST, fleet.port(("peer", 1, 2)))
    with pytest.raises(KeyError, match="peer:3->3"):
        fleet.cut(("peer", 3, 3))
    with pytest.raises(ValueError, match="already exists"):
        fleet.add(("client", 1), echo)
    with pytest.raises(ValueError):
        fleet.delay(("client", 1), -1.0)
    assert link_label(("peer", 1, 2)) == "peer:1->2" and link_label(("client", 4)) == "client:4"
    fleet.heal_all()


def test_control_after_close_fails_fast(echo) -> None:
    fleet = FleetThread().start()
    fleet.add(("client", 1), echo)
    fleet.close()
    start = time.monotonic()
    with pytest.raises(ProxyControlError):
        fleet.cut(("client", 1))
    assert time.monotonic() - start < 1.0
