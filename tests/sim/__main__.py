"""Run many simulated seeds, or replay one.

    python -m tests.sim --seeds 10000 --minutes 30     # until either runs out, with progress
    python -m tests.sim --seed 1234 --trace            # replay one seed, printing every event
    python -m tests.sim --start 5000 --seeds 200 -j 8  # seeds 5000..5199 on 8 processes
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor

from .runner import RunResult, run_seed


def _run(seed: int) -> RunResult:
    return run_seed(seed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.sim", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, help="replay this one seed")
    parser.add_argument("--trace", action="store_true", help="with --seed: print every event as it happens")
    parser.add_argument("--start", type=int, default=0, help="first seed (default 0)")
    parser.add_argument("--seeds", type=int, default=1000, help="how many seeds (default 1000)")
    parser.add_argument("--minutes", type=float, default=None, help="stop after this long")
    parser.add_argument("-j", "--jobs", type=int, default=1, help="worker processes")
    parser.add_argument("--keep-going", action="store_true", help="do not stop at the first failure")
    args = parser.parse_args(argv)

    if args.seed is not None:
        result = run_seed(args.seed, verbose=args.trace)
        if result.ok:
            print(f"seed {result.seed} ok: {result.events} events, t={result.sim_s:.2f}s, "
                  f"{result.committed} committed, {result.acked} acked, recovered in "
                  f"{result.recovery_s:.2f}s, ran {result.elapsed_s:.2f}s")
            return 0
        print(result.report())
        return 1

    deadline = time.monotonic() + args.minutes * 60 if args.minutes else None
    seeds = range(args.start, args.start + args.seeds)
    started = time.monotonic()
    done = failed = events = 0
    slowest = (0.0, -1)  # (recovery seconds, seed)
    last_report = started
    failures: list[RunResult] = []

    def account(result: RunResult) -> bool:
        nonlocal done, failed, events, last_report, slowest
        done += 1
        events += result.events
        slowest = max(slowest, (result.recovery_s, result.seed))
        if not result.ok:
            failed += 1
            failures.append(result)
            print(result.report(), flush=True)
        now = time.monotonic()
        if now - last_report >= 5 or done == len(seeds):
            rate = done / (now - started)
            print(f"{done}/{len(seeds)} seeds, {failed} failed, {rate:.1f} seeds/s, "
                  f"{events / (now - started):.0f} events/s, slowest recovery {slowest[0]:.2f}s "
                  f"(seed {slowest[1]})", flush=True)
            last_report = now
        stop = (deadline is not None and now >= deadline) or (failed and not args.keep_going)
        return bool(stop)

    if args.jobs <= 1:
        for seed in seeds:
            if account(run_seed(seed)):
                break
    else:
        with ProcessPoolExecutor(args.jobs) as pool:
            pending = iter(seeds)
            futures = [pool.submit(_run, s) for s in _take(pending, args.jobs * 2)]
            while futures:
                result = futures.pop(0).result()
                if account(result):
                    for f in futures:
                        f.cancel()
                    break
                futures.extend(pool.submit(_run, s) for s in _take(pending, 1))
    print(f"{done} seeds run in {time.monotonic() - started:.0f}s, {failed} failed"
          + (": " + " ".join(str(f.seed) for f in failures) if failures else ""))
    return 1 if failed else 0


def _take(iterator, n):  # type: ignore[no-untyped-def]
    out = []
    for _ in range(n):
        try:
            out.append(next(iterator))
        except StopIteration:
            break
    return out


if __name__ == "__main__":
    sys.exit(main())
