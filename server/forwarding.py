"""Client writes between ensemble members, sans I/O: who proposes what, and each write's outcome.

A server's clients submit writes here. On the leader they join the proposal queue; on a
follower or observer they travel to the leader as `ForwardWrite` frames on the FIFO peer link
that carries the Zab messages, and the leader proposes them with their origin and request id.
When a transaction commits, the server it came from finds its writer by that request id.

Every write submitted here completes exactly once: `Committed` when its transaction is
applied here, `Abandoned` when this server can no longer tell (the role or the leader changed,
the server it was forwarded to does not lead and sent `RefuseWrite` back, the server stops).

Session touches ride the same links: a follower tells the leader, every quarter tick, which
sessions its clients were heard from and how long ago (`Touches`), so the leader, which alone
expires sessions, sees every client. And a server asked to resume a session it does not know
(its tree may lag behind the session's creation) asks the leader whether it expired
(`CheckSession`, answered by `SessionChecked`): only the leader can tell a client so, and only
once it has applied every transaction committed when the question came (the session's
creation may be among them: the asking server's client may have learnt of it from another
follower that applied it first).

The driver (`Replicator`, or the simulator's node) feeds it the role from each Zab status,
peer frames, and the clock; it sends the frames returned and proposes what `take_proposals`
hands out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import attrs

from ccore.znodes.acl import Id
from ccore.znodes.txn import Op, Txn

from .commit import Abandoned, OnDone, abandon_all


@attrs.frozen
class ForwardWrite:
    request_id: int
    session: int
    op: Op
    auth: tuple[Id, ...]


@attrs.frozen
class RefuseWrite:
    """The forwarded write `request_id` reached a server that does not lead: not proposed."""

    request_id: int


@attrs.frozen
class Touches:
    """(session, milliseconds since its client was last heard) pairs."""

    ages: tuple[tuple[int, int], ...]


@attrs.frozen
class CheckSession:
    """Has `session` expired? (Asked of the leader by a server that does not know it.)"""

    request_id: int
    session: int
    password: bytes


@attrs.frozen
class SessionChecked:
    """The leader's answer to CheckSession `request_id`: `expired` only when it is sure."""

    request_id: int
    expired: bool


PeerFrame = ForwardWrite | RefuseWrite | Touches | CheckSession | SessionChecked
ROUTER_FRAMES = (ForwardWrite, RefuseWrite, Touches, CheckSession, SessionChecked)  # for isinstance
OnVerdict = Callable[[bool], None]


class SessionOwner(Protocol):
    """The session manager, as far as peers reach it."""

    def touch_from_peer(self, session: int, heard_at: float) -> None:
        """A session was heard from at another server at `heard_at` (our clock)."""
        ...

    def surely_expired(self, session: int, password: bytes) -> bool:
        """On the leader, with everything committed applied: whether the session is gone or
        closing (or its password is wrong)."""
        ...


class PeerSessions(SessionOwner, Protocol):
    """What the router tells and asks: the session owner, and how far this server applied."""

    def committed_zxid(self) -> int:
        """The last zxid committed (a session check waits until it is applied here)."""
        ...

    def applied_zxid(self) -> int:
        """The last zxid applied here."""
        ...


Outgoing = list[tuple[int, PeerFrame]]


@attrs.frozen
class Proposal:
    """A write the leader is to propose: from server `origin`, its request `request_id`."""

    origin: int
    request_id: int
    session: int
    op: Op
    auth: tuple[Id, ...]


@attrs.frozen
class Role:
    """Where this server stands, from the Zab status: a change of any of it ends the writes
    in flight."""

    leading: bool
    leader_id: int | None
    serving: bool
    epoch: int = 0


NOT_SERVING = Role(False, None, False)


