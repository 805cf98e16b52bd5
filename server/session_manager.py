"""Sessions on a server: ids, the handshake's decision, touches, expiry and close.

The session manager decides what a ConnectRequest gets (a new session, a resumed one, an
expired answer, or nothing while the server cannot serve), keeps each session's deadline
(`SessionTable`), knows which connection holds each session (a session that moves closes its
old connection), and, where this server owns sessions (standalone, or the leader), expires
them by committing a CloseSession. Creation and close are transactions: the applier tells
it when one was applied.

In read-only mode (readonlymode.enabled, a member cut off from its quorum) it opens local
sessions for clients that ask for read-only ones (server/readonly.py) and refuses the rest.

It is sans I/O: time comes from the `clock` it is given (Trio's in the server, simulated time
in the simulator), a decision is handed to a callback (at once, or when the session's
creation commits), and `expire_due` does what is due and says when to call it next. Only
`run`, the server's expiry loop, is Trio.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from typing import Any, Protocol

import attrs
import trio

from ccore.znodes.records import ConnectRequest
from ccore.znodes.tree import DataTree
from ccore.znodes.txn import CloseSession, CreateSession

from .commit import Abandoned, Committer, Outcome
from .config import ServerConfig
from .readonly import Change, LocalSessions
from .sessions import SessionTable

log = logging.getLogger(__name__)


class SessionConnection(Protocol):
    """The connection holding a session, as far as the session manager acts on it."""

    def close(self) -> None:
        """Send what is queued, then close (the session was closed or expired)."""
        ...

    def abort(self) -> None:
        """Close now (the session moved to another connection)."""
        ...


@attrs.frozen
class SessionOpened:
    session_id: int
    timeout_ms: int
    password: bytes
    read_only: bool = False  # a local session of a read-only server: reads only


@attrs.frozen
class SessionRejected:
    """The session asked for is expired, or its password is wrong."""

    read_only: bool = False  # said by a read-only server (its answer carries the flag)


Decision = SessionOpened | SessionRejected | None  # None: close without an answer


class SessionManager:
    def __init__(
        self,
        config: ServerConfig,
        tree: Callable[[], DataTree],
        wall_clock: Callable[[], float],
        clock: Callable[[], float],
        new_password: Callable[[], bytes] = lambda: os.urandom(16),
    ) -> None:
        """`wall_clock` seeds session ids; `clock` (monotonic seconds) dates touches and
        deadlines; `new_password` makes a session's password (the simulator's is seeded)."""
        self.config = config
        self._tree = tree
        self._clock = clock
        self._new_password = new_password
        self.table = SessionTable()
        self._closing: set[int] = set()
        self._connections: dict[int, SessionConnection] = {}
        self.local = LocalSessions()  # read-only mode's sessions, never committed
        # Called when deadlines changed (a session was added, leadership was won): the
        # driver of `expire_due` looks again.
        self.on_change: Callable[[], None] = lambda: None
        self._next_id = ((int(wall_clock() * 1000) << 16) & ((1 << 56) - 1)) | (config.server_id << 56)
        self._committer: Committer | None = None

    def bind(self, committer: Committer) -> None:
        self._committer = committer

    @property
    def committer(self) -> Committer:
        if self._committer is None:
            raise RuntimeError("the session manager has no committer yet (bind one first)")
        return self._committer

    # -- the handshake ------------------------------------------------------------------------

    def decide(self, request: ConnectRequest, peer: str, on_decision: Callable[[Decision], None]) -> None:
        """Decide what a ConnectRequest from `peer` gets; `on_decision` hears it, at once or
        (for a new session) when its creation commits or is abandoned."""
        committer = self.committer
        if not committer.serving:
            if committer.read_only:
                if request.read_only:
                    self._decide_read_only(request, peer, on_decision)
                    return
                log.info("read-only mode: closing the connection from %s, which did not ask for a read-only session", peer)
                on_decision(None)
                return
            # Between leaders there is nothing consistent to serve: the client tries another
            # server (ZooKeeper closes such connections the same way).
            log.info("not serving yet (%s); closing the connection from %s", committer.mode, peer)
            on_decision(None)
            return
        if self._ahead_of_us(request, peer):
            on_decision(None)
            return
        timeout = self.config.negotiate_timeout(request.timeout)
        if request.session_id == 0:
            self._create(timeout, on_decision)
            return
        session_id, password = request.session_id, request.passwd
        if password is not None and self._resumable(session_id, password):
            self.table.add(session_id, timeout, self._clock())
            on_decision(SessionOpened(session_id, timeout, password))
            return
        if password is None or committer.owns_sessions or session_id in self._tree().sessions:
            log.info("session %#x from %s is expired or its password is wrong", session_id, peer)
            on_decision(SessionRejected())
            return

        # Not in our tree: expired, or created by transactions we have not applied yet. Only
        # the leader can tell; until it is sure, the client tries again (here or elsewhere).
        def checked(expired: bool) -> None:
            if expired:
                log.info("session %#x from %s is expired (the leader says)", session_id, peer)
                on_decision(SessionRejected())
            else:
                log.info("session %#x from %s is not known here yet; closing the connection", session_id, peer)
                on_decision(None)

        committer.check_session(session_id, password, checked)

    def _ahead_of_us(self, request: ConnectRequest, peer: str) -> bool:
        """The client has seen more than this server has applied: it must go elsewhere."""
        last_zxid = self._tree().last_zxid
        if request.last_zxid_seen <= last_zxid:
            return False
        log.info(
            "refusing session request from %s: it has seen zxid %#x, our last zxid is %#x",
            peer,
            request.last_zxid_seen,
            last_zxid,
        )
        return True

    def _decide_read_only(self, request: ConnectRequest, peer: str, on_decision: Callable[[Decision], None]) -> None:
        """A read-only client of a member in read-only mode: a new local session, a local one
        resumed, or (as ZooKeeper's ReadOnlyZooKeeperServer) no answer for a session of the
        quorum, which this server cannot keep alive without one."""
        if self._ahead_of_us(request, peer):
            on_decision(None)
            return
        timeout = self.config.negotiate_timeout(request.timeout)
        session_id, password = request.session_id, request.passwd
        now = self._clock()
        if session_id == 0:
            session_id = self._new_session_id()
            password = self._new_password()
            self.local.add(session_id, password, timeout, now)
            log.info("read-only session %#x opened for %s", session_id, peer)
            on_decision(SessionOpened(session_id, timeout, password, read_only=True))
        elif session_id in self._tree().sessions:
            log.info("refusing to renew session %#x of the quorum from %s in read-only mode", session_id, peer)
            on_decision(None)
        elif password is not None and self.local.resumable(session_id, password, now):
            self.local.touch(session_id, now)
            on_decision(SessionOpened(session_id, timeout, password, read_only=True))
        else:
            log.info("read-only session %#x from %s is expired or its password is wrong", session_id, peer)
            on_decision(SessionRejected(read_only=True))

    def _new_session_id(self) -> int:
        sessions = self._tree().sessions
        while True:
            self._next_id += 1
            if self._next_id not in sessions and self._next_id not in self.local:
                return self._next_id

    async def open(self, request: ConnectRequest, peer: str) -> Decision:
        """`decide`, awaited (for the server's Trio connection driver)."""
        decisions: list[Decision] = []
        done = trio.Event()

        def decided(decision: Decision) -> None:
            decisions.append(decision)
            done.set()

        self.decide(request, peer, decided)
        await done.wait()
        return decisions[0]

    def _create(self, timeout_ms: int, on_decision: Callable[[Decision], None]) -> None:
        session_id = self._new_session_id()
        password = self._new_password()

        def created(outcome: Outcome) -> None:
            if isinstance(outcome, Abandoned):
                log.info("session creation abandoned (%s); closing the connection", outcome.reason)
                on_decision(None)
            else:
                on_decision(SessionOpened(session_id, timeout_ms, password))

        self.committer.submit(session_id, CreateSession(timeout_ms, password), (), created)

    def _resumable(self, session_id: int, password: bytes) -> bool:
        # The tree, not the table, says which sessions live: the table only keeps deadlines.
        info = self._tree().sessions.get(session_id)
        return info is not None and info.password == password and session_id not in self._closing

    def surely_expired(self, session_id: int, password: bytes) -> bool:
        """As the leader, answering another server's CheckSession: the session is gone or
        being closed here, or its password is wrong. (The write router asks only once this
        server has applied what was committed when the question came, so that "gone" is
        not "not applied yet".)"""
        return self.committer.owns_sessions and not self._resumable(session_id, password)

    def attach(self, session_id: int, conn: SessionConnection, peer: str, *, read_only: bool = False) -> None:
        """`conn` holds the session now; a connection that held it before is closed. A
        read-only session that ended meanwhile (read-only mode stopped between the decision
        and now) closes `conn` instead."""
        if read_only and session_id not in self.local:
            log.info("read-only session %#x ended before %s took it; closing the connection", session_id, peer)
            conn.abort()
            return
        old = self._connections.get(session_id)
        if old is not None and old is not conn:
            log.info("session %#x moved to %s; closing its old connection", session_id, peer)
            old.abort()
        self._connections[session_id] = conn

    def detach(self, session_id: int, conn: SessionConnection) -> None:
        if self._connections.get(session_id) is conn:
            del self._connections[session_id]

    # -- requests -----------------------------------------------------------------------------

    def touch(self, session_id: int) -> None:
        now = self._clock()
        if session_id in self.local.by_id:
            self.local.touch(session_id, now)  # nobody else knows it: nothing to relay
            return
        self.table.touch(session_id, now)
        self.committer.session_touched(session_id, now)

    def touch_from_peer(self, session_id: int, heard_at: float) -> None:
        """A follower heard from one of its clients' sessions at `heard_at` (our clock)."""
        self.table.touch(session_id, heard_at)

    def is_closing(self, session_id: int) -> bool:
        if session_id in self.local.by_id:
            return False
        return session_id in self._closing or session_id not in self._tree().sessions

    # -- read-only mode -------------------------------------------------------------------------

    def read_only_changed(self, change: Change) -> None:
        """Read-only mode started or stopped. When it stops (an election ended), every
        read-only session ends and its connection closes at once, so that its client looks
        for a read-write server (ZooKeeper's read-only server closes all its connections)."""
        if change is Change.STOPPED:
            for session_id in self.local.clear():
                conn = self._connections.pop(session_id, None)
                if conn is not None:
                    conn.abort()
        self.on_change()

    def end_local_session(self, session_id: int) -> None:
        """A read-only client closed its session (closeSession, answered by its connection)."""
        self.local.remove(session_id)
        self._connections.pop(session_id, None)

    # -- what the applier reports (SessionEvents) -----------------------------------------------

    def created(self, session_id: int, timeout_ms: int) -> None:
        self.table.add(session_id, timeout_ms, self._clock())
        self.on_change()

    def closed(self, session_id: int) -> None:
        self.table.remove(session_id)
        self._closing.discard(session_id)
        conn = self._connections.pop(session_id, None)
        if conn is not None:
            conn.close()

    def reload(self, tree: DataTree) -> None:
        self.table = SessionTable()
        self.track_all(tree)

    def track_all(self, tree: DataTree) -> None:
        """Sessions live in `tree` get a fresh deadline to reconnect in (after a restart)."""
        now = self._clock()
        for session_id, info in tree.sessions.items():
            self.table.add(session_id, info.timeout_ms, now)

    def leadership_lost(self) -> None:
        """The closes this server proposed as leader may never commit: the sessions they were
        closing live on until a close commits, with a fresh deadline here."""
        now = self._clock()
        sessions = self._tree().sessions
        for session_id in self._closing:
            info = sessions.get(session_id)
            if info is not None:
                self.table.add(session_id, info.timeout_ms, now)
        self._closing.clear()

    def became_leader(self) -> None:
        """A new leader gives every session a fresh deadline and starts expiring them."""
        now = self._clock()
        for session_id, info in self._tree().sessions.items():
            if session_id in self.table:
                self.table.touch(session_id, now)
            else:
                self.table.add(session_id, info.timeout_ms, now)
        self.on_change()

    # -- expiry -------------------------------------------------------------------------------

    def expire_due(self) -> float:
        """Where this server owns sessions, commit a CloseSession for each session past its
        deadline; returns when to call again (the next deadline, or a tick from now)."""
        committer = self.committer
        now = self._clock()
        for session_id in self.local.expired(now):
            log.info("read-only session %#x expired", session_id)
            conn = self._connections.pop(session_id, None)
            if conn is not None:
                conn.close()
        if not committer.owns_sessions:
            return now + self.config.tick_time_ms / 1000.0
        for session_id in self.table.expired(now):
            log.info("session %#x expired", session_id)
            self._closing.add(session_id)
            committer.submit(session_id, CloseSession(), (), None)
        deadline = self.table.next_deadline()
        return deadline if deadline is not None else math.inf

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """The server's expiry loop: `expire_due` at each deadline, or sooner when told."""
        changed = trio.Event()

        def wake() -> None:
            changed.set()

        self.on_change = wake
        task_status.started()
        while True:
            with trio.move_on_at(self.expire_due()):
                await changed.wait()
            changed = trio.Event()
