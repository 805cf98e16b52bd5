"""Nemeses against an in-memory ensemble: partitions pick the right links, kills and pauses
restore what they broke, torn tails tear, schedules replay from their seed, the runner heals."""

from __future__ import annotations

import random
import resource
import struct
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaos.data_loss import tear_newest_snapshot
from chaos.nemesis import (
    NEMESES,
    Applied,
    CutClients,
    Ensemble,
    Kill,
    NemesisRunner,
    Partition,
    Pause,
    Schedule,
    Step,
    TornTail,
    applicable,
    partition_links,
    tear_log_tail,
)
from tests.chaos.fakes import FakeEnsemble


@pytest.fixture
def ens(tmp_path: Path) -> Iterator[FakeEnsemble]:
    e = FakeEnsemble(5, tmp_path)
    yield e
    e.close()


def _connected(faulty: dict, servers: list[int]) -> set[frozenset[int]]:
    """Pairs of servers that can talk both ways."""
    return {
        frozenset((i, j))
        for i in servers
        for j in servers
        if i < j and ("peer", i, j) not in faulty and ("peer", j, i) not in faulty
    }


def test_the_fake_is_an_ensemble(ens: FakeEnsemble) -> None:
    assert isinstance(ens, Ensemble)


def test_partition_links_cover_exactly_the_pairs_across_groups() -> None:
    links = partition_links([1, 2, 3], [{1}, {2, 3}])
    assert sorted(links) == [("peer", 1, 2), ("peer", 1, 3), ("peer", 2, 1), ("peer", 3, 1)]


@pytest.mark.parametrize("seed", range(20))
def test_partitions(ens: FakeEnsemble, seed: int) -> None:
    servers = list(ens.servers)
    assert ens.links is not None
    # isolate-one: one server talks to nobody, the other four to each other
    p = Partition("isolate-one", fault="cut")
    detail = p.start(ens, random.Random(seed))
    alone = detail["groups"][0][0]
    pairs = _connected(ens.links.faulty(), servers)
    assert not any(alone in pair for pair in pairs) and len(pairs) == 6
    p.stop(ens)
    assert ens.links.faulty() == {}
    # halves: a minority (2) and a majority (3), no link between them
    p = Partition("halves", fault="blackhole")
    detail = p.start(ens, random.Random(seed))
    small, big = map(set, detail["groups"])
    assert (len(small), len(big)) == (2, 3) and set(ens.links.faulty().values()) == {"blackhole"}
    assert _connected(ens.links.faulty(), servers) == {frozenset((i, j)) for g in (small, big) for i in g for j in g if i < j}
    p.stop(ens)
    # bridge: two halves share one server, which talks to everyone; each side + bridge = 3
    p = Partition("bridge", fault="blackhole-hold")
    detail = p.start(ens, random.Random(seed))
    a, b = map(set, detail["groups"])
    (bridge,) = a & b
    assert len(a) == len(b) == 3
    pairs = _connected(ens.links.faulty(), servers)
    assert all(frozenset((bridge, s)) in pairs for s in servers if s != bridge)
    assert not any(frozenset((x, y)) in pairs for x in a - {bridge} for y in b - {bridge})
    p.stop(ens)
    assert ens.links.faulty() == {}
    assert all(name[0] == "peer" for _, name in ens.links.calls)  # client links untouched


def test_isolate_leader_isolates_the_leader(ens: FakeEnsemble) -> None:
    ens.fixed_leader = 4
    p = Partition("isolate-leader")
    detail = p.start(ens, random.Random(1))
    assert detail["groups"][0] == [4] and detail["fault"] in ("cut", "blackhole", "blackhole-hold")
    p.stop(ens)


def test_kill_and_pause_restore_what_they_broke(ens: FakeEnsemble) -> None:
    k = Kill("all")
    assert k.start(ens, random.Random(0)) == {"killed": [1, 2, 3, 4, 5]} and not ens.up
    k.stop(ens)
    assert ens.up == {1, 2, 3, 4, 5}
    ens.fixed_leader = 2
    k = Kill("leader")
    assert k.start(ens, random.Random(0)) == {"killed": [2]}
    k.stop(ens)
    p = Pause("leader")
    assert p.start(ens, random.Random(0)) == {"paused": 2} and ens.paused == {2}
    p.stop(ens)
    assert ens.paused == set() and ens.events[-2:] == [("pause", 2), ("resume", 2)]


