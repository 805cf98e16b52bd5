"""The other checkers: per-client zxid order, fenced lock writes, watch completeness and the
ephemeral expiry bound; each with histories that pass and histories that fail."""

from __future__ import annotations

import itertools
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from chaos.checks import (
    Change,
    EphemeralLife,
    WatchLog,
    check_ephemeral_expiry,
    check_fenced_writes,
    check_watches,
    check_zxid_order,
    merge,
)
from chaos.history import Event, History
from tests.chaos.builders import build

MS = 1_000_000


def _zxid_history(*ops: tuple) -> History:
    """(client, f, zxid, call, ret): ok ops carrying the reply's zxid."""
    timed = []
    for n, (client, f, zxid, call, ret) in enumerate(ops):
        process = (client, n)  # a fresh process per op: ops of one client may overlap
        timed.append((call, 1, Event(0, "invoke", process, f, None, call, client=client)))
        timed.append((ret, 0, Event(0, "ok", process, f, None, ret, zxid=zxid, client=client)))
    timed.sort(key=lambda t: (t[0], t[1]))
    return History.from_events([e for _, _, e in timed])


# -- zxid order ---------------------------------------------------------------------------------


def test_zxid_order_passes_when_reads_only_go_forward() -> None:
    h = _zxid_history(("c1", "read", 5, 0, 1), ("c1", "write", 9, 2, 3), ("c1", "read", 9, 4, 5), ("c2", "read", 3, 4, 5))
    assert check_zxid_order(h).ok


def test_zxid_order_fails_when_a_read_goes_back_across_a_reconnect() -> None:
    h = _zxid_history(("c1", "read", 7, 0, 1), ("c1", "read", 5, 10, 11))
    verdict = check_zxid_order(h)
    assert not verdict.ok and "c1" in verdict.violations[0] and "0x5" in verdict.violations[0]


def test_zxid_order_fails_when_a_read_misses_the_clients_own_write() -> None:
    h = _zxid_history(("c1", "write", 12, 0, 1), ("c1", "read", 11, 2, 3))
    assert not check_zxid_order(h).ok


def test_zxid_order_allows_overlapping_ops_of_one_client_in_either_order() -> None:
    # Pipelined: the read began before the write returned, so it may see an older state.
    h = _zxid_history(("c1", "write", 12, 0, 5), ("c1", "read", 11, 1, 6))
    assert check_zxid_order(h).ok


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(1, 1000), min_size=1, max_size=40), st.integers(0, 2**32))
def test_zxid_order_hypothesis(zxids: list[int], seed: int) -> None:
    """Sequential reads of one client: ok iff the zxids never decrease."""
    h = _zxid_history(*(("c", "read", z, 2 * i, 2 * i + 1) for i, z in enumerate(zxids)))
    monotone = all(b >= a for a, b in itertools.pairwise(zxids))
    assert check_zxid_order(h).ok == monotone


# -- fenced lock writes -------------------------------------------------------------------------


def _fenced(*writes: tuple) -> History:
    """(token, resulting version or None for unknown, call, ret)."""
    return build(*((f"p{n}", "fenced-write", {"token": tok}, ver, call, ret, "ok" if ver is not None else "info")
                   for n, (tok, ver, call, ret) in enumerate(writes)))  # fmt: skip


def test_fenced_writes_pass_when_tokens_only_grow() -> None:
    assert check_fenced_writes(_fenced((1, 1, 0, 1), (1, 2, 2, 3), (2, 3, 4, 5), (3, 5, 6, 7), (3, None, 5, 6))).ok


def test_fenced_writes_fail_when_an_old_holder_writes_after_a_new_one() -> None:
    verdict = check_fenced_writes(_fenced((1, 1, 0, 1), (2, 2, 2, 3), (1, 3, 4, 5)))
    assert not verdict.ok and "token 1" in verdict.violations[0]


def test_fenced_writes_fail_on_two_acknowledged_at_one_version() -> None:
    assert not check_fenced_writes(_fenced((1, 1, 0, 1), (2, 1, 2, 3))).ok


def test_fenced_writes_fail_on_unaccounted_versions() -> None:
    verdict = check_fenced_writes(_fenced((1, 1, 0, 1), (2, 4, 2, 3)))
    assert not verdict.ok and "unaccounted" in verdict.violations[0]


