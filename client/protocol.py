"""The sans-I/O core of a client session: xids, the pending FIFO, watch bookkeeping (h11-style).

`ClientProtocol` is fed the bytes a server sent (`receive_data`) and returns what happened
(`Connected`, `Reply`, `WatchFired`, ...); requests are queued with `request` and the bytes to
write are taken with `data_to_send`. It never touches a socket, a clock or a task: the anyio
driver (`client.session`) does the I/O and decides when to ping and when to give up on a server.

One `ClientProtocol` lives as long as the client: a session spans many TCP connections, and a
new session (after expiry) reuses the object. Callers attach opaque `token`s to requests and
watches; the core hands them back in the events, so it never needs to know what a waiter is.

Paths here are server paths (chroot already applied by the caller).
"""

from __future__ import annotations

import collections
import enum
from collections.abc import Iterable, Sequence
from typing import Any

import attrs

from ccore.znodes import protocol as wire
from ccore.znodes.constants import (
    XID_AUTH,
    XID_PING,
    XID_SET_WATCHES,
    XID_WATCH_EVENT,
    EventType,
    KeeperState,
    OpCode,
)
from ccore.znodes.errors import Code
from ccore.znodes.jute import ProtocolError
from ccore.znodes.paths import ancestors
from ccore.znodes.records import AuthPacket, ConnectRequest, Record, SetWatches, SetWatches2

__all__ = [
    "AuthFailed",
    "AuthReply",
    "ClientProtocol",
    "ClientStateError",
    "Connected",
    "Phase",
    "ProtocolError",
    "Reply",
    "SessionExpired",
    "WatchFired",
    "WatchKind",
    "WatchedEvent",
]

# Java's ClientCnxn limit on the total path length of one setWatches packet (its comment:
# "we may exceed our max length by a bit when we add the last watch in the batch").
SET_WATCHES_MAX_LENGTH = 128 * 1024
_XID_MAX = 2**31 - 1
_EMPTY_PASSWD = bytes(16)


class Phase(enum.Enum):
    """Where the current TCP connection is in its life."""

    DISCONNECTED = "disconnected"  # no connection; `start_connection` begins one
    HANDSHAKE = "handshake"  # ConnectRequest sent, waiting for the ConnectResponse
    AUTHENTICATING = "authenticating"  # session ok, waiting for the replies to our auth packets
    CONNECTED = "connected"  # requests may be sent
    CLOSING = "closing"  # closeSession sent: no new requests
    CLOSED = "closed"  # terminal


class ClientStateError(RuntimeError):
    """An action the core cannot take in its current phase (a bug in the driver)."""

    def __init__(self, action: str, phase: Phase) -> None:
        super().__init__(f"cannot {action} while {phase.value}")


class WatchKind(enum.Enum):
    """The five watch tables a client keeps, as ZooKeeper's ZKWatchManager does."""

    DATA = "data"  # getData, or exists on a node that exists
    EXIST = "exist"  # exists on a node that does not exist
    CHILD = "child"  # getChildren
    PERSISTENT = "persistent"  # addWatch PERSISTENT
    RECURSIVE = "recursive"  # addWatch PERSISTENT_RECURSIVE


ONE_SHOT_KINDS = (WatchKind.DATA, WatchKind.EXIST, WatchKind.CHILD)


@attrs.frozen
class WatchedEvent:
    """A watch notification: what happened (`type`), the connection `state`, and the `path`.

    `zxid` is the transaction that triggered it when the server says so (ZooKeeper 3.9 does;
    3.8 and ours send -1, as 3.8 clients expect), else -1. Events of type NONE report connection state changes, not node changes.
    """

    type: EventType
    state: KeeperState
    path: str
    zxid: int = -1


# --- events returned by receive_data ------------------------------------------------------


@attrs.frozen
class Connected:
    """The connection is ready for requests. `new_session`: a session was created (not resumed)."""

    session_id: int
    timeout_ms: int
    read_only: bool
    new_session: bool


@attrs.frozen
class SessionExpired:
    """The server refused to resume our session: it is gone, with its ephemerals and watches.

    `watchers` are the tokens of every watch the session had (now forgotten by the core).
    """

    watchers: tuple[Any, ...]


@attrs.frozen
class Reply:
    """The answer to one request: `err` 0 and its `record`, or a ZooKeeper error code."""

    token: Any
    zxid: int
    err: int
    record: Record | None


@attrs.frozen
class AuthReply:
    """The answer to an auth packet sent with `add_auth` (None token for connect-time auth)."""

    token: Any
    err: int


@attrs.frozen
class AuthFailed:
    """The server rejected our credentials; it closes the connection and the client is dead."""

    scheme: str


@attrs.frozen
class WatchFired:
    """A watch notification and the tokens of the watches it triggers (one-shot ones are
    removed from the tables)."""

    event: WatchedEvent
    watchers: tuple[Any, ...]


