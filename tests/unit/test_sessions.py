"""The session deadline queue: exact deadlines, touches only move them later."""

from __future__ import annotations

import hypothesis.strategies as st
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from ccore.server.sessions import SessionTable


def test_expires_exactly_at_deadline() -> None:
    t = SessionTable()
    t.add(1, 4000, now=10.0)
    t.add(2, 6000, now=10.0)
    assert t.next_deadline() == 14.0
    assert t.expired(13.999) == []
    assert t.expired(14.0) == [1]
    assert 1 not in t and 2 in t


def test_touch_moves_later_never_earlier() -> None:
    t = SessionTable()
    t.add(1, 4000, now=10.0)
    t.touch(1, 12.0)
    assert t.next_deadline() == 16.0
    t.touch(1, 11.0)  # a relayed touch from before the last one: no effect
    assert t.next_deadline() == 16.0
    t.touch(99, 12.0)  # unknown sessions are ignored
    assert len(t) == 1


def test_re_adding_with_a_shorter_timeout_takes_effect() -> None:
    t = SessionTable()
    t.add(1, 10_000, now=0.0)
    t.add(1, 2000, now=1.0)
    assert t.next_deadline() == 3.0
    assert t.timeout_ms(1) == 2000


def test_refresh_all_gives_fresh_deadlines() -> None:
    t = SessionTable()
    t.add(1, 4000, now=0.0)
    t.add(2, 4000, now=1.0)
    t.refresh_all(100.0)
    assert t.expired(103.9) == []
    assert sorted(t.expired(104.0)) == [1, 2]


# -- against a model: a plain dict of deadlines -----------------------------------------------
SIDS = st.integers(1, 6)
TIMEOUTS = st.sampled_from([1000, 2000, 4000, 10_000])


class SessionsMachine(RuleBasedStateMachine):
    """Expiry is exact: a session is returned by the first `expired(now)` with now >= its
    deadline, in (deadline, id) order, and never earlier, however touches and re-adds mix."""

    def __init__(self) -> None:
        super().__init__()
        self.table = SessionTable()
        self.model: dict[int, tuple[float, float]] = {}  # id -> (deadline, timeout_s)
        self.now = 0.0

    @rule(sid=SIDS, timeout=TIMEOUTS)
    def add(self, sid: int, timeout: int) -> None:
        self.table.add(sid, timeout, self.now)
        self.model[sid] = (self.now + timeout / 1000.0, timeout / 1000.0)

    @rule(sid=SIDS, back=st.sampled_from([0.0, 0.0, 0.5, 3.0]))
    def touch(self, sid: int, back: float) -> None:
        at = self.now - back  # relayed touches are dated back
        self.table.touch(sid, at)
        if sid in self.model:
            deadline, timeout = self.model[sid]
            self.model[sid] = (max(deadline, at + timeout), timeout)

    @rule(sid=SIDS)
    def remove(self, sid: int) -> None:
        self.table.remove(sid)
        self.model.pop(sid, None)

    @rule(step=st.sampled_from([0.1, 0.5, 1.0, 2.5]))
    def advance_and_expire(self, step: float) -> None:
        self.now += step
        due = sorted((d, s) for s, (d, _) in self.model.items() if d <= self.now)
        assert self.table.expired(self.now) == [s for _, s in due]
        for _, s in due:
            del self.model[s]

    @precondition(lambda self: self.model)
    @rule()
    def refresh_all(self) -> None:
        self.table.refresh_all(self.now)
        self.model = {s: (max(d, self.now + t), t) for s, (d, t) in self.model.items()}

    @invariant()
    def agrees_with_model(self) -> None:
        assert len(self.table) == len(self.model)
        assert all(s in self.table for s in self.model)
        assert self.table.next_deadline() == min((d for d, _ in self.model.values()), default=None)
        assert all(self.table.timeout_ms(s) == int(t * 1000) for s, (_, t) in self.model.items())


TestSessionsMachine = SessionsMachine.TestCase
TestSessionsMachine.settings = settings(max_examples=200, stateful_step_count=40, deadline=None)


def test_heap_stays_bounded_where_nothing_expires() -> None:
    # A follower adds and removes sessions but never calls expired().
    t = SessionTable()
    for sid in range(10_000):
        t.add(sid, 30_000, now=float(sid))
        t.touch(sid, float(sid) + 1)
        if sid % 10:
            t.remove(sid)
    assert len(t) == 1000
    assert len(t._heap) <= 2 * len(t) + 64
    assert t.expired(1e9) == list(range(0, 10_000, 10))