# -- watches ------------------------------------------------------------------------------------------


CHANGES = [
    Change(10, "/app/a", "created"),
    Change(11, "/other", "created"),
    Change(12, "/app/a", "changed"),
    Change(13, "/app/b", "created", certain=False),  # a write of unknown outcome
    Change(14, "/app/a", "deleted"),
]


def _log(events: list[Change], start: int = 0, end: int = 100, root: str = "/app") -> WatchLog:
    return WatchLog("w1", root, start, end, tuple(events))


def test_watch_sees_every_change_in_order() -> None:
    full = [CHANGES[0], CHANGES[2], CHANGES[3], CHANGES[4]]
    assert check_watches(CHANGES, [_log(full)]).ok
    # The unknown write may not have landed; then nobody sees it.
    assert check_watches(CHANGES, [_log([CHANGES[0], CHANGES[2], CHANGES[4]])]).ok
    # Only the part of history inside the watch's window counts.
    assert check_watches(CHANGES, [_log([CHANGES[4]], start=13)]).ok


def test_watch_gap_reorder_and_extra_fail() -> None:
    gap = check_watches(CHANGES, [_log([CHANGES[0], CHANGES[4]])])
    assert not gap.ok and "missed changed /app/a" in gap.violations[0]
    reordered = check_watches(CHANGES, [_log([CHANGES[2], CHANGES[0], CHANGES[4]])])
    assert not reordered.ok
    extra = check_watches(CHANGES, [_log([CHANGES[0], CHANGES[1], CHANGES[2], CHANGES[4]])])
    assert not extra.ok
    never = check_watches(CHANGES, [_log([CHANGES[0], CHANGES[2]])])
    assert not never.ok and "never delivered" in never.violations[0]


def test_an_unknown_write_one_watcher_saw_must_reach_every_watcher() -> None:
    saw = WatchLog("w1", "/app", 0, 100, (CHANGES[0], CHANGES[2], CHANGES[3], CHANGES[4]))
    missed = WatchLog("w2", "/app", 0, 100, (CHANGES[0], CHANGES[2], CHANGES[4]))
    verdict = check_watches(CHANGES, [saw, missed])
    assert not verdict.ok and "w2" in verdict.violations[0]


def test_watch_events_without_zxids_match_by_path_and_type() -> None:
    bare = [Change(None, c.path, c.type) for c in (CHANGES[0], CHANGES[2], CHANGES[4])]
    assert check_watches(CHANGES, [_log(bare)]).ok
    assert not check_watches(CHANGES, [_log([bare[0], bare[2]])]).ok


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2**32))
def test_watch_drop_any_certain_event_is_found(seed: int) -> None:
    rng = random.Random(seed)
    changes = [Change(z, f"/app/n{rng.randint(0, 3)}", rng.choice(["created", "changed", "deleted"])) for z in range(1, 30)]
    assert check_watches(changes, [_log(changes)]).ok
    dropped = list(changes)
    del dropped[rng.randrange(len(dropped))]
    assert not check_watches(changes, [_log(dropped)]).ok


# -- ephemeral expiry ---------------------------------------------------------------------------------


def _exists(*obs: tuple) -> History:
    """(path, alive, call_ms, ret_ms)"""
    return build(*((f"o{n}", "exists", path, alive, c * MS, r * MS) for n, (path, alive, c, r) in enumerate(obs)))


def test_ephemeral_gone_within_the_bound_passes() -> None:
    life = EphemeralLife("/e", 0x1, silent_ns=1000 * MS, timeout_ms=2000)
    h = _exists(("/e", True, 1500, 1510), ("/e", True, 3200, 3210), ("/e", False, 3600, 3610))
    assert check_ephemeral_expiry([life], h, bound_ms=500).ok


def test_ephemeral_outliving_its_session_fails() -> None:
    life = EphemeralLife("/e", 0x1, silent_ns=1000 * MS, timeout_ms=2000)
    h = _exists(("/e", True, 3600, 3610))
    verdict = check_ephemeral_expiry([life], h, bound_ms=500)
    assert not verdict.ok and "600 ms after" in verdict.violations[0]
    assert merge([verdict, check_zxid_order(History())])["ok"] is False
