"""The server's replicated state on disk and in memory: the data tree, its log and snapshots.

`open` and `write_snapshot` are blocking and called from worker threads; `persist` (append and
fsync a batch) is called on the Trio thread, where it costs less than a thread hand-off; the
tree is only ever touched on the Trio thread (and read by the forked child of
`fork_snapshot`, in its own copy of the process).

`log_lock` serialises the log between those threads, and whoever holds it stalls the event
loop's next `persist` (and the Zab driver's appends, which take it too). So `write_snapshot`
holds it only to roll the log and pick the segments to purge, never over its slow parts:
writing the snapshot, checking and deleting old ones, unlinking segments, fsyncing directories.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from ccore.znodes.codec import decode_txn, encode_snapshot, encode_txn
from ccore.znodes.tree import DataTree
from ccore.znodes.txn import Txn

from . import snapshot_child
from .snapshot_child import SnapshotChild
from .snapshot_codec import load_tree
from .stats import TimeSummary
from .storage import DataDir

log = logging.getLogger(__name__)


class Database:
    def __init__(self, data_dir: Path, snap_count: int = 100_000, snap_retain_count: int = 3) -> None:
        self.path = Path(data_dir)
        self.snap_count = snap_count
        self.snap_retain_count = snap_retain_count
        self.tree = DataTree()
        self.dir: DataDir | None = None
        self.txns_since_snapshot = 0
        self._snap_threshold = self._next_threshold()
        self.snapshot_zxid = 0
        # persist() (Trio thread), write_snapshot() and the Zab driver's installs (worker
        # threads) all touch the log. Hold it only briefly: the event loop waits for it.
        self.log_lock = threading.Lock()
        # For /metrics (ZooKeeper's fsynctime, snapshottime, dbinittime), all in ms.
        self.fsync_time = TimeSummary()
        self.snapshot_time = TimeSummary()
        self.init_time_ms = 0.0
        # A snapshot file is being written (by a child or a thread): its writeback competes
        # with the log's fsyncs, which then go off the loop (replication.py).
        self.snapshot_writing = False

    def open(self, replay: bool = True) -> DataTree:
        """Lock the data dir and rebuild the tree: newest valid snapshot, then the log after it.

        A replicated server passes replay=False: its log may hold transactions that were never
        committed, and the Zab core hands back the committed ones once it knows which they are.
        """
        started = time.monotonic()
        self.dir = DataDir(self.path)
        # The newest snapshot that checks out, decoded as it is read (snapshot_codec.load_tree).
        plan = self.dir.recover(load_tree)
        tree = plan.snapshot if plan.snapshot is not None else DataTree()
        self.snapshot_zxid = plan.snapshot_zxid
        replayed = 0
        for zxid, payload in plan.records if replay else ():
            txn = decode_txn(payload)
            if txn.zxid != zxid:
                raise ValueError(f"log record at zxid {zxid:#x} holds a transaction for zxid {txn.zxid:#x}")
            tree.apply(txn)
            replayed += 1
        self.tree = tree
        self.txns_since_snapshot = replayed
        self.init_time_ms = (time.monotonic() - started) * 1000
        log.info(
            "data dir %s: snapshot at zxid %#x, %d transactions replayed, last zxid %#x, %d nodes, %d sessions",
            self.path,
            plan.snapshot_zxid,
            replayed,
            tree.last_zxid,
            len(tree.nodes),
            len(tree.sessions),
        )
        return tree

    @property
    def last_zxid(self) -> int:
        return self.tree.last_zxid

    def encode(self, txns: Sequence[Txn]) -> list[tuple[int, bytes]]:
        return [(t.zxid, encode_txn(t)) for t in txns]

    def persist(self, records: Sequence[tuple[int, bytes]]) -> None:
        """Append a batch and fsync it once (group commit). Blocking (the commit loop calls it
        on the Trio thread: see ZKServer._commit_loop)."""
        assert self.dir is not None
        with self.log_lock:
            self.dir.log.append(records)
            self.sync_log()

    def sync_log(self) -> None:
        """fsync the log, timed (the caller holds `log_lock`)."""
        assert self.dir is not None
        started = time.monotonic()
        self.dir.log.sync()
        self.fsync_time.observe((time.monotonic() - started) * 1000)

    def snapshot_due(self, applied: int) -> bool:
        self.txns_since_snapshot += applied
        return self.txns_since_snapshot >= self._snap_threshold

    def _next_threshold(self) -> int:
        # Like ZooKeeper, snapshot after snapCount/2 + a random share of snapCount/2
        # transactions, so the servers of an ensemble do not all snapshot at the same time.
        half = max(1, self.snap_count // 2)
        return half + random.randrange(half)

    def _snapshot_started(self) -> None:
        self.txns_since_snapshot = 0
        self._snap_threshold = self._next_threshold()

    def take_snapshot(self) -> tuple[int, bytes]:
        """Encode the tree now (on the Trio thread, so it is consistent at one zxid)."""
        self._snapshot_started()
        return self.tree.last_zxid, encode_snapshot(self.tree)

    def fork_snapshot(self) -> SnapshotChild:
        """Start a child process writing the snapshot of the tree as it is now (on the Trio
        thread: the fork takes milliseconds, the encoding happens in the child)."""
        assert self.dir is not None
        self._snapshot_started()
        child = snapshot_child.start(self.tree, self.dir.snapshots.path(self.tree.last_zxid))
        self.snapshot_writing = True
        return child

    def finish_snapshot(self, child: SnapshotChild) -> None:
        """Wait for the child, then purge past the retention count. Blocking: run it in a
        thread. Raises SnapshotChildError if the child wrote nothing."""
        try:
            size = child.wait()
        finally:
            self.snapshot_writing = False
        self._purge_after(child.zxid, size)

    def write_snapshot(self, zxid: int, payload: bytes) -> None:
        """Write, then purge past the retention count. Blocking: run it in a thread.

        Holds `log_lock` for one fdatasync (closing the active segment) and some list
        bookkeeping only, so `persist` on the event loop never waits behind the purge's
        reads, unlinks and directory fsyncs. Each step leaves a data dir that recovers (see
        DataDir.detach_log): old snapshots go first, then the log segments before the oldest
        snapshot kept, oldest first.
        """
        d = self.dir
        assert d is not None
        self.snapshot_writing = True
        try:
            d.write_snapshot(zxid, payload)
        finally:
            self.snapshot_writing = False
        self._purge_after(zxid, len(payload))

    def _purge_after(self, zxid: int, size: int) -> None:
        d = self.dir
        assert d is not None
        floor = d.purge_snapshots(self.snap_retain_count)
        with self.log_lock:
            # Start a new segment, so the one just closed can go at a later purge.
            d.log.roll()
            detached = d.detach_log(floor) if floor is not None else None
        if detached is not None:
            d.remove_detached(detached)
        log.info("snapshot at zxid %#x written (%d bytes)", zxid, size)

    def close(self) -> None:
        if self.dir is not None:
            self.dir.close()
            self.dir = None
