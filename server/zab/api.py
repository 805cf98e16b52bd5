"""The Zab core's contract with its driver: Timing, ReadOnlyStorage, Ready, Status, errors.

The driver (the Trio side, or the simulator) owns every effect: links, clocks, disks and the
state machine. The core only reads storage through `ReadOnlyStorage` and asks for writes,
sends and applies through `Ready`.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from .messages import Message

if TYPE_CHECKING:
    from .config import Config

Entry = tuple[int, bytes]
"""One transaction of the replicated history: (zxid, opaque payload)."""

COUNTER_MASK = 0xFFFFFFFF
DEFAULT_READ_BATCH_ENTRIES = 1000
DEFAULT_READ_BATCH_BYTES = 1 << 20


def make_zxid(epoch: int, counter: int) -> int:
    return (epoch << 32) | counter


def epoch_of(zxid: int) -> int:
    return zxid >> 32


def counter_of(zxid: int) -> int:
    return zxid & COUNTER_MASK


def zx(zxid: int | None) -> str:
    """A zxid as logs show it: epoch:counter in hex, like ZooKeeper's 0x<epoch><counter>."""
    if zxid is None:
        return "-"
    return f"{epoch_of(zxid):x}:{counter_of(zxid):x}"


class Role(enum.StrEnum):
    LOOKING = "LOOKING"
    FOLLOWING = "FOLLOWING"
    LEADING = "LEADING"
    OBSERVING = "OBSERVING"


class NotLeader(Exception):
    """`next_zxid`/`propose` on a peer that is not an established leader.

    `leader_id` is who this peer believes leads (None while looking): forward writes there.
    """

    def __init__(self, message: str, leader_id: int | None) -> None:
        super().__init__(message)
        self.leader_id = leader_id


class ReconfigRefused(Exception):
    """`ZabPeer.check_reconfig` says no: the server answers the client with this error."""


class ReconfigInProgress(ReconfigRefused):
    """Another configuration change is proposed and not yet committed (ZooKeeper's -14)."""


class NewConfigNoQuorum(ReconfigRefused):
    """No quorum of the new configuration's voters is connected and synced with this leader
    (ZooKeeper's -13): they could not acknowledge the change, so it could never commit."""


class ZabSafetyError(AssertionError):
    """The core found its own invariants broken (a bug or a corrupted disk): stop the server."""


@attrs.frozen
class Timing:
    """Timeouts as in zoo.cfg: everything is a number of ticks of `tick_s` seconds.

    - `init_limit`: ticks a leader may take to establish (discovery + sync) and a learner to
      get from election to UPTODATE; also the learner's silence limit while syncing.
    - `sync_limit`: ticks of silence after which a synced follower drops its leader, and a
      leader stops counting a follower (it steps down when fewer than a quorum remain).
    - `finalize_wait_s`: how long an election waits for a better vote once a quorum agrees.
    - `election_resend_s`: how often a looking peer re-sends its vote (default: the larger
      of `finalize_wait_s` and `tick_s / 4`; votes are also sent on every new link).
    - `ping_s`: how often the leader pings learners (ZooKeeper: tickTime / 2).
    - `committed_window`: committed entries kept in memory for DIFF (ZooKeeper's committedLog).
    - `max_apply_batch`: at most this many entries in one `Ready.committed`. The driver reads
      and applies them in one step of its loop (and yields between Readies): after a restart
      with 94,000 entries past the snapshot, no such step of 500 was logged over 100 ms. Before,
      with 10,000 and no yield, the loop was held 0.8-1.6 s.
    - `read_batch_entries`, `read_batch_bytes`: the bounds the core passes to each
      `ReadOnlyStorage.entries_after` call (it reads a long stretch of log in several calls).
    - `max_sync_entries`: a learner further behind than this gets a SNAP, not a DIFF (None:
      DIFF whenever the log allows).
    """

    tick_s: float = 2.0
    init_limit: int = 10
    sync_limit: int = 5
    finalize_wait_s: float = 0.2
    election_resend_s: float | None = None
    ping_s: float | None = None  # default: tick_s / 2
    committed_window: int = 500
    max_apply_batch: int = 500
    read_batch_entries: int = DEFAULT_READ_BATCH_ENTRIES
    read_batch_bytes: int = DEFAULT_READ_BATCH_BYTES
    max_sync_entries: int | None = 10_000

    @property
    def init_timeout_s(self) -> float:
        return self.tick_s * self.init_limit

    @property
    def sync_timeout_s(self) -> float:
        return self.tick_s * self.sync_limit

    def __attrs_post_init__(self) -> None:
        if self.tick_s <= 0 or self.init_limit < 1 or self.sync_limit < 1 or self.finalize_wait_s < 0:
            raise ValueError(f"bad timing {self}: tick_s > 0, init_limit >= 1, sync_limit >= 1")
        if self.read_batch_entries < 1 or self.read_batch_bytes < 1 or self.max_apply_batch < 1:
            raise ValueError(f"bad timing {self}: read_batch_entries, read_batch_bytes and max_apply_batch >= 1")

    @property
    def resend_s(self) -> float:
        if self.election_resend_s is not None:
            return self.election_resend_s
        return max(self.finalize_wait_s, self.tick_s / 4)

    @property
    def ping_interval_s(self) -> float:
        return self.ping_s if self.ping_s is not None else self.tick_s / 2