class WriteRouter:
    def __init__(self, my_id: int, first_request_id: int, sessions: PeerSessions) -> None:
        """`first_request_id`: request numbers start there (from the clock, so that a restarted
        server never reuses one that a transaction still in flight from its previous life
        carries). `sessions`: told of touches relayed by peers, asked about sessions."""
        self.my_id = my_id
        self.role = NOT_SERVING
        self._sessions = sessions
        self._next_request = first_request_id
        self._pending: dict[int, OnDone | None] = {}  # request id -> its writer, until done
        self._checks: dict[int, OnVerdict] = {}  # request id -> who waits for a CheckSession
        # On the leader: (zxid to apply first, asker, question) of checks not yet answered.
        self._questions: list[tuple[int, int, CheckSession]] = []
        self._to_propose: list[Proposal] = []
        self._touched: dict[int, float] = {}  # session -> when our client was last heard

    @property
    def queued(self) -> int:
        """Writes waiting to be proposed (on the leader)."""
        return len(self._to_propose)

    @property
    def in_flight(self) -> int:
        """Writes of this server's clients without an outcome yet."""
        return len(self._pending)

    # -- the role -----------------------------------------------------------------------------

    def set_role(self, role: Role, reason: str) -> None:
        """The Zab status changed. Once this server served under some leader, every write in
        flight may or may not commit: abandon them all."""
        old, self.role = self.role, role
        if old.serving and role != old:
            self._to_propose.clear()
            self._questions.clear()  # the askers hear of the change and give up themselves
            self.abandon_all(reason)

    def abandon_all(self, reason: str) -> None:
        pending, self._pending = self._pending, {}
        checks, self._checks = self._checks, {}
        abandon_all(list(pending.values()), reason)
        for on_verdict in checks.values():
            on_verdict(False)  # not known to be expired: the client tries again

    # -- this server's clients ------------------------------------------------------------------

    def submit(self, session: int, op: Op, auth: tuple[Id, ...], on_done: OnDone | None) -> Outgoing:
        """Route a write of one of our clients; returns the frames to send."""
        role = self.role
        if not role.serving or (not role.leading and role.leader_id is None):
            if on_done is not None:
                on_done(Abandoned(f"server {self.my_id} is not serving"))
            return []
        self._next_request += 1
        request_id = self._next_request
        self._pending[request_id] = on_done
        if role.leading:
            self._to_propose.append(Proposal(self.my_id, request_id, session, op, auth))
            return []
        assert role.leader_id is not None
        return [(role.leader_id, ForwardWrite(request_id, session, op, auth))]

    def check_session(self, session: int, password: bytes, on_verdict: OnVerdict) -> Outgoing:
        """Ask the leader whether `session` expired; `on_verdict(True)` only if the leader is
        sure it did, `on_verdict(False)` otherwise (no leader, it cannot tell, the role
        changed). Returns the frames to send."""
        role = self.role
        if not role.serving or role.leading or role.leader_id is None:
            on_verdict(False)
            return []
        self._next_request += 1
        request_id = self._next_request
        self._checks[request_id] = on_verdict
        return [(role.leader_id, CheckSession(request_id, session, password))]

    def touched(self, session: int, now: float) -> None:
        self._touched[session] = now

    def touches_due(self, now: float) -> Outgoing:
        """The Touches frame for the leader (call every quarter tick): each session with how
        long ago it was heard, so that the leader dates the touch back and relaying adds no
        slack to expiry."""
        touched, self._touched = self._touched, {}
        role = self.role
        if not touched or role.leading or not role.serving or role.leader_id is None:
            return []
        ages = tuple((session, int((now - heard) * 1000)) for session, heard in touched.items())
        return [(role.leader_id, Touches(ages))]

    # -- peers --------------------------------------------------------------------------------------

    def receive(self, sender: int, frame: PeerFrame, now: float) -> Outgoing:
        """A frame from a peer; returns the frames to send back."""
        if isinstance(frame, ForwardWrite):
            if self.role.leading and self.role.serving:
                self._to_propose.append(Proposal(sender, frame.request_id, frame.session, frame.op, frame.auth))
                return []
            return [(sender, RefuseWrite(frame.request_id))]
        if isinstance(frame, RefuseWrite):
            on_done = self._pending.pop(frame.request_id, None)
            if on_done is not None:
                on_done(Abandoned(f"server {sender} does not lead any more"))
        elif isinstance(frame, CheckSession):
            if not (self.role.leading and self.role.serving):
                return [(sender, SessionChecked(frame.request_id, False))]
            self._questions.append((self._sessions.committed_zxid(), sender, frame))
            return self._answer_questions()
        elif isinstance(frame, SessionChecked):
            on_verdict = self._checks.pop(frame.request_id, None)
            if on_verdict is not None:
                on_verdict(frame.expired)
        elif self.role.leading:
            for session, age_ms in frame.ages:
                self._sessions.touch_from_peer(session, now - max(0, age_ms) / 1000.0)
        return []

    # -- proposing and committing -------------------------------------------------------------------

    def applied(self) -> Outgoing:
        """Transactions were applied here: answer the session checks that waited for them.
        (The driver calls it after applying; it costs nothing when no check waits.)"""
        return self._answer_questions() if self._questions else []

    def _answer_questions(self) -> Outgoing:
        out: Outgoing = []
        waiting = []
        applied = self._sessions.applied_zxid()
        for question in self._questions:
            barrier, sender, check = question
            if barrier <= applied:
                expired = self._sessions.surely_expired(check.session, check.password)
                out.append((sender, SessionChecked(check.request_id, expired)))
            else:
                waiting.append(question)
        self._questions = waiting
        return out

    def take_proposals(self) -> list[Proposal]:
        proposals, self._to_propose = self._to_propose, []
        return proposals

    def writer_of(self, txn: Txn) -> OnDone | None:
        """The writer waiting for a committed transaction here (None if it came from another
        server's client, or its writer was told it was abandoned)."""
        if txn.origin != self.my_id:
            return None
        return self._pending.pop(txn.request_id, None)
