"""A lock shared by several processes, with fencing tokens checked by the "storage".

    python examples/lock_shared.py                      # 4 processes x 50 increments
    python examples/lock_shared.py --processes 8 --rounds 100 --hosts 127.0.0.1:2181

The storage is a file holding a counter and the highest fencing token it has seen; it refuses
a write whose token is lower (what a database, an object store or a disk controller would do
with the token). Each process increments the counter under the lock; at the end the counter
is exact and no write was refused.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import _common

from ccore.client import connect
from ccore.recipes import Lock


class FencedFile:
    """A toy storage that accepts a write only with a token at least the highest seen."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> dict:
        return json.loads(self.path.read_text())

    def write(self, state: dict, token: int) -> None:
        current = self.read()
        if token < current["token"]:
            raise PermissionError(f"stale fencing token {token} < {current['token']}")
        self.path.write_text(json.dumps({**state, "token": token}))


async def worker(hosts: str, store_path: str, rounds: int) -> None:
    store = FencedFile(Path(store_path))
    async with connect(hosts, session_timeout=5) as zk:
        for _ in range(rounds):
            async with Lock(zk, "/locks/counter") as token:
                state = store.read()
                state["counter"] += 1
                store.write(state, token)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts")
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--worker", metavar="STORE", help=argparse.SUPPRESS)
    _common.add_loop_option(parser)
    args = parser.parse_args()
    _common.use_loop(args.loop)
    if args.worker:
        _common.run(worker, args.hosts, args.worker, args.rounds)
        return
    with _common.server(args.hosts) as hosts, tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "store.json"
        store.write_text(json.dumps({"counter": 0, "token": 0}))
        started = time.monotonic()
        procs = [
            _common.spawn("lock_shared.py", "--hosts", hosts, "--rounds", str(args.rounds), "--worker", str(store))
            for _ in range(args.processes)
        ]
        failed = [p.pid for p in procs if p.wait() != 0]
        elapsed = time.monotonic() - started
        state = json.loads(store.read_text())
        total = args.processes * args.rounds
        _common.say(f"counter = {state['counter']} (expected {total}), last fencing token {state['token']}")
        _common.say(f"{total} lock grants in {elapsed:.2f}s (process start-up included): {total / elapsed:.0f}/s")
        if failed or state["counter"] != total:
            raise SystemExit(f"FAILED: workers {failed} failed or the counter is wrong")


if __name__ == "__main__":
    main()
