"""The Trio driver of one client connection: a socket loop over `ServerConnection`.

The reader feeds what arrives to the sans-I/O core and carries out what it returns (answer a
four-letter word, open a session, hand a write to the committer); the writer sends whatever
the core has queued and closes the socket when the core is finished. Every guarantee about
order (FIFO replies, watch events before the replies that reflect them) lives in the core;
this module only moves bytes and wakes the writer.
"""

from __future__ import annotations

import functools
import logging
import math
from typing import Any, Protocol

import trio

from ccore.znodes.acl import ACL, Id
from ccore.znodes.records import ConnectRequest
from ccore.znodes.txn import Op

from .commit import Committed, OnDone, Outcome
from .server_connection import (
    ConnectionServices,
    FourLetterWord,
    PendingWrite,
    Phase,
    ReadOnlySessionClosed,
    ServerConnection,
    SessionRequested,
    WriteSubmitted,
)
from .session_manager import Decision, SessionOpened, SessionRejected
from .tls import aclose_bounded

log = logging.getLogger(__name__)

RECEIVE_BYTES = 256 * 1024
# A connection that has not started a session by then is closed (ZooKeeper's
# zookeeper.nio.sessionlessCnxnTimeout), so idle sockets cannot pile up to the fd limit.
SESSIONLESS_TIMEOUT_S = 10.0


class ConnectionHost(ConnectionServices, Protocol):
    """What a connection needs from the server beyond its core's services."""

    @property
    def max_frame(self) -> int: ...

    @property
    def super_digest(self) -> str | None:
        """zoo.cfg's superDigest (None: there is no super user)."""
        ...

    def wall_clock(self) -> float: ...

    def answer_four_letter(self, word: str) -> str: ...

    async def open_session(self, request: ConnectRequest, peer: str) -> Decision: ...

    def attach(self, session_id: int, conn: Connection, read_only: bool = False) -> None:
        """`conn` holds the session now (a connection that held it before is closed; a
        read-only session that ended meanwhile closes `conn`)."""
        ...

    def end_local_session(self, session_id: int) -> None:
        """A read-only session was closed by its client."""
        ...

    def submit(self, session: int, op: Op, auth: tuple[Id, ...], on_done: OnDone) -> None: ...

    def connection_closed(self, conn: Connection) -> None: ...


class Connection:
    def __init__(self, host: ConnectionHost, stream: trio.abc.Stream, peer: tuple[str, int]) -> None:
        """`stream`: a socket, or TLS over one; `peer`: the client's address and port."""
        self.host = host
        self.stream = stream
        self.peer = peer
        self.core = ServerConnection(host, self, peer[0], host.max_frame, super_digest=host.super_digest)
        self.connected_at = host.wall_clock()
        self._wake = trio.Event()
        self._cancel = trio.CancelScope()

    @property
    def session_id(self) -> int:
        return self.core.session_id

    @property
    def sent(self) -> int:
        return self.core.sent

    def __str__(self) -> str:
        return f"{self.peer[0]}:{self.peer[1]}"

    # -- what the server calls -----------------------------------------------------------------

    def send_event(self, event_type: int, path: str, acl: tuple[ACL, ...] = ()) -> None:
        """A watch of this connection fired."""
        self.core.send_event(event_type, path, acl)
        self._progress()

    def close(self) -> None:
        """Send what is queued, then close (the session was closed or expired)."""
        self.core.close()
        self._progress()

    def abort(self) -> None:
        """Close now (the session moved, or leadership changed)."""
        self.core.abort()
        self._cancel.cancel()

    def _progress(self) -> None:
        """The core has changed: wake the writer, or stop if the core aborted."""
        if self.core.phase is Phase.ABORTED:
            self._cancel.cancel()
        elif not self._wake.is_set():
            # Under pipelining most replies find the writer already woken, and trio's set()
            # costs a call through its KI-protection wrapper even then.
            self._wake.set()

    def _write_done(self, write: PendingWrite, outcome: Outcome) -> None:
        if type(outcome) is Committed:
            self.core.write_committed(write, outcome.txn, outcome.result)
        else:
            self.core.write_abandoned(write)
        self._progress()

    # -- the loops -----------------------------------------------------------------------------

    async def run(self) -> None:
        self._cancel.deadline = trio.current_time() + SESSIONLESS_TIMEOUT_S
        try:
            with self._cancel:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._writer)
                    await self._reader()
                    # The client closed its side: deliver what is queued, then stop.
                    self.core.end_of_input()
                    self._progress()
        except* (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            # The client reset or closed the socket: that ends this connection, nothing else
            # (reader and writer may both see it, hence a group).
            pass
        finally:
            self.core.abort()  # whatever completes later is dropped
            self.host.connection_closed(self)
            await aclose_bounded(self.stream)

    async def _reader(self) -> None:
        core = self.core
        submit = self.host.submit
        while True:
            data = await self.stream.receive_some(RECEIVE_BYTES)
            if not data:
                return
            # bytes() is free for the bytes a socket gives; TLS gives a bytearray.
            for event in core.receive_data(bytes(data)):
                if type(event) is WriteSubmitted:
                    submit(core.session_id, event.op, core.auth, functools.partial(self._write_done, event.write))
                elif type(event) is SessionRequested:
                    await self._open_session(event.request)
                elif type(event) is ReadOnlySessionClosed:
                    self.host.end_local_session(event.session_id)
                elif isinstance(event, FourLetterWord):
                    await self.stream.send_all(self.host.answer_four_letter(event.word).encode())
                    return
            self._progress()
            if core.finished:
                return

    async def _open_session(self, request: ConnectRequest) -> None:
        decision = await self.host.open_session(request, str(self))
        core = self.core
        if core.phase is not Phase.CONNECTING:
            return  # aborted meanwhile
        if isinstance(decision, SessionOpened):
            self._cancel.deadline = math.inf  # a session now: its own timeout governs
            self.host.attach(decision.session_id, self, decision.read_only)
            if core.phase is not Phase.CONNECTING:
                return  # the read-only session ended meanwhile: attach closed us
            submit = self.host.submit
            for event in core.accept_session(decision.session_id, decision.timeout_ms, decision.password, decision.read_only):
                if type(event) is ReadOnlySessionClosed:  # a pipelined closeSession
                    self.host.end_local_session(event.session_id)
                    continue
                assert type(event) is WriteSubmitted  # nothing else follows a handshake
                submit(core.session_id, event.op, core.auth, functools.partial(self._write_done, event.write))
        elif isinstance(decision, SessionRejected):
            core.reject_session(decision.read_only)
        else:
            core.abort()
        self._progress()

    async def _writer(self) -> None:
        core = self.core
        while True:
            data = core.data_to_send()
            if data:
                await self.stream.send_all(data)
                continue
            if core.finished:
                self._cancel.cancel()
                return
            self._wake = trio.Event()
            await self._wake.wait()

    def info(self) -> dict[str, Any]:
        """ZooKeeper's connection info record, for the `cons`/`stat` commands."""
        core = self.core
        return {
            "remote_socket_address": f"{self.peer[0]}:{self.peer[1]}",
            "interest_ops": 1,
            "outstanding_requests": core.queued,
            "packets_received": core.received,
            "packets_sent": core.sent,
            "session_id": f"{core.session_id:#x}",
            "last_operation": "NA",
            "established": int(self.connected_at * 1000),
            "session_timeout": core.timeout_ms,
        }
