"""Sync decisions (DIFF / TRUNC / SNAP) from the leader's log range and the learner's last zxid."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccore.server.zab import make_zxid as z
from ccore.server.zab.config import Config
from ccore.server.zab.history import History
from ccore.server.zab.messages import Diff, NewLeader, Proposal, Snap, Trunc
from ccore.server.zab.sync import SyncKind, SyncPlan, decide_sync, plan_for, sync_stream

from .memory import MemoryStorage

CONFIG = Config.of({1, 2, 3}, version=z(3, 2))  # the leader's active configuration, sent with a SNAP

# The leader's history: epochs 1 (1..5), 3 (1..3), 4 (1..2); epoch 2 never got an entry in.
LEADER = [z(1, i) for i in range(1, 6)] + [z(3, i) for i in range(1, 4)] + [z(4, 1), z(4, 2)]


def floor_in(history: list[int], base: int):  # type: ignore[no-untyped-def]
    def floor(zxid: int) -> int | None:
        if zxid < base:
            return None
        found = base
        for h in history:
            if h > zxid:
                break
            found = h
        return found

    return floor


def decide(peer_last: int, base: int = 0, upto: int = LEADER[-1]) -> SyncPlan:
    return decide_sync(peer_last, upto, base, floor_in([h for h in LEADER if h > base], base))


@pytest.mark.parametrize(
    "peer_last, base, plan",
    [
        # In sync, or behind along the leader's history: DIFF from where it stands.
        (z(4, 2), 0, SyncPlan(SyncKind.DIFF, z(4, 2))),
        (z(3, 2), 0, SyncPlan(SyncKind.DIFF, z(3, 2))),
        (z(1, 5), 0, SyncPlan(SyncKind.DIFF, z(1, 5))),
        (0, 0, SyncPlan(SyncKind.DIFF, 0)),
        # Holds uncommitted entries of an epoch the leader also has: cut back to the common point.
        (z(1, 8), 0, SyncPlan(SyncKind.TRUNC, z(1, 5))),
        (z(3, 7), 0, SyncPlan(SyncKind.TRUNC, z(3, 3))),
        # Ahead of the leader in its last epoch (an old leader's unacknowledged proposals).
        (z(4, 9), 0, SyncPlan(SyncKind.TRUNC, z(4, 2))),
        # Entries of an epoch the leader never saw: back to what preceded that epoch.
        (z(2, 4), 0, SyncPlan(SyncKind.TRUNC, z(1, 5))),
        (z(5, 1), 0, SyncPlan(SyncKind.TRUNC, z(4, 2))),
        # The leader's log no longer reaches back that far: only a snapshot will do.
        (z(1, 2), z(1, 4), SyncPlan(SyncKind.SNAP)),
        (0, z(1, 1), SyncPlan(SyncKind.SNAP)),
        # ...unless the learner stands exactly at the log's base.
        (z(1, 4), z(1, 4), SyncPlan(SyncKind.DIFF, z(1, 4))),
        (z(1, 9), z(1, 4), SyncPlan(SyncKind.TRUNC, z(1, 5))),
    ],
)
def test_decide_sync(peer_last: int, base: int, plan: SyncPlan) -> None:
    assert decide(peer_last, base) == plan


def test_observers_are_synced_only_up_to_the_commit_point() -> None:
    assert decide(z(3, 1), upto=z(3, 1)) == SyncPlan(SyncKind.DIFF, z(3, 1))
    assert decide(z(3, 3), upto=z(3, 1)) == SyncPlan(SyncKind.TRUNC, z(3, 1))


def leader_history(base: int = 0, window: int = 4) -> tuple[History, MemoryStorage]:
    storage = MemoryStorage([(x, b"p%x" % x) for x in LEADER if x > base], current_epoch=4)
    storage.base = base
    storage.applied = [(x, b"p%x" % x) for x in LEADER if x > base][:3]
    history = History(storage, storage.last_zxid(), window=window)
    return history, storage


def test_history_floor_and_entries_span_storage_and_memory() -> None:
    history, storage = leader_history()
    history.append(z(4, 3), b"new")  # in memory only, not yet durable
    assert history.floor(z(2, 7)) == z(1, 5)
    assert history.floor(z(4, 9)) == z(4, 3)
    assert [x for x, _ in history.entries(z(3, 2), z(4, 3)) or []] == [z(3, 3), z(4, 1), z(4, 2), z(4, 3)]
    assert history.entries(z(1, 1), z(1, 3), limit=1) == [(z(1, 2), b"p%x" % z(1, 2))]
    storage.purge(z(1, 3))
    assert history.entries(z(1, 2), z(4, 3)) is None
    assert history.floor(z(1, 2)) is None


def test_stream_for_a_diverged_learner() -> None:
    history, storage = leader_history()
    plan = plan_for(history, z(3, 9), upto=LEADER[-1])
    used, messages = sync_stream(plan, history, storage.snapshot, LEADER[-1], epoch=5, config=CONFIG)
    assert used == SyncPlan(SyncKind.TRUNC, z(3, 3))
    assert messages[0] == Trunc(z(3, 3))
    assert [m.zxid for m in messages[1:-1] if isinstance(m, Proposal)] == [z(4, 1), z(4, 2)]
    assert all(isinstance(m, Proposal) for m in messages[1:-1])
    assert messages[-1] == NewLeader(5, z(4, 2))


def test_stream_falls_back_to_snapshot_when_the_log_was_purged() -> None:
    history, storage = leader_history()
    plan = plan_for(history, z(1, 1), upto=LEADER[-1])
    assert plan == SyncPlan(SyncKind.DIFF, z(1, 1))
    storage.purge(z(1, 3))  # purged between deciding and reading
    used, messages = sync_stream(plan, history, storage.snapshot, LEADER[-1], epoch=5, config=CONFIG)
    assert used.kind is SyncKind.SNAP
    assert isinstance(messages[0], Snap) and messages[0].zxid == z(1, 3)
    assert messages[0].config == CONFIG
    assert [m.zxid for m in messages[1:-1] if isinstance(m, Proposal)] == LEADER[3:]
    assert isinstance(messages[-1], NewLeader)


def test_empty_diff_for_a_learner_in_sync() -> None:
    history, storage = leader_history()
    plan = plan_for(history, LEADER[-1], upto=LEADER[-1])
    _, messages = sync_stream(plan, history, storage.snapshot, LEADER[-1], epoch=5, config=CONFIG)
    assert messages == [Diff(LEADER[-1]), NewLeader(5, LEADER[-1])]


# -- property: the plan turns any learner history Zab can produce into the leader's ----------


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[int], list[int]]:
    """(leader, learner): a shared prefix, then a learner tail the leader never had.

    The tail obeys what Zab guarantees: an entry of epoch e in two histories is the same
    entry, so the learner's own entries are of an epoch the leader has nothing of after the
    shared prefix (an old leader's unacknowledged proposals), or of an epoch it never saw,
    and the leader's entries after the shared prefix belong to later epochs.
    """
    leader: list[int] = []
    for epoch in sorted(draw(st.sets(st.integers(1, 6), max_size=4))):
        leader += [z(epoch, c) for c in range(1, draw(st.integers(1, 4)) + 1)]
    k = draw(st.integers(0, len(leader)))
    learner = leader[:k]
    last = learner[-1] if learner else 0
    # An epoch-e entry exists only once e was established, and every later leader's history
    # then holds e's initial history followed by entries of epoch >= e only.
    ceiling = min((x >> 32 for x in leader[k:]), default=9)
    candidates = list(range(max(1, last >> 32), ceiling))
    if candidates and draw(st.booleans()):
        epoch = draw(st.sampled_from(candidates))
        start = (last & 0xFFFFFFFF) + 1 if epoch == last >> 32 else 1
        learner += [z(epoch, c) for c in range(start, start + draw(st.integers(1, 3)))]
    return leader, learner


@settings(max_examples=500)
@given(histories(), st.integers(0, 3))
def test_plan_always_converges_to_the_leader_history(case: tuple[list[int], list[int]], purged: int) -> None:
    leader, learner = case
    base = leader[purged - 1] if 0 < purged <= len(leader) else 0
    kept = [x for x in leader if x > base]
    plan = decide_sync(learner[-1] if learner else 0, leader[-1] if leader else 0, base, floor_in(kept, base))
    if plan.kind is SyncKind.SNAP:
        result = leader  # the snapshot at some base, then every entry after it
        assert (learner[-1] if learner else 0) < base
    elif plan.kind is SyncKind.DIFF:
        assert plan.zxid == (learner[-1] if learner else 0)
        result = learner + [x for x in leader if x > plan.zxid]
    else:
        assert plan.zxid is not None and plan.zxid >= base
        result = [x for x in learner if x <= plan.zxid] + [x for x in leader if x > plan.zxid]
    assert result == leader


def test_a_learner_too_far_behind_gets_a_snap_instead_of_a_long_diff() -> None:
    from ccore.server.zab.sync import entries_at_least

    base = z(1, 0)
    floor = floor_in([h for h in LEADER if h > base], base)
    upto = LEADER[-1]
    near, far = LEADER[-3], LEADER[0]
    assert decide_sync(near, upto, base, floor, max_entries=5).kind is SyncKind.DIFF
    assert decide_sync(far, upto, base, floor, max_entries=1).kind is SyncKind.SNAP
    assert decide_sync(far, upto, base, floor, max_entries=None) == decide_sync(far, upto, base, floor)
    # Counted from the zxids: within an epoch exactly, across epochs the last epoch's alone.
    assert entries_at_least(z(3, 4), z(3, 9)) == 5
    assert entries_at_least(z(2, 4), z(3, 9)) == 9
    assert entries_at_least(z(3, 9), z(3, 9)) == 0
