"""The checkers added for the ensemble runs: plain reads (sequential consistency), watch
windows mapped through data, and the ephemeral expiry allowance for faults and new leaders."""

from __future__ import annotations

from chaos.checks import EphemeralLife, check_reads, check_watch_windows
from chaos.history import Event, History
from chaos.report import FaultWindow, disruptions, epoch_changes, extend_lives
from chaos.watchload import Window

S = 1_000_000_000


def _ops(*specs: tuple) -> History:
    """(client, f, input, output, call, ret, zxid, key='/k'): ok ops, one process per client."""
    timed = []
    for n, spec in enumerate(specs):
        client, f, inp, out, call, ret, zxid, *rest = spec
        key = rest[0] if rest else "/k"
        timed.append((call, 1, n, Event(0, "invoke", client, f, inp, call, key=key, client=client)))
        timed.append((ret, 0, n, Event(0, "ok", client, f, out, ret, zxid=zxid, key=key, client=client)))
    timed.sort(key=lambda t: (t[0], t[1], t[2]))
    return History.from_events([e for *_, e in timed])


# -- plain reads ----------------------------------------------------------------------------------


def test_reads_pass_when_stale_but_consistent() -> None:
    h = _ops(
        ("a", "write", "x", 1, 0, 1, 0x10),
        ("a", "write", "y", 2, 2, 3, 0x11),
        # b is behind (a lagging follower): it sees x after y was acknowledged. Allowed.
        ("b", "read", None, ["x", 1, 0x10], 4, 5, None),
        ("b", "read", None, ["y", 2, 0x11], 6, 7, None),
    )
    verdict = check_reads(h)
    assert verdict.ok and verdict.checked == 2


def test_reads_fail_when_a_client_goes_back_in_version() -> None:
    h = _ops(
        ("a", "write", "x", 1, 0, 1, 0x10),
        ("a", "write", "y", 2, 2, 3, 0x11),
        ("b", "read", None, ["y", 2, 0x11], 4, 5, None),
        ("b", "read", None, ["x", 1, 0x10], 6, 7, None),
    )
    verdict = check_reads(h)
    assert not verdict.ok and "went back to version 1" in verdict.violations[0]


def test_reads_fail_when_a_client_misses_its_own_write() -> None:
    h = _ops(
        ("a", "write", "x", 1, 0, 1, 0x10), ("a", "write", "y", 2, 2, 3, 0x11), ("a", "read", None, ["x", 1, 0x10], 4, 5, None)
    )
    assert not check_reads(h).ok


def test_reads_fail_when_a_client_reads_older_than_a_state_it_saw_on_another_key() -> None:
    h = _ops(
        ("a", "write", "x", 1, 0, 1, 0x10, "/k1"),
        ("a", "write", "y", 2, 2, 3, 0x12, "/k1"),
        ("a", "write", "z", 1, 4, 5, 0x13, "/k2"),
        ("b", "read", None, ["z", 1, 0x13], 6, 7, None, "/k2"),  # b has seen 0x13 ...
        ("b", "read", None, ["x", 1, 0x10], 8, 9, None, "/k1"),  # ... so /k1 at 0x12 must show
    )
    verdict = check_reads(h)
    assert not verdict.ok and "already seen zxid 0x13" in verdict.violations[0]


def test_reads_fail_on_a_value_never_written_and_on_two_values_at_one_version() -> None:
    ghost = check_reads(_ops(("b", "read", None, ["ghost", 1, 0x10], 0, 1, None)))
    assert not ghost.ok and "no one wrote" in ghost.violations[0]
    split = check_reads(_ops(("a", "write", "x", 1, 0, 1, 0x10), ("b", "write", "y", 1, 0, 1, 0x11)))
    assert not split.ok and "two values at version 1" in split.violations[0]


def test_reads_fail_on_a_value_read_before_its_write_began() -> None:
    h = _ops(("b", "read", None, ["x", 1, 0x10], 0, 1, None), ("a", "write", "x", 1, 5, 6, 0x10))
    assert any("before it was written" in v for v in check_reads(h).violations)


# -- watch windows ---------------------------------------------------------------------------------

CHANGES = [("/w/w0/n1", "created", 0x10, True), ("/w/w0/n2", "created", 0x11, True), ("/w/w0/n1", "changed", 0x12, True)]


