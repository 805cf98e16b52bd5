"""The checks of a chaos run and its report.

Per workload, the checkers that decide the run (*strict*) and those that only inform:

| workload | strict | informative |
|---|---|---|
| register (plain reads) | linearizability of writes, cas and the final sync'd reads; `check_reads` (sequential consistency); `check_zxid_order` | linearizability with the plain reads (stale reads are allowed) |
| register-sync (sync + read) | linearizability of everything; `check_reads`; `check_zxid_order` | |
| lock | `check_fenced_writes` | holds, losses, timeouts |
| ephemeral | `check_ephemeral_expiry` | how late ephemerals went, per life |
| watch | `check_watch_windows` | windows, events |

The report directory holds `report.json` (seed, command, schedule, nemesis log, fault
windows, per workload: counts of ok / failed / unknown operations, every verdict and, for a
linearizability failure, the shortest failing window), one `history-<workload>.json` per
workload (replayable into the checkers: `History.load`), `watch-windows.json`, and
`servers/server<N>.log.gz`. Exit status: 0 all strict checks passed, 1 a violation, 2 a
checker could not decide, the run broke, or a server exited on its own (`server_crashes`:
found between faults and restarted, so the run goes on).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import attrs

from . import checks, linearizability
from .checks import EphemeralLife, Verdict
from .history import History, Operation
from .membership import changes_made
from .nemesis import Schedule

INFORMATIVE_TIME_LIMIT_S = 30.0


@attrs.frozen
class FaultWindow:
    """A fault in force from `start_s` to `end_s` (seconds on the histories' clock)."""

    nemesis: str
    start_s: float
    end_s: float


def _lin(result: linearizability.Result, name: str, strict: bool) -> dict[str, Any]:
    out = {"checker": name, "strict": strict, **result.to_json()}
    out["ok"] = result.verdict == "ok"
    return out


def _verdict(v: Verdict, strict: bool = True) -> dict[str, Any]:
    return {**v.to_json(), "strict": strict, "verdict": "ok" if v.ok else "fail"}


def check_workload(name: str, history: History, workload: Any, cfg: Any, extra: dict[str, Any]) -> list[dict[str, Any]]:
    ops = history.operations()
    limit = cfg.check_time_limit_s
    if name in ("register", "register-sync"):
        out = []
        if name == "register":
            strict_ops = [op for op in ops if op.f != "read" or op.process == "final"]
            out.append(
                _lin(
                    linearizability.check(strict_ops, time_limit_s=limit),
                    "linearizability (writes, cas, final sync'd reads)",
                    True,
                )
            )
            stale = linearizability.check(ops, time_limit_s=INFORMATIVE_TIME_LIMIT_S)
            info = _lin(stale, "linearizability with plain reads (informative: reads are served locally)", False)
            out.append(info)
        else:
            out.append(_lin(linearizability.check(ops, time_limit_s=limit), "linearizability (sync + read)", True))
        out.append(_verdict(checks.check_reads(ops)))
        out.append(_verdict(checks.check_zxid_order(ops)))
        return out
    if name == "lock":
        return [
            _verdict(checks.check_fenced_writes(ops)),
            {"checker": "lock stats", "strict": False, "ok": True, "verdict": "ok", **workload.stats},
        ]
    if name == "ephemeral":
        windows = disruptions(extra["faults"], extra["epoch_changes"])
        lives = extend_lives(workload.lives, windows, cfg.expiry_bound_ms)
        verdict = _verdict(checks.check_ephemeral_expiry(lives, ops, bound_ms=cfg.expiry_bound_ms))
        verdict["bound_ms"] = cfg.expiry_bound_ms
        return [verdict, {"checker": "expiry delays", "strict": False, "ok": True, "verdict": "ok", **expiry_stats(lives, ops)}]
    if name == "watch":
        windows = workload.windows

        def tracked(path: str) -> bool:
            return path.count("/") == 4  # ROOT/w<p>/n<k>: the changes we made

        v = _verdict(checks.check_watch_windows(extra["watch_changes"], windows, tracked=tracked))
        v["windows"] = len(windows)
        v["changes"] = len(extra["watch_changes"])
        return [v]
    raise ValueError(f"unknown workload {name!r}")


def epoch_changes(histories: dict[str, History]) -> list[float]:
    """When each new epoch (a new leader) was first seen in a reply, in seconds on the
    histories' clock: an upper bound on when that leader was established."""
    first: dict[int, int] = {}
    for history in histories.values():
        for e in history.events:
            if e.type == "ok" and e.zxid:
                epoch = e.zxid >> 32
                first[epoch] = min(first.get(epoch, e.time_ns), e.time_ns)
    ordered = sorted(first.items())
    return [t / 1e9 for _epoch, t in ordered[1:]]


def disruptions(faults: list[FaultWindow], changes: list[float]) -> list[FaultWindow]:
    """The faults, and for each leader change the stretch from the start of the fault that
    caused it (the last one begun before) to when the new epoch was first seen."""
    out = list(faults)
    starts = sorted(f.start_s for f in faults)
    for t in changes:
        before = [s for s in starts if s <= t]
        out.append(FaultWindow("leader change", before[-1] if before else 0.0, t))
    return sorted(out, key=lambda f: f.start_s)


def extend_lives(lives: list[EphemeralLife], windows: list[FaultWindow], bound_ms: int) -> list[EphemeralLife]:
    """Give each ephemeral the time faults took from its expiry. A fault in force after the
    session went silent and before its deadline may have held back a touch sent before the
    silence (a paused follower, a held link relays it late, and the leader then counts the
    timeout from there), or kept the leader from committing the expiry, or replaced the
    leader (a new leader gives every session a fresh timeout): the deadline moves to the
    end of that disruption plus the timeout plus the bound."""
    out = []
    for life in lives:
        silent_s = life.silent_ns / 1e9
        allow_s = (life.timeout_ms + bound_ms) / 1000
        base = deadline = silent_s + allow_s
        for window in windows:  # by start: each extension can only bring later ones in
            if window.start_s < deadline and window.end_s > silent_s:
                deadline = max(deadline, window.end_s + allow_s)
        out.append(attrs.evolve(life, extra_ms=int((deadline - base) * 1000)))
    return out


def expiry_stats(lives: list[EphemeralLife], ops: list[Operation]) -> dict[str, Any]:
    """How long after silence + timeout each ephemeral was first seen gone (an upper bound on
    its lateness), over the lives no fault interfered with."""
    gone: dict[str, int] = {}
    alive: dict[str, int] = {}
    for op in ops:
        if op.f == "exists" and op.status == "ok" and op.return_ns is not None:
            if op.output is False:
                gone[op.input] = min(gone.get(op.input, op.return_ns), op.return_ns)
            else:
                alive[op.input] = max(alive.get(op.input, op.call_ns), op.call_ns)
    calm = [life for life in lives if life.extra_ms == 0 and life.path in gone]
    # Lateness beyond the timeout, measured from the silence: at least (the last observation
    # that still saw it was invoked then), at most (the first that saw it gone had returned).
    at_least = [(alive.get(life.path, life.silent_ns) - life.silent_ns) / 1e6 - life.timeout_ms for life in calm]
    at_most = [(gone[life.path] - life.silent_ns) / 1e6 - life.timeout_ms for life in calm]
    return {
        "lives": len(lives),
        "seen_gone": sum(1 for life in lives if life.path in gone),
        "calm_lives": len(calm),
        "late_ms_at_least_max": round(max(at_least)) if at_least else None,
        "late_ms_at_most_median": round(statistics.median(at_most)) if at_most else None,
        "late_ms_at_most_max": round(max(at_most)) if at_most else None,
        "timeouts_ms": sorted({life.timeout_ms for life in lives}),
    }


def check_and_report(cfg: Any, schedule: Schedule, result: Any, errors: list[str]) -> tuple[dict[str, Any], int]:
    out: Path = cfg.out
    changes = epoch_changes(result.histories)
    extra = {"faults": result.faults, "watch_changes": result.watch_changes, "epoch_changes": changes}
    per_workload: dict[str, Any] = {}
    strict_fail = strict_unknown = False
    for name, history in result.histories.items():
        history.dump(out / f"history-{name}.json")
        verdicts = check_workload(name, history, result.workloads[name], cfg, extra)
        for v in verdicts:
            if v["strict"] and v["verdict"] == "fail":
                strict_fail = True
            elif v["strict"] and v["verdict"] != "ok":
                strict_unknown = True
        per_workload[name] = {"counts": history.counts(), "verdicts": verdicts, "history": f"history-{name}.json"}
    if "watch" in result.workloads:
        (out / "watch-windows.json").write_text(json.dumps([w.to_json() for w in result.workloads["watch"].windows]) + "\n")
    nemesis_errors = [f"{a.nemesis} {a.action}: {a.error}" for a in result.nemesis_log if a.error]
    applied: dict[str, int] = {}
    for a in result.nemesis_log:
        if a.action == "start" and not a.error:
            applied[a.nemesis] = applied.get(a.nemesis, 0) + 1
    membership = changes_made(result.nemesis_log)  # chaos.membership's, by kind
    totals = {"ok": 0, "fail": 0, "info": 0}
    for w in per_workload.values():
        for k in totals:
            totals[k] += w["counts"][k]
    report = {
        "seed": cfg.seed,
        "command": cfg.command,
        "servers": cfg.servers,
        "minutes": cfg.minutes,
        "run_s": round(result.run_s, 1),
        "nemeses": list(cfg.nemeses),
        "nemeses_applied": applied,
        "membership_changes": membership,
        "schedule": schedule.to_json(),
        "nemesis_log": [attrs.asdict(a) for a in result.nemesis_log],
        "fault_windows": [attrs.asdict(f) for f in result.faults],
        "new_epochs_seen_at_s": [round(t, 3) for t in changes],
        "server_crashes": result.crashes,
        "counts": totals,
        "workloads": per_workload,
        "errors": errors + nemesis_errors,
    }
    if strict_fail:
        status = 1
    elif strict_unknown or errors or nemesis_errors or result.crashes:  # a crash is a bug, not a violation
        status = 2
    else:
        status = 0
    report["status"] = {0: "pass", 1: "violation", 2: "inconclusive"}[status]
    (out / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    return report, status


def summary(report: dict[str, Any], out: Path) -> str:
    c = report["counts"]
    lines = [
        f"result: {report['status'].upper()}  (seed {report['seed']}; ok {c['ok']}, failed {c['fail']}, unknown {c['info']})"
    ]
    applied = ", ".join(f"{k} x{v}" for k, v in sorted(report["nemeses_applied"].items()))
    lines.append(f"  nemeses applied: {applied or 'none'}")
    if "membership" in report["nemeses"]:
        made = ", ".join(f"{k} x{v}" for k, v in sorted(report.get("membership_changes", {}).items()))
        lines.append(f"  membership changes made: {made or 'none'}")
    for name, w in report["workloads"].items():
        wc = w["counts"]
        lines.append(f"  {name}: ok {wc['ok']}, failed {wc['fail']}, unknown {wc['info']}")
        for v in w["verdicts"]:
            mark = v["verdict"].upper() if v["strict"] else f"({v['verdict']})"
            lines.append(f"    {mark:9} {v['checker']}")
            failure = v.get("failure")
            if v["strict"] and failure:
                lines += ["      " + line for line in failure["message"].splitlines()[:30]]
            if v["strict"]:
                lines += [f"      {x}" for x in v.get("violations", [])[:5]]
    for crash in report.get("server_crashes", [])[:10]:
        last = crash["log_tail"].strip().splitlines()[-2:] if crash["log_tail"] else []
        lines.append(
            f"  server {crash['server']} exited on its own (exit {crash['exit']}) before {crash['at_s']}s: {' | '.join(last)[:300]}"
        )
    lines += [f"  error: {e}" for e in report["errors"][:10]]
    lines.append(f"report: {out / 'report.json'}")
    return "\n".join(lines)
