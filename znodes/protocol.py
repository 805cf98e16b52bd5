"""Sans-I/O codec of ZooKeeper's client protocol: bytes in, records out, and back (h11-style).

A `FrameReader` cuts the byte stream into 4-byte-length-prefixed frames; the functions below
turn frames into records and records into (framed) bytes, for the server side and the client
side. Nothing here touches a socket, a clock or a task.

Framing of a session, as ZooKeeper does it: the first frame each way is the ConnectRequest /
ConnectResponse (no header); after it every request is RequestHeader + body and every reply
ReplyHeader + body. Replies carry the request's xid, except the special xids: -1 a watch event
(WatcherEvent body), -2 a ping, -4 an auth, -8 a setWatches reply (no body).
"""

from __future__ import annotations

import struct

from .constants import (
    MAX_BUFFER,
    XID_AUTH,
    XID_PING,
    XID_SET_WATCHES,
    XID_WATCH_EVENT,
    OpCode,
)
from .errors import Code
from .jute import ProtocolError, Reader, Writer
from .records import (
    AddWatchRequest,
    AuthPacket,
    CheckVersionRequest,
    CheckWatchesRequest,
    ConnectRequest,
    ConnectResponse,
    Create2Response,
    CreateRequest,
    CreateResponse,
    CreateTTLRequest,
    DeleteContainerRequest,
    DeleteRequest,
    ErrorResponse,
    ExistsRequest,
    ExistsResponse,
    GetACLRequest,
    GetACLResponse,
    GetAllChildrenNumberRequest,
    GetAllChildrenNumberResponse,
    GetChildren2Request,
    GetChildren2Response,
    GetChildrenRequest,
    GetChildrenResponse,
    GetDataRequest,
    GetDataResponse,
    GetEphemeralsRequest,
    GetEphemeralsResponse,
    MultiRequest,
    MultiResponse,
    ReconfigRequest,
    Record,
    RemoveWatchesRequest,
    ReplyHeader,
    RequestHeader,
    SetACLRequest,
    SetACLResponse,
    SetDataRequest,
    SetDataResponse,
    SetWatches,
    SetWatches2,
    SyncRequest,
    SyncResponse,
    WatcherEvent,
    WhoAmIResponse,
)

__all__ = [
    "REQUEST_RECORDS",
    "RESPONSE_RECORDS",
    "BadRequest",
    "FrameReader",
    "FrameTooLarge",
    "ProtocolError",
    "UnknownOpcode",
    "decode_connect_request",
    "decode_connect_response",
    "decode_reply",
    "decode_request",
    "encode_connect_request",
    "encode_connect_response",
    "encode_reply",
    "encode_request",
    "encode_watch_event",
    "frame",
]


class FrameTooLarge(ProtocolError):
    """A frame length below 0 or above the limit (jute.maxbuffer): the peer is not speaking
    this protocol, or is sending more than we accept; the connection must be dropped."""

    def __init__(self, size: int, max_frame: int) -> None:
        self.size = size
        self.max_frame = max_frame
        super().__init__(f"frame length {size} outside [0, {max_frame}]")


class BadRequest(ProtocolError):
    """A request whose header parsed but whose body did not.

    The connection is still in step (frames are length-delimited), so a server answers the
    xid with `code` and carries on, as ZooKeeper answers MARSHALLING_ERROR.
    """

    code: Code = Code.MARSHALLING_ERROR

    def __init__(self, xid: int, op: int, message: str) -> None:
        self.xid = xid
        self.op = op
        super().__init__(f"request xid={xid} op={op}: {message}")


class UnknownOpcode(BadRequest):
    """A request type we do not serve; ZooKeeper answers these UNIMPLEMENTED."""

    code = Code.UNIMPLEMENTED

    def __init__(self, xid: int, op: int) -> None:
        super().__init__(xid, op, "unknown opcode")


# The body each request type carries (None: header only). Opcodes absent from this table are
# answered with UnknownOpcode: notification, sasl (we do no SASL), createSession and error,
# which no client sends as a request.
REQUEST_RECORDS: dict[int, type[Record] | None] = {
    OpCode.create: CreateRequest,
    OpCode.delete: DeleteRequest,
    OpCode.exists: ExistsRequest,
    OpCode.getData: GetDataRequest,
    OpCode.setData: SetDataRequest,
    OpCode.getACL: GetACLRequest,
    OpCode.setACL: SetACLRequest,
    OpCode.getChildren: GetChildrenRequest,
    OpCode.sync: SyncRequest,
    OpCode.ping: None,
    OpCode.getChildren2: GetChildren2Request,
    OpCode.check: CheckVersionRequest,
    OpCode.multi: MultiRequest,
    OpCode.create2: CreateRequest,
    OpCode.reconfig: ReconfigRequest,
    OpCode.checkWatches: CheckWatchesRequest,
    OpCode.removeWatches: RemoveWatchesRequest,
    OpCode.createContainer: CreateRequest,
    OpCode.deleteContainer: DeleteContainerRequest,
    OpCode.createTTL: CreateTTLRequest,
    OpCode.multiRead: MultiRequest,
    OpCode.auth: AuthPacket,
    OpCode.setWatches: SetWatches,
    OpCode.getEphemerals: GetEphemeralsRequest,
    OpCode.getAllChildrenNumber: GetAllChildrenNumberRequest,
    OpCode.setWatches2: SetWatches2,
    OpCode.addWatch: AddWatchRequest,
    OpCode.whoAmI: None,
    OpCode.closeSession: None,
}

