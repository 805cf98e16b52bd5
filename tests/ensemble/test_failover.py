"""Real server processes on loopback: leader kill during writes, majority loss, whole-ensemble
restart, catch-up of a lagging follower, a paused leader, and clients failing over."""

from __future__ import annotations

import threading
import time

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import KazooException

from chaos.ensemble import LocalEnsemble

pytestmark = pytest.mark.slow


def kazoo(hosts: str, timeout: float = 4.0) -> KazooClient:
    zk = KazooClient(hosts=hosts, timeout=timeout, connection_retry={"max_tries": -1, "delay": 0.05, "max_delay": 0.2})
    zk.start(timeout=20)
    return zk


class Writer:
    """Writes /w/n<i> in a loop, remembering which creates were acknowledged."""

    def __init__(self, zk: KazooClient) -> None:
        self.zk = zk
        self.acked: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        i = 0
        while not self.stop.is_set() and i < 100_000:
            path = f"/w/n{i:06d}"
            try:
                self.zk.create(path, b"x")
                self.acked.append(path)
            except KazooException:
                time.sleep(0.01)
            i += 1

    def __enter__(self) -> Writer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)


def all_have(ens: LocalEnsemble, paths: list[str], sids: list[int]) -> None:
    for sid in sids:
        zk = kazoo(ens.connect_string([sid]))
        try:
            zk.sync("/")
            have = set(zk.get_children("/w"))
            missing = [p for p in paths if p.rsplit("/", 1)[1] not in have]
            assert not missing, f"server {sid} lost {len(missing)} acknowledged writes, e.g. {missing[:3]}"
        finally:
            zk.stop()
            zk.close()


def test_leader_killed_during_writes_loses_nothing(tmp_path) -> None:
    with LocalEnsemble(tmp_path, nodes=3) as ens:
        ens.start_all()
        zk = kazoo(ens.connect_string())
        zk.create("/w")
        with Writer(zk) as writer:
            time.sleep(1.0)
            leader = ens.wait_leader()
            ens.kill(leader)
            killed_at = time.monotonic()
            before = len(writer.acked)
            deadline = time.monotonic() + 20
            while len(writer.acked) <= before + 20 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert len(writer.acked) > before + 20, "writes did not resume after the leader died"
            resumed_s = time.monotonic() - killed_at
        ens.start(leader)
        all_have(ens, writer.acked, ens.servers)
        zk.stop()
        zk.close()
        assert resumed_s < 10, resumed_s


def test_majority_loss_then_restart_and_whole_ensemble_restart(tmp_path) -> None:
    with LocalEnsemble(tmp_path, nodes=3) as ens:
        ens.start_all()
        zk = kazoo(ens.connect_string())
        zk.create("/w")
        acked = [zk.create(f"/w/a{i}", b"") for i in range(50)]
        zk.stop()
        zk.close()
        survivor = ens.servers[0]
        for sid in ens.servers[1:]:
            ens.kill(sid)
        time.sleep(1.0)
        assert ens.mode(survivor) is None  # alone it is no quorum: it does not serve
        for sid in ens.servers[1:]:
            ens.start(sid, wait=False)
        ens.wait_serving()
        all_have(ens, acked, ens.servers)
        for sid in ens.servers:
            ens.kill(sid)
        ens.start_all()
        all_have(ens, acked, ens.servers)


def test_lagging_follower_catches_up_by_diff_and_by_snap(tmp_path) -> None:
    with LocalEnsemble(tmp_path, nodes=3, snap_count=200) as ens:
        ens.start_all()
        zk = kazoo(ens.connect_string())
        zk.create("/w")
        leader = ens.wait_leader()
        lagging = next(s for s in ens.servers if s != leader)
        ens.kill(lagging)
        acked = [zk.create(f"/w/d{i}", b"") for i in range(30)]
        ens.start(lagging)  # few transactions behind: DIFF
        all_have(ens, acked, [lagging])
        ens.kill(lagging)
        acked += [zk.create(f"/w/s{i}", b"") for i in range(1200)]  # past snapshots and purges
        ens.start(lagging)
        all_have(ens, acked, [lagging])
        zk.stop()
        zk.close()
        log = (ens.data_dir(leader) / "server.log").read_text()
        assert f"sync {lagging} " in log and "by DIFF" in log
        assert "by SNAP" in log  # the log it needed had been purged past snapshots


def test_paused_leader_is_replaced_and_commits_nothing_old(tmp_path) -> None:
    with LocalEnsemble(tmp_path, nodes=3) as ens:
        ens.start_all()
        zk = kazoo(ens.connect_string())
        zk.create("/w")
        leader = ens.wait_leader()
        ens.pause(leader)
        others = [s for s in ens.servers if s != leader]
        zk2 = kazoo(ens.connect_string(others))
        zk2.create("/w/during-pause", b"")
        new_leader = ens.wait_leader()
        assert new_leader != leader
        ens.resume(leader)
        time.sleep(2.0)
        ens.wait_serving()
        assert ens.mode(leader) in ("follower", None)
        all_have(ens, ["/w/during-pause"], ens.servers)
        zk.stop()
        zk.close()
        zk2.stop()
        zk2.close()


def test_kazoo_session_survives_failover_with_its_ephemeral(tmp_path) -> None:
    with LocalEnsemble(tmp_path, nodes=3) as ens:
        ens.start_all()
        leader = ens.wait_leader()
        follower = next(s for s in ens.servers if s != leader)
        zk = kazoo(ens.connect_string([follower] + [s for s in ens.servers if s != follower]), timeout=6.0)
        zk.create("/eph", b"", ephemeral=True)
        session = zk.client_id
        ens.kill(follower)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                if zk.exists("/eph"):
                    break
            except KazooException:
                time.sleep(0.1)
        assert zk.client_id[0] == session[0]
        assert zk.exists("/eph") is not None
        zk.stop()
        zk.close()


