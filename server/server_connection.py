"""The sans-I/O core of one client connection on the server (the mirror of `ClientProtocol`).

`ServerConnection` is fed the bytes a client sent (`receive_data`) and returns what the
driver must act on: a four-letter word to answer (`FourLetterWord`), a session to open
(`SessionRequested`), writes to commit (`WriteSubmitted`). Reads are answered inside, from
the server's state through the `ConnectionServices` it is given; replies and watch events
are taken with `data_to_send`. It never touches a socket or a task, so the guarantees it
owns are tested in memory against the real client core:

- FIFO client order: replies leave in the order the client sent its requests. A request that
  arrives while an earlier write of this connection is still being committed waits in the
  queue and is answered right after it (a read then sees that write).
- Watch events before the reply that reflects them: an event is queued the moment the
  transaction that fires it is applied, and that write's reply only when it completes.
- Every write handed out completes exactly once: `write_committed` or `write_abandoned`
  (the commit may or may not have happened: the connection closes, as ZooKeeper's does,
  and the client hears connection loss).
- A read-only session (opened by a member in read-only mode) is answered reads only: every
  write, `multi` and `sync` gets NOT_READ_ONLY without reaching the committer, and its
  closeSession is answered here (`ReadOnlySessionClosed`), as ZooKeeper's read-only server does.

The driver closes the socket when `phase` is CLOSING and nothing is left to send, or at once
when it is ABORTED.
"""

from __future__ import annotations

import enum
import logging
from collections import deque
from typing import Any, Protocol

import attrs

from ccore.znodes import acl as acls
from ccore.znodes import protocol
from ccore.znodes import records as r
from ccore.znodes.acl import ACL, Id, digest_identities
from ccore.znodes.constants import XID_AUTH, XID_PING, KeeperState, OpCode, Perms
from ccore.znodes.errors import Code, NoAuthError, ZKError
from ccore.znodes.jute import ProtocolError
from ccore.znodes.records import ConnectRequest, Record
from ccore.znodes.txn import Op, Result, Txn

from . import fourletter
from .requests import WRITE_OPS, to_op, write_response

log = logging.getLogger(__name__)

# A client that stops reading its replies is dropped once this much is queued for it.
MAX_QUEUED_BYTES = 64 * 1024 * 1024
# Compared for every request: module names are cheaper to load than enum class attributes.
_AUTH = OpCode.auth
_CLOSE_SESSION = OpCode.closeSession
_SET_WATCHES = (OpCode.setWatches, OpCode.setWatches2)


class Phase(enum.Enum):
    START = "start"  # nothing received yet: a four-letter word or a ConnectRequest comes first
    CONNECTING = "connecting"  # SessionRequested was returned; the driver has not answered yet
    SERVING = "serving"
    CLOSING = "closing"  # send what is queued, then close
    ABORTED = "aborted"  # close now, sending nothing more


class ConnectionServices(Protocol):
    """What a connection needs from the server around it (all of it non-blocking)."""

    @property
    def last_zxid(self) -> int: ...

    def monotonic(self) -> float:
        """Seconds on a monotonic clock (for latency figures)."""
        ...

    def request_received(self, session_id: int) -> None:
        """A request of this session arrived (it touches the session)."""
        ...

    def record_latency(self, seconds: float, update: bool = False) -> None: ...

    def is_closing(self, session_id: int) -> bool:
        """The session is expiring or closed: its requests are answered SESSION_EXPIRED."""
        ...

    def answer_read(
        self, op: int, record: Any, watcher: Any, auth: tuple[Id, ...], session_id: int
    ) -> tuple[int, Record | None] | None:
        """(error code, response) for a read, registering watches for `watcher`; None if
        `op` is not a read."""
        ...

    def restore_watches(self, watcher: Any, record: Any) -> list[tuple[int, str]]:
        """setWatches: register what still holds; return the (event type, path) missed."""
        ...


# --- events returned to the driver ----------------------------------------------------------


@attrs.frozen
class FourLetterWord:
    """The connection opened with a four-letter word: send its answer, then close."""

    word: str


@attrs.frozen
class SessionRequested:
    """The client asks for a session (`request.session_id` 0: a new one). Answer with
    `accept_session`, `reject_session` (expired or wrong password) or `abort`."""

    request: ConnectRequest