def _segment(path: Path, records: list[bytes]) -> Path:
    (path / "log").mkdir(parents=True, exist_ok=True)
    seg = path / "log" / f"log.{1:016x}"
    header = struct.pack(">8sIQQ", b"CCORELOG", 1, 1, 0)
    out = header + struct.pack(">I", zlib.crc32(header))
    for zxid, payload in enumerate(records, start=1):
        body = struct.pack(">IQ", len(payload), zxid) + payload
        out += b"\xcc\x7e\x10\x9a" + struct.pack(">I", zlib.crc32(body)) + body
    seg.write_bytes(out)
    return seg


def test_torn_tail_modes(tmp_path: Path) -> None:
    seg = _segment(tmp_path / "a", [b"one", b"two" * 10])
    size = seg.stat().st_size
    detail = tear_log_tail(tmp_path / "a", random.Random(1), "append-partial")
    assert seg.stat().st_size == size + detail["appended_bytes"] or seg.stat().st_size > size
    assert seg.read_bytes()[:size] == _segment(tmp_path / "b", [b"one", b"two" * 10]).read_bytes()
    seg = _segment(tmp_path / "c", [b"one", b"two" * 10])
    detail = tear_log_tail(tmp_path / "c", random.Random(1), "truncate-last")
    assert detail["record_bytes"] == 20 + 30 and detail["record_at"] < seg.stat().st_size < size
    assert tear_log_tail(tmp_path / "empty", random.Random(1), "append-partial")["torn"] is None


def test_torn_tail_kills_tears_and_restarts(ens: FakeEnsemble) -> None:
    sizes = {sid: _segment(ens.data_dir(sid), [b"x"]).stat().st_size for sid in ens.servers}
    t = TornTail("append-partial")
    detail = t.start(ens, random.Random(7))
    sid = detail["server"]
    assert detail["torn"] == f"log.{1:016x}" and sid not in ens.up
    grown = {s for s in ens.servers if (ens.data_dir(s) / "log" / detail["torn"]).stat().st_size != sizes[s]}
    assert grown == {sid}
    t.stop(ens)
    assert sid in ens.up


def test_disk_full_limits_the_server_process_and_heals(ens: FakeEnsemble) -> None:
    nem = NEMESES["disk-full"]()
    detail = nem.start(ens, random.Random(0))
    soft, hard = resource.prlimit(detail["pid"], resource.RLIMIT_FSIZE)
    assert soft == 0 and soft != hard
    assert nem.stop(ens) == {"server_had_exited": False}
    soft, hard = resource.prlimit(detail["pid"], resource.RLIMIT_FSIZE)
    assert soft == hard


def test_disk_full_restarts_a_server_that_stopped_itself(ens: FakeEnsemble) -> None:
    nem = NEMESES["disk-full"]()
    sid = nem.start(ens, random.Random(0))["server"]
    ens.up.discard(sid)  # as `ccore serve` exits on a failed log write
    assert nem.stop(ens) == {"server_had_exited": True, "restarted": sid} and sid in ens.up


def test_schedule_replays_from_its_seed_and_round_trips() -> None:
    names = ["halves", "kill-one", "pause-leader"]
    a = Schedule.generate(42, 120, names)
    assert a == Schedule.generate(42, 120, names) and a != Schedule.generate(43, 120, names)
    assert a.steps and all(s.nemesis in names for s in a.steps)
    ends = [s.at_s + s.duration_s for s in a.steps]
    assert all(end <= 120 for end in ends)
    assert all(nxt.at_s > end for nxt, end in zip(a.steps[1:], ends[:-1], strict=True))  # one fault at a time
    assert Schedule.from_json(a.to_json()) == a
    with pytest.raises(ValueError, match="unknown nemesis"):
        Schedule.generate(1, 10, ["flood"])


def test_applicable_nemeses_for_a_single_server_without_proxies() -> None:
    single = applicable(list(NEMESES), 1, has_proxies=False)
    assert set(single) == {
        "kill-one",
        "kill-leader",
        "kill-all",
        "pause-one",
        "pause-leader",
        "torn-tail",
        "disk-full",
        "torn-snapshot",
    }
    assert set(applicable(list(NEMESES), 5, has_proxies=True)) == set(NEMESES)


def test_runner_plays_the_schedule_in_time_and_ends_healed(ens: FakeEnsemble) -> None:
    schedule = Schedule(
        1,
        1.0,
        (Step(0.0, 0.1, "halves", 1), Step(0.2, 0.1, "kill-one", 2), Step(0.4, 0.1, "pause-one", 3)),
    )
    seen: list[Applied] = []
    runner = NemesisRunner(ens, schedule, on_event=seen.append)
    log = runner.run()
    assert [(a.nemesis, a.action) for a in log] == [
        ("halves", "start"), ("halves", "stop"), ("kill-one", "start"), ("kill-one", "stop"),
        ("pause-one", "start"), ("pause-one", "stop"),
    ]  # fmt: skip
    assert seen == log and all(a.error is None for a in log)
    assert log[-1].at_s >= 0.5 and log[1].at_s >= 0.1
    assert ens.links is not None and ens.links.faulty() == {} and ens.up == {1, 2, 3, 4, 5} and not ens.paused