# The body of a successful reply to each request type (None: header only), as
# FinalRequestProcessor builds them and the Java client reads them. A server must send these
# bodies (addWatch's ErrorResponse(0) included: Java clients read it); a failed request gets
# no body (clients ignore one).
RESPONSE_RECORDS: dict[int, type[Record] | None] = {
    OpCode.create: CreateResponse,
    OpCode.delete: None,
    OpCode.exists: ExistsResponse,
    OpCode.getData: GetDataResponse,
    OpCode.setData: SetDataResponse,
    OpCode.getACL: GetACLResponse,
    OpCode.setACL: SetACLResponse,
    OpCode.getChildren: GetChildrenResponse,
    OpCode.sync: SyncResponse,
    OpCode.ping: None,
    OpCode.getChildren2: GetChildren2Response,
    # No client API sends a standalone check; ZooKeeper would answer it with a
    # SetDataResponse, which a client ignores as trailing bytes, so expecting none is safe.
    OpCode.check: None,
    OpCode.multi: MultiResponse,
    OpCode.create2: Create2Response,
    OpCode.reconfig: GetDataResponse,
    OpCode.checkWatches: None,
    OpCode.removeWatches: None,
    OpCode.createContainer: Create2Response,
    OpCode.deleteContainer: None,
    OpCode.createTTL: Create2Response,
    OpCode.multiRead: MultiResponse,
    OpCode.auth: None,
    OpCode.setWatches: None,
    OpCode.getEphemerals: GetEphemeralsResponse,
    OpCode.getAllChildrenNumber: GetAllChildrenNumberResponse,
    OpCode.setWatches2: None,
    OpCode.addWatch: ErrorResponse,
    OpCode.whoAmI: WhoAmIResponse,
    OpCode.closeSession: None,
}

# Which op types each multi flavour may hold (MultiOperationRecord refuses to mix kinds).
_MULTI_WRITE_OPS = frozenset(
    {OpCode.create, OpCode.create2, OpCode.createContainer, OpCode.createTTL,
     OpCode.delete, OpCode.setData, OpCode.check}
)  # fmt: skip
_MULTI_READ_OPS = frozenset({OpCode.getData, OpCode.getChildren})
_MULTI_ALLOWED = {OpCode.multi: _MULTI_WRITE_OPS, OpCode.multiRead: _MULTI_READ_OPS}

_OPCODES: dict[int, OpCode] = {int(op): op for op in OpCode}

_INT = struct.Struct(">i")
_REQUEST_HEADER = struct.Struct(">ii")
_REPLY_HEADER = struct.Struct(">iqi")
_REPLY_HEADER_SIZE = _REPLY_HEADER.size
# A reply without a body (deletes, errors, pings), frame length included: one pack.
_FRAMED_REPLY_HEADER = struct.Struct(">iiqi")


# --- framing ---------------------------------------------------------------------------------


