"""The client port: accepts connections (plain on clientPort, TLS on secureClientPort), enforces
maxClientCnxns, and serves each connection what it needs from the rest of the server
(`ConnectionHost`).
"""

from __future__ import annotations

import collections
import logging
import math
import ssl
from collections.abc import Callable
from typing import Any

import trio

from ccore.znodes.acl import Id
from ccore.znodes.records import ConnectRequest, Record
from ccore.znodes.tree import DataTree
from ccore.znodes.txn import Op
from ccore.znodes.watches import WatchManager

from . import tls
from .commit import Committer, OnDone
from .config import ServerConfig
from .connection import Connection
from .loglimit import LogLimiter
from .requests import Reads, restore_watches
from .session_manager import Decision, SessionManager
from .stats import ServerStats

log = logging.getLogger(__name__)

REFUSAL_LOG_INTERVAL_S = 60.0  # at most one maxClientCnxns warning per address this often
HANDSHAKE_LOG_INTERVAL_S = 60.0  # at most one failed-handshake line per address and reason this often


class ClientPort:
    def __init__(
        self,
        config: ServerConfig,
        tree: Callable[[], DataTree],
        watches: WatchManager,
        sessions: SessionManager,
        committer: Committer,
        stats: ServerStats,
        four_letter: Callable[[str], str],
        wall_clock: Callable[[], float],
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        """`tls_context`: the server side of TLS on secureClientPort (server/tls.py)."""
        self.config = config
        self._tree = tree
        self.watches = watches
        self.sessions = sessions
        self.committer = committer
        self.stats = stats
        self._four_letter = four_letter
        self.wall_clock = wall_clock
        self.reads = Reads(tree, watches)
        self.connections: set[Connection] = set()
        self._per_address: collections.Counter[str] = collections.Counter()  # connections per client address
        self._refusals: dict[str, tuple[float, int]] = {}  # address -> (last logged, refused since)
        self.port: int | None = None  # the plain port, once bound (None if there is none)
        self.secure_port: int | None = None  # the TLS port, once bound
        self._listeners: list[trio.SocketListener] = []
        self._secure_listeners: list[trio.SocketListener] = []
        self._tls = tls_context
        self._handshake_failures = LogLimiter(HANDSHAKE_LOG_INTERVAL_S)

    async def listen(self) -> None:
        """Bind the client ports (before any task starts, so that a port in use is one error)."""
        config = self.config
        if config.client_port is not None:
            self._listeners = await trio.open_tcp_listeners(config.client_port, host=config.client_port_address)
            self.port = self._listeners[0].socket.getsockname()[1]
        if config.secure_client_port is not None:
            if self._tls is None:
                raise RuntimeError("secureClientPort is set but the server was built without a TLS context")
            host = config.secure_client_port_address or config.client_port_address
            self._secure_listeners = await trio.open_tcp_listeners(config.secure_client_port, host=host)
            self.secure_port = self._secure_listeners[0].socket.getsockname()[1]

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Accept connections on the bound ports until cancelled."""
        async with trio.open_nursery() as nursery:
            if self._listeners:
                await nursery.start(trio.serve_listeners, self._serve_connection, self._listeners)
            if self._secure_listeners:
                await nursery.start(trio.serve_listeners, self._serve_secure, self._secure_listeners)
            task_status.started()

    async def _serve_secure(self, stream: trio.SocketStream) -> None:
        await self._serve_connection(stream, self._tls)

    async def _serve_connection(self, stream: trio.SocketStream, tls_context: ssl.SSLContext | None = None) -> None:
        try:
            address, port = stream.socket.getpeername()[:2]
        except OSError:
            address, port = "0.0.0.0", 0
        limit = self.config.max_client_cnxns
        if limit and self._per_address[address] >= limit:
            self._refused(address, limit)
            await stream.aclose()
            return
        # Counted from here, the handshake included: half-open handshakes count against the
        # address's maxClientCnxns like any other connection.
        self._per_address[address] += 1
        served: trio.abc.Stream = stream
        if tls_context is not None:
            secured = trio.SSLStream(stream, tls_context, server_side=True)
            failure = await tls.handshake(secured)
            if failure is not None:
                self._release(address)
                self._handshake_failed(address, port, failure)
                return
            served = secured
        conn = Connection(self, served, (address, port))
        self.connections.add(conn)
        try:
            await conn.run()
        except Exception:
            # A bug met by one connection costs that connection, never the server.
            log.exception("connection from %s failed unexpectedly; it is closed", conn)

    def _handshake_failed(self, address: str, port: int, failure: BaseException) -> None:
        """One line per failed TLS handshake, at most one a minute per address and reason."""
        reason = tls.describe_failure(failure)
        held_back = self._handshake_failures.allow((address, reason), trio.current_time())
        if held_back is None:
            return
        also = f" ({held_back} more like it from this address since the last report)" if held_back else ""
        log.warning("TLS handshake with client %s:%d failed: %s; closed%s", address, port, reason, also)

    def _release(self, address: str) -> None:
        self._per_address[address] -= 1
        if not self._per_address[address]:
            del self._per_address[address]

    def _refused(self, address: str, limit: int) -> None:
        """Log a refusal past maxClientCnxns: once a minute per address at most, with how
        many were refused, so that a connect flood cannot fill the disk with log lines."""
        now = trio.current_time()
        last, count = self._refusals.get(address, (-math.inf, 0))
        if now - last < REFUSAL_LOG_INTERVAL_S:
            self._refusals[address] = (last, count + 1)
            return
        if len(self._refusals) >= 1024:
            self._refusals.clear()  # bounded, however many addresses flood us
        self._refusals[address] = (now, 0)
        also = f" ({count} more refused since the last report)" if count else ""
        log.warning("too many connections from %s (max %d, maxClientCnxns); refusing%s", address, limit, also)

    def drop_all(self) -> None:
        """Leadership changed: every client reconnects (elsewhere, or here once we serve)."""
        for conn in list(self.connections):
            conn.abort()

    # -- ConnectionHost --------------------------------------------------------------------------

    @property
    def max_frame(self) -> int:
        return self.config.max_buffer

    @property
    def super_digest(self) -> str | None:
        return self.config.super_digest

    @property
    def last_zxid(self) -> int:
        return self._tree().last_zxid

    def monotonic(self) -> float:
        return trio.current_time()

    def request_received(self, session_id: int) -> None:
        self.stats.received += 1
        self.sessions.touch(session_id)

    def record_latency(self, seconds: float, update: bool = False) -> None:
        self.stats.record_latency(seconds, update)

    def is_closing(self, session_id: int) -> bool:
        return self.sessions.is_closing(session_id)

    def answer_read(
        self, op: int, record: Any, watcher: Any, auth: tuple[Id, ...], session_id: int
    ) -> tuple[int, Record | None] | None:
        reads = self.reads
        if not reads.handles(op):
            return None
        return reads.answer(op, record, watcher, auth, session_id)

    def restore_watches(self, watcher: Any, record: Any) -> list[tuple[int, str]]:
        return restore_watches(self._tree(), self.watches, watcher, record)

    def answer_four_letter(self, word: str) -> str:
        return self._four_letter(word)

    async def open_session(self, request: ConnectRequest, peer: str) -> Decision:
        return await self.sessions.open(request, peer)

    def attach(self, session_id: int, conn: Connection, read_only: bool = False) -> None:
        self.sessions.attach(session_id, conn, str(conn), read_only=read_only)

    def end_local_session(self, session_id: int) -> None:
        self.sessions.end_local_session(session_id)

    def submit(self, session: int, op: Op, auth: tuple[Id, ...], on_done: OnDone) -> None:
        self.committer.submit(session, op, auth, on_done)

    def connection_closed(self, conn: Connection) -> None:
        if conn in self.connections:
            self.connections.discard(conn)
            self._release(conn.peer[0])
        self.watches.remove_watcher(conn)
        self.sessions.detach(conn.session_id, conn)
