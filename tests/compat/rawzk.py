"""A small blocking ZooKeeper wire-protocol client for the compatibility tests.

kazoo 2.11 cannot send TTL or container creates, addWatch, removeWatches, getEphemerals,
getAllChildrenNumber, whoAmI or an unvalidated path, and cannot stop heartbeating on purpose.
This client speaks jute directly (`zookeeper.jute`, `ZooDefs.OpCode`) so tests can. It is
deliberately independent of our own codec: it is a second, test-only reading of the protocol.

It also provides kazoo-compatible request records (`type`, `serialize`, `deserialize`) so the
same operations can be sent through a running KazooClient (`kazoo_call`).
"""

from __future__ import annotations

import socket
import struct
import time
from collections import deque
from typing import NamedTuple, Self

from kazoo.exceptions import EXCEPTIONS, ConnectionLoss
from kazoo.protocol.states import ZnodeStat
from kazoo.security import ACL, OPEN_ACL_UNSAFE, Id


class Op:
    """ZooDefs.OpCode."""

    notification = 0
    create = 1
    delete = 2
    exists = 3
    getData = 4
    setData = 5
    getACL = 6
    setACL = 7
    getChildren = 8
    sync = 9
    ping = 11
    getChildren2 = 12
    check = 13
    multi = 14
    create2 = 15
    reconfig = 16
    checkWatches = 17
    removeWatches = 18
    createContainer = 19
    deleteContainer = 20
    createTTL = 21
    multiRead = 22
    auth = 100
    setWatches = 101
    sasl = 102
    getEphemerals = 103
    getAllChildrenNumber = 104
    setWatches2 = 105
    addWatch = 106
    whoAmI = 107
    createSession = -10
    closeSession = -11
    error = -1


class CreateFlag:
    """CreateMode flag values on the wire."""

    PERSISTENT = 0
    EPHEMERAL = 1
    PERSISTENT_SEQUENTIAL = 2
    EPHEMERAL_SEQUENTIAL = 3
    CONTAINER = 4
    PERSISTENT_WITH_TTL = 5
    PERSISTENT_SEQUENTIAL_WITH_TTL = 6


class EventType:
    NONE = -1
    NodeCreated = 1
    NodeDeleted = 2
    NodeDataChanged = 3
    NodeChildrenChanged = 4
    DataWatchRemoved = 5
    ChildWatchRemoved = 6
    PersistentWatchRemoved = 7


class WatcherType:
    """RemoveWatches/CheckWatches `type` field."""

    Children = 1
    Data = 2
    Any = 3
    # 3.6+: persistent watches are removed with these (WatcherType.java)
    Persistent = 4
    PersistentRecursive = 5


class AddWatchMode:
    PERSISTENT = 0
    PERSISTENT_RECURSIVE = 1


WATCH_XID = -1
PING_XID = -2
AUTH_XID = -4
SET_WATCHES_XID = -8

CONTAINER_EPHEMERAL_OWNER = -(1 << 63)  # Long.MIN_VALUE
TTL_OWNER_MASK = -(1 << 56)  # 0xff00000000000000 as a signed long


class Event(NamedTuple):
    type: int
    state: int
    path: str


class ClientInfo(NamedTuple):
    scheme: str
    user: str


# ---------------------------------------------------------------------------------------
# jute


class Writer:
    def __init__(self) -> None:
        self.buf = bytearray()

    def int(self, value: int) -> Writer:
        self.buf += struct.pack("!i", value)
        return self

    def long(self, value: int) -> Writer:
        self.buf += struct.pack("!q", value)
        return self

    def bool(self, value: bool) -> Writer:
        self.buf += b"\x01" if value else b"\x00"
        return self

    def buffer(self, value: bytes | None) -> Writer:
        if value is None:
            return self.int(-1)
        self.int(len(value))
        self.buf += value
        return self

    def string(self, value: str | None) -> Writer:
        return self.buffer(None if value is None else value.encode("utf-8"))

    def raw_string(self, value: bytes) -> Writer:
        """A ustring whose bytes are given as they are, valid UTF-8 or not."""
        return self.buffer(value)

    def strings(self, values: list[str]) -> Writer:
        self.int(len(values))
        for value in values:
            self.string(value)
        return self

    def acls(self, acls: list[ACL] | None) -> Writer:
        if acls is None:
            return self.int(-1)
        self.int(len(acls))
        for acl in acls:
            self.int(acl.perms).string(acl.id.scheme).string(acl.id.id)
        return self

    def bytes(self) -> bytes:
        return bytes(self.buf)


