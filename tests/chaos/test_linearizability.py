"""The register linearizability checker: histories that must pass, histories that must fail
(with a narrow report), Hypothesis-generated histories from a real register (pass) and
mutated ones (fail), and the speed on a few thousand operations."""

from __future__ import annotations

import json
import random
import time

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chaos.history import History, HistoryError
from chaos.linearizability import check
from tests.chaos.builders import build, simulate_register

W, R, C = "write", "read", "cas"


# -- must pass ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "specs",
    [
        pytest.param([(1, W, "a", 1, 0, 10), (2, R, None, ("a", 1), 11, 20)], id="sequential"),
        pytest.param([(1, W, "a", 1, 0, 10), (2, R, None, (None, 0), 5, 20)], id="read-concurrent-with-write-sees-old"),
        pytest.param([(1, W, "a", 1, 0, 10), (2, R, None, ("a", 1), 5, 8)], id="read-concurrent-with-write-sees-new"),
        pytest.param(
            [(1, W, "a", None, 0, 10, "info"), (2, R, None, (None, 0), 20, 30), (2, R, None, ("a", 1), 40, 50)],
            id="unknown-write-lands-after-its-timeout",
        ),
        pytest.param([(1, W, "a", None, 0, 10, "info"), (2, R, None, (None, 0), 20, 30)], id="unknown-write-never-lands"),
        pytest.param([(1, W, "a", None, 0, 10, "fail"), (2, R, None, (None, 0), 20, 30)], id="failed-write-ignored"),
        pytest.param(
            [(1, C, (0, "a"), True, 0, 10), (2, C, (0, "b"), False, 1, 11), (3, R, None, ("a", 1), 12, 13)],
            id="one-cas-wins",
        ),
        pytest.param(
            [(1, W, "a", 1, 0, 10), (2, W, "b", 2, 1, 11), (3, R, None, ("b", 2), 12, 13), (3, R, None, ("b", 2), 14, 15)],
            id="concurrent-writes-ordered-by-versions",
        ),
        pytest.param(
            [(1, C, (0, "a"), None, 0, 5, "info"), (2, C, (1, "b"), True, 10, 20), (3, R, None, ("b", 2), 21, 22)],
            id="unknown-cas-needed-for-a-later-cas",
        ),
        pytest.param(
            [(1, W, "a", 1, 0, 10, "ok", "/x"), (2, W, "b", 1, 0, 10, "ok", "/y"), (3, R, None, ("a", 1), 11, 12, "ok", "/x")],
            id="keys-are-independent",
        ),
        pytest.param([(1, R, None, ("a", None), 0, 1), (2, W, "a", 1, 0, 10)], id="read-without-version"),
    ],
)
def test_linearizable_histories_pass(specs) -> None:
    result = check(build(*specs))
    assert result.verdict == "ok", result.failure and result.failure.message()


# -- must fail -------------------------------------------------------------------------------------


def test_stale_read_after_completed_write_fails_with_a_one_op_window() -> None:
    h = build((1, W, "a", 1, 0, 10), (1, W, "b", 2, 11, 12), (2, R, None, ("a", 1), 13, 20))
    result = check(h)
    assert result.verdict == "fail"
    failure = result.failure
    assert failure is not None and failure.narrowed
    assert failure.culprit.f == R and [op.f for op in failure.window] == [R]
    assert failure.window_start_states == [("<a value no read returned>", 2)]
    assert "read" in failure.message() and json.dumps(result.to_json(), default=str)


def test_lost_acknowledged_write_fails() -> None:
    h = build(
        (1, W, "a", 1, 0, 10),
        (2, W, "b", 2, 20, 30),  # acknowledged
        (3, R, None, ("b", 2), 31, 32),
        (3, R, None, ("a", 1), 40, 41),  # ...then gone (a rollback)
    )
    result = check(h)
    assert result.verdict == "fail" and result.failure is not None
    assert result.failure.culprit.call_ns == 40


def test_two_cas_succeeding_from_one_version_fails() -> None:
    h = build((1, C, (0, "a"), True, 0, 10), (2, C, (0, "b"), True, 1, 11))
    result = check(h)
    assert result.verdict == "fail" and result.failure is not None
    assert {op.process for op in result.failure.window} == {1, 2}


@pytest.mark.parametrize(
    "specs",
    [
        pytest.param([(1, R, None, ("zzz", 1), 0, 1)], id="read-of-a-value-never-written"),
        pytest.param([(1, W, "a", 1, 0, 1), (2, W, "b", 1, 2, 3)], id="two-writes-one-version"),
        pytest.param([(1, C, (0, "a"), False, 0, 1)], id="cas-refused-though-version-matched"),
        pytest.param([(1, W, "a", 1, 0, 1), (1, R, None, ("a", 2), 2, 3)], id="read-with-wrong-version"),
        pytest.param(
            [(1, W, "a", None, 0, 5, "info"), (2, R, None, ("a", 1), 6, 7), (2, R, None, (None, 0), 8, 9)],
            id="unknown-write-seen-then-unseen",
        ),
        pytest.param(
            [
                (1, W, "a", 1, 0, 1, "ok", "/x"),
                (2, R, None, (None, 0), 2, 3, "ok", "/y"),
                (3, R, None, (None, 0), 2, 3, "ok", "/x"),
            ],
            id="fault-on-one-key-of-two",
        ),
    ],
)
def test_non_linearizable_histories_fail(specs) -> None:
    result = check(build(*specs))
    assert result.verdict == "fail"


