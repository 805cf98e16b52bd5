"""One client connection: four-letter words or the session handshake, then requests in order.

Replies leave in the order the client sent its requests (ZooKeeper's FIFO client order): a
request that arrives while an earlier write of this connection is still being committed waits
in `_pending` and is answered right after it. Watch events are queued the moment the
transaction that fires them is applied, so they precede any reply that reflects it.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import attrs
import trio

from ccore.znodes import acl as acls
from ccore.znodes import protocol
from ccore.znodes import records as r
from ccore.znodes.acl import ACL, Id, digest
from ccore.znodes.constants import XID_AUTH, XID_PING, KeeperState, OpCode, Perms
from ccore.znodes.errors import Code, NoAuthError, ZKError
from ccore.znodes.jute import ProtocolError
from ccore.znodes.txn import Result, Txn

from . import fourletter
from .requests import WRITE_OPS, restore_watches, to_op, write_response

if TYPE_CHECKING:
    from .zkserver import ZKServer

log = logging.getLogger(__name__)

RECEIVE_BYTES = 256 * 1024
# A connection that has not started a session by then is closed (ZooKeeper's
# zookeeper.nio.sessionlessCnxnTimeout), so idle sockets cannot pile up to the fd limit.
SESSIONLESS_TIMEOUT_S = 10.0
# A client that stops reading its replies is dropped once this much is queued for it.
MAX_QUEUED_BYTES = 64 * 1024 * 1024
# Compared for every request: module names are cheaper to load than enum class attributes.
_AUTH = OpCode.auth
_CLOSE_SESSION = OpCode.closeSession


@attrs.define(slots=True, eq=False)
class _Pending:
    xid: int
    op: int
    record: Any
    is_write: bool
    reply: bytes | None = None
    started: float = 0.0


class Connection:
    def __init__(self, server: ZKServer, stream: trio.SocketStream) -> None:
        self.server = server
        self.stream = stream
        try:
            host, port = stream.socket.getpeername()[:2]
        except OSError:
            host, port = "0.0.0.0", 0
        self.peer = (host, port)
        self.session_id = 0
        self.timeout_ms = 0
        self.auth: tuple[Id, ...] = (Id("ip", host),)
        self.connected_at = time.time()
        self.received = 0
        self.sent = 0
        self.last_zxid = 0
        self._pending: deque[_Pending] = deque()
        self._out: list[bytes] = []
        self._out_bytes = 0
        self._out_ready = trio.Event()
        self._closing = False
        self._cancel = trio.CancelScope()

    # -- output -------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        if self._closing:
            return
        self._out.append(data)
        self._out_bytes += len(data)
        self.sent += 1
        # Under pipelining most replies find the writer already woken, and trio's set() costs
        # a call through its KI-protection wrapper even then.
        if not self._out_ready.is_set():
            self._out_ready.set()
        if self._out_bytes > MAX_QUEUED_BYTES:
            log.warning("session %#x: client is not reading its replies; closing the connection", self.session_id)
            self.abort()

    def send_event(self, zxid: int, event_type: int, path: str, acl: tuple[ACL, ...] = ()) -> None:
        """Deliver a watch event, unless this connection may not READ the node (ZooKeeper
        filters events by the node's ACL, so a watch cannot leak what a read would not)."""
        if acl:
            try:
                acls.check(path, acl, Perms.READ, self.auth)
            except NoAuthError:
                return
        # ZooKeeper 3.8 sends -1 as the event's zxid (3.9 sends the transaction's).
        self.send(protocol.encode_watch_event(-1, event_type, KeeperState.SYNC_CONNECTED, path))

    def close_after_flush(self) -> None:
        """Send what is queued, then close (after a closeSession or a fatal request)."""
        self._closing = True
        self._out_ready.set()

    def abort(self) -> None:
        self._closing = True
        self._cancel.cancel()

    async def _writer(self) -> None:
        while True:
            if not self._out:
                if self._closing:
                    self._cancel.cancel()
                    return
                self._out_ready = trio.Event()
                await self._out_ready.wait()
                continue
            data = b"".join(self._out) if len(self._out) > 1 else self._out[0]
            self._out.clear()
            self._out_bytes = 0
            await self.stream.send_all(data)

    # -- lifecycle ------------------------------------------------------------------------

    async def run(self) -> None:
        self._cancel.deadline = trio.current_time() + SESSIONLESS_TIMEOUT_S
        try:
            with self._cancel:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._writer)
                    await self._read_loop()
                    # The client closed its side: deliver what is queued, then stop.
                    self.close_after_flush()
        except* (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            # The client reset or closed the socket: that ends this connection, nothing else
            # (reader and writer may both see it, hence a group).
            pass
        finally:
            self._closing = True
            self.server.connection_closed(self)
            with trio.CancelScope(shield=True):
                await self.stream.aclose()

    async def _read_loop(self) -> None:
        first = b""
        while len(first) < 4:
            chunk = await self.stream.receive_some(RECEIVE_BYTES)
            if not chunk:
                return
            first += chunk
        word = first[:4]
        if word in fourletter.WORDS:
            await self.stream.send_all(fourletter.answer(self.server, word.decode()).encode())
            return
        frames = protocol.FrameReader(self.server.config.max_buffer)
        frames.feed(first)
        handshaken = False
        while True:
            try:
                payload = frames.next_frame()
            except ProtocolError as e:
                log.warning("client %s:%d sent a bad frame (%s); closing the connection", *self.peer, e)
                return
            if payload is None:
                chunk = await self.stream.receive_some(RECEIVE_BYTES)
                if not chunk:
                    return
                frames.feed(chunk)
                continue
            if self._closing:
                return
            if not handshaken:
                if not await self._handshake(payload):
                    return
                handshaken = True
            else:
                self._handle(payload)

    # -- handshake ------------------------------------------------------------------------

    async def _handshake(self, payload: bytes) -> bool:
        server = self.server
        if not server.serving:
            # Between leaders there is nothing consistent to serve: the client tries another
            # server (ZooKeeper closes such connections the same way).
            log.info("not serving yet (%s); closing the connection from %s:%d", server.mode, *self.peer)
            return False
        try:
            req = protocol.decode_connect_request(payload)
        except ProtocolError as e:
            log.warning("client %s:%d sent a bad connect request (%s); closing", *self.peer, e)
            return False
        if req.last_zxid_seen > server.last_zxid:
            log.info(
                "refusing session request from %s:%d: it has seen zxid %#x, our last zxid is %#x",
                *self.peer,
                req.last_zxid_seen,
                server.last_zxid,
            )
            return False
        timeout = server.config.negotiate_timeout(req.timeout)
        if req.session_id == 0:
            session_id, password = await server.create_session(timeout)
        else:
            session_id, sent = req.session_id, req.passwd
            if sent is None or not server.resume_session(session_id, sent, timeout, self):
                log.info("session %#x from %s:%d is expired or its password is wrong", session_id, *self.peer)
                self.send(protocol.encode_connect_response(r.ConnectResponse(0, 0, 0, bytes(16), False)))
                self.close_after_flush()
                return True
            password = sent
        self.session_id = session_id
        self.timeout_ms = timeout
        self._cancel.deadline = math.inf  # a session now: its own timeout governs
        server.attach(session_id, self)
        self.send(protocol.encode_connect_response(r.ConnectResponse(0, timeout, session_id, password, False)))
        return True

    # -- requests -------------------------------------------------------------------------

    def _handle(self, payload: bytes) -> None:
        server = self.server
        self.received += 1
        server.stats.received += 1
        server.touch(self.session_id)
        try:
            header, record = protocol.decode_request(payload)
        except protocol.BadRequest as e:
            log.info("session %#x: %s", self.session_id, e)
            self._queue(_Pending(e.xid, e.op, None, False, protocol.encode_reply(e.xid, server.last_zxid, e.code)))
            if isinstance(e, protocol.UnknownOpcode):
                self.close_after_flush()  # ZooKeeper answers, then drops the connection
            return
        except ProtocolError as e:
            log.warning("session %#x: malformed request (%s); closing the connection", self.session_id, e)
            self.abort()
            return
        op = header.type
        if op == _AUTH:
            self._auth(record)
            return
        pending = _Pending(header.xid, op, record, op in WRITE_OPS, None, time.monotonic())
        if server.is_closing(self.session_id) and op != _CLOSE_SESSION:
            pending.reply = protocol.encode_reply(header.xid, server.last_zxid, Code.SESSION_EXPIRED)
            self._queue(pending)
            return
        if pending.is_write:
            try:
                txn_op = to_op(op, record)
            except ZKError as e:
                pending.reply = protocol.encode_reply(header.xid, server.last_zxid, int(e.code))
                self._queue(pending)
                return
            self._pending.append(pending)
            server.submit(self.session_id, txn_op, self.auth, lambda txn, result: self._committed(pending, txn, result))
            return
        self._queue(pending)

    def _queue(self, pending: _Pending) -> None:
        self._pending.append(pending)
        self._drain()

    def _committed(self, pending: _Pending, txn: Txn, result: Result) -> None:
        err, body = write_response(pending.op, pending.record, result)
        pending.reply = protocol.encode_reply(pending.xid, txn.zxid, err, body)
        self.server.stats.record_latency(time.monotonic() - pending.started)
        self._drain()
        if pending.op == _CLOSE_SESSION:
            self.close_after_flush()

    def _drain(self) -> None:
        """Send every reply at the head of the queue that is ready; reads are answered now,
        when every earlier write of this connection has been applied."""
        pending = self._pending
        while pending:
            head = pending[0]
            if head.reply is None:
                if head.is_write:
                    return
                head.reply = self._answer(head)
            pending.popleft()
            self.send(head.reply)

    def _answer(self, p: _Pending) -> bytes:
        server = self.server
        zxid = server.last_zxid
        op = p.op
        if server.reads.handles(op):  # the common case first: a read of the tree
            err, body = server.reads.answer(op, p.record, self, self.auth, self.session_id)
            if p.started:
                server.stats.record_latency(time.monotonic() - p.started)
            return protocol.encode_reply(p.xid, zxid, err, body)
        if op == OpCode.setWatches or op == OpCode.setWatches2:
            for event_type, path in restore_watches(server.tree, server.watches, self, p.record):
                self.send_event(zxid, event_type, path)
            return protocol.encode_reply(p.xid, zxid, 0)
        if op == OpCode.whoAmI:
            infos = tuple(r.ClientInfo(i.scheme, i.id.split(":", 1)[0]) for i in self.auth)
            return protocol.encode_reply(p.xid, zxid, 0, r.WhoAmIResponse(infos))
        if op == OpCode.ping:
            return protocol.encode_reply(XID_PING, zxid, 0)  # whatever xid the ping had
        return protocol.encode_reply(p.xid, zxid, Code.UNIMPLEMENTED)

    def _auth(self, packet: Any) -> None:
        if packet.scheme == "digest":
            try:
                identity = Id("digest", digest(packet.auth.decode("utf-8")))
            except UnicodeDecodeError:
                identity = None
            if identity is not None:
                if identity not in self.auth:
                    self.auth = self.auth + (identity,)
                self.send(protocol.encode_reply(XID_AUTH, 0, 0))
                return
        log.info("session %#x: authentication with scheme %r failed; closing", self.session_id, packet.scheme)
        self.send(protocol.encode_reply(XID_AUTH, 0, Code.AUTH_FAILED))
        self.close_after_flush()

    def describe(self) -> str:
        """One line for the `cons`/`stat` four-letter words."""
        return (
            f" /{self.peer[0]}:{self.peer[1]}[1](queued={len(self._pending)},recved={self.received},"
            f"sent={self.sent},sid={self.session_id:#x},lop=NA,est={int(self.connected_at * 1000)},"
            f"to={self.timeout_ms})"
        )
