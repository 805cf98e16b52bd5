"""Session deadlines: a sorted deadline queue, fed the time, returning who expired.

Pure bookkeeping (no clock reads): the caller passes `now` in seconds on its own clock. A
session expires at its deadline exactly, not on the next tick boundary as in ZooKeeper.
"""

from __future__ import annotations

from sortedcontainers import SortedList


class SessionTable:
    def __init__(self) -> None:
        self._deadline: dict[int, float] = {}
        self._timeout_s: dict[int, float] = {}
        self._queue: SortedList = SortedList()  # (deadline, session id)

    def __contains__(self, session_id: int) -> bool:
        return session_id in self._deadline

    def __len__(self) -> int:
        return len(self._deadline)

    def add(self, session_id: int, timeout_ms: int, now: float) -> None:
        """Track a session (again): its deadline is now + timeout, even if that is earlier."""
        self.remove(session_id)
        self._timeout_s[session_id] = timeout_ms / 1000.0
        self.touch(session_id, now)

    def timeout_ms(self, session_id: int) -> int:
        return int(self._timeout_s[session_id] * 1000)

    def touch(self, session_id: int, now: float) -> None:
        """The session was heard from: its deadline moves to now + its timeout."""
        timeout = self._timeout_s.get(session_id)
        if timeout is None:
            return
        old = self._deadline.get(session_id)
        deadline = now + timeout
        if old is not None:
            if old >= deadline:
                return  # a relayed touch older than one already seen moves nothing
            self._queue.discard((old, session_id))
        self._deadline[session_id] = deadline
        self._queue.add((deadline, session_id))

    def remove(self, session_id: int) -> None:
        old = self._deadline.pop(session_id, None)
        self._timeout_s.pop(session_id, None)
        if old is not None:
            self._queue.discard((old, session_id))

    def next_deadline(self) -> float | None:
        return self._queue[0][0] if self._queue else None

    def expired(self, now: float) -> list[int]:
        """Sessions whose deadline has passed; they are removed from the table."""
        out = []
        while self._queue and self._queue[0][0] <= now:
            _, session_id = self._queue.pop(0)
            del self._deadline[session_id]
            del self._timeout_s[session_id]
            out.append(session_id)
        return out

    def refresh_all(self, now: float) -> None:
        """Give every session a fresh deadline (a new leader does this)."""
        for session_id in list(self._deadline):
            self.touch(session_id, now)
