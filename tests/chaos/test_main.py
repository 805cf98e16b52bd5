"""`python -m chaos` end to end against a real standalone server (kill -9 / restart), and the
report's verdict logic on a recorded violation."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from chaos.__main__ import _check_and_report
from chaos.history import History
from chaos.linearizability import check
from chaos.nemesis import Schedule
from tests.chaos.builders import build

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_a_short_run_with_kills_passes_and_writes_its_report(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "chaos", "--minutes", "0.2", "--seed", "7", "--out", str(out),
         "--fault-seconds", "1.5", "2.5", "--quiet-seconds", "1", "2", "--workers", "4"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["seed"] == 7 and report["status"] == "pass"
    assert report["schedule"]["steps"] and all(s["nemesis"] == "kill-one" for s in report["schedule"]["steps"])
    actions = [(a["nemesis"], a["action"], a["error"]) for a in report["nemesis_log"]]
    assert ("kill-one", "start", None) in actions and ("kill-one", "stop", None) in actions
    assert report["counts"]["ok"] > 100
    assert report["verdicts"]["linearizability"]["verdict"] == "ok" and report["verdicts"]["ok"]
    history = History.load(out / "history.json")
    assert history.counts() == report["counts"] and check(history).verdict == "ok"
    assert "result: PASS" in result.stderr and "ONE standalone server" in result.stderr


def test_list_and_unknown_nemeses(tmp_path: Path) -> None:
    listed = subprocess.run([sys.executable, "-m", "chaos", "--list-nemeses"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0 and "halves" in listed.stdout and "ensemble only" in listed.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "chaos", "--nemesis", "flood", "--minutes", "0.01", "--out", str(tmp_path / "r")],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert bad.returncode == 2 and "unknown nemesis flood" in bad.stderr


def test_report_of_a_violation_has_status_1_and_the_window() -> None:
    h = build(("p1", "write", "a", 1, 0, 10), ("p1", "write", "b", 2, 11, 12), ("p2", "read", None, ("a", 1), 13, 20))
    ns = argparse.Namespace(minutes=0.1, check_time_limit=10.0)
    report, status = _check_and_report(ns, 3, Schedule(3, 6.0, ()), h, [], [], 6.0)
    assert status == 1 and report["status"] == "violation"
    failure = report["verdicts"]["linearizability"]["failure"]
    assert failure["window"][0]["f"] == "read" and "cannot be linearized" in failure["message"]
    json.dumps(report, default=str)
