"""`python -m chaos --minutes N --seed S`: chaos runs against a local ensemble, and their reports.

Each run starts `--servers` real `ccore serve` processes (chaos.ensemble.LocalEnsemble) with
a fault proxy on every peer link and client port, runs the workloads (see chaos.runner:
register, register-sync, lock, ephemeral, watch) through kazoo and our own client, plays a
seeded schedule of nemeses (default: every one that applies), heals, and checks. A long run
can be cut into segments (`--segment-minutes`), each its own ensemble, seed (S, S+1, ...)
and report, cycling through the server counts given (`--servers 3,5`).

The report directory holds, per segment, `report.json`, the histories, the watch windows and
the server logs (see chaos.report). Exit status: 0 all strict checks passed, 1 a violation,
2 a checker could not decide or the run broke.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import signal
import sys
import time
from pathlib import Path

from .nemesis import DEFAULT_NEMESES, NEMESES, applicable, is_background
from .runner import WORKLOADS, RunConfig, run


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m chaos", description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=1.0, help="length of the whole run (fractions allowed; default 1)")
    p.add_argument("--segment-minutes", type=float, default=None, help="cut the run into segments this long (default: one)")
    p.add_argument("--seed", type=int, default=None, help="seed of the schedule and the workloads (default: random)")
    p.add_argument("--out", type=Path, help="report directory (default: a new one under ./chaos-runs)")
    p.add_argument("--servers", default="3", help="servers in the ensemble; a list (3,5) is cycled over segments")
    p.add_argument(
        "--nemesis", default="all", help="comma-separated nemeses, or 'all' that apply (default; 'membership' only when named)"
    )
    p.add_argument("--workload", default="all", help=f"comma-separated workloads of {', '.join(WORKLOADS)} (default all)")
    p.add_argument("--clients", default="kazoo,native", help="clients of the register workloads (default kazoo,native)")
    p.add_argument("--workers", type=int, default=4, help="register workers per register workload (default 4)")
    p.add_argument("--tick-ms", type=int, default=200, help="the servers' tickTime (default 200)")
    p.add_argument("--op-timeout", type=float, default=2.0, help="seconds before an op's outcome is unknown")
    p.add_argument("--fault-seconds", type=float, nargs=2, default=(2.0, 8.0), metavar=("MIN", "MAX"))
    p.add_argument(
        "--quiet-seconds", type=float, nargs=2, default=(2.0, 5.0), metavar=("MIN", "MAX"),
        help="between faults, and before each membership change",
    )  # fmt: skip
    p.add_argument("--expiry-bound-ms", type=int, default=1500, help="ephemeral expiry bound beyond the timeout")
    p.add_argument("--check-time-limit", type=float, default=120.0, help="seconds the linearizability search may take")
    p.add_argument("--list-nemeses", action="store_true", help="list the nemeses and exit")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return p


def _names(text: str, known: list[str] | tuple[str, ...], what: str, default: list[str] | None = None) -> list[str]:
    names = list(default or known) if text == "all" else [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"python -m chaos: unknown {what} {', '.join(unknown)} (known: {', '.join(known)})")
    return names


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt  # as Ctrl-C: heal, stop the servers, check what was recorded


def main(argv: list[str] | None = None) -> int:
    ns = _parser().parse_args(argv)
    # The servers run in sessions of their own (so that a nemesis can signal them): a plain
    # SIGTERM of this process would leave them running.
    signal.signal(signal.SIGTERM, _interrupt)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("kazoo", "client", "recipes"):  # every fault makes each client complain
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    if ns.list_nemeses:
        for name in NEMESES:
            nem = NEMESES[name]()
            extra = ", beside the schedule, only when named (adds spare servers)" if is_background(name) else ""
            print(f"{name:20} {'needs link proxies, ' if nem.needs_proxies else ''}>= {nem.min_servers} servers{extra}")
        return 0
    try:
        workloads = _names(ns.workload, WORKLOADS, "workload")
        servers = [int(s) for s in ns.servers.split(",")]
        wanted = _names(ns.nemesis, list(NEMESES), "nemesis", DEFAULT_NEMESES)
    except SystemExit as exc:
        print(exc, file=sys.stderr)
        return 2
    seed = ns.seed if ns.seed is not None else int.from_bytes(os.urandom(4), "big")
    out = ns.out or Path("chaos-runs") / f"seed{seed}-{time.strftime('%Y%m%d-%H%M%S')}"
    say = (lambda msg: None) if ns.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    segment = ns.segment_minutes or ns.minutes
    count = max(1, math.ceil(ns.minutes / segment - 1e-9))
    statuses, reports = [], []
    for i in range(count):
        n = servers[i % len(servers)]
        usable = applicable(wanted, n, has_proxies=True)
        skipped = sorted(set(wanted) - set(usable))
        if skipped and ns.nemesis != "all":
            say(f"note: {', '.join(skipped)} cannot act on {n} servers; skipped")
        cfg = RunConfig(
            seed=seed + i, minutes=min(segment, ns.minutes - i * segment), out=out / f"segment{i + 1}" if count > 1 else out,
            servers=n, nemeses=usable, workloads=workloads, tick_ms=ns.tick_ms, op_timeout_s=ns.op_timeout,
            fault_s=tuple(ns.fault_seconds), quiet_s=tuple(ns.quiet_seconds), register_workers=ns.workers,
            clients=[c.strip() for c in ns.clients.split(",")], expiry_bound_ms=ns.expiry_bound_ms,
            check_time_limit_s=ns.check_time_limit, command="python -m chaos " + " ".join(sys.argv[1:] if argv is None else argv),
        )  # fmt: skip
        statuses.append(run(cfg, say))
        if (cfg.out / "report.json").exists():
            reports.append(json.loads((cfg.out / "report.json").read_text()))
    if count > 1:
        say(_combined(out, reports, statuses))
    return 1 if 1 in statuses else max(statuses)


def _combined(out: Path, reports: list[dict], statuses: list[int]) -> str:
    """A summary.json over the segments, and its one-paragraph text."""
    totals: dict[str, dict[str, int]] = {}
    applied: dict[str, int] = {}
    changes: dict[str, int] = {}
    for r in reports:
        for name, w in r["workloads"].items():
            t = totals.setdefault(name, {"ok": 0, "fail": 0, "info": 0})
            for k in t:
                t[k] += w["counts"][k]
        for k, v in r["nemeses_applied"].items():
            applied[k] = applied.get(k, 0) + v
        for k, v in r.get("membership_changes", {}).items():
            changes[k] = changes.get(k, 0) + v
    status = {0: "pass", 1: "violation", 2: "inconclusive"}[1 if 1 in statuses else max(statuses)]
    segments = [{"seed": r["seed"], "servers": r["servers"], "run_s": r["run_s"], "status": r["status"]} for r in reports]
    summary = {
        "status": status,
        "segments": segments,
        "workloads": totals,
        "nemeses_applied": applied,
        "membership_changes": changes,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    lines = [f"all segments: {status.upper()}"]
    lines += [f"  segment seed {s['seed']} ({s['servers']} servers, {s['run_s']}s): {s['status']}" for s in segments]
    lines += [f"  {name}: ok {t['ok']}, failed {t['fail']}, unknown {t['info']}" for name, t in totals.items()]
    lines.append("  nemeses applied: " + ", ".join(f"{k} x{v}" for k, v in sorted(applied.items())))
    if changes:
        lines.append("  membership changes made: " + ", ".join(f"{k} x{v}" for k, v in sorted(changes.items())))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
