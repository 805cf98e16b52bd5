"""Run many simulated seeds, or replay one.

python -m tests.sim --seeds 10000 --minutes 30     # until either runs out, with progress
python -m tests.sim --seed 1234 --trace            # replay one seed, printing every event
python -m tests.sim --start 5000 --seeds 200 -j 8  # seeds 5000..5199 on 8 processes
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor

from .runner import RunResult, run_seed


class Progress:
    """Counts results, prints failures at once and a progress line every few seconds."""

    def __init__(self, total: int, minutes: float | None, keep_going: bool) -> None:
        self.total = total
        self.keep_going = keep_going
        self.started = self.last_report = time.monotonic()
        self.deadline = self.started + minutes * 60 if minutes else None
        self.done = self.events = 0
        self.failures: list[RunResult] = []
        self.slowest = (0.0, -1)  # (recovery seconds, seed)

    def add(self, result: RunResult) -> bool:
        """Account one result; True when the run should stop."""
        self.done += 1
        self.events += result.events
        self.slowest = max(self.slowest, (result.recovery_s, result.seed))
        if not result.ok:
            self.failures.append(result)
            print(result.report(), flush=True)
        now = time.monotonic()
        if now - self.last_report >= 5 or self.done == self.total:
            elapsed = now - self.started
            print(
                f"{self.done}/{self.total} seeds, {len(self.failures)} failed, {self.done / elapsed:.1f} seeds/s, "
                f"{self.events / elapsed:.0f} events/s, slowest recovery {self.slowest[0]:.2f}s "
                f"(seed {self.slowest[1]})",
                flush=True,
            )
            self.last_report = now
        out_of_time = self.deadline is not None and now >= self.deadline
        return out_of_time or bool(self.failures and not self.keep_going)

    def summary(self) -> str:
        names = " ".join(str(f.seed) for f in self.failures)
        return f"{self.done} seeds run in {time.monotonic() - self.started:.0f}s, {len(self.failures)} failed" + (
            f": {names}" if names else ""
        )


def run_many(seeds: range, jobs: int, progress: Progress) -> None:
    if jobs <= 1:
        for seed in seeds:
            if progress.add(run_seed(seed)):
                return
        return
    with ProcessPoolExecutor(jobs) as pool:
        pending: Iterator[int] = iter(seeds)
        futures = [pool.submit(run_seed, s) for s in itertools.islice(pending, jobs * 2)]
        while futures:
            if progress.add(futures.pop(0).result()):
                for future in futures:
                    future.cancel()
                return
            futures.extend(pool.submit(run_seed, s) for s in itertools.islice(pending, 1))


def replay(seed: int, trace: bool) -> int:
    result = run_seed(seed, verbose=trace)
    if not result.ok:
        print(result.report())
        return 1
    print(
        f"seed {result.seed} ok: {result.events} events, t={result.sim_s:.2f}s, {result.committed} committed, "
        f"{result.acked} acked, recovered in {result.recovery_s:.2f}s, ran {result.elapsed_s:.2f}s"
    )
    return 0


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.sim", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seed", type=int, help="replay this one seed")
    parser.add_argument("--trace", action="store_true", help="with --seed: print every event as it happens")
    parser.add_argument("--start", type=int, default=0, help="first seed (default 0)")
    parser.add_argument("--seeds", type=int, default=1000, help="how many seeds (default 1000)")
    parser.add_argument("--minutes", type=float, default=None, help="stop after this long")
    parser.add_argument("-j", "--jobs", type=int, default=1, help="worker processes")
    parser.add_argument("--keep-going", action="store_true", help="do not stop at the first failure")
    args = parser.parse_args(list(argv) if argv is not None else None)
    if args.seed is not None:
        return replay(args.seed, args.trace)
    progress = Progress(args.seeds, args.minutes, args.keep_going)
    run_many(range(args.start, args.start + args.seeds), args.jobs, progress)
    print(progress.summary())
    return 1 if progress.failures else 0


if __name__ == "__main__":
    sys.exit(main())
