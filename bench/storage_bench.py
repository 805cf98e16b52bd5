"""Throughput of the transaction log: append + sync (one fdatasync per batch) on this disk.

    python bench/storage_bench.py [--dir DIR] [--seconds 3] [--batches 1,10,100] [--size 100]
    python bench/storage_bench.py --latency 20000 [--size 230] [--preallocate 0,default]

Not a test. DIR must be on the disk you care about (tmpfs makes fsync free and the figures
meaningless); the default is a temp dir under the current directory. `--latency N` times N
single-record append + sync calls instead (percentiles: the cost one replicated write waits
for), for each zero-padding step in `--preallocate` (0: no padding, the log as it was before
issue 6; "default": the log's default): one log each, taking turns by blocks of 100 records
so that a noisy disk (a shared virtual one) weighs on all of them alike.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ccore.server.storage import TxnLog
from ccore.server.storage.txnlog import DEFAULT_PREALLOCATE_BYTES


def run(directory: Path, batch: int, size: int, seconds: float) -> tuple[float, float, float]:
    """(records/s, syncs/s, mean ms per append+sync) for `seconds` of batches of `batch` records."""
    payload = os.urandom(size)
    zxid = 0
    batches = 0
    with TxnLog.recover(directory) as log:
        start = time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            records = [(zxid + i + 1, payload) for i in range(batch)]
            zxid += batch
            log.append(records)
            log.sync()
            batches += 1
    return batches * batch / elapsed, batches / elapsed, elapsed / batches * 1000


def latency(directory: Path, size: int, count: int, steps: list[int | None]) -> list[list[float]]:
    """Seconds taken by each of `count` one-record append + sync calls, per padding step
    (None: the log's default)."""
    payload = os.urandom(size)
    logs = [
        TxnLog.recover(directory / f"log-{i}", **({} if step is None else {"preallocate_bytes": step}))
        for i, step in enumerate(steps)
    ]
    times: list[list[float]] = [[] for _ in logs]
    try:
        for block in range(0, count, 100):
            for log, out in zip(logs, times, strict=True):
                for zxid in range(block + 1, min(count, block + 100) + 1):
                    start = time.perf_counter()
                    log.append([(zxid, payload)])
                    log.sync()
                    out.append(time.perf_counter() - start)
    finally:
        for log in logs:
            log.close()
    return times


def _percentiles_us(times: list[float]) -> str:
    ordered = sorted(times)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1e6

    return (
        f"p50 {at(0.5):6.0f} us  p90 {at(0.9):6.0f} us  p99 {at(0.99):6.0f} us  "
        f"p99.9 {at(0.999):6.0f} us  max {ordered[-1] * 1e6:6.0f} us"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path.cwd())
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--batches", default="1,10,100,1000")
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--latency", type=int, metavar="N", help="time N single-record append + sync calls")
    parser.add_argument("--preallocate", default="0,default", help="padding steps to compare, in bytes or 'default'")
    args = parser.parse_args()
    fs = os.statvfs(args.dir)
    if args.latency:
        steps = [None if s == "default" else int(s) for s in args.preallocate.split(",")]
        work = Path(tempfile.mkdtemp(prefix="storage-bench-", dir=args.dir))
        try:
            results = latency(work, args.size, args.latency, steps)
        finally:
            shutil.rmtree(work)
        print(
            f"dir {args.dir.resolve()} (block size {fs.f_bsize}), {args.latency} x append 1 record "
            f"({args.size}-byte payload) + sync"
        )
        for step, times in zip(steps, results, strict=True):
            name = f"default ({DEFAULT_PREALLOCATE_BYTES})" if step is None else str(step)
            print(f"  preallocate {name:>17}: {_percentiles_us(times)}")
        return
    print(f"dir {args.dir.resolve()} (block size {fs.f_bsize}), payload {args.size} bytes, {args.seconds}s per run")
    print(f"{'batch':>6} {'records/s':>12} {'syncs/s':>10} {'ms/batch':>9}")
    for batch in (int(b) for b in args.batches.split(",")):
        work = Path(tempfile.mkdtemp(prefix="storage-bench-", dir=args.dir))
        try:
            rps, sps, ms = run(work, batch, args.size, args.seconds)
        finally:
            shutil.rmtree(work)
        print(f"{batch:>6} {rps:>12,.0f} {sps:>10,.0f} {ms:>9.3f}")


if __name__ == "__main__":
    main()