class ReadOnlyStorage(Protocol):
    """What the core reads from the driver's storage. The core never writes: see `Ready`.

    Called synchronously from `ZabPeer.__init__`, `step`, `tick` and `advance` (on the
    server, on its event loop): every call must be short. Epochs and `last_zxid` are read only
    at construction (after a restart); the core tracks them after.
    """

    def accepted_epoch(self) -> int:
        """The durable accepted epoch (0 if never written)."""
        ...

    def current_epoch(self) -> int:
        """The durable current epoch (0 if never written)."""
        ...

    def last_zxid(self) -> int:
        """zxid of the last durable log record; the snapshot's zxid if the log has none after it."""
        ...

    def first_zxid(self) -> int:
        """The log holds every record after this zxid (older ones were purged or replaced by
        an installed snapshot); 0 if it holds the whole history."""
        ...

    def applied_zxid(self) -> int:
        """The zxid the driver's state machine is at when the core is constructed (the
        snapshot it loaded; 0 for an empty tree). The driver must NOT replay its log: the
        core hands every committed entry after this zxid to the driver in `Ready.committed`."""
        ...

    def entries_after(self, zxid: int, max_entries: int, max_bytes: int) -> Sequence[Entry] | None:
        """The first durable log records with a zxid above `zxid`, oldest first: a bounded
        batch, so that one call never reads a big log whole.

        At most `max_entries` records (>= 1), whose payloads total at most `max_bytes` (>= 1),
        except that the first record comes even if it alone is bigger: a non-empty result
        whenever any record lies above `zxid`, so a caller reading batch after batch always
        gets on. Returning fewer than the bounds allow is fine (the core asks again from the
        last zxid it got; empty means "no more"). None if records after `zxid` were purged
        (then a learner needs SNAP). Only asked for records the driver has already
        persisted (the core keeps everything newer in memory); records beyond what the core
        needs may come back and are ignored."""
        ...

    def snapshot(self) -> tuple[int, Any]:
        """A snapshot of the state machine now: (zxid it is at, its bytes, or a handle the
        driver knows how to send: the core only puts it in a Snap). Any zxid the driver has
        applied will do; the core sends the entries after it. Used for SNAP sync."""
        ...


@attrs.frozen
class SnapshotInstall:
    zxid: int
    data: bytes


@attrs.frozen
class Status:
    """Where the peer stands, for the server and 4lw: repeated in every Ready."""

    role: Role
    leader_id: int | None
    epoch: int  # the epoch being led or followed; the current epoch while looking
    serving: bool  # established leader, or learner that got UPTODATE
    last_zxid: int  # last zxid in the log (perhaps not yet durable)
    last_committed_zxid: int
    round: int  # election round (ZooKeeper's logical clock)
    config: Config  # the active configuration (committed)
    pending_config: Config | None  # a proposed one in our log, not yet known committed


@attrs.frozen
class _Handoff:
    """Core bookkeeping carried by a Ready so `advance` knows what became durable."""

    log_generation: int
    log_last: int
    applied: int


@attrs.frozen
class Ready:
    """What the driver must do, in this order. Then call `ZabPeer.advance(ready)`.

    1. PERSIST, in field order, and finish before step 2:
       a. `truncate_after`: drop every log record above this zxid, durably (Zab TRUNC).
       b. `snapshot`: install crash-atomically together with `entries`: afterwards storage
          holds this snapshot and a log that restarts after `snapshot.zxid` holding exactly
          `entries`; a crash leaves either the old snapshot+log or the new ones, never a mix
          (build it aside and rename). The driver also replaces its state machine by it.
          Never set together with `truncate_after`.
       c. `entries`: append (zxids strictly increase, above the log's last), then fsync once.
       d. `accepted_epoch`, then `current_epoch`: write each durably, in this order, only
          after (a-c) are durable. (ZOOKEEPER-4646/-4685: the synced history must be on disk
          before the current epoch that vouches for it, and both before ACK of NEWLEADER;
          the core emits that ACK only in a later Ready, after `advance` of this one.)
    2. SEND `messages` (to_id, message) in order, each on its FIFO link to `to_id`; drop
       those whose link is down. The core never puts in a Ready a message that depends on
       the same Ready's persistence: acknowledgements come in the Ready after `advance`.
       So a driver may also send before step 1 has finished (ours does: a leader's
       proposals leave before its own fsync, as in Raft; it counts itself toward a quorum
       only with its durable log end, which moves at `advance`).
    3. APPLY `committed` (zxid, payload) to the state machine in order. Every one is
       committed by a quorum and durable here (persisted by an earlier Ready).
    `status` is the peer's state after this Ready; `must_sync` tells whether step 1 has work.
    """

    truncate_after: int | None
    snapshot: SnapshotInstall | None
    entries: tuple[Entry, ...]
    accepted_epoch: int | None
    current_epoch: int | None
    messages: tuple[tuple[int, Message], ...]
    committed: tuple[Entry, ...]
    status: Status
    handoff: _Handoff = attrs.field(repr=False)

    @property
    def must_sync(self) -> bool:
        return bool(
            self.truncate_after is not None
            or self.snapshot is not None
            or self.entries
            or self.accepted_epoch is not None
            or self.current_epoch is not None
        )