class FrameReader:
    """Reassembles length-prefixed frames from arbitrary chunks of a byte stream.

    `feed` whatever arrived; call `next_frame` until it returns None. A length below 0 or
    above `max_frame` raises FrameTooLarge (and keeps raising: the stream is unusable).
    """

    __slots__ = ("_buf", "max_frame")

    def __init__(self, max_frame: int = MAX_BUFFER) -> None:
        self.max_frame = max_frame
        self._buf = bytearray()

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as a frame."""
        return len(self._buf)

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        self._buf += data

    def next_frame(self) -> bytes | None:
        buf = self._buf
        have = len(buf)
        if have < 4:
            return None
        (size,) = _INT.unpack_from(buf, 0)
        if size < 0 or size > self.max_frame:
            raise FrameTooLarge(size, self.max_frame)
        end = 4 + size
        if have < end:
            return None
        # One copy out through a view (slicing the bytearray would copy twice); the view is
        # released before the bytearray is resized, which an export would forbid.
        with memoryview(buf) as view:
            payload = bytes(view[4:end])
        # Deleting from the front of a bytearray is amortised O(1) in CPython.
        del buf[:end]
        return payload


def frame(payload: bytes | bytearray | memoryview) -> bytes:
    """`payload` with its 4-byte big-endian length in front."""
    return _INT.pack(len(payload)) + bytes(payload)


# --- server side -----------------------------------------------------------------------------


def decode_connect_request(payload: bytes | bytearray | memoryview) -> ConnectRequest:
    """The first frame a client sends (its trailing readOnly byte is optional)."""
    return ConnectRequest.read(Reader(payload))


def encode_connect_response(resp: ConnectResponse) -> bytes:
    """The framed answer to a ConnectRequest (always with the readOnly byte: every client
    since 3.4 sends and expects it, and older ones ignore a trailing byte)."""
    w = Writer(framed=True)
    resp.write(w)
    return w.to_bytes()


def decode_request(payload: bytes | bytearray | memoryview) -> tuple[RequestHeader, Record | None]:
    """A request frame: its header (type as an OpCode) and its body record, or None.

    Raises ProtocolError when even the header is short (drop the connection), UnknownOpcode
    for a type we do not serve and BadRequest for a malformed body; both of the latter carry
    the `xid` and a `code` to answer with.
    """
    try:
        xid, op = _REQUEST_HEADER.unpack_from(payload, 0)
    except struct.error:
        raise ProtocolError(f"request of {len(payload)} bytes is shorter than its header") from None
    try:
        body_cls = REQUEST_RECORDS[op]
    except KeyError:
        raise UnknownOpcode(xid, op) from None
    header = RequestHeader(xid, _OPCODES[op])
    if body_cls is None:
        return header, None
    try:
        body = body_cls.read(Reader(payload, 8))
    except ProtocolError as e:
        raise BadRequest(xid, op, str(e)) from e
    if body_cls is MultiRequest:
        allowed = _MULTI_ALLOWED[op]
        for sub_op, _ in body.ops:  # type: ignore[attr-defined]
            if sub_op not in allowed:
                raise BadRequest(xid, op, f"op {sub_op!r} is not allowed in {_OPCODES[op].name}")
    return header, body


def encode_reply(xid: int, zxid: int, err: int, record: Record | None = None) -> bytes:
    """A framed reply: ReplyHeader, then `record` when given (send none with err != 0)."""
    if record is None:
        return _FRAMED_REPLY_HEADER.pack(_REPLY_HEADER_SIZE, xid, zxid, err)
    w = Writer(framed=True)
    w.write_raw(_REPLY_HEADER.pack(xid, zxid, err))
    if record is not None:
        record.write(w)
    return w.to_bytes()


def encode_watch_event(zxid: int, event_type: int, state: int, path: str) -> bytes:
    """A framed watch notification (xid -1). ZooKeeper 3.9 puts the triggering transaction's
    zxid in the header (older servers sent -1); clients may use it to advance lastZxidSeen."""
    w = Writer(framed=True)
    w.write_raw(_REPLY_HEADER.pack(XID_WATCH_EVENT, zxid, 0))
    w.write_int(event_type)
    w.write_int(state)
    w.write_ustring(path)
    return w.to_bytes()


# --- client side -----------------------------------------------------------------------------


def encode_connect_request(req: ConnectRequest) -> bytes:
    """The framed first message of a session."""
    w = Writer(framed=True)
    req.write(w)
    return w.to_bytes()


def decode_connect_response(payload: bytes | bytearray | memoryview) -> ConnectResponse:
    """The server's first frame (its trailing readOnly byte is optional, as for old servers)."""
    return ConnectResponse.read(Reader(payload))


def encode_request(xid: int, op: int, record: Record | None = None) -> bytes:
    """A framed request: RequestHeader(xid, op), then `record` when the op has a body."""
    w = Writer(framed=True)
    try:
        w.write_raw(_REQUEST_HEADER.pack(xid, op))
    except struct.error:
        raise ProtocolError(f"xid {xid!r} or op {op!r} out of int range") from None
    if record is not None:
        record.write(w)
    return w.to_bytes()


_BODYLESS_XIDS = frozenset({XID_PING, XID_AUTH, XID_SET_WATCHES})


def decode_reply(payload: bytes | bytearray | memoryview, op: int | None) -> tuple[ReplyHeader, Record | None]:
    """A reply frame: its header and body record.

    `op` is the type of the request the client expects an answer to next (replies come in
    request order), or None when none is pending; it is not consulted for the special xids.
    A watch event (xid -1) decodes to a WatcherEvent; ping, auth and setWatches replies have
    no body. With err != 0 there is no body (whatever follows is ignored, as the Java client
    does), except that a multi's MultiResponse is decoded if the server sent one.
    """
    try:
        xid, zxid, err = _REPLY_HEADER.unpack_from(payload, 0)
    except struct.error:
        raise ProtocolError(f"reply of {len(payload)} bytes is shorter than its header") from None
    header = ReplyHeader(xid, zxid, err)
    if xid == XID_WATCH_EVENT:
        return header, WatcherEvent.read(Reader(payload, _REPLY_HEADER_SIZE))
    if xid in _BODYLESS_XIDS:
        return header, None
    if op is None:
        raise ProtocolError(f"reply for xid {xid} while no request is pending")
    try:
        body_cls = RESPONSE_RECORDS[op]
    except KeyError:
        raise ProtocolError(f"reply for xid {xid} to unknown op {op}") from None
    if body_cls is None:
        return header, None
    if err != 0 and (body_cls is not MultiResponse or len(payload) == _REPLY_HEADER_SIZE):
        return header, None
    return header, body_cls.read(Reader(payload, _REPLY_HEADER_SIZE))
