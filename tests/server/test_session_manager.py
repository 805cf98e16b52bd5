"""The session manager's decisions, with a committer the test controls."""

from __future__ import annotations

from typing import Any

import trio

from ccore.server.commit import Abandoned, Committed
from ccore.server.session_manager import SessionManager, SessionOpened, SessionRejected
from ccore.znodes.records import ConnectRequest
from ccore.znodes.tree import DataTree
from ccore.znodes.txn import CloseSession, CreateSession, Txn
from tests.server.helpers import config


class Committer:
    """Applies writes to a tree at once (or abandons them), like a committer in a hurry."""

    def __init__(self, tree: DataTree, sessions: SessionManager) -> None:
        self.tree = tree
        self.sessions = sessions
        self.serving = True
        self.read_only = False
        self.mode = "standalone"
        self.owns_sessions = True
        self.outstanding = 0
        self.abandon = False
        self.hold = False  # writes are proposed and never commit (the leader is about to fall)
        self.submitted: list[Any] = []
        self.expired_at_leader: set[int] = set()
        self.checks: list[int] = []

    def submit(self, session: int, op: Any, auth: Any, on_done: Any) -> None:
        self.submitted.append(op)
        if self.hold:
            return
        if self.abandon:
            on_done(Abandoned("leadership changed"))
            return
        txn = Txn(self.tree.last_zxid + 1, 0, session, op)
        result, _ = self.tree.apply(txn)
        if isinstance(op, CreateSession):
            self.sessions.created(session, op.timeout_ms)
        if isinstance(op, CloseSession):
            self.sessions.closed(session)
        if on_done is not None:
            on_done(Committed(txn, result))

    def session_touched(self, session: int, now: float) -> None:
        pass

    def check_session(self, session: int, password: bytes, on_verdict: Any) -> None:
        self.checks.append(session)
        on_verdict(session in self.expired_at_leader)


class Conn:
    def __init__(self) -> None:
        self.closed = self.aborted = False

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True


def _manager(tmp_path: Any) -> tuple[SessionManager, Committer, DataTree]:
    tree = DataTree()
    sessions = SessionManager(config(tmp_path), lambda: tree, lambda: 1000.0, trio.current_time)
    committer = Committer(tree, sessions)
    sessions.bind(committer)
    return sessions, committer, tree


def _request(session_id: int = 0, passwd: bytes = bytes(16), timeout: int = 4000, last_zxid: int = 0) -> ConnectRequest:
    return ConnectRequest(0, last_zxid, timeout, session_id, passwd, False)


async def test_a_new_session_is_committed_then_opened(tmp_path):
    sessions, committer, tree = _manager(tmp_path)
    decision = await sessions.open(_request(), "c1")
    assert isinstance(decision, SessionOpened)
    assert decision.session_id in tree.sessions and decision.session_id in sessions.table
    assert isinstance(committer.submitted[0], CreateSession)


async def test_a_session_whose_creation_is_abandoned_gets_no_answer(tmp_path):
    sessions, committer, _ = _manager(tmp_path)
    committer.abandon = True
    assert await sessions.open(_request(), "c1") is None


async def test_a_resumed_session_moves_and_its_old_connection_is_closed(tmp_path):
    sessions, _, _ = _manager(tmp_path)
    opened = await sessions.open(_request(), "c1")
    assert isinstance(opened, SessionOpened)
    first, second = Conn(), Conn()
    sessions.attach(opened.session_id, first, "c1")
    again = await sessions.open(_request(opened.session_id, opened.password), "c2")
    assert again == SessionOpened(opened.session_id, opened.timeout_ms, opened.password)
    sessions.attach(opened.session_id, second, "c2")
    assert first.aborted and not second.aborted
    sessions.detach(opened.session_id, first)  # the old one's late goodbye changes nothing
    sessions.closed(opened.session_id)
    assert second.closed


async def test_a_wrong_password_or_an_unknown_session_is_rejected(tmp_path):
    sessions, _, _ = _manager(tmp_path)
    opened = await sessions.open(_request(), "c1")
    assert isinstance(opened, SessionOpened)
    assert await sessions.open(_request(opened.session_id, b"x" * 16), "c2") == SessionRejected()
    assert await sessions.open(_request(0x999, bytes(16)), "c2") == SessionRejected()


