"""Read-only mode (ZooKeeper's `readonlymode.enabled`): when a cut-off member serves reads.

Two small sans-I/O pieces, driven by the replicator and the session manager:

- `ReadOnlyMode` decides when a member that lost its quorum starts answering read-only
  clients: after it has been LOOKING for a grace period (ZooKeeper waits max(2 s, tickTime)
  before it calls itself partitioned), and until it stops LOOKING (an election ended: the
  read-only sessions end so their clients move to a read-write server).
- `LocalSessions` holds the sessions such a server opens. They are never committed: the
  quorum never hears of them, so a client that reaches a read-write server with one is told
  it expired and starts a new session (ZooKeeper's read-only server opens local sessions).

Neither reads a clock: time is passed in.
"""

from __future__ import annotations

import collections
import enum

import attrs

# ZooKeeper starts its read-only server this long after entering LOOKING, at the least.
MIN_GRACE_S = 2.0


class Change(enum.Enum):
    STARTED = "started"
    STOPPED = "stopped"


@attrs.define
class ReadOnlyMode:
    """Whether this member answers read-only clients now (see the module docstring)."""

    enabled: bool
    grace_s: float
    active: bool = False
    _looking_since: float | None = None

    @classmethod
    def for_tick(cls, enabled: bool, tick_s: float) -> ReadOnlyMode:
        return cls(enabled, max(MIN_GRACE_S, tick_s))

    def observe(self, looking: bool, now: float) -> Change | None:
        """Feed whether the member is LOOKING (no leader, not serving) at `now`, on every
        status change and every tick; returns the change of mode, if any."""
        if not looking:
            self._looking_since = None
            if self.active:
                self.active = False
                return Change.STOPPED
            return None
        if self._looking_since is None:
            self._looking_since = now
        if self.enabled and not self.active and now - self._looking_since >= self.grace_s:
            self.active = True
            return Change.STARTED
        return None


@attrs.define(slots=True)
class _Local:
    password: bytes
    timeout_s: float
    deadline: float


class LocalSessions:
    """Sessions opened in read-only mode, known to this server only. A client may resume one
    here (same id and password) until its timeout passes without a request, as with
    ZooKeeper's local sessions; `clear` forgets them all when read-only mode ends."""

    def __init__(self) -> None:
        # In order of last touch, so that purging stops at the first live one. Public for the
        # membership test on every request's path (`id in local.by_id`: no method call).
        self.by_id: collections.OrderedDict[int, _Local] = collections.OrderedDict()
        self._sessions = self.by_id

    def __contains__(self, session_id: int) -> bool:
        return session_id in self._sessions

    def __len__(self) -> int:
        return len(self._sessions)

    def add(self, session_id: int, password: bytes, timeout_ms: int, now: float) -> None:
        timeout_s = timeout_ms / 1000.0
        self._sessions[session_id] = _Local(password, timeout_s, now + timeout_s)

    def touch(self, session_id: int, now: float) -> None:
        session = self._sessions.get(session_id)
        if session is not None:
            session.deadline = now + session.timeout_s
            self._sessions.move_to_end(session_id)

    def resumable(self, session_id: int, password: bytes, now: float) -> bool:
        session = self._sessions.get(session_id)
        return session is not None and session.password == password and now <= session.deadline

    def remove(self, session_id: int) -> None:
        self._sessions.pop(session_id, None)

    def expired(self, now: float) -> list[int]:
        """Forget the sessions whose timeout passed without a touch, oldest touch first, and
        return them. Stops at the first live one: a session touched later with a shorter
        timeout waits for the next call (each is at most maxSessionTimeout late)."""
        gone = []
        sessions = self._sessions
        while sessions:
            session_id, session = next(iter(sessions.items()))
            if session.deadline > now:
                break
            sessions.popitem(last=False)
            gone.append(session_id)
        return gone

    def clear(self) -> list[int]:
        """Forget every session (read-only mode ended); returns their ids."""
        ids = list(self._sessions)
        self._sessions.clear()
        return ids
