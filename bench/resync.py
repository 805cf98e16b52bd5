"""`python -m bench.resync`: wiped-follower resync and whole-ensemble restart of our ensemble,
code variants interleaved (a before/after of one change, on one machine, in one invocation).

    python -m bench.resync --znodes 300000 --runs 3 \\
        --variant before=/tmp/base/.venv/bin/python:/tmp/base --variant after=.venv/bin/python:.

One fill (N znodes of 100 bytes, through the first variant, as `bench --scale` fills) makes a
data dir; then every run, for each variant in turn, copies it, starts a 3-server ensemble of
that variant's code on the copy and times (a) the restart until the last znode reads, (b) a
follower killed, wiped and restarted until it serves the last znode, with the leader's worst
read meanwhile. A variant is `name=python:repo[:convert]` (the python whose packages it uses,
the repository it runs, which must hold this file too; `convert`: first rewrite each server's
newest snapshot in that code's own format, for the restart of a data dir it wrote itself).
Medians per variant on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio

TICK_MS = 2000
SNAP_COUNT = 100_000


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def _fill(base: Path, znodes: int) -> None:
    from ccore.client import connect
    from chaos.ensemble import LocalEnsemble

    from .scale import SNAPSHOT_WRITES, _rewrite
    from .scale import _fill as fill

    ens = LocalEnsemble(base, nodes=3, tick_ms=TICK_MS, snap_count=SNAP_COUNT)
    try:
        for sid in ens.servers:
            ens.start(sid, wait=False)
        await trio.to_thread.run_sync(ens.wait_serving, ens.servers, 60.0)
        async with connect(ens.connect_string()) as zk:
            await zk.create("/scale")
            took = await fill(zk, znodes, _progress)
            _progress(f"filled {znodes:,} znodes in {took:.1f} s")
            # As `bench --scale`: snapshots of the full tree, and the log purged past them,
            # so that a wiped follower needs a SNAP (not a DIFF of the whole log).
            took = await _rewrite(zk, znodes, SNAPSHOT_WRITES)
            _progress(f"{SNAPSHOT_WRITES:,} setData in {took:.1f} s")
        await trio.sleep(2)  # the followers apply the tail
    finally:
        ens.close()


def _convert(server_dir: Path) -> None:
    """The newest snapshot of a (stopped) server rewritten by this code's snapshot child."""
    from ccore.server import snapshot_child
    from ccore.server.snapshot_codec import tree_of
    from ccore.server.storage.snapshots import SnapshotStore

    store = SnapshotStore(server_dir / "snap")
    latest = store.latest()
    assert latest is not None
    zxid, stored = latest
    tree = tree_of(stored)
    snapshot_child.start(tree, store.path(zxid)).wait()


async def _round(base: Path, znodes: int) -> dict[str, float]:
    """One run on an ensemble made on the data dirs in `base` (a copy of the fill's)."""
    from chaos.ensemble import LocalEnsemble

    from .scale import Reader, _until_readable, wipe

    last = f"/scale/n{znodes - 1:08d}"
    ens = LocalEnsemble(base, nodes=3, tick_ms=TICK_MS, snap_count=SNAP_COUNT)
    out: dict[str, float] = {}
    try:
        start = time.perf_counter()
        for sid in ens.servers:
            ens.start(sid, wait=False)
        await _until_readable(ens.connect_string(), last, 600)
        out["restart_s"] = time.perf_counter() - start
        await trio.to_thread.run_sync(ens.wait_serving, ens.servers, 600.0)
        lead = ens.leader()
        assert lead is not None
        victim = next(sid for sid in ens.servers if sid != lead)
        ens.kill(victim)
        wipe(ens.data_dir(victim))
        reader = Reader(ens.connect_string([lead]))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader.run)
            await trio.sleep(0.5)
            start = time.perf_counter()
            ens.start(victim, wait=False)
            await _until_readable(ens.connect_string([victim]), last, 600)
            out["resync_s"] = time.perf_counter() - start
            reader.running = False
        leader_log = (ens.data_dir(lead) / "server.log").read_text(errors="replace")
        out["by_snap"] = float(f"sync {victim} (last 0:0) by SNAP" in leader_log)
        out["resync_worst_read_ms"] = reader.worst * 1000
    finally:
        ens.close()
    return out


def _driver(args: argparse.Namespace) -> None:
    variants = []
    for spec in args.variant:
        name, _, rest = spec.partition("=")
        python, repo, *flags = rest.split(":")
        variants.append((name, str(Path(python).absolute()), Path(repo).resolve(), "convert" in flags))
    work = Path(tempfile.mkdtemp(prefix="resync-", dir=args.work_dir))
    seed = work / "seed"
    name, python, repo, _ = variants[0]
    _progress(f"filling {args.znodes:,} znodes with {name}")
    subprocess.run([python, "-m", "bench.resync", "--fill", str(seed), "--znodes", str(args.znodes)], cwd=repo, check=True)
    results: dict[str, list[dict[str, float]]] = {name: [] for name, _, _, _ in variants}
    try:
        for run in range(args.runs):
            order = variants if run % 2 == 0 else list(reversed(variants))
            for name, python, repo, convert in order:
                copy = work / f"{name}-{run}"
                shutil.copytree(seed, copy)
                for server in copy.iterdir():
                    for lost in ("server.log",):
                        (server / lost).unlink(missing_ok=True)
                proc = subprocess.run(
                    [python, "-m", "bench.resync", "--round", str(copy), "--znodes", str(args.znodes)]
                    + (["--convert"] if convert else []),
                    cwd=repo,
                    check=True,
                    stdout=subprocess.PIPE,
                )
                figures = json.loads(proc.stdout.decode().strip().splitlines()[-1])
                results[name].append(figures)
                _progress(f"run {run + 1}/{args.runs} {name}: {figures}")
                if not args.keep:
                    shutil.rmtree(copy)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"{args.znodes:,} znodes, median of {args.runs} runs ({os.cpu_count()} CPUs)")
    print("| variant | resync s | leader's worst read during resync ms | restart s |")
    print("|---|--:|--:|--:|")
    for name, rs in results.items():
        med = {k: statistics.median(r[k] for r in rs) for k in ("resync_s", "resync_worst_read_ms", "restart_s")}
        print(f"| {name} | {med['resync_s']:.2f} | {med['resync_worst_read_ms']:.0f} | {med['restart_s']:.2f} |")
        runs = [" ".join(f"{r[k]:.2f}" for r in rs) for k in ("resync_s", "resync_worst_read_ms", "restart_s")]
        print(f"|   each run | {runs[0]} | {runs[1]} | {runs[2]} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--znodes", type=int, default=300_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--variant", action="append", default=[], help="name=python:repo (at least one)")
    parser.add_argument("--work-dir", default=None)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--fill", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--round", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--convert", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fill is not None:
        trio.run(_fill, args.fill, args.znodes)
    elif args.round is not None:
        if args.convert:
            for server in sorted(args.round.iterdir()):
                _convert(server)
        print(json.dumps(trio.run(_round, args.round, args.znodes)))
    else:
        if not args.variant:
            args.variant = [f"current={sys.executable}:."]
        _driver(args)


if __name__ == "__main__":
    main()
