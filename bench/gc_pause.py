"""`python -m bench.gc_pause [--znodes N]`: what a full cyclic-GC collection costs on a big tree.

Builds a tree of N znodes of 100 bytes through `DataTree.apply` (as a server's writes build it),
then times `gc.collect()` (a full collection, which CPython also starts on its own as the heap
grows) a few times, and counts the objects the collector tracks. The tree's nodes are untracked
(ccore.znodes.untracked); `--tracked` builds the same tree with that switched off, to compare.
The figure is the loop stall one such collection causes in a server.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from unittest import mock

from ccore.znodes import tree as tree_module
from ccore.znodes.acl import OPEN_ACL_UNSAFE
from ccore.znodes.tree import DataTree
from ccore.znodes.txn import Create, CreateSession, Txn

SESSION = 0x100
PER_PARENT = 10_000


def build(znodes: int) -> DataTree:
    tree = DataTree()
    zxid = 1
    tree.apply(Txn(zxid, 0, SESSION, CreateSession(30_000, b"p" * 16), ()))
    value = b"x" * 100
    parents = max(1, znodes // PER_PARENT)
    made = 0
    for p in range(parents):
        zxid += 1
        tree.apply(Txn(zxid, 0, SESSION, Create(f"/p{p}", b"", OPEN_ACL_UNSAFE, 0), ()))
        for i in range(min(PER_PARENT, znodes - made)):
            zxid += 1
            tree.apply(Txn(zxid, 0, SESSION, Create(f"/p{p}/n{i:05d}", value, OPEN_ACL_UNSAFE, 0), ()))
        made += PER_PARENT
        print(f"\r  built {min(made, znodes):,} of {znodes:,} znodes", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return tree


def measure(znodes: int, repeats: int) -> tuple[int, list[float]]:
    tree = build(znodes)
    gc.collect()
    tracked = len(gc.get_objects())
    pauses = []
    for _ in range(repeats):
        started = time.perf_counter()
        gc.collect()
        pauses.append((time.perf_counter() - started) * 1000)
    assert len(tree.nodes) > znodes  # kept alive through the measurement
    return tracked, pauses


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.gc_pause", description=__doc__.splitlines()[0])
    p.add_argument("--znodes", type=int, default=1_000_000)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--tracked", action="store_true", help="leave the nodes tracked (as before), to compare")
    args = p.parse_args(argv)
    if args.tracked:
        with mock.patch.object(tree_module, "untrack", lambda obj: None):
            tracked, pauses = measure(args.znodes, args.repeats)
    else:
        tracked, pauses = measure(args.znodes, args.repeats)
    kind = "tracked nodes" if args.tracked else "untracked nodes"
    print(
        f"{args.znodes:,} znodes ({kind}): {tracked:,} objects tracked by the collector; "
        f"full collection median {statistics.median(pauses):.0f} ms, max {max(pauses):.0f} ms ({args.repeats} runs)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
