"""Session deadlines: a deadline per session, fed the time, returning who expired.

Pure bookkeeping (no clock reads): the caller passes `now` in seconds on its own clock. A
session expires at its deadline exactly, not on the next tick boundary as in ZooKeeper.

Every request touches its session, so a touch is O(1): it only moves the deadline in a dict.
A heap of (deadline, session) entries finds the next expiry; its entries are lazily
corrected: an entry may be earlier than its session's deadline (touched since it was pushed),
and is re-pushed at the real deadline when it reaches the top. Each tracked session always has
an entry no later than its deadline, so none expires late; a session is re-pushed at most once
per timeout however often it is touched.
"""

from __future__ import annotations

import heapq


class SessionTable:
    def __init__(self) -> None:
        self._deadline: dict[int, float] = {}
        self._timeout_s: dict[int, float] = {}
        # (deadline when pushed, session id); stale entries (removed sessions, old deadlines)
        # are dropped or re-pushed when they reach the top.
        self._heap: list[tuple[float, int]] = []

    def __contains__(self, session_id: int) -> bool:
        return session_id in self._deadline

    def __len__(self) -> int:
        return len(self._deadline)

    def add(self, session_id: int, timeout_ms: int, now: float) -> None:
        """Track a session (again): its deadline is now + timeout, even if that is earlier."""
        timeout = timeout_ms / 1000.0
        deadline = now + timeout
        self._timeout_s[session_id] = timeout
        self._deadline[session_id] = deadline
        # A new entry: an older one of this session may be later than the new deadline.
        heapq.heappush(self._heap, (deadline, session_id))
        if len(self._heap) > 2 * len(self._deadline) + 64:
            # Entries of removed or re-added sessions pile up where nothing pops them (a
            # follower never expires sessions): rebuild, amortised O(1) per add.
            self._heap = [(d, s) for s, d in self._deadline.items()]
            heapq.heapify(self._heap)

    def timeout_ms(self, session_id: int) -> int:
        return int(self._timeout_s[session_id] * 1000)

    def touch(self, session_id: int, now: float) -> None:
        """The session was heard from: its deadline moves to now + its timeout."""
        timeout = self._timeout_s.get(session_id)
        if timeout is None:
            return
        deadline = now + timeout
        # A relayed touch older than one already seen moves nothing.
        if deadline > self._deadline[session_id]:
            self._deadline[session_id] = deadline

    def remove(self, session_id: int) -> None:
        self._deadline.pop(session_id, None)
        self._timeout_s.pop(session_id, None)

    def _settle_top(self) -> tuple[float, int] | None:
        """Fix the heap's top until it is a live session at its real deadline; return it."""
        heap = self._heap
        deadlines = self._deadline
        while heap:
            entry = heap[0]
            deadline = deadlines.get(entry[1])
            if deadline is None:
                heapq.heappop(heap)
            elif deadline != entry[0]:
                heapq.heapreplace(heap, (deadline, entry[1]))
            else:
                return entry
        return None

    def next_deadline(self) -> float | None:
        top = self._settle_top()
        return None if top is None else top[0]

    def expired(self, now: float) -> list[int]:
        """Sessions whose deadline has passed; they are removed from the table."""
        out = []
        while (top := self._settle_top()) is not None and top[0] <= now:
            heapq.heappop(self._heap)
            session_id = top[1]
            del self._deadline[session_id]
            del self._timeout_s[session_id]
            out.append(session_id)
        return out

    def refresh_all(self, now: float) -> None:
        """Give every session a fresh deadline (a new leader does this)."""
        for session_id in list(self._deadline):
            self.touch(session_id, now)
