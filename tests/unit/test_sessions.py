"""The session deadline queue: exact deadlines, touches only move them later."""

from __future__ import annotations

from server.sessions import SessionTable


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
