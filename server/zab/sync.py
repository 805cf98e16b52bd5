"""How a leader brings a learner's history in line with its own: DIFF, TRUNC or SNAP.

The rule, from the learner's last zxid `f` and the leader's history up to `upto`:

- `f` below the leader's log base (its older history survives only in a snapshot) -> SNAP.
- `f` is in the leader's history -> DIFF: send the entries after `f`.
- otherwise let `p` be the leader's largest zxid <= f -> TRUNC to `p`, then the entries
  after `p`.
- but SNAP whenever a DIFF or TRUNC would send more than `max_entries` entries (as
  ZooKeeper's snapshotSizeFactor does by size): the leader reads what it sends from its log
  on the event loop, while a SNAP's snapshot is made by a forked child and streamed.

Why TRUNC to `p` is right even across epochs (ZooKeeper sends SNAP there instead): entries of
epoch `e` exist only once epoch `e` was established, so the learner's history before its
epoch-`e` entries is the initial history of e's leader, which a quorum acknowledged and every
later leader's history starts with. Within one epoch the entries form one sequence
(one leader per epoch), so any two histories share everything up to the last zxid both hold,
and the leader's history holds nothing between its last entry <= f and f.
"""

from __future__ import annotations

import enum
from collections.abc import Callable

import attrs

from .api import Entry, ZabSafetyError, counter_of, epoch_of, zx
from .config import Config
from .history import History
from .messages import Diff, Message, NewLeader, Proposal, Snap, Trunc


class SyncKind(enum.StrEnum):
    DIFF = "DIFF"
    TRUNC = "TRUNC"
    SNAP = "SNAP"


@attrs.frozen
class SyncPlan:
    kind: SyncKind
    zxid: int | None = None  # DIFF: entries after it follow; TRUNC: cut after it


def decide_sync(
    peer_last: int, upto: int, base: int, floor: Callable[[int], int | None], max_entries: int | None = None
) -> SyncPlan:
    """Pure decision: `base` is the leader's log base, `floor(z)` its largest zxid <= z
    (counting `base`, None below it), `upto` the end of what the learner must get."""
    if peer_last < base:
        return SyncPlan(SyncKind.SNAP)
    p = floor(min(peer_last, upto))
    if p is None:
        return SyncPlan(SyncKind.SNAP)
    if max_entries is not None and entries_at_least(p, upto) > max_entries:
        return SyncPlan(SyncKind.SNAP)
    if p == peer_last:
        return SyncPlan(SyncKind.DIFF, peer_last)
    return SyncPlan(SyncKind.TRUNC, p)


def entries_at_least(after: int, upto: int) -> int:
    """A lower bound on the entries in (after, upto], from the zxids alone: counters number
    the entries of an epoch from 1, so `upto`'s epoch alone holds counter(upto) of them."""
    if upto <= after:
        return 0
    if epoch_of(after) == epoch_of(upto):
        return counter_of(upto) - counter_of(after)
    return counter_of(upto)


def plan_for(history: History, peer_last: int, upto: int, max_entries: int | None = None) -> SyncPlan:
    return decide_sync(peer_last, upto, history.base, history.floor, max_entries)


def sync_stream(
    plan: SyncPlan,
    history: History,
    snapshot: Callable[[], tuple[int, bytes]],
    upto: int,
    epoch: int,
    config: Config,
) -> tuple[SyncPlan, list[Message]]:
    """The messages of one sync: the plan's opening message, the entries, NEWLEADER.

    Falls back to SNAP when the log no longer holds the entries a DIFF or TRUNC needs
    (purged meanwhile). Returns the plan actually used. A SNAP carries `config`, the
    leader's active configuration.
    """
    entries: list[Entry] | None = None
    opening: Message
    if plan.kind is not SyncKind.SNAP:
        assert plan.zxid is not None
        entries = history.entries(plan.zxid, upto)
        opening = Diff(plan.zxid) if plan.kind is SyncKind.DIFF else Trunc(plan.zxid)
    if entries is None:
        plan = SyncPlan(SyncKind.SNAP)
        snap_zxid, data = snapshot()
        if snap_zxid > upto:
            raise ZabSafetyError(f"snapshot at {zx(snap_zxid)} is beyond the sync point {zx(upto)}")
        entries = history.entries(snap_zxid, upto)
        if entries is None:
            raise ZabSafetyError(f"no log after the snapshot at {zx(snap_zxid)} (base {zx(history.base)})")
        opening = Snap(snap_zxid, data, config)
    messages: list[Message] = [opening]
    messages.extend(Proposal(z, p) for z, p in entries)
    messages.append(NewLeader(epoch, upto))
    return plan, messages