def test_runner_records_errors_and_still_heals(tmp_path: Path) -> None:
    ens = FakeEnsemble(1, tmp_path, proxies=False)
    schedule = Schedule(1, 1.0, (Step(0.0, 0.05, "halves", 1), Step(0.0, 0.05, "kill-one", 2)))
    log = NemesisRunner(ens, schedule).run()
    assert log[0].error is not None and "proxies" in log[0].error
    assert [a.error for a in log[2:]] == [None, None] and ens.up == {1}


def test_runner_stops_early_when_asked(ens: FakeEnsemble) -> None:
    schedule = Schedule(1, 100.0, (Step(0.0, 50.0, "kill-one", 1), Step(60.0, 1.0, "halves", 2)))
    runner = NemesisRunner(ens, schedule)
    thread = threading.Thread(target=runner.run)
    thread.start()
    runner.stop_event.set()
    thread.join(5)
    assert not thread.is_alive()
    assert [a.action for a in runner.log] == ["start", "stop"] and ens.up == {1, 2, 3, 4, 5}


def test_cut_clients_faults_one_client_port_and_heals_it(ens: FakeEnsemble) -> None:
    assert ens.links is not None
    ens.fixed_leader = 4
    nem = CutClients("leader")
    detail = nem.start(ens, random.Random(3))
    assert detail["server"] == 4 and list(ens.links.faulty()) == [("client", 4)]
    assert ens.links.faulty()[("client", 4)] == detail["fault"]
    assert nem.stop(ens) == {"healed": "client:4"} and not ens.links.faulty()


def _fill_data_dir(path: Path) -> None:
    (path / "myid").write_text("1\n")
    (path / "zoo.cfg").write_text("tickTime=200\n")
    (path / "server.log").write_text("a line\n")
    (path / "log").mkdir()
    (path / "log" / "log.0000000000000001").write_bytes(b"records")
    (path / "snap").mkdir()
    (path / "snap" / "snapshot.0000000000000005").write_bytes(b"s" * 100)
    (path / "acceptedEpoch").write_text("1")


@pytest.mark.parametrize("then", ["resync", "kill-leader", "restart"])
def test_wipe_leaves_identity_and_config_and_ends_with_every_victim_serving(ens: FakeEnsemble, then: str) -> None:
    for sid in ens.servers:
        _fill_data_dir(ens.data_dir(sid))
    leader = ens.leader()
    nem = NEMESES["wipe-one" if then == "resync" else f"wipe-{then}"]()
    detail = nem.start(ens, random.Random(3))
    wiped = detail["server"]
    assert sorted(p.name for p in ens.data_dir(wiped).iterdir()) == ["myid", "server.log", "zoo.cfg"]
    assert all((ens.data_dir(s) / "snap").exists() for s in ens.servers if s != wiped)
    if then == "resync":
        assert wiped not in ens.up
    else:
        assert wiped != leader  # a follower is the one wiped
        assert ("start", wiped) in ens.events  # restarted, to be caught mid-SNAP
        victim = leader if then == "kill-leader" else wiped
        assert detail["restarted_then_killed"] == victim and victim not in ens.up
    stop = nem.stop(ens)
    assert set(ens.up) == set(ens.servers)
    assert wiped in stop["serving"] and ("serving", wiped) in ens.events


@pytest.mark.parametrize("seed", range(6))
def test_torn_snapshot_damages_only_the_newest_snapshot(ens: FakeEnsemble, seed: int) -> None:
    sid = 1
    snap = ens.data_dir(sid) / "snap"
    snap.mkdir()
    old, new = snap / "snapshot.0000000000000005", snap / "snapshot.000000000000000a"
    old.write_bytes(bytes(range(64)))
    new.write_bytes(bytes(range(200)))
    detail = tear_newest_snapshot(ens.data_dir(sid), random.Random(seed))
    assert detail["torn"] == new.name and detail["older_snapshots"] == 1
    assert old.read_bytes() == bytes(range(64))
    assert new.read_bytes() != bytes(range(200))


def test_torn_snapshot_without_snapshots_says_so_and_restarts(ens: FakeEnsemble) -> None:
    nem = NEMESES["torn-snapshot"]()
    detail = nem.start(ens, random.Random(0))
    assert detail["torn"] is None and detail["server"] not in ens.up
    nem.stop(ens)
    assert detail["server"] in ens.up