def test_five_servers_survive_two_failures(tmp_path) -> None:
    with LocalEnsemble(tmp_path, nodes=5) as ens:
        ens.start_all()
        zk = kazoo(ens.connect_string())
        zk.create("/w")
        leader = ens.wait_leader()
        victims = [leader, next(s for s in ens.servers if s != leader)]
        for sid in victims:
            ens.kill(sid)
        acked = [zk.create(f"/w/f{i}", b"") for i in range(20)]
        for sid in victims:
            ens.start(sid, wait=False)
        ens.wait_serving()
        all_have(ens, acked, ens.servers)
        zk.stop()
        zk.close()


def test_data_dir_of_another_ensemble_is_refused(tmp_path) -> None:
    import subprocess
    import sys

    with LocalEnsemble(tmp_path / "a", nodes=3) as ens:
        ens.start_all()
        ens.stop_all()
        # Membership is by server ids and roles (servers may see each other at different
        # addresses), so the other ensemble has another member: an observer, server 4.
        with LocalEnsemble(tmp_path / "b", nodes=3, observers=1) as other:
            # Server 1 of the other ensemble pointed at a data dir of the first one.
            cfg = other.data_dir(1) / "zoo.cfg"
            text = cfg.read_text().replace(f"dataDir={other.data_dir(1)}", f"dataDir={ens.data_dir(1)}")
            cfg.write_text(text)
            result = subprocess.run(
                [sys.executable, "-m", "ccore", "serve", "--config", str(cfg)], capture_output=True, text=True, timeout=60
            )
            assert result.returncode == 2
            last = result.stderr.strip().splitlines()[-1]
            assert "belongs to another ensemble" in last and "{4} only in this config" in last, last


def test_observer_serves_reads_and_forwards_writes(tmp_path) -> None:
    with LocalEnsemble(tmp_path, nodes=3, observers=1) as ens:
        ens.start_all()
        observer = ens.servers[-1]
        assert ens.mode(observer) == "observer"
        zk = kazoo(ens.connect_string([observer]))
        zk.create("/via-observer", b"o")
        other = kazoo(ens.connect_string(ens.servers[:3]))
        other.sync("/")
        assert other.get("/via-observer")[0] == b"o"
        # The observer does not vote: two voters down and the rest cannot serve.
        for sid in ens.servers[:2]:
            ens.kill(sid)
        time.sleep(1.5)
        assert ens.mode(observer) is None
        zk.stop()
        zk.close()
        other.stop()
        other.close()


def test_session_of_a_follower_client_expires_within_ten_percent(tmp_path) -> None:
    """Touches relayed from a follower are dated back by their age, so a client connected to a
    follower loses its ephemerals no later than 10% after its timeout, as on the leader."""
    from tests.compat.rawzk import CreateFlag, RawClient

    # ZooKeeper's default tick: touches are relayed every 500 ms, a quarter of it.
    with LocalEnsemble(tmp_path, nodes=3, tick_ms=2000) as ens:
        ens.start_all()
        leader = ens.wait_leader()
        follower = next(s for s in ens.servers if s != leader)
        timeout_ms = 4000
        watcher = kazoo(ens.connect_string([leader]))
        silent = RawClient("127.0.0.1", ens.client_ports[follower]).connect(timeout_ms)
        assert silent.negotiated_timeout_ms == timeout_ms
        silent.create("/lease", flags=CreateFlag.EPHEMERAL)
        went_silent = time.monotonic()
        gone = threading.Event()

        def check(event=None) -> None:
            if watcher.exists("/lease", watch=check) is None:
                gone.set()

        check()
        assert gone.wait(timeout_ms * 1.1 / 1000), "ephemeral outlived its session by more than 10%"
        elapsed = time.monotonic() - went_silent
        assert elapsed >= timeout_ms / 1000 * 0.95, elapsed
        silent.close()
        watcher.stop()
        watcher.close()


def test_our_client_fails_over_with_its_session(tmp_path) -> None:
    from ccore.client import blocking

    with LocalEnsemble(tmp_path, nodes=3) as ens:
        ens.start_all()
        leader = ens.wait_leader()
        with blocking.connect(ens.connect_string([leader] + [s for s in ens.servers if s != leader]), session_timeout=6) as zk:
            zk.create("/mine", b"", ephemeral=True)
            session = zk.session_id
            ens.kill(leader)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                try:
                    zk.create("/after-failover", b"")
                    break
                except Exception:
                    time.sleep(0.1)
            assert zk.session_id == session
            assert zk.exists("/mine") is not None and zk.exists("/after-failover") is not None


def test_ensemble_survives_snapshots_under_pipelined_writes(tmp_path) -> None:
    """Commits are applied one by one in an ensemble: a batch passing the snapshot threshold
    must start one snapshot, not one per commit (two at once raced and stopped the server)."""
    with LocalEnsemble(tmp_path, nodes=3, snap_count=50) as ens:
        ens.start_all()
        zk = kazoo(ens.connect_string())
        zk.create("/w")
        pending = [zk.create_async(f"/w/p{i}", b"x" * 100) for i in range(2000)]
        deadline = time.monotonic() + 60
        for p in pending:
            p.get(timeout=max(0.1, deadline - time.monotonic()))
        zk.stop()
        zk.close()
        time.sleep(0.5)
        assert all(ens.pid(s) is not None for s in ens.servers), "a server died"
        all_have(ens, [f"/w/p{i}" for i in range(2000)], ens.servers)
