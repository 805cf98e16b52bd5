"""Throughput of the transaction log: append + sync (one fdatasync per batch) on this disk.

    python bench/storage_bench.py [--dir DIR] [--seconds 3] [--batches 1,10,100] [--size 100]

Not a test. DIR must be on the disk you care about (tmpfs makes fsync free and the figures
meaningless); the default is a temp dir under the current directory.
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

from server.storage import TxnLog


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path.cwd())
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--batches", default="1,10,100,1000")
    parser.add_argument("--size", type=int, default=100)
    args = parser.parse_args()
    fs = os.statvfs(args.dir)
    print(
        f"dir {args.dir.resolve()} (block size {fs.f_bsize}), payload {args.size} bytes, {args.seconds}s per run"
    )
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
