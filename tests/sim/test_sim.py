"""Random seeds on the simulator: every invariant after every event, liveness at the end.

A failure prints the seed, the command that replays it, and the last events before it.
`python -m tests.sim --seeds 10000 --minutes 30` runs many more.
"""

from __future__ import annotations

import pytest

from .runner import RunResult, run_seed


def check(seeds: range) -> list[RunResult]:
    results = [run_seed(seed) for seed in seeds]
    failures = [r for r in results if not r.ok]
    if failures:
        names = " ".join(str(r.seed) for r in failures)
        pytest.fail(f"{len(failures)} of {len(results)} seeds failed ({names}); the first:\n{failures[0].report()}")
    return results


def test_quick_seeds() -> None:
    results = check(range(40))
    assert sum(r.acked for r in results) > 40 * 20, "the runs barely wrote anything"


@pytest.mark.slow
def test_many_seeds() -> None:
    check(range(10_000, 10_400))


def test_a_seed_replays_exactly() -> None:
    first, second = run_seed(1234), run_seed(1234)
    assert (first.events, first.sim_s, first.committed, first.acked) == (
        second.events,
        second.sim_s,
        second.committed,
        second.acked,
    )


def test_five_voters_two_observers_heavy_faults() -> None:
    for seed in range(3):
        result = run_seed(
            seed,
            voters=5,
            observers=2,
            crash_rate=4.0,
            partition_rate=1.0,
            link_break_rate=3.0,
            crash_in_ready_probability=0.03,
            crash_on_phase_message=0.1,
        )
        assert result.ok, result.report()
