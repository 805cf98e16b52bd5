"""Every write handed to a committer completes exactly once: Committed or Abandoned.

Abandoned covers what a server cannot answer truthfully: a leadership change with writes in
flight, a write submitted while not serving, a forward that reached a server no longer
leading, and a server that stops.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import trio

from ccore.server.commit import Abandoned, Committed, Outcome
from ccore.server.config import PeerAddress, ServerConfig
from ccore.server.database import Database
from ccore.server.forwarding import ForwardWrite, RefuseWrite
from ccore.server.local_commit import LocalCommitter
from ccore.server.membership import static_membership
from ccore.server.peer_frames import decode_peer_frame, encode_peer_frame
from ccore.server.replication import Replicator
from ccore.server.stats import ServerStats
from ccore.server.zab import Role, Status
from ccore.znodes.txn import Create, Txn


class RecordingState:
    """A state machine that applies to a real tree and records what it was told."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.lost = 0

    def apply(self, txn: Txn, on_done: Any) -> None:
        result, _ = self.db.tree.apply(txn)
        if on_done is not None:
            on_done(Committed(txn, result))

    def replace_tree(self, tree: Any, zxid: int) -> None:
        self.db.tree = tree

    def leadership_lost(self) -> None:
        self.lost += 1

    def became_leader(self) -> None:
        pass


class Outcomes:
    def __init__(self) -> None:
        self.calls: Counter[int] = Counter()
        self.last: dict[int, Outcome] = {}

    def callback(self, n: int) -> Any:
        def done(outcome: Outcome) -> None:
            self.calls[n] += 1
            self.last[n] = outcome

        return done

    def abandoned(self) -> set[int]:
        return {n for n, o in self.last.items() if isinstance(o, Abandoned)}


# The membership every status reports: zoo.cfg's, as the replicators below start with.
_CONFIG = static_membership(
    ServerConfig(data_dir=Path("unused"), server_id=2, peers={i: PeerAddress(i, "127.0.0.1", 1, 2) for i in (1, 2, 3)})
)


def _status(role: Role, leader: int | None, serving: bool, epoch: int = 1) -> Status:
    return Status(role, leader, epoch, serving, 0, 0, 1, _CONFIG, None)


def _replicator(tmp_path: Any) -> tuple[Replicator, RecordingState, list[tuple[int, Any]]]:
    peers = {i: PeerAddress(i, "127.0.0.1", 1, 2) for i in (1, 2, 3)}
    config = ServerConfig(data_dir=tmp_path / "data", client_port=0, server_id=2, peers=peers)
    db = Database(config.data_dir)
    config.data_dir.mkdir(parents=True)
    state = RecordingState(db)
    replicator = Replicator(config, db, state, lambda session, at: None)
    sent: list[tuple[int, Any]] = []
    replicator.net.send = lambda to, message: sent.append((to, message))  # type: ignore[method-assign]
    return replicator, state, sent


async def test_a_leadership_change_abandons_every_write_in_flight_once(tmp_path):
    replicator, state, sent = _replicator(tmp_path)
    replicator._on_status(_status(Role.FOLLOWING, 1, True))
    outcomes = Outcomes()
    for n in range(5):
        replicator.submit(0x10, Create(f"/n{n}", b"", (), 0), (), outcomes.callback(n))
    assert [to for to, _ in sent] == [1] * 5  # forwarded to the leader
    assert not outcomes.calls
    replicator._on_status(_status(Role.LOOKING, None, False, epoch=1))
    assert outcomes.abandoned() == set(range(5))
    assert set(outcomes.calls.values()) == {1}
    assert state.lost == 1
    replicator._on_status(_status(Role.FOLLOWING, 3, True, epoch=2))
    assert set(outcomes.calls.values()) == {1}  # nothing completes twice


async def test_a_write_submitted_while_not_serving_is_abandoned_at_once(tmp_path):
    replicator, _, sent = _replicator(tmp_path)
    outcomes = Outcomes()
    replicator.submit(0x10, Create("/x", b"", (), 0), (), outcomes.callback(0))
    assert outcomes.abandoned() == {0} and not sent