def test_failure_names_the_key() -> None:
    h = build((1, W, "a", 1, 0, 1, "ok", "/ok"), (2, W, "b", 1, 0, 1, "ok", "/bad"), (2, R, None, ("z", 1), 2, 3, "ok", "/bad"))
    result = check(h)
    assert result.failure is not None and result.failure.key == "/bad" and result.keys == 2


def test_history_round_trips_through_json_and_keeps_its_verdict(tmp_path) -> None:
    h = build((1, W, "a", 1, 0, 10), (1, W, "b", 2, 11, 12), (2, R, None, ["a", 1], 13, 20))
    h.dump(tmp_path / "h.json")
    loaded = History.load(tmp_path / "h.json")
    assert loaded.operations() == h.operations()
    assert check(loaded).verdict == "fail"


def test_recorder_rules() -> None:
    h = History()
    op = h.invoke("p1", W, "a", key="/r")
    with pytest.raises(HistoryError, match="outstanding"):
        h.invoke("p1", R)
    h.info(op, "timeout")
    with pytest.raises(HistoryError, match="already complete"):
        h.ok(op, 1)
    op2 = h.invoke("p1", R, key="/r")  # a process goes on after an unknown outcome
    h.ok(op2, ["a", 1], zxid=7)
    ops = h.operations()
    assert [o.status for o in ops] == ["info", "ok"] and ops[0].unknown and ops[1].zxid == 7
    assert h.counts() == {"ok": 1, "fail": 0, "info": 1}


def test_a_budget_too_small_says_unknown_not_ok() -> None:
    h = simulate_register(random.Random(3), 8, 200, unknown_rate=0.1)
    assert check(h, max_configurations=10).verdict == "unknown"
    result = check(h, time_limit_s=0.0)
    assert result.verdict == "unknown" and "time" in result.reason


# -- Hypothesis: a real register's histories pass, mutated ones fail --------------------------------

_FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_FAST
@given(seed=st.integers(0, 2**32), processes=st.integers(1, 6), per_process=st.integers(1, 25))
def test_histories_of_a_real_register_pass(seed: int, processes: int, per_process: int) -> None:
    h = simulate_register(random.Random(seed), processes, per_process)
    result = check(h, time_limit_s=20)
    assert result.verdict == "ok", result.failure and result.failure.message()


def _mutate(h: History, rng: random.Random, kind: str) -> History | None:
    """A mutation that makes any history non-linearizable, or None where it does not apply."""
    events = h.events
    ops = h.operations()
    oks = [op for op in ops if op.status == "ok"]

    def set_output(op, value) -> History:
        return History.from_events([attrs.evolve(e, value=value) if e.index == op.return_index else e for e in events])

    if kind == "lost-write":
        # A read begun after an acknowledged write returns the initial state: the write is lost.
        writes = [op for op in oks if op.f == W or (op.f == C and op.output is True)]
        reads = [r for r in oks if r.f == R and writes and any(w.return_ns < r.call_ns for w in writes)]
        return set_output(rng.choice(reads), [None, 0]) if reads else None
    if kind == "double-cas":
        wins = [op for op in oks if op.f == C and op.output is True]
        losers = [op for op in oks if op.f == C and op.output is False]
        if not wins or not losers:
            return None
        win, lose = rng.choice(wins), rng.choice(losers)
        expected = win.input[0]
        return History.from_events(
            [
                attrs.evolve(e, value=[expected, f"dup{lose.id}"]) if e.index == lose.call_index
                else attrs.evolve(e, value=True) if e.index == lose.return_index
                else e
                for e in events
            ]
        )  # fmt: skip
    if kind == "duplicate-version":
        writes = [op for op in oks if op.f == W]
        if len(writes) < 2:
            return None
        a, b = rng.sample(writes, 2)
        return set_output(b, a.output)
    raise AssertionError(kind)


@_FAST
@given(
    seed=st.integers(0, 2**32),
    processes=st.integers(1, 5),
    per_process=st.integers(2, 20),
    kind=st.sampled_from(["lost-write", "double-cas", "duplicate-version"]),
)
def test_mutated_histories_fail(seed: int, processes: int, per_process: int, kind: str) -> None:
    rng = random.Random(seed)
    h = simulate_register(rng, processes, per_process)
    mutated = _mutate(h, rng, kind)
    if mutated is None:
        return
    result = check(mutated, time_limit_s=20)
    assert result.verdict == "fail", (kind, result)
    assert result.failure is not None and result.failure.window


# -- speed -------------------------------------------------------------------------------------------


def test_three_thousand_ops_across_ten_processes_check_in_seconds() -> None:
    h = simulate_register(random.Random(2024), 10, 300, unknown_rate=0.02)
    assert len(h.operations()) == 3000
    start = time.monotonic()
    result = check(h, time_limit_s=60)
    elapsed = time.monotonic() - start
    assert result.verdict == "ok"
    assert elapsed < 15.0, f"checking 3000 ops took {elapsed:.1f}s"
    # And a failure in such a history is found and narrowed too.
    bad = _mutate(h, random.Random(1), "lost-write")
    assert bad is not None
    start = time.monotonic()
    failed = check(bad, time_limit_s=60)
    assert failed.verdict == "fail" and failed.failure is not None
    assert time.monotonic() - start < 30.0
    assert len(failed.failure.window) < 50