@attrs.define(slots=True, eq=False)
class PendingWrite:
    """A write of this connection on its way through the commit path (an opaque handle)."""

    xid: int
    op_code: int
    record: Any
    started: float
    reply: bytes | None = None


@attrs.frozen
class WriteSubmitted:
    """Commit `op` for this session; then call `write_committed` or `write_abandoned`."""

    write: PendingWrite
    op: Op


@attrs.frozen
class ReadOnlySessionClosed:
    """The client closed its read-only session (answered already): forget the session."""

    session_id: int


Event = FourLetterWord | SessionRequested | WriteSubmitted | ReadOnlySessionClosed


@attrs.define(slots=True, eq=False)
class _Queued:
    """A request waiting for its turn to be answered (FIFO)."""

    xid: int
    op: int
    record: Any
    started: float
    reply: bytes | None = None
    write: PendingWrite | None = None


class ConnectionStateError(RuntimeError):
    def __init__(self, action: str, phase: Phase) -> None:
        super().__init__(f"cannot {action} while the connection is {phase.value}")


class ServerConnection:
    """One client connection's protocol state (see the module docstring). `watcher` is the
    token watches are registered under (the driver, which delivers events to this core).
    `super_digest`: zoo.cfg's superDigest; a `digest` auth matching it makes this connection's
    requests pass every ACL check (ZooKeeper's super user)."""

    def __init__(
        self, services: ConnectionServices, watcher: Any, host: str, max_frame: int, *, super_digest: str | None = None
    ) -> None:
        self.services = services
        self._super_digest = super_digest
        self.watcher = watcher
        self.phase = Phase.START
        self.session_id = 0
        self.timeout_ms = 0
        self.read_only = False  # a read-only session: writes are refused here
        self.auth: tuple[Id, ...] = (Id("ip", host),)
        self.received = 0
        self.sent = 0
        self._max_frame = max_frame
        self._frames: protocol.FrameReader | None = None  # after the first four bytes
        self._first = b""
        self._queue: deque[_Queued] = deque()
        self._out: list[bytes] = []
        self._out_bytes = 0

    # --- input ------------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[Event]:
        """Feed bytes from the client; return what the driver must do, in order. A protocol
        violation sets the phase to ABORTED (logged once here), never raises."""
        if self.phase in (Phase.CLOSING, Phase.ABORTED):
            return []
        frames = self._frames
        if frames is None:
            self._first += data
            if len(self._first) < 4:
                return []
            first, self._first = self._first, b""
            if first[:4] in fourletter.WORDS:
                self.phase = Phase.CLOSING
                return [FourLetterWord(first[:4].decode())]
            frames = self._frames = protocol.FrameReader(self._max_frame)
            frames.feed(first)
        else:
            frames.feed(data)
        return self._process_frames()

    def end_of_input(self) -> None:
        """The client closed its side: answer what is in the queue, then close."""
        if self.phase in (Phase.START, Phase.CONNECTING):
            self.phase = Phase.ABORTED
        elif self.phase is Phase.SERVING:
            self.phase = Phase.CLOSING

    def _process_frames(self) -> list[Event]:
        frames = self._frames
        assert frames is not None
        events: list[Event] = []
        while self.phase in (Phase.START, Phase.SERVING):
            try:
                payload = frames.next_frame()
            except ProtocolError as e:
                log.warning("session %#x: client sent a bad frame (%s); closing the connection", self.session_id, e)
                self.phase = Phase.ABORTED
                break
            if payload is None:
                break
            if self.phase is Phase.START:
                try:
                    request = protocol.decode_connect_request(payload)
                except ProtocolError as e:
                    log.warning("client sent a bad connect request (%s); closing", e)
                    self.phase = Phase.ABORTED
                    break
                # Frames after it wait in the reader until the session is decided.
                self.phase = Phase.CONNECTING
                events.append(SessionRequested(request))
            else:
                event = self._request(payload)
                if event is not None:
                    events.append(event)
        return events

    # --- the handshake --------------------------------------------------------------------------

    def accept_session(self, session_id: int, timeout_ms: int, password: bytes, read_only: bool = False) -> list[Event]:
        """The session is open (created or resumed): answer the handshake; return the events
        of requests the client sent behind its ConnectRequest. `read_only`: a session of a
        server in read-only mode (the answer says so; the client's writes are refused)."""
        if self.phase is not Phase.CONNECTING:
            raise ConnectionStateError("accept a session", self.phase)
        self.session_id = session_id
        self.timeout_ms = timeout_ms
        self.read_only = read_only
        self._send(protocol.encode_connect_response(r.ConnectResponse(0, timeout_ms, session_id, password, read_only)))
        self.phase = Phase.SERVING
        return self._process_frames()

    def reject_session(self, read_only: bool = False) -> None:
        """The session is expired (or its password wrong): ZooKeeper's answer, then close
        (`read_only`: the server answering is in read-only mode; its answer carries the flag)."""
        if self.phase is not Phase.CONNECTING:
            raise ConnectionStateError("reject a session", self.phase)
        self._send(protocol.encode_connect_response(r.ConnectResponse(0, 0, 0, bytes(16), read_only)))
        self.phase = Phase.CLOSING

    # --- requests ----------------------------------------------------------------------------

    def _request(self, payload: bytes) -> WriteSubmitted | ReadOnlySessionClosed | None:
        services = self.services
        self.received += 1
        services.request_received(self.session_id)
        try:
            header, record = protocol.decode_request(payload)
        except protocol.BadRequest as e:
            log.info("session %#x: %s", self.session_id, e)
            self._enqueue(_Queued(e.xid, e.op, None, 0.0, protocol.encode_reply(e.xid, services.last_zxid, e.code)))
            if isinstance(e, protocol.UnknownOpcode):
                self.close()  # ZooKeeper answers, then drops the connection
            return None
        except ProtocolError as e:
            log.warning("session %#x: malformed request (%s); closing the connection", self.session_id, e)
            self.phase = Phase.ABORTED
            return None
        op = header.type
        xid = header.xid
        if op == _AUTH:
            self._auth(record)
            return None
        queued = _Queued(xid, op, record, services.monotonic())
        if services.is_closing(self.session_id) and op != _CLOSE_SESSION:
            queued.reply = protocol.encode_reply(xid, services.last_zxid, Code.SESSION_EXPIRED)
            self._enqueue(queued)
            return None
        if op not in WRITE_OPS:
            self._enqueue(queued)  # answered now, or after the writes queued before it
            return None
        if self.read_only:
            return self._refuse_write(queued)
        try:
            txn_op = to_op(op, record)
        except ZKError as e:
            queued.reply = protocol.encode_reply(xid, services.last_zxid, int(e.code))
            self._enqueue(queued)
            return None
        write = queued.write = PendingWrite(xid, op, record, queued.started)
        self._queue.append(queued)
        return WriteSubmitted(write, txn_op)

    def _refuse_write(self, queued: _Queued) -> ReadOnlySessionClosed | None:
        """A write in a read-only session. As ZooKeeper's ReadOnlyRequestProcessor: refused
        before it is even checked (a malformed write gets NOT_READ_ONLY too), sync and multi
        included; closeSession ends the local session and is answered OK."""
        zxid = self.services.last_zxid
        if queued.op == _CLOSE_SESSION:
            queued.reply = protocol.encode_reply(queued.xid, zxid, 0)
            self._enqueue(queued)
            self.close()
            return ReadOnlySessionClosed(self.session_id)
        queued.reply = protocol.encode_reply(queued.xid, zxid, Code.NOT_READ_ONLY)
        self._enqueue(queued)
        return None

    def write_committed(self, write: PendingWrite, txn: Txn, result: Result) -> None:
        """A write handed out in WriteSubmitted was committed and applied."""
        if write.reply is not None:
            raise ConnectionStateError(f"complete write xid {write.xid} twice", self.phase)
        err, body = write_response(write.op_code, write.record, result)
        write.reply = protocol.encode_reply(write.xid, txn.zxid, err, body)
        self.services.record_latency(self.services.monotonic() - write.started, True)
        self._drain()
        if write.op_code == _CLOSE_SESSION:
            self.close()

    def write_abandoned(self, write: PendingWrite) -> None:
        """A write handed out may or may not commit (leadership changed, the server stops):
        no reply can be truthful, so the connection ends and the client hears connection loss."""
        if write.reply is not None:
            raise ConnectionStateError(f"complete write xid {write.xid} twice", self.phase)
        write.reply = b""
        self.abort()

    def _enqueue(self, queued: _Queued) -> None:
        self._queue.append(queued)
        self._drain()

    def _drain(self) -> None:
        """Send every reply at the head of the queue that is ready; reads are answered now,
        when every earlier write of this connection has been applied."""
        queue = self._queue
        while queue:
            head = queue[0]
            if head.reply is None:
                write = head.write
                if write is not None:
                    if write.reply is None:
                        return
                    head.reply = write.reply
                else:
                    head.reply = self._answer(head)
            queue.popleft()
            if self.phase is Phase.ABORTED:
                continue
            self._send(head.reply)

    def _answer(self, q: _Queued) -> bytes:
        services = self.services
        zxid = services.last_zxid
        op = q.op
        answer = services.answer_read(op, q.record, self.watcher, self.auth, self.session_id)
        if answer is not None:  # the common case first: a read of the tree
            services.record_latency(services.monotonic() - q.started)
            return protocol.encode_reply(q.xid, zxid, answer[0], answer[1])
        if op in _SET_WATCHES:
            for event_type, path in services.restore_watches(self.watcher, q.record):
                self.send_event(event_type, path)
            return protocol.encode_reply(q.xid, zxid, 0)
        if op == OpCode.whoAmI:
            infos = tuple(r.ClientInfo(i.scheme, i.id.split(":", 1)[0]) for i in self.auth)
            return protocol.encode_reply(q.xid, zxid, 0, r.WhoAmIResponse(infos))
        if op == OpCode.ping:
            return protocol.encode_reply(XID_PING, zxid, 0)  # whatever xid the ping had
        return protocol.encode_reply(q.xid, zxid, Code.UNIMPLEMENTED)

    def _auth(self, packet: Any) -> None:
        # The identities are this connection's, as ZooKeeper keeps them on the connection: a
        # client that moves to another server authenticates again there (clients replay it).
        if packet.scheme == "digest":
            try:
                identities = digest_identities(packet.auth.decode("utf-8"), self._super_digest)
            except UnicodeDecodeError:
                identities = None
            if identities is not None:
                self.auth = self.auth + tuple(i for i in identities if i not in self.auth)
                self._send(protocol.encode_reply(XID_AUTH, 0, 0))
                return
        log.info("session %#x: authentication with scheme %r failed; closing", self.session_id, packet.scheme)
        self._send(protocol.encode_reply(XID_AUTH, 0, Code.AUTH_FAILED))
        self.close()

    # --- output ------------------------------------------------------------------------------

    def send_event(self, event_type: int, path: str, acl: tuple[ACL, ...] = ()) -> None:
        """Queue a watch event, unless this connection may not READ the node (ZooKeeper
        filters events by the node's ACL, so a watch cannot leak what a read would not)."""
        if acl:
            try:
                acls.check(path, acl, Perms.READ, self.auth)
            except NoAuthError:
                return
        # ZooKeeper 3.8 sends -1 as the event's zxid (3.9 sends the transaction's).
        self._send(protocol.encode_watch_event(-1, event_type, KeeperState.SYNC_CONNECTED, path))

    def _send(self, data: bytes) -> None:
        if self.phase in (Phase.CLOSING, Phase.ABORTED):
            return
        self._out.append(data)
        self._out_bytes += len(data)
        self.sent += 1
        if self._out_bytes > MAX_QUEUED_BYTES:
            log.warning("session %#x: client is not reading its replies; closing the connection", self.session_id)
            self.abort()

    def data_to_send(self) -> bytes:
        """Everything queued for the wire since the last call (b"" when nothing is)."""
        out = self._out
        if not out:
            return b""
        data = b"".join(out) if len(out) > 1 else out[0]
        out.clear()
        self._out_bytes = 0
        return data

    @property
    def queued(self) -> int:
        """Requests received and not yet answered."""
        return len(self._queue)

    # --- ending -----------------------------------------------------------------------------

    def close(self) -> None:
        """Send what is queued, then close (after a closeSession, a fatal request, or the
        session's expiry)."""
        if self.phase is not Phase.ABORTED:
            self.phase = Phase.CLOSING

    def abort(self) -> None:
        """Close now; nothing more is sent."""
        self.phase = Phase.ABORTED
        self._out.clear()
        self._out_bytes = 0

    @property
    def finished(self) -> bool:
        """The driver may close the socket now."""
        return self.phase is Phase.ABORTED or (self.phase is Phase.CLOSING and not self._out)
