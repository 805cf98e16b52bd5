"""`python -m chaos`: its options, and the report's verdict logic on recorded histories."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from chaos.history import History
from chaos.nemesis import Schedule
from chaos.report import check_and_report, summary
from chaos.runner import RunConfig, RunResult
from tests.chaos.builders import build

REPO = Path(__file__).resolve().parents[2]


def test_list_and_unknown_nemeses_and_workloads(tmp_path: Path) -> None:
    listed = subprocess.run(
        [sys.executable, "-m", "chaos", "--list-nemeses"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert listed.returncode == 0 and "halves" in listed.stdout and "needs link proxies" in listed.stdout
    for option, name in (("--nemesis", "flood"), ("--workload", "bank")):
        bad = subprocess.run(
            [sys.executable, "-m", "chaos", option, name, "--minutes", "0.01", "--out", str(tmp_path / "r")],
            cwd=REPO, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert bad.returncode == 2 and f"unknown {option[2:]} {name}" in bad.stderr


def _result(name: str, history: History) -> RunResult:
    return RunResult({name: history}, {name: None}, [], [], 6.0)


def test_report_of_a_violation_has_status_1_and_the_shortest_failing_window(tmp_path: Path) -> None:
    def keyed(*spec: object) -> tuple[object, ...]:
        return (*spec, "ok", "/k")

    h = build(
        keyed("p1", "write", "a", 1, 0, 10),
        keyed("p1", "write", "b", 2, 11, 12),
        keyed("p2", "read", None, ("a", 1, 5), 13, 20),  # sync + read: must see b
    )
    cfg = RunConfig(seed=3, minutes=0.1, out=tmp_path, workloads=["register-sync"], check_time_limit_s=10.0)
    report, status = check_and_report(cfg, Schedule(3, 6.0, ()), _result("register-sync", h), [])
    assert status == 1 and report["status"] == "violation"
    lin = report["workloads"]["register-sync"]["verdicts"][0]
    assert lin["verdict"] == "fail" and lin["failure"]["window"][0]["f"] == "read"
    assert "cannot be linearized" in summary(report, tmp_path)
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["workloads"]["register-sync"]["counts"] == {"ok": 3, "fail": 0, "info": 0}
    assert History.load(tmp_path / "history-register-sync.json").counts() == h.counts()


def test_a_stale_plain_read_is_reported_but_is_no_violation(tmp_path: Path) -> None:
    def keyed(*spec: object) -> tuple[object, ...]:
        return (*spec, "ok", "/k")

    h = build(
        keyed("p1", "write", "a", 1, 0, 10),
        keyed("p1", "write", "b", 2, 11, 12),
        keyed("p2", "read", None, ("a", 1, 5), 13, 20),  # a lagging follower: allowed
    )
    cfg = RunConfig(seed=3, minutes=0.1, out=tmp_path, workloads=["register"], check_time_limit_s=10.0)
    report, status = check_and_report(cfg, Schedule(3, 6.0, ()), _result("register", h), [])
    verdicts = {v["checker"].split(" (")[0]: v for v in report["workloads"]["register"]["verdicts"]}
    assert status == 0 and report["status"] == "pass"
    assert verdicts["linearizability"]["verdict"] == "ok"
    assert (
        verdicts["linearizability with plain reads"]["verdict"] == "fail"
        and not verdicts["linearizability with plain reads"]["strict"]
    )