Event = Connected | SessionExpired | Reply | AuthReply | AuthFailed | WatchFired


@attrs.define(slots=True)
class _Pending:
    xid: int
    op: int
    token: Any
    watch: tuple[WatchKind, str, Any] | None  # registered when the reply says the op succeeded


class ClientProtocol:
    """One client's protocol state across connections and sessions (see the module docstring)."""

    def __init__(
        self,
        session_timeout_ms: int,
        *,
        read_only: bool = False,
        auth: Iterable[tuple[str, bytes]] = (),
        session_id: int = 0,
        passwd: bytes | None = None,
    ) -> None:
        self.session_timeout_ms = session_timeout_ms
        self.read_only = read_only
        self.auth: list[tuple[str, bytes]] = list(auth)
        self.session_id = session_id
        self.passwd = passwd or _EMPTY_PASSWD
        self.negotiated_timeout_ms = 0
        self.server_read_only = False
        # The highest zxid seen in a reply, kept across connections *and* sessions: a server
        # that has seen less refuses us, so the client never goes back in time.
        self.last_zxid = 0
        self.phase = Phase.DISCONNECTED
        self._frames = wire.FrameReader()
        self._outbox: list[bytes] = []
        self._xid = 0
        self._pending: collections.deque[_Pending] = collections.deque()
        # Tokens of add_auth calls, answered in order on xid -4 (None: connect-time packets).
        self._auth_pending: collections.deque[tuple[Any, str]] = collections.deque()
        self._watches: dict[WatchKind, dict[str, list[Any]]] = {k: {} for k in WatchKind}
        self._connected_event: Connected | None = None

    # --- connection lifecycle -------------------------------------------------------------

    def start_connection(self) -> None:
        """Begin a new TCP connection: queue the ConnectRequest (resuming our session if any)."""
        if self.phase is not Phase.DISCONNECTED:
            raise ClientStateError("start a connection", self.phase)
        self._frames = wire.FrameReader()
        self._outbox = [
            wire.encode_connect_request(
                ConnectRequest(0, self.last_zxid, self.session_timeout_ms, self.session_id, self.passwd, self.read_only)
            )
        ]
        self.phase = Phase.HANDSHAKE

    def connection_lost(self) -> list[Any]:
        """The TCP connection is gone: return the tokens of every unanswered request (they
        failed with connection loss: their outcome is unknown). Watches are kept for the next
        connection; persistent watches whose addWatch was unanswered are forgotten."""
        failed = [p.token for p in self._pending]
        for p in self._pending:
            if p.watch is not None and p.watch[0] in (WatchKind.PERSISTENT, WatchKind.RECURSIVE):
                self.remove_watcher(*p.watch)
        failed += [token for token, _ in self._auth_pending if token is not None]
        self._pending.clear()
        self._auth_pending.clear()
        self._outbox.clear()
        if self.phase is not Phase.CLOSED:
            self.phase = Phase.CLOSED if self.phase is Phase.CLOSING else Phase.DISCONNECTED
        return failed

    def close(self) -> list[Any]:
        """Terminal: return the tokens of every pending request and every watch."""
        failed = self.connection_lost()
        failed += self._drop_all_watches()
        self.phase = Phase.CLOSED
        return failed

    # --- sending --------------------------------------------------------------------------

    @property
    def can_send(self) -> bool:
        return self.phase is Phase.CONNECTED

    def request(self, op: int, record: Record | None, token: Any, watch: tuple[WatchKind, str, Any] | None = None) -> int:
        """Queue a request; returns its xid. `watch` = (kind, server path, token) to register
        when the reply succeeds (for persistent kinds: now, undone if it fails)."""
        if self.phase is not Phase.CONNECTED:
            raise ClientStateError(f"send {OpCode(op).name}", self.phase)
        self._xid = self._xid + 1 if self._xid < _XID_MAX else 1
        xid = self._xid
        self._outbox.append(wire.encode_request(xid, op, record))
        if watch is not None and watch[0] in (WatchKind.PERSISTENT, WatchKind.RECURSIVE):
            # Registered at once so a concurrent removal sees it and keeps the server's watch.
            self._add_watcher(*watch)
        self._pending.append(_Pending(xid, op, token, watch))
        if op == OpCode.closeSession:
            self.phase = Phase.CLOSING
        return xid

    def ping(self) -> None:
        if self.phase in (Phase.AUTHENTICATING, Phase.CONNECTED, Phase.CLOSING):
            self._outbox.append(wire.encode_request(XID_PING, OpCode.ping))

    def add_auth(self, scheme: str, credential: bytes, token: Any) -> bool:
        """Remember credentials for every future connection; send them now if connected.
        Returns whether a reply (an AuthReply with `token`) is to be expected."""
        self.auth.append((scheme, credential))
        if self.phase is not Phase.CONNECTED:
            return False
        self._send_auth(scheme, credential, token)
        return True

    def _send_auth(self, scheme: str, credential: bytes, token: Any) -> None:
        self._outbox.append(wire.encode_request(XID_AUTH, OpCode.auth, AuthPacket(0, scheme, credential)))
        self._auth_pending.append((token, scheme))

    def reassert_watches(self, paths: Iterable[str]) -> None:
        """Send setWatches for the watches we hold on `paths` (after a removeWatches that an
        old server applies to more kinds than asked, this puts the others back)."""
        if self.phase is not Phase.CONNECTED:
            return
        wanted = set(paths)
        self._outbox += self._set_watches_packets({k: [p for p in table if p in wanted] for k, table in self._watches.items()})

    @property
    def has_data_to_send(self) -> bool:
        return bool(self._outbox)

    def data_to_send(self) -> bytes:
        """Everything queued for the wire since the last call (b"" when nothing is)."""
        if not self._outbox:
            return b""
        data = b"".join(self._outbox)
        self._outbox.clear()
        return data

    # --- receiving ------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[Event]:
        """Feed bytes from the server; return the events they complete, in order.

        Raises ProtocolError for anything that is not ZooKeeper's protocol (a bad frame, a
        reply out of order): the driver must drop the connection and try another server.
        """
        if self.phase in (Phase.DISCONNECTED, Phase.CLOSED):
            return []
        self._frames.feed(data)
        events: list[Event] = []
        while True:
            frame = self._frames.next_frame()
            if frame is None:
                return events
            if self.phase is Phase.HANDSHAKE:
                event = self._handshake(frame)
            else:
                event = self._reply(frame)
            if event is not None:
                events.append(event)
            if self.phase in (Phase.DISCONNECTED, Phase.CLOSED):  # expired, auth failed, closed
                return events

    def _handshake(self, frame: bytes) -> Event | None:
        resp = wire.decode_connect_response(frame)
        if resp.timeout <= 0:
            # ZooKeeper's answer to an expired session (or a bad password): it closes next.
            watchers = self._drop_all_watches()
            self.session_id, self.passwd = 0, _EMPTY_PASSWD
            self.phase = Phase.DISCONNECTED
            return SessionExpired(tuple(watchers))
        new_session = resp.session_id != self.session_id
        if new_session and self.session_id != 0:
            raise ProtocolError(f"asked to resume session {self.session_id:#x}, got {resp.session_id:#x}")
        self.session_id = resp.session_id
        self.passwd = resp.passwd or _EMPTY_PASSWD
        self.negotiated_timeout_ms = resp.timeout
        self.server_read_only = resp.read_only
        # As Java's primeConnection: credentials first, then the watches to restore.
        for scheme, credential in self.auth:
            self._send_auth(scheme, credential, None)
        if not new_session:
            self._outbox += self._set_watches_packets(self._watches)
        self._connected_event = Connected(resp.session_id, resp.timeout, resp.read_only, new_session)
        if self._auth_pending:
            self.phase = Phase.AUTHENTICATING
            return None  # Connected comes with the last auth reply
        self.phase = Phase.CONNECTED
        return self._connected_event

    def _set_watches_packets(self, tables: dict[WatchKind, Any]) -> list[bytes]:
        """setWatches/setWatches2 packets re-registering `tables` from our last zxid, in
        batches of about SET_WATCHES_MAX_LENGTH path bytes (as Java's client batches)."""
        order = (WatchKind.DATA, WatchKind.EXIST, WatchKind.CHILD, WatchKind.PERSISTENT, WatchKind.RECURSIVE)
        items = [(kind, path) for kind in order for path in tables[kind]]
        packets = []
        i = 0
        while i < len(items):
            batch: dict[WatchKind, list[str]] = {k: [] for k in order}
            length = 0
            while i < len(items) and length < SET_WATCHES_MAX_LENGTH:
                kind, path = items[i]
                i += 1
                batch[kind].append(path)
                length += len(path)
            paths = {kind: tuple(batch[kind]) for kind in order}
            head = (self.last_zxid, paths[WatchKind.DATA], paths[WatchKind.EXIST], paths[WatchKind.CHILD])
            if paths[WatchKind.PERSISTENT] or paths[WatchKind.RECURSIVE]:
                record: Record = SetWatches2(*head, paths[WatchKind.PERSISTENT], paths[WatchKind.RECURSIVE])
                op = OpCode.setWatches2
            else:
                # Servers before 3.6 know only setWatches; use it when it is enough, as Java does.
                record, op = SetWatches(*head), OpCode.setWatches
            packets.append(wire.encode_request(XID_SET_WATCHES, op, record))
        return packets

    def _reply(self, frame: bytes) -> Event | None:
        head = self._pending[0] if self._pending else None
        header, record = wire.decode_reply(frame, head.op if head is not None else None)
        xid = header.xid
        if xid == XID_WATCH_EVENT:
            return self._watch_event(record, header.zxid)
        if xid == XID_PING:
            return None
        if xid == XID_AUTH:
            return self._auth_reply(header.err)
        if xid == XID_SET_WATCHES:
            if header.zxid > 0:
                self.last_zxid = max(self.last_zxid, header.zxid)
            return None
        assert head is not None  # decode_reply raised otherwise
        if xid != head.xid:
            raise ProtocolError(f"reply xid {xid} out of order: expected {head.xid} (op {OpCode(head.op).name})")
        self._pending.popleft()
        if header.zxid > 0:
            self.last_zxid = max(self.last_zxid, header.zxid)
        if head.watch is not None:
            self._settle_watch(head, header.err)
        if head.op == OpCode.closeSession:
            self.phase = Phase.CLOSED
        return Reply(head.token, header.zxid, header.err, record)

    def _settle_watch(self, head: _Pending, err: int) -> None:
        kind, path, token = head.watch  # type: ignore[misc]
        if kind in (WatchKind.PERSISTENT, WatchKind.RECURSIVE):
            if err != 0:
                self.remove_watcher(kind, path, token)
        elif err == 0:
            self._add_watcher(kind, path, token)
        elif kind is WatchKind.DATA and head.op == OpCode.exists and err == Code.NO_NODE:
            # exists() on a missing node leaves a watch for its creation.
            self._add_watcher(WatchKind.EXIST, path, token)

    def _auth_reply(self, err: int) -> Event | None:
        token, scheme = self._auth_pending.popleft() if self._auth_pending else (None, "?")
        if err == Code.AUTH_FAILED:
            # The server closes the connection; ZooKeeper's client gives up for good.
            self.phase = Phase.CLOSED
            return AuthFailed(scheme)
        if self.phase is Phase.AUTHENTICATING and not any(t is None for t, _ in self._auth_pending):
            self.phase = Phase.CONNECTED
            return self._connected_event
        if token is None:
            return None
        return AuthReply(token, err)

    # --- watch tables ---------------------------------------------------------------------

    def _add_watcher(self, kind: WatchKind, path: str, token: Any) -> None:
        self._watches[kind].setdefault(path, []).append(token)

    def remove_watcher(self, kind: WatchKind, path: str, token: Any) -> bool:
        """Forget one watcher; True when none of that kind is left on `path` (for DATA and
        EXIST: none of either), i.e. the server's watch may be removed."""
        table = self._watches[kind]
        tokens = table.get(path)
        if tokens is not None:
            try:
                tokens.remove(token)
            except ValueError:
                pass
            if not tokens:
                del table[path]
        if kind in (WatchKind.DATA, WatchKind.EXIST):
            return path not in self._watches[WatchKind.DATA] and path not in self._watches[WatchKind.EXIST]
        return path not in table

    def has_watches(self, path: str) -> bool:
        return any(path in table for table in self._watches.values())

    def watch_paths(self, kind: WatchKind) -> list[str]:
        return list(self._watches[kind])

    def _drop_all_watches(self) -> list[Any]:
        tokens = [t for table in self._watches.values() for ts in table.values() for t in ts]
        for table in self._watches.values():
            table.clear()
        return tokens

    def _watch_event(self, record: Any, zxid: int) -> WatchFired:
        try:
            etype = EventType(record.type)
            state = KeeperState(record.state)
        except ValueError:
            raise ProtocolError(f"watch event with unknown type {record.type} or state {record.state}") from None
        path = record.path
        w = self._watches
        found: list[Any] = []
        if etype in (EventType.NODE_CREATED, EventType.NODE_DATA_CHANGED, EventType.NODE_DELETED):
            found += w[WatchKind.DATA].pop(path, ())
            found += w[WatchKind.EXIST].pop(path, ())
        if etype in (EventType.NODE_CHILDREN_CHANGED, EventType.NODE_DELETED):
            found += w[WatchKind.CHILD].pop(path, ())
        if etype is not EventType.NONE:
            found += w[WatchKind.PERSISTENT].get(path, ())
        # Recursive watches see every node event at or below them except child-list changes
        # (ZooKeeper does not send those to them).
        if etype not in (EventType.NONE, EventType.NODE_CHILDREN_CHANGED) and w[WatchKind.RECURSIVE]:
            for p in (path, *ancestors(path)) if path != "/" else ("/",):
                found += w[WatchKind.RECURSIVE].get(p, ())
        return WatchFired(WatchedEvent(etype, state, path, zxid if zxid > 0 else -1), tuple(found))

    # --- introspection --------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def pending_tokens(self) -> Sequence[Any]:
        return [p.token for p in self._pending]
