"""`python -m chaos --minutes N --seed S`: a chaos run and its report.

FOR NOW THIS RUNS AGAINST ONE STANDALONE SERVER (`ccore serve`), so the only faults are those
that act on a single process: kill -9 and restart (the default), pause, torn tail, full disk.
There is no replication in play, so this exercises durability and client recovery, not
consensus. The ensemble nemeses (partitions, bridge, isolate/pause the leader, kill all, slow
links) are listed by `--list-nemeses` and plug in through the same `Ensemble` interface once
`ccore ensemble` can route its peer links through proxies.

The report directory holds `report.json` (seed, schedule, what the nemesis did and when,
counts of ok / failed / unknown operations, every checker's verdict and, on failure, the
shortest failing window) and `history.json` (every operation, replayable into the checkers).
Exit status: 0 all checks passed, 1 a violation, 2 a checker could not decide or the run broke.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from . import checks, linearizability
from .history import History
from .nemesis import NEMESES, Applied, NemesisRunner, Schedule, applicable
from .proxy import FleetThread
from .standalone import Standalone
from .workload import RegisterWorkload

log = logging.getLogger("chaos")

PROGRESS_EVERY_S = 5.0
SINGLE_SERVER_DEFAULT = ["kill-one"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m chaos",
        description="Chaos run: CAS-register workload under a seeded fault schedule, checked for linearizability. "
        "Currently against one standalone server (kill -9/restart); ensemble nemeses come with `ccore ensemble`.",
    )
    p.add_argument("--minutes", type=float, default=1.0, help="length of the run (fractions allowed; default 1)")
    p.add_argument("--seed", type=int, default=None, help="seed of the schedule and the workload (default: random)")
    p.add_argument("--out", type=Path, help="report directory (default: a new one under ./chaos-runs)")
    p.add_argument("--nemesis", default=",".join(SINGLE_SERVER_DEFAULT), help="comma-separated nemeses (default kill-one)")
    p.add_argument("--workers", type=int, default=5, help="client threads, one session each (default 5)")
    p.add_argument("--keys", type=int, default=2, help="registers in use at once (default 2)")
    p.add_argument("--ops-per-key", type=int, default=400, help="operations before moving to fresh keys (default 400)")
    p.add_argument("--op-timeout", type=float, default=2.0, help="seconds before an op's outcome is unknown")
    p.add_argument("--fault-seconds", type=float, nargs=2, default=(2.0, 6.0), metavar=("MIN", "MAX"))
    p.add_argument("--quiet-seconds", type=float, nargs=2, default=(2.0, 5.0), metavar=("MIN", "MAX"))
    p.add_argument("--check-time-limit", type=float, default=120.0, help="seconds the checker may search (default 120)")
    p.add_argument("--list-nemeses", action="store_true", help="list the nemeses and exit")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return p


def main(argv: list[str] | None = None) -> int:
    ns = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kazoo").setLevel(logging.ERROR)  # every kill makes each client warn a dozen times
    if ns.list_nemeses:
        single = set(applicable(list(NEMESES), 1, has_proxies=False))
        for name in NEMESES:
            print(f"{name:20} {'standalone + ensemble' if name in single else 'ensemble only'}")
        return 0
    seed = ns.seed if ns.seed is not None else int.from_bytes(__import__("os").urandom(4), "big")
    out = ns.out or Path("chaos-runs") / f"seed{seed}-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    say = (lambda msg: None) if ns.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    return run(ns, seed, out, say)


def run(ns: argparse.Namespace, seed: int, out: Path, say: Any) -> int:
    duration_s = ns.minutes * 60.0
    wanted = [n.strip() for n in ns.nemesis.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in NEMESES]
    if unknown:
        print(f"python -m chaos: unknown nemesis {', '.join(unknown)} (see --list-nemeses)", file=sys.stderr)
        return 2
    usable = applicable(wanted, 1, has_proxies=False)
    skipped = sorted(set(wanted) - set(usable))
    if skipped:
        say(f"note: {', '.join(skipped)} need an ensemble; a standalone run skips them")
    schedule = Schedule.generate(seed, duration_s, usable, fault_s=tuple(ns.fault_seconds), quiet_s=tuple(ns.quiet_seconds))
    say(f"chaos: seed {seed}, {ns.minutes:g} min against ONE standalone server; nemeses: {', '.join(usable) or 'none'}; "
        f"{len(schedule.steps)} faults scheduled; report in {out}")  # fmt: skip
    history = History(meta={"seed": seed, "target": "standalone", "nemeses": usable})
    nemesis_log: list[Applied] = []
    errors: list[str] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ccore-chaos-") as scratch, FleetThread(seed=seed) as fleet:
        ens = Standalone(Path(scratch), fleet)
        try:
            ens.open()
        except Exception as exc:
            print(f"python -m chaos: could not start the server: {exc}", file=sys.stderr)
            return 2
        workload = RegisterWorkload(
            ens.connect_string, history, seed=seed, workers=ns.workers, keys=ns.keys,
            ops_per_key=ns.ops_per_key, op_timeout_s=ns.op_timeout,
        )  # fmt: skip
        runner = NemesisRunner(ens, schedule, on_event=lambda a: say(_describe(a)))
        nemesis_thread = threading.Thread(target=runner.run, name="chaos-nemesis", daemon=True)
        try:
            workload.start()
            nemesis_thread.start()
            _wait_with_progress(history, started, duration_s, say)
        except KeyboardInterrupt:
            say("interrupted: stopping, healing, checking what was recorded")
        finally:
            runner.stop_event.set()
            nemesis_thread.join(60.0)  # the runner heals (restarts) before it returns
            workload.stop()
            errors += workload.errors
            if nemesis_thread.is_alive():
                errors.append("the nemesis runner did not finish healing within 60 s")
            nemesis_log = list(runner.log)
            server_log = (ens.server.log_path.read_text("utf-8", "replace") if ens.server.log_path.exists() else "")
            ens.close()
        (out / "server.log").write_text(server_log)
    run_s = time.monotonic() - started
    history.dump(out / "history.json")
    say(f"checking {len(history.operations())} operations...")
    report, status = _check_and_report(ns, seed, schedule, history, nemesis_log, errors, run_s)
    (out / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    say(_summary(report, out))
    return status


def _wait_with_progress(history: History, started: float, duration_s: float, say: Any) -> None:
    deadline = started + duration_s
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(PROGRESS_EVERY_S, left))
        counts = history.counts()
        say(f"  {time.monotonic() - started:6.1f}s  ok {counts['ok']}  fail {counts['fail']}  unknown {counts['info']}")


def _describe(a: Applied) -> str:
    detail = " ".join(f"{k}={v}" for k, v in a.detail.items())
    return f"  {a.at_s:6.1f}s  nemesis {a.nemesis} {a.action} {detail}" + (f"  ERROR {a.error}" if a.error else "")


def _check_and_report(
    ns: argparse.Namespace,
    seed: int,
    schedule: Schedule,
    history: History,
    nemesis_log: list[Applied],
    errors: list[str],
    run_s: float,
) -> tuple[dict[str, Any], int]:
    lin = linearizability.check(history, time_limit_s=ns.check_time_limit)
    zxid = checks.check_zxid_order(history)
    nemesis_errors = [f"{a.nemesis} {a.action}: {a.error}" for a in nemesis_log if a.error]
    report = {
        "seed": seed,
        "target": "standalone ccore serve (single server: only process-level nemeses apply)",
        "command": "python -m chaos " + " ".join(sys.argv[1:]),
        "minutes": ns.minutes,
        "run_s": round(run_s, 1),
        "schedule": schedule.to_json(),
        "nemesis_log": [
            {"at_s": a.at_s, "step": a.step, "nemesis": a.nemesis, "action": a.action, "detail": a.detail, "error": a.error}
            for a in nemesis_log
        ],
        "counts": history.counts(),
        "verdicts": {"linearizability": lin.to_json(), **checks.merge([zxid])},
        "errors": errors + nemesis_errors,
        "history": "history.json",
    }
    if lin.verdict == "fail" or not zxid.ok:
        status = 1
    elif lin.verdict != "ok" or errors or nemesis_errors:
        status = 2
    else:
        status = 0
    report["status"] = {0: "pass", 1: "violation", 2: "inconclusive"}[status]
    return report, status


def _summary(report: dict[str, Any], out: Path) -> str:
    c = report["counts"]
    lin = report["verdicts"]["linearizability"]
    lines = [
        f"result: {report['status'].upper()}  (ok {c['ok']}, failed {c['fail']}, unknown {c['info']}; "
        f"linearizability {lin['verdict']} in {lin['elapsed_s']}s over {lin['keys']} keys; "
        f"zxid order {'ok' if report['verdicts']['ok'] else 'VIOLATED'})",
    ]
    if lin.get("failure"):
        lines.append(lin["failure"]["message"])
    for checker in report["verdicts"]["checkers"]:
        lines += [f"  {checker['checker']}: {v}" for v in checker["violations"][:5]]
    lines += [f"  error: {e}" for e in report["errors"][:10]]
    lines.append(f"report: {out / 'report.json'}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
