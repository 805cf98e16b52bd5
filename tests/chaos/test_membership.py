"""The membership nemesis (chaos.membership): spare servers configured as joiners, parked out of
the schedule's reach, and the acceptance run of issue 14: 3 -> 5 servers and back, a dead
voter replaced, the leader removed (and added back), under a write load (with kill-one),
no acknowledged write lost and linearizability checked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ccore.server.config import load
from ccore.znodes.dynconfig import parse_server_line
from chaos.ensemble import LocalEnsemble
from chaos.membership import KINDS
from chaos.nemesis import DEFAULT_NEMESES, NEMESES, Schedule, applicable
from chaos.runner import FaultTarget

REPO = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_S = 300


def test_spares_are_joiners_of_the_first_configuration(tmp_path: Path) -> None:
    with LocalEnsemble(tmp_path, nodes=5, initial_members=[1, 2, 3]) as ens:
        assert ens.spares == [4, 5]
        for sid in ens.servers:
            cfg = load(ens.data_dir(sid) / "zoo.cfg")
            assert sorted(cfg.peers) == sorted({1, 2, 3, sid}), sid
            # Every line has its client address, the one clientPort(Address) says too.
            for peer in cfg.peers.values():
                assert peer.client_address == ("127.0.0.1", ens.client_ports[peer.id])
            assert (cfg.client_port_address, cfg.client_port) == ("127.0.0.1", ens.client_ports[sid])
        line = parse_server_line(ens.server_line(4))
        assert (line.id, line.role, line.quorum_port, line.client_port) == (
            4,
            "participant",
            ens.peer_ports[4],
            ens.client_ports[4],
        )
        assert parse_server_line(ens.server_line(5, "observer")).role == "observer"
        # A joiner of a later membership: what it had beside its zoo.cfg is gone.
        stale = ens.data_dir(4) / "zoo.cfg.dynamic.100000003"
        stale.write_text(ens.server_line(1))
        ens.write_config(4, [1, 2, 5])
        assert sorted(load(ens.data_dir(4) / "zoo.cfg").peers) == [1, 2, 4, 5] and not stale.exists()


def test_without_initial_members_every_server_is_in_the_first_configuration(tmp_path: Path) -> None:
    with LocalEnsemble(tmp_path, nodes=3, observers=1) as ens:
        assert ens.spares == [] and ens.initial_members == [1, 2, 3, 4]
        cfg = load(ens.data_dir(1) / "zoo.cfg")
        assert sorted(cfg.peers) == [1, 2, 3, 4] and cfg.peers[4].observer
    with pytest.raises(ValueError, match="initial members"):
        LocalEnsemble(tmp_path / "bad", nodes=3, initial_members=[3, 4])


def test_parked_servers_are_out_of_the_schedules_reach(tmp_path: Path) -> None:
    with LocalEnsemble(tmp_path, nodes=5, initial_members=[1, 2, 3]) as ens:
        target = FaultTarget(ens)
        assert target.servers == [1, 2, 3] and target.ids == [1, 2, 3, 4, 5]
        target.start(4)  # a kill's heal, say: a parked server stays down
        assert ens.pid(4) is None
        target.unpark(4)
        target.park(2)
        assert target.servers == [1, 3, 4]


def test_membership_runs_beside_the_schedule_and_only_when_named() -> None:
    assert "membership" in NEMESES and "membership" not in DEFAULT_NEMESES
    assert applicable(["membership", "kill-one"], 3, has_proxies=True) == ["membership", "kill-one"]
    assert applicable(["membership"], 2, has_proxies=True) == []
    schedule = Schedule.generate(5, 60, ["membership", "kill-one"])
    assert schedule.steps and {s.nemesis for s in schedule.steps} == {"kill-one"}
    assert Schedule.generate(5, 60, ["membership"]).steps == ()


@pytest.mark.slow
def test_membership_changes_under_load_and_kills_lose_no_acknowledged_write(tmp_path: Path) -> None:
    """Issue 14's acceptance test: 45 s of grow / remove-leader / add-back / shrink / replace /
    grow-split / shrink (about one cycle and a half) with kill-one faults, register and
    register-sync workloads."""
    out = tmp_path / "run"
    argv = [
        sys.executable, "-m", "chaos", "--minutes", "0.75", "--seed", "21", "--out", str(out), "--servers", "3",
        "--workload", "register,register-sync", "--nemesis", "membership,kill-one",
        "--fault-seconds", "1.5", "3", "--quiet-seconds", "1", "2", "--workers", "3",
    ]  # fmt: skip
    result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False)
    summary = result.stderr[-8000:]
    assert result.returncode == 0, f"{' '.join(argv[1:])}\n{summary}"
    report = json.loads((out / "report.json").read_text())
    assert report["status"] == "pass" and not report["errors"] and not report["server_crashes"], summary
    assert report["nemeses_applied"].get("kill-one", 0) >= 1, report["nemeses_applied"]
    # Every kind of change was made, and made what it says.
    assert set(report["membership_changes"]) == set(KINDS), report["membership_changes"]
    done = [
        a["detail"]
        for a in report["nemesis_log"]
        if a["nemesis"] == "membership" and a["action"] == "stop" and a["detail"].get("outcome") == "done"
    ]
    for d in done:
        before, after = set(d["voters_before"]), set(d["voters_after"])
        if d["change"] in ("grow", "grow-split"):
            assert len(after) == len(before) + 2 and before < after, d
        if d["change"] == "grow-split" and "cut_off" in d:
            # The old majority was cut off: no joint quorum, so the change waited for the heal.
            assert d["asked_during_split"] != "committed", d
        elif d["change"] == "shrink":
            assert len(after) == 3 and after < before, d
        elif d["change"] == "replace":
            assert after == before - {d["killed"]} | {d["joined"]} and d["joined"] not in before, d
        elif d["change"] == "remove-leader":
            # The leader left, stepped down, and the new voters elected another.
            assert after == before - {d["leader_before"]}, d
            assert d["leader_after"] in after, d
        elif d["change"] == "add-back":
            assert after == before | {d["added"]}, d
    # The load went on through the changes, and every strict checker judged it.
    for workload in ("register", "register-sync"):
        w = report["workloads"][workload]
        assert w["counts"]["ok"] >= 200, (workload, w["counts"])
        strict = [v for v in w["verdicts"] if v["strict"]]
        assert strict and all(v["verdict"] == "ok" for v in strict), (workload, strict)
    assert "result: PASS" in result.stderr and "membership changes made: " in result.stderr
