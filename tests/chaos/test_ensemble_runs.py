"""The bounded CI version of the chaos suite: three short `python -m chaos` runs against real
3- and 5-server ensembles behind fault proxies, between them every nemesis and every workload
(about 3 minutes in all; each seed was picked so that its schedule applies every nemesis
listed for it). A run that finds a violation fails here with its report's summary:
replay it with the printed seed and options."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_S = 240

pytestmark = pytest.mark.slow

RUNS = {
    "leader-faults": dict(
        seed=128, servers=3, workloads="register,register-sync",
        nemeses="kill-leader,isolate-leader,pause-leader,slow-links,cut-clients-leader",
    ),
    "partitions-and-disks": dict(
        seed=213, servers=3, workloads="register-sync,lock,watch,ephemeral",
        nemeses="halves,bridge,kill-all,torn-tail-truncate,disk-full",
    ),
    "five-servers": dict(
        seed=341, servers=5, workloads="register,lock,ephemeral,watch",
        nemeses="isolate-one,bridge,kill-one,pause-one,torn-tail,cut-clients-one",
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", list(RUNS))
def test_a_short_chaos_run_passes(name: str, tmp_path: Path) -> None:
    spec = RUNS[name]
    out = tmp_path / "run"
    argv = [
        sys.executable, "-m", "chaos", "--minutes", "0.5", "--seed", str(spec["seed"]), "--out", str(out),
        "--servers", str(spec["servers"]), "--workload", spec["workloads"], "--nemesis", spec["nemeses"],
        "--fault-seconds", "1.5", "3", "--quiet-seconds", "1.5", "3", "--workers", "3",
    ]  # fmt: skip
    result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False)
    summary = result.stderr[-6000:]
    assert result.returncode == 0, f"{' '.join(argv[1:])}\n{summary}"
    report = json.loads((out / "report.json").read_text())
    assert report["status"] == "pass" and report["seed"] == spec["seed"] and report["servers"] == spec["servers"]
    # The faults were really applied (and healed) ...
    applied = report["nemeses_applied"]
    assert set(applied) == set(spec["nemeses"].split(",")), applied
    stops = [a for a in report["nemesis_log"] if a["action"] == "stop"]
    assert stops and all(a["error"] is None for a in report["nemesis_log"])
    # ... every workload made progress through them, and every strict checker judged it.
    for workload in spec["workloads"].split(","):
        w = report["workloads"][workload]
        assert w["counts"]["ok"] >= 50, (workload, w["counts"])
        strict = [v for v in w["verdicts"] if v["strict"]]
        assert strict and all(v["verdict"] == "ok" for v in strict), (workload, strict)
        assert (out / w["history"]).exists()
    assert "result: PASS" in result.stderr