class Reader:
    def __init__(self, data: bytes, offset: int = 0) -> None:
        self.data = data
        self.offset = offset

    def _unpack(self, fmt: str):
        (value,) = struct.unpack_from(fmt, self.data, self.offset)
        self.offset += struct.calcsize(fmt)
        return value

    def int(self) -> int:
        return self._unpack("!i")

    def long(self) -> int:
        return self._unpack("!q")

    def bool(self) -> bool:
        return self._unpack("!B") != 0

    def buffer(self) -> bytes | None:
        length = self.int()
        if length < 0:
            return None
        value = self.data[self.offset : self.offset + length]
        self.offset += length
        return bytes(value)

    def string(self) -> str | None:
        value = self.buffer()
        return None if value is None else value.decode("utf-8")

    def strings(self) -> list[str]:
        count = self.int()
        return [self.string() for _ in range(max(count, 0))]

    def acls(self) -> list[ACL]:
        count = self.int()
        result = []
        for _ in range(max(count, 0)):
            perms = self.int()
            scheme = self.string()
            ident = self.string()
            result.append(ACL(perms, Id(scheme, ident)))
        return result

    def remaining(self) -> int:
        return len(self.data) - self.offset


def read_stat(reader: Reader) -> ZnodeStat:
    stat = ZnodeStat._make(struct.unpack_from("!qqqqiiiqiiq", reader.data, reader.offset))
    reader.offset += 68
    return stat


# Request bodies, one function per jute record.


def create_body(path: str, data: bytes | None, acl: list[ACL] | None, flags: int, ttl: int | None = None) -> bytes:
    w = Writer().string(path).buffer(data).acls(acl).int(flags)
    if ttl is not None:
        w.long(ttl)
    return w.bytes()


def path_body(path: str | None) -> bytes:
    return Writer().string(path).bytes()


def path_watch_body(path: str, watch: bool) -> bytes:
    return Writer().string(path).bool(watch).bytes()


def path_version_body(path: str, version: int) -> bytes:
    return Writer().string(path).int(version).bytes()


def set_data_body(path: str, data: bytes | None, version: int) -> bytes:
    return Writer().string(path).buffer(data).int(version).bytes()


def set_acl_body(path: str, acl: list[ACL], version: int) -> bytes:
    return Writer().string(path).acls(acl).int(version).bytes()


def path_int_body(path: str, value: int) -> bytes:
    return Writer().string(path).int(value).bytes()


def set_watches_body(relative_zxid: int, data: list[str], exist: list[str], child: list[str]) -> bytes:
    return Writer().long(relative_zxid).strings(data).strings(exist).strings(child).bytes()


def set_watches2_body(
    relative_zxid: int, data: list[str], exist: list[str], child: list[str], persistent: list[str], recursive: list[str]
) -> bytes:
    w = Writer().long(relative_zxid).strings(data).strings(exist).strings(child)
    return w.strings(persistent).strings(recursive).bytes()


class MultiOp(NamedTuple):
    """One sub-operation of a multi: its opcode and its encoded body."""

    type: int
    body: bytes


def multi_body(ops: list[MultiOp]) -> bytes:
    w = Writer()
    for op in ops:
        w.int(op.type).bool(False).int(-1)
        w.buf += op.body
    w.int(-1).bool(True).int(-1)
    return w.bytes()


class MultiError(NamedTuple):
    """A sub-result of type error: `code` is the ZooKeeper error code (0 = rolled back)."""

    code: int


def read_multi_response(reader: Reader) -> list:
    """Results in order: str (create), (str, Stat) (create2), True (delete/check), Stat (setData),
    list[str] (getChildren), (bytes, Stat) (getData), MultiError(code) (error)."""
    results: list = []
    while True:
        op_type = reader.int()
        done = reader.bool()
        err = reader.int()
        if done:
            return results
        if op_type == Op.create:
            results.append(reader.string())
        elif op_type == Op.create2:
            path = reader.string()
            results.append((path, read_stat(reader)))
        elif op_type in (Op.delete, Op.check):
            results.append(True)
        elif op_type == Op.setData:
            results.append(read_stat(reader))
        elif op_type == Op.getChildren:
            results.append(reader.strings())
        elif op_type == Op.getData:
            data = reader.buffer()
            results.append((data, read_stat(reader)))
        elif op_type == Op.error:
            body_err = reader.int()
            assert body_err == err, f"multi error header says {err}, body says {body_err}"
            results.append(MultiError(err))
        else:
            raise AssertionError(f"unexpected sub-result type {op_type} (err {err}) in a multi response")