async def test_a_forward_to_a_server_that_no_longer_leads_is_refused_and_abandoned(tmp_path):
    follower, _, sent = _replicator(tmp_path / "a")
    follower._on_status(_status(Role.FOLLOWING, 1, True))
    outcomes = Outcomes()
    follower.submit(0x10, Create("/x", b"", (), 0), (), outcomes.callback(0))
    ((to, forward),) = sent
    assert to == 1 and isinstance(forward, ForwardWrite)
    assert decode_peer_frame(encode_peer_frame(forward)) == forward  # as it crosses the wire

    # The old leader, no longer leading, receives it: it answers with a refusal.
    old_leader, _, old_sent = _replicator(tmp_path / "b")
    old_leader.peer = _FakePeer()  # type: ignore[assignment]
    old_leader._on_message(2, forward)
    ((back_to, refusal),) = old_sent
    assert back_to == 2 and refusal == RefuseWrite(forward.request_id)

    follower.peer = _FakePeer()  # type: ignore[assignment]
    follower._on_message(1, refusal)
    assert outcomes.abandoned() == {0} and outcomes.calls[0] == 1
    follower._on_message(1, refusal)  # a duplicate changes nothing
    assert outcomes.calls[0] == 1


class _FakePeer:
    is_leader = False

    def step(self, sender: int, message: Any) -> None:
        raise AssertionError(f"not a Zab message: {message!r}")


async def test_writes_queued_when_a_standalone_server_stops_are_abandoned(tmp_path):
    db = Database(tmp_path / "data")
    await trio.to_thread.run_sync(db.open)
    state = RecordingState(db)
    committer = LocalCommitter(db, state, ServerStats(), wall_clock=lambda: 1000.0)
    outcomes = Outcomes()
    async with trio.open_nursery() as nursery:
        await nursery.start(committer.run)
        committer.submit(0x10, Create("/a", b"", (), 0), (), outcomes.callback(0))
        await trio.testing.wait_all_tasks_blocked()
        assert isinstance(outcomes.last[0], Committed)
        assert outcomes.last[0].txn.time_ms == 1_000_000  # the injected wall clock
        committer.submit(0x10, Create("/b", b"", (), 0), (), outcomes.callback(1))
        nursery.cancel_scope.cancel()  # stops before the commit loop takes it
    assert outcomes.abandoned() == {1}
    assert set(outcomes.calls.values()) == {1}
    db.close()


async def test_log_fsyncs_leave_the_loop_while_a_snapshot_is_written(tmp_path):
    """The snapshot file's writeback makes an fsync wait (87 ms seen on a leader at a million
    znodes): while our own snapshot is written, appends are persisted in a worker thread."""
    replicator, _, _ = _replicator(tmp_path)
    appends = SimpleNamespace(snapshot=None, truncate_after=None)
    assert replicator._persists_on_loop(appends)  # type: ignore[arg-type]
    db = replicator.db
    await trio.to_thread.run_sync(db.open, False)
    db.tree.apply(Txn(1, 0, 0x10, Create("/a", b"x", (), 0)))
    child = db.fork_snapshot()
    assert db.snapshot_writing
    assert not replicator._persists_on_loop(appends)  # type: ignore[arg-type]
    await trio.to_thread.run_sync(db.finish_snapshot, child)
    assert not db.snapshot_writing
    assert replicator._persists_on_loop(appends)  # type: ignore[arg-type]
    replicator._disk_slow = True  # the last persist was slow: the next goes off the loop too
    assert not replicator._persists_on_loop(appends)  # type: ignore[arg-type]
    db.close()


class _BacklogPeer:
    """A Zab core with `count` Readies in a row (a backlog of committed entries to apply)."""

    is_leader = False

    def __init__(self, count: int) -> None:
        self.left = count
        self.advanced = 0

    def has_ready(self) -> bool:
        return self.left > 0

    def ready(self) -> Any:
        self.left -= 1
        return SimpleNamespace(messages=(), must_sync=False, snapshot=None, committed=(), status=_status(Role.FOLLOWING, 1, True))

    def advance(self, ready: Any) -> None:
        self.advanced += 1


async def test_the_pump_lets_other_tasks_run_between_readies(tmp_path):
    """After a restart a server applies a long backlog of committed entries, max_apply_batch
    per Ready: its clients must be served between Readies, not after all of them."""
    replicator, _, _ = _replicator(tmp_path)
    peer = _BacklogPeer(100)
    replicator.peer = peer  # type: ignore[assignment]
    biggest_step = 0
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(replicator._pump)
            seen = 0
            while peer.advanced < 100:
                await trio.lowlevel.checkpoint()
                biggest_step = max(biggest_step, peer.advanced - seen)
                seen = peer.advanced
            nursery.cancel_scope.cancel()
    assert biggest_step <= 2  # Trio may run the pump twice between two runs of this task