async def test_a_client_ahead_of_this_server_or_a_server_not_serving_gets_no_answer(tmp_path):
    sessions, committer, _ = _manager(tmp_path)
    assert await sessions.open(_request(last_zxid=50), "c1") is None
    committer.serving = False
    assert await sessions.open(_request(), "c1") is None


async def test_an_idle_session_expires_by_a_committed_close(tmp_path, autojump_clock):
    sessions, committer, tree = _manager(tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(sessions.run)
        opened = await sessions.open(_request(timeout=2000), "c1")
        assert isinstance(opened, SessionOpened) and opened.timeout_ms == 2000
        conn = Conn()
        sessions.attach(opened.session_id, conn, "c1")
        await trio.sleep(1.5)
        sessions.touch(opened.session_id)
        await trio.sleep(1.5)
        assert opened.session_id in tree.sessions  # the touch moved its deadline
        await trio.sleep(1.0)
        assert opened.session_id not in tree.sessions and conn.closed
        nursery.cancel_scope.cancel()


def test_without_trio_decisions_arrive_by_callback_and_expiry_runs_on_the_given_clock(tmp_path):
    """The manager is sans I/O: a plain clock and plain calls drive it (as the simulator does)."""
    now = [100.0]
    tree = DataTree()
    sessions = SessionManager(config(tmp_path), lambda: tree, lambda: 1000.0, lambda: now[0])
    committer = Committer(tree, sessions)
    sessions.bind(committer)
    changes: list[None] = []
    sessions.on_change = lambda: changes.append(None)
    decisions: list[Any] = []
    sessions.decide(_request(timeout=4000), "c1", decisions.append)
    (opened,) = decisions
    assert isinstance(opened, SessionOpened) and changes  # the creation woke the expiry driver
    timeout_s = opened.timeout_ms / 1000
    assert sessions.expire_due() == 100.0 + timeout_s  # its deadline, on the given clock
    now[0] = 100.5
    sessions.touch(opened.session_id)
    assert sessions.expire_due() == 100.5 + timeout_s
    committer.owns_sessions = False
    now[0] = 200.0
    assert sessions.expire_due() == 200.0 + config(tmp_path).tick_time_ms / 1000.0
    assert opened.session_id in tree.sessions  # a server that does not own sessions expires none
    committer.owns_sessions = True
    sessions.expire_due()
    assert opened.session_id not in tree.sessions


def test_a_close_that_never_commits_leaves_the_session_resumable_after_leadership_is_lost(tmp_path):
    """The leader expires a session, its CloseSession is lost with its leadership: the
    session lives on, and this server, now a follower, must still let its client resume."""
    now = [0.0]
    tree = DataTree()
    sessions = SessionManager(config(tmp_path), lambda: tree, lambda: 1000.0, lambda: now[0])
    committer = Committer(tree, sessions)
    sessions.bind(committer)
    decisions: list[Any] = []
    sessions.decide(_request(timeout=2000), "c1", decisions.append)
    (opened,) = decisions
    committer.hold = True
    now[0] = 100.0
    sessions.expire_due()
    assert isinstance(committer.submitted[-1], CloseSession) and sessions.is_closing(opened.session_id)
    sessions.leadership_lost()
    committer.owns_sessions = False
    sessions.decide(_request(opened.session_id, opened.password), "c1", decisions.append)
    assert decisions[-1] == SessionOpened(opened.session_id, opened.timeout_ms, opened.password)
    assert opened.session_id in sessions.table  # with a deadline again, for when we lead


def test_a_follower_that_does_not_know_a_session_asks_the_leader(tmp_path):
    """Its tree may lag behind the session's creation: only the leader may say "expired"."""
    sessions, committer, _ = _manager(tmp_path)
    committer.owns_sessions = False
    decisions: list[Any] = []
    committer.expired_at_leader.add(0x77)
    sessions.decide(_request(0x77, b"p" * 16), "c1", decisions.append)
    sessions.decide(_request(0x78, b"p" * 16), "c2", decisions.append)
    assert committer.checks == [0x77, 0x78]
    assert decisions == [SessionRejected(), None]  # not known to be expired: try again
    # The leader decides by itself.
    committer.owns_sessions = True
    sessions.decide(_request(0x78, b"p" * 16), "c2", decisions.append)
    assert decisions[-1] == SessionRejected() and committer.checks == [0x77, 0x78]