def raise_for(err: int, what: str) -> None:
    if err:
        exc = EXCEPTIONS[err]
        raise exc(what)


# ---------------------------------------------------------------------------------------
# the blocking client


class RawClient:
    """One connection, one session, no threads. Reads are bounded by `io_timeout_s`.

    Watch events that arrive while waiting for a reply are kept, in order, in `events`.
    The client pings only while it is inside a call (`call`, `wait_event`, `pump`): leave it
    alone and its session expires — which is what the expiry tests want.
    """

    def __init__(self, host: str, port: int, *, io_timeout_s: float = 10.0) -> None:
        self.host = host
        self.port = port
        self.io_timeout_s = io_timeout_s
        self.sock: socket.socket | None = None
        self.xid = 0
        self.session_id = 0
        self.passwd = b"\x00" * 16
        self.negotiated_timeout_ms = 0
        self.read_only = False
        self.protocol_version = 0
        self.last_zxid = 0
        self.events: deque[Event] = deque()
        self.last_send = 0.0
        self.reply_zxids: list[int] = []
        self._rbuf = b""

    # -- connection ---------------------------------------------------------------------

    def connect(
        self,
        timeout_ms: int = 10000,
        *,
        session_id: int = 0,
        passwd: bytes | None = None,
        last_zxid: int | None = None,
        read_only: bool = False,
        with_read_only_flag: bool = True,
    ) -> RawClient:
        """TCP connect and do the ConnectRequest handshake; raise SessionExpiredError when the
        server answers with a zero timeout (the session is gone)."""
        self.sock = socket.create_connection((self.host, self.port), timeout=self.io_timeout_s)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._rbuf = b""
        w = Writer().int(0).long(self.last_zxid if last_zxid is None else last_zxid).int(timeout_ms)
        w.long(session_id).buffer(passwd if passwd is not None else b"\x00" * 16)
        if with_read_only_flag:
            w.bool(read_only)
        self._send_frame(w.bytes())
        frame = self._read_frame(self.io_timeout_s)
        r = Reader(frame)
        self.protocol_version = r.int()
        self.negotiated_timeout_ms = r.int()
        self.session_id = r.long()
        self.passwd = r.buffer() or b""
        self.read_only = r.bool() if r.remaining() else False
        if self.negotiated_timeout_ms <= 0:
            self.close()
            raise EXCEPTIONS[-112](f"session 0x{session_id:x} expired (server answered timeout 0)")
        return self

    def close(self) -> None:
        """Drop the TCP connection without closing the session."""
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None

    def close_session(self) -> None:
        """closeSession, wait for its reply, then drop the connection."""
        try:
            self.call(Op.closeSession, b"")
        finally:
            self.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info) -> None:
        if self.sock is not None:
            try:
                self.close_session()
            except (OSError, ConnectionLoss, TimeoutError):
                self.close()

    # -- framing ------------------------------------------------------------------------

    def _send_frame(self, payload: bytes) -> None:
        if self.sock is None:
            raise ConnectionLoss("raw client is not connected")
        self.sock.sendall(struct.pack("!i", len(payload)) + payload)
        self.last_send = time.monotonic()

    def _recv_exact(self, n: int, deadline: float) -> bytes:
        while len(self._rbuf) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"raw client: no data from {self.host}:{self.port} in time")
            assert self.sock is not None
            self.sock.settimeout(min(remaining, self._ping_interval_s()))
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                self._maybe_ping()
                continue
            if not chunk:
                raise ConnectionLoss(f"server {self.host}:{self.port} closed the connection")
            self._rbuf += chunk
        data, self._rbuf = self._rbuf[:n], self._rbuf[n:]
        return data

    def _read_frame(self, timeout_s: float) -> bytes:
        deadline = time.monotonic() + timeout_s
        (length,) = struct.unpack("!i", self._recv_exact(4, deadline))
        if length < 0 or length > 64 * 1024 * 1024:
            raise AssertionError(f"bad frame length {length}")
        return self._recv_exact(length, deadline)

    def _ping_interval_s(self) -> float:
        if self.negotiated_timeout_ms <= 0:
            return 1.0
        return max(0.05, self.negotiated_timeout_ms / 3000.0)

    def _maybe_ping(self) -> None:
        if self.session_id and time.monotonic() - self.last_send >= self._ping_interval_s():
            self._send_frame(Writer().int(PING_XID).int(Op.ping).bytes())

    # -- requests -----------------------------------------------------------------------

    def send(self, op: int, body: bytes, *, xid: int | None = None) -> int:
        if xid is None:
            self.xid += 1
            xid = self.xid
        self._send_frame(Writer().int(xid).int(op).bytes() + body)
        return xid

    def _read_one(self, deadline: float) -> tuple[int, int, int, Reader]:
        """Read one frame; keep watch events; return (xid, zxid, err, body reader)."""
        frame = self._read_frame(max(0.0, deadline - time.monotonic()))
        r = Reader(frame)
        xid, zxid, err = r.int(), r.long(), r.int()
        if xid == WATCH_XID:
            event = Event(r.int(), r.int(), r.string())
            self.events.append(event)
        return xid, zxid, err, r

    def reply(self, xid: int, timeout_s: float | None = None) -> tuple[int, int, Reader]:
        """Wait for the reply to `xid`: (zxid, err, body reader)."""
        deadline = time.monotonic() + (self.io_timeout_s if timeout_s is None else timeout_s)
        while True:
            got_xid, zxid, err, r = self._read_one(deadline)
            if got_xid in (WATCH_XID, PING_XID):
                continue
            if got_xid != xid:
                raise AssertionError(f"reply for xid {got_xid} while waiting for xid {xid} (err {err})")
            if zxid > 0:
                self.last_zxid = zxid
            self.reply_zxids.append(zxid)
            return zxid, err, r

    def call_raw(self, op: int, body: bytes, *, xid: int | None = None) -> tuple[int, int, Reader]:
        return self.reply(self.send(op, body, xid=xid))

    def call(self, op: int, body: bytes, what: str = "") -> Reader:
        _zxid, err, r = self.call_raw(op, body)
        raise_for(err, what or f"op {op}")
        return r

    def wait_event(self, timeout_s: float = 5.0) -> Event | None:
        """The next watch event, or None after `timeout_s` (pinging meanwhile)."""
        if self.events:
            return self.events.popleft()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                got_xid, _zxid, _err, _r = self._read_one(deadline)
            except TimeoutError:
                return None
            if got_xid == WATCH_XID:
                return self.events.popleft()
        return None

    def pump(self, seconds: float) -> None:
        """Keep the session alive for `seconds`, collecting events."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                self._read_one(deadline)
            except TimeoutError:
                return

    def drain_events(self, settle_s: float = 0.0) -> list[Event]:
        """Every event sent before the reply to a `sync` (the server sends a session's events
        ahead of any later reply), plus any arriving within `settle_s` after it."""
        self.sync("/")
        out = list(self.events)
        self.events.clear()
        while settle_s > 0:
            event = self.wait_event(settle_s)
            if event is None:
                break
            out.append(event)
        return out

    # -- operations ---------------------------------------------------------------------

    def create(
        self,
        path: str,
        data: bytes | None = b"",
        acl: list[ACL] | None = None,
        flags: int = CreateFlag.PERSISTENT,
        ttl: int | None = None,
        *,
        op: int | None = None,
    ) -> str | tuple[str, ZnodeStat]:
        """create (op 1) returns the path; create2/createContainer/createTTL return (path, stat).
        The opcode follows from the flags unless `op` is given."""
        if op is None:
            if flags == CreateFlag.CONTAINER:
                op = Op.createContainer
            elif flags in (CreateFlag.PERSISTENT_WITH_TTL, CreateFlag.PERSISTENT_SEQUENTIAL_WITH_TTL):
                op = Op.createTTL
            else:
                op = Op.create
        if op == Op.createTTL and ttl is None:
            raise ValueError("createTTL needs a ttl")
        r = self.call(op, create_body(path, data, OPEN_ACL_UNSAFE if acl is None else acl, flags, ttl), f"create {path}")
        created = r.string()
        if op == Op.create:
            return created
        return created, read_stat(r)

    def delete(self, path: str, version: int = -1) -> None:
        self.call(Op.delete, path_version_body(path, version), f"delete {path}")

    def exists(self, path: str, watch: bool = False) -> ZnodeStat | None:
        _zxid, err, r = self.call_raw(Op.exists, path_watch_body(path, watch))
        if err == -101:
            return None
        raise_for(err, f"exists {path}")
        return read_stat(r)

    def get(self, path: str, watch: bool = False) -> tuple[bytes | None, ZnodeStat]:
        r = self.call(Op.getData, path_watch_body(path, watch), f"get {path}")
        data = r.buffer()
        return data, read_stat(r)

    def set(self, path: str, data: bytes | None, version: int = -1) -> ZnodeStat:
        return read_stat(self.call(Op.setData, set_data_body(path, data, version), f"set {path}"))

    def get_children(self, path: str, watch: bool = False) -> list[str]:
        return self.call(Op.getChildren, path_watch_body(path, watch), f"getChildren {path}").strings()

    def get_children2(self, path: str, watch: bool = False) -> tuple[list[str], ZnodeStat]:
        r = self.call(Op.getChildren2, path_watch_body(path, watch), f"getChildren2 {path}")
        children = r.strings()
        return children, read_stat(r)

    def get_acl(self, path: str) -> tuple[list[ACL], ZnodeStat]:
        r = self.call(Op.getACL, path_body(path), f"getACL {path}")
        acls = r.acls()
        return acls, read_stat(r)

    def set_acl(self, path: str, acl: list[ACL], version: int = -1) -> ZnodeStat:
        return read_stat(self.call(Op.setACL, set_acl_body(path, acl, version), f"setACL {path}"))

    def sync(self, path: str = "/") -> str:
        return self.call(Op.sync, path_body(path), f"sync {path}").string()

    def check(self, path: str, version: int) -> None:
        self.call(Op.check, path_version_body(path, version), f"check {path}")

    def multi(self, ops: list[MultiOp]) -> list:
        """Results as `read_multi_response`; a failed multi returns the error sub-results
        instead of raising, so tests can look at every slot."""
        _zxid, err, r = self.call_raw(Op.multi, multi_body(ops))
        if r.remaining() == 0:
            raise_for(err, "multi")
            return []
        results = read_multi_response(r)
        self.last_multi_err = err
        return results

    def multi_read(self, ops: list[MultiOp]) -> list:
        _zxid, err, r = self.call_raw(Op.multiRead, multi_body(ops))
        raise_for(err, "multiRead")
        return read_multi_response(r)

    def add_watch(self, path: str, mode: int) -> None:
        self.call(Op.addWatch, path_int_body(path, mode), f"addWatch {path}")

    def remove_watches(self, path: str, watcher_type: int) -> None:
        self.call(Op.removeWatches, path_int_body(path, watcher_type), f"removeWatches {path}")

    def check_watches(self, path: str, watcher_type: int) -> None:
        self.call(Op.checkWatches, path_int_body(path, watcher_type), f"checkWatches {path}")

    def get_ephemerals(self, prefix: str = "/") -> list[str]:
        return self.call(Op.getEphemerals, path_body(prefix), f"getEphemerals {prefix}").strings()

    def get_all_children_number(self, path: str) -> int:
        return self.call(Op.getAllChildrenNumber, path_body(path), f"getAllChildrenNumber {path}").int()

    def whoami(self) -> list[ClientInfo]:
        r = self.call(Op.whoAmI, b"", "whoAmI")
        count = r.int()
        return [ClientInfo(r.string(), r.string()) for _ in range(max(count, 0))]

    def add_auth(self, scheme: str, credential: bytes | str) -> None:
        """An AuthPacket on xid -4; raises AuthFailedError on a bad credential."""
        if isinstance(credential, str):
            credential = credential.encode("utf-8")
        body = Writer().int(0).string(scheme).buffer(credential).bytes()
        _zxid, err, _r = self.call_raw(Op.auth, body, xid=AUTH_XID)
        raise_for(err, f"auth {scheme}")

    def set_watches(self, relative_zxid: int, data=(), exist=(), child=()) -> None:
        body = set_watches_body(relative_zxid, list(data), list(exist), list(child))
        _zxid, err, _r = self.call_raw(Op.setWatches, body, xid=SET_WATCHES_XID)
        raise_for(err, "setWatches")

    def set_watches2(self, relative_zxid: int, data=(), exist=(), child=(), persistent=(), recursive=()) -> None:
        body = set_watches2_body(relative_zxid, list(data), list(exist), list(child), list(persistent), list(recursive))
        _zxid, err, _r = self.call_raw(Op.setWatches2, body, xid=SET_WATCHES_XID)
        raise_for(err, "setWatches2")

    def ping(self) -> None:
        xid = self.send(Op.ping, b"", xid=PING_XID)
        deadline = time.monotonic() + self.io_timeout_s
        while True:
            got_xid, _zxid, err, _r = self._read_one(deadline)
            if got_xid == xid:
                raise_for(err, "ping")
                return


def connect(host: str, port: int, timeout_ms: int = 10000, **kwargs) -> RawClient:
    return RawClient(host, port).connect(timeout_ms, **kwargs)


def parse_hostport(connect_string: str) -> tuple[str, int]:
    host, _, port = connect_string.rpartition(":")
    return host, int(port)


# ---------------------------------------------------------------------------------------
# kazoo-compatible requests for what KazooClient has no method for


class KCreate(NamedTuple):
    """createContainer / createTTL / create2 with any flags, through kazoo. Result: (path, stat)."""

    path: str
    data: bytes
    acl: list
    flags: int
    ttl: int | None
    op: int

    @property
    def type(self) -> int:
        return self.op

    def serialize(self) -> bytes:
        return create_body(self.path, self.data, self.acl, self.flags, self.ttl)

    @classmethod
    def deserialize(cls, data, offset):
        r = Reader(data, offset)
        path = r.string()
        return path, read_stat(r)


class KPathRequest(NamedTuple):
    """A request whose body is one path: getEphemerals, getAllChildrenNumber."""

    op: int
    path: str

    @property
    def type(self) -> int:
        return self.op

    def serialize(self) -> bytes:
        return path_body(self.path)

    def deserialize(self, data, offset):
        r = Reader(data, offset)
        if self.op == Op.getEphemerals:
            return r.strings()
        if self.op == Op.getAllChildrenNumber:
            return r.int()
        raise AssertionError(f"no decoder for op {self.op}")


class KWhoAmI:
    """whoAmI through kazoo. (Not an empty NamedTuple: kazoo drops replies to falsy requests.)"""

    type = Op.whoAmI

    def serialize(self) -> bytes:
        return b""

    @classmethod
    def deserialize(cls, data, offset):
        r = Reader(data, offset)
        return [ClientInfo(r.string(), r.string()) for _ in range(max(r.int(), 0))]


class KMulti(NamedTuple):
    """A multi of any sub-ops through kazoo; results as `read_multi_response`, never raising."""

    ops: tuple

    @property
    def type(self) -> int:
        return Op.multi

    def serialize(self) -> bytes:
        return multi_body(list(self.ops))

    @classmethod
    def deserialize(cls, data, offset):
        return read_multi_response(Reader(data, offset))


def kazoo_call(client, request, timeout_s: float = 10.0):
    """Send a request record through a started KazooClient and wait for its result."""
    async_result = client.handler.async_result()
    client._call(request, async_result)
    return async_result.get(timeout=timeout_s)


def multi_create(
    path: str, data: bytes = b"", acl=None, flags: int = 0, ttl: int | None = None, op: int | None = None
) -> MultiOp:
    if op is None:
        if flags == CreateFlag.CONTAINER:
            op = Op.createContainer
        elif flags in (CreateFlag.PERSISTENT_WITH_TTL, CreateFlag.PERSISTENT_SEQUENTIAL_WITH_TTL):
            op = Op.createTTL
        else:
            op = Op.create
    return MultiOp(op, create_body(path, data, OPEN_ACL_UNSAFE if acl is None else acl, flags, ttl))


def multi_delete(path: str, version: int = -1) -> MultiOp:
    return MultiOp(Op.delete, path_version_body(path, version))


def multi_set(path: str, data: bytes, version: int = -1) -> MultiOp:
    return MultiOp(Op.setData, set_data_body(path, data, version))


def multi_check(path: str, version: int) -> MultiOp:
    return MultiOp(Op.check, path_version_body(path, version))


def multi_get_data(path: str) -> MultiOp:
    return MultiOp(Op.getData, path_watch_body(path, False))


def multi_get_children(path: str) -> MultiOp:
    return MultiOp(Op.getChildren, path_watch_body(path, False))