def _window(start: int, end: int, *events: tuple[str, str]) -> Window:
    return Window("watcher-0", start, end, [(p, k, -1) for p, k in events])


def test_watch_window_passes_with_every_change_in_order() -> None:
    w = _window(0xF, 0x12, ("/w/w0/n1", "created"), ("/w/w0/n2", "created"), ("/w/w0/n1", "changed"))
    verdict = check_watch_windows(CHANGES, [w])
    assert verdict.ok and verdict.checked == 3


def test_watch_window_ignores_what_lies_outside_it_and_untracked_paths() -> None:
    # Opened after the first change (it may or may not arrive), closed before the last.
    w = _window(0x10, 0x11, ("/w", "created"), ("/w/w0/n2", "created"), ("/w/w0/n1", "changed"))
    assert check_watch_windows(CHANGES, [w], tracked=lambda p: p.count("/") == 3).ok


def test_watch_window_fails_on_a_gap_a_reordering_a_duplicate_and_a_phantom() -> None:
    gap = check_watch_windows(CHANGES, [_window(0xF, 0x12, ("/w/w0/n1", "created"), ("/w/w0/n1", "changed"))])
    assert not gap.ok and "never delivered (gap)" in gap.violations[0] and "/w/w0/n2" in gap.violations[0]
    swapped = _window(0xF, 0x12, ("/w/w0/n2", "created"), ("/w/w0/n1", "created"), ("/w/w0/n1", "changed"))
    assert "out of zxid order" in check_watch_windows(CHANGES, [swapped]).violations[0]
    twice = _window(0xF, 0x11, ("/w/w0/n1", "created"), ("/w/w0/n1", "created"), ("/w/w0/n2", "created"))
    assert "twice" in check_watch_windows(CHANGES, [twice]).violations[0]
    phantom = check_watch_windows(CHANGES, [_window(0xF, 0xF, ("/w/w0/n9", "created"))])
    assert "never happened" in phantom.violations[0]


def test_watch_event_zxid_when_sent_must_be_the_changes() -> None:
    w = Window("watcher-0", 0xF, 0x10, [("/w/w0/n1", "created", 0x10)])
    assert check_watch_windows(CHANGES, [w]).ok
    w = Window("watcher-0", 0xF, 0x10, [("/w/w0/n1", "created", 0x11)])
    assert "carries zxid 0x11" in check_watch_windows(CHANGES, [w]).violations[0]


# -- ephemeral expiry allowance ---------------------------------------------------------------------


def test_epoch_changes_are_when_each_new_epoch_was_first_seen() -> None:
    h = _ops(
        ("a", "write", "x", 1, 0, 1 * S, 1 << 32 | 5),
        ("b", "write", "y", 2, 0, 4 * S, 2 << 32 | 1),
        ("a", "write", "z", 3, 5 * S, 6 * S, 2 << 32 | 2),
    )
    assert epoch_changes({"register": h}) == [4.0]


def test_faults_and_leader_changes_extend_a_deadline_only_when_in_the_way() -> None:
    life = EphemeralLife("/e", "0x1", silent_ns=10 * S, timeout_ms=2000)  # deadline 10 + 2 + 1 = 13 s
    calm = extend_lives([life], [FaultWindow("kill-one", 1.0, 5.0), FaultWindow("halves", 20.0, 25.0)], 1000)
    assert calm[0].extra_ms == 0
    paused = extend_lives([life], [FaultWindow("pause-one", 8.0, 15.0)], 1000)  # a held touch: 15 + 3
    assert paused[0].extra_ms == 5000
    windows = disruptions([FaultWindow("kill-leader", 12.0, 14.0), FaultWindow("slow-links", 17.0, 18.0)], [16.0])
    chained = extend_lives([life], windows, 1000)  # leader change seen at 16 -> 19, then slow links to 18 + 3 = 21
    assert chained[0].extra_ms == 8000


def test_watch_events_of_changes_that_could_not_be_read_back_are_not_judged() -> None:
    maybe = [*CHANGES, ("/w/w0/n3", "created", None, False)]
    w = _window(0xF, 0x12, ("/w/w0/n1", "created"), ("/w/w0/n3", "created"), ("/w/w0/n2", "created"), ("/w/w0/n1", "changed"))
    assert check_watch_windows(maybe, [w]).ok
