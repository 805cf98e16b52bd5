"""Raw bytes and raw sockets for the abuse tests.

ZooKeeper client frames are built with tests/compat/rawzk's jute Writer (a test-only reading
of zookeeper.jute, independent of our codec); peer frames follow server/peers.py (4-byte
big-endian length, CBOR payload, a hello `[magic, server id, membership digest]` first).

Every socket operation here has a timeout, and every loop is bounded by time and by count.
Only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import struct
import time

import cbor2

from ccore.server.peers import HELLO_MAGIC, MAX_FRAME
from tests.compat.rawzk import Op, Writer

HOST = "127.0.0.1"
IO_TIMEOUT_S = 5.0
# How long a server may take to close a connection it should refuse (a bad frame, a length
# over jute.maxbuffer): ZooKeeper closes at once; anything near this bound is a hang.
CLOSE_WITHIN_S = 5.0
# Bytes we are willing to read and throw away while waiting for a close.
MAX_DRAIN_BYTES = 64 * 1024 * 1024

JUTE_MAX_BUFFER = 0xFFFFF  # the default jute.maxbuffer of ZooKeeper and of our server
PEER_MAX_FRAME = MAX_FRAME
PEER_HELLO_MAGIC = HELLO_MAGIC


# -- ZooKeeper client frames ------------------------------------------------------------


def frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def length_prefix(value: int) -> bytes:
    """A bare 4-byte length field; `value` is taken modulo 2**32 (so -1 is 0xffffffff)."""
    return struct.pack(">I", value & 0xFFFFFFFF)


def connect_request(timeout_ms: int = 10000, session_id: int = 0, passwd: bytes = bytes(16), last_zxid: int = 0) -> bytes:
    """ConnectRequest {protocolVersion, lastZxidSeen, timeOut, sessionId, passwd, readOnly}, framed."""
    w = Writer().int(0).long(last_zxid).int(timeout_ms).long(session_id).buffer(passwd).bool(False)
    return frame(w.bytes())


def request(xid: int, op: int, body: bytes = b"") -> bytes:
    return frame(Writer().int(xid).int(op).bytes() + body)


def get_data(xid: int, path: str, watch: bool = False) -> bytes:
    return request(xid, Op.getData, Writer().string(path).bool(watch).bytes())


def exists(xid: int, path: str, watch: bool = False) -> bytes:
    return request(xid, Op.exists, Writer().string(path).bool(watch).bytes())


def create(xid: int, path: str, data: bytes = b"", flags: int = 0) -> bytes:
    body = Writer().string(path).buffer(data).int(1).int(31).string("world").string("anyone").int(flags).bytes()
    return request(xid, Op.create, body)


def close_session(xid: int) -> bytes:
    return request(xid, Op.closeSession)


def ping() -> bytes:
    return request(-2, Op.ping)


def parse_connect_response(payload: bytes) -> tuple[int, int]:
    """(negotiated timeout ms, session id) of a ConnectResponse."""
    _version, timeout_ms, session_id = struct.unpack_from(">iiq", payload, 0)
    return timeout_ms, session_id


# -- peer frames ------------------------------------------------------------------------


def peer_frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


def peer_hello(server_id: object, digest: object, magic: object = PEER_HELLO_MAGIC) -> bytes:
    return peer_frame(cbor2.dumps([magic, server_id, digest]))


# -- sockets ----------------------------------------------------------------------------


class Closed(Exception):
    """The server closed the connection (EOF or reset) while we waited for data."""


class Conn:
    """One raw TCP connection to a server port, closed in whichever way a test chooses."""

    def __init__(self, port: int, timeout_s: float = IO_TIMEOUT_S) -> None:
        self.port = port
        self.sock: socket.socket | None = socket.create_connection((HOST, port), timeout=timeout_s)
        self.sock.settimeout(timeout_s)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buf = b""
        self.session_id = 0
        self.timeout_ms = 0

    # -- sending --

    def send(self, data: bytes) -> None:
        assert self.sock is not None
        self.sock.sendall(data)

    def try_send(self, data: bytes) -> bool:
        """Send, reporting False instead of raising when the server has closed/reset us."""
        try:
            self.send(data)
            return True
        except OSError:
            return False

    def send_slowly(self, data: bytes, interval_s: float, chunk: int = 1, max_s: float = 30.0) -> None:
        """`chunk` bytes at a time, `interval_s` apart (a slowloris); bounded by `max_s`."""
        deadline = time.monotonic() + max_s
        for i in range(0, len(data), chunk):
            if time.monotonic() > deadline:
                raise TimeoutError(f"slow send still running after {max_s}s")
            self.send(data[i : i + chunk])
            time.sleep(interval_s)

    # -- receiving --

    def _recv_exact(self, n: int, deadline: float) -> bytes:
        assert self.sock is not None
        while len(self._buf) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no data from port {self.port} in time")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError as e:
                raise Closed(f"reset: {e}") from None
            if not chunk:
                raise Closed("EOF")
            self._buf += chunk
        data, self._buf = self._buf[:n], self._buf[n:]
        return data

    def recv_frame(self, timeout_s: float = IO_TIMEOUT_S) -> bytes:
        deadline = time.monotonic() + timeout_s
        (size,) = struct.unpack(">i", self._recv_exact(4, deadline))
        assert 0 <= size <= 64 * 1024 * 1024, f"server sent a frame length of {size}"
        return self._recv_exact(size, deadline)

    def recv_reply(self, xid: int, timeout_s: float = IO_TIMEOUT_S, max_frames: int = 10_000) -> tuple[int, bytes]:
        """(err, body) of the reply to `xid`, skipping watch events and pings."""
        deadline = time.monotonic() + timeout_s
        for _ in range(max_frames):
            payload = self.recv_frame(max(0.0, deadline - time.monotonic()))
            got_xid, _zxid, err = struct.unpack_from(">iqi", payload, 0)
            if got_xid == xid:
                return err, payload[16:]
        raise AssertionError(f"no reply to xid {xid} in {max_frames} frames")

    def handshake(self, timeout_ms: int = 10000, timeout_s: float = IO_TIMEOUT_S) -> Conn:
        self.send(connect_request(timeout_ms))
        self.timeout_ms, self.session_id = parse_connect_response(self.recv_frame(timeout_s))
        assert self.timeout_ms > 0, f"the server refused a new session (timeout {self.timeout_ms})"
        return self

    def read_available(self, wait_s: float = 0.05, max_bytes: int = MAX_DRAIN_BYTES) -> tuple[bytes, bool]:
        """Whatever arrives within `wait_s` (bounded), and whether the server closed meanwhile."""
        assert self.sock is not None
        got = bytearray()
        deadline = time.monotonic() + wait_s
        while len(got) < max_bytes:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return bytes(got), False
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                return bytes(got), False
            except OSError:
                return bytes(got), True
            if not chunk:
                return bytes(got), True
            got += chunk
        return bytes(got), False

    def closed_by_server(self, within_s: float = CLOSE_WITHIN_S) -> bool:
        """Read (and discard) until the server closes or resets the connection; False if it
        is still open after `within_s`."""
        assert self.sock is not None
        self._buf = b""
        deadline = time.monotonic() + within_s
        drained = 0
        while drained < MAX_DRAIN_BYTES:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                return False
            except OSError:
                return True  # ECONNRESET and friends
            if not chunk:
                return True
            drained += len(chunk)
        return False

    # -- closing --

    def rst(self) -> None:
        """Close with a TCP reset: SO_LINGER (on, 0 s), then close()."""
        if self.sock is None:
            return
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()
        self.sock = None

    def half_close(self) -> None:
        """shutdown(SHUT_WR): the server reads EOF; we can still read."""
        assert self.sock is not None
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)

    def close(self, drain_s: float = 1.0) -> None:
        """Close without a reset: FIN, read what is left (a close with unread data would send
        RST, which is a different test), then close."""
        if self.sock is None:
            return
        try:
            self.sock.shutdown(socket.SHUT_WR)
            self.closed_by_server(drain_s)
        except OSError:
            pass
        finally:
            self.drop_unread()
            self.sock.close()
            self.sock = None

    def drop_unread(self) -> None:
        """Consume whatever already sits in the receive buffer, without waiting."""
        if self.sock is None:
            return
        # A socket with a timeout polls before recv whatever the flags: make it non-blocking.
        self.sock.settimeout(0.0)
        for _ in range(10_000):
            try:
                chunk = self.sock.recv(65536)
            except OSError:  # BlockingIOError: nothing left; anything else: nothing to read
                return
            if not chunk:
                return

    def quiet_close(self) -> None:
        """Close without waiting and without a reset (unread data is consumed first)."""
        if self.sock is None:
            return
        self.drop_unread()
        with contextlib.suppress(OSError):
            self.sock.close()
        self.sock = None

    def __enter__(self) -> Conn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(drain_s=0.2)


def open_many(port: int, count: int, max_s: float = 60.0, timeout_s: float = IO_TIMEOUT_S) -> list[Conn]:
    """Up to `count` connections, stopping at `max_s` or at our own fd limit."""
    conns: list[Conn] = []
    deadline = time.monotonic() + max_s
    while len(conns) < count and time.monotonic() < deadline:
        try:
            conns.append(Conn(port, timeout_s))
        except OSError as e:
            if e.errno in (errno.EMFILE, errno.ENFILE):
                raise AssertionError(f"the test process ran out of file descriptors after {len(conns)} connections") from e
            raise
    return conns
