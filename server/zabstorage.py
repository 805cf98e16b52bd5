"""The Zab core's read-only view of a server's data dir and tree (`zab.api.ReadOnlyStorage`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from . import snapshot_child
from .snap_stream import PipedSnapshot
from .snapshot_codec import encode_tree
from .storage import PurgedHistoryError

if TYPE_CHECKING:
    from .database import Database


class ZabStorage:
    """The core's read-only view of this server's data dir and tree."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def accepted_epoch(self) -> int:
        assert self.db.dir is not None
        return self.db.dir.accepted_epoch.read()

    def current_epoch(self) -> int:
        assert self.db.dir is not None
        return self.db.dir.current_epoch.read()

    def last_zxid(self) -> int:
        assert self.db.dir is not None
        return max(self.db.dir.log.last_zxid, self.db.snapshot_zxid)

    def first_zxid(self) -> int:
        assert self.db.dir is not None
        return self.db.dir.log.base_zxid

    def applied_zxid(self) -> int:
        return self.db.snapshot_zxid

    def entries_after(self, zxid: int, max_entries: int, max_bytes: int) -> Sequence[tuple[int, bytes]] | None:
        """One bounded batch (`TxnLog.read_batch`): the core calls this on the event loop.

        Under `log_lock`, as the log is not thread-safe and a worker thread may be truncating
        it or installing a snapshot; `Database.write_snapshot` holds the lock only briefly."""
        assert self.db.dir is not None
        with self.db.log_lock:
            try:
                return self.db.dir.log.read_batch(zxid, max_entries, max_bytes)
            except PurgedHistoryError:
                return None

    def snapshot(self) -> tuple[int, bytes | PipedSnapshot]:
        """The tree now, for a SNAP: a forked child encodes it into a pipe that the driver
        streams (server/snap_stream.py), so the loop pays for the fork only; without fork,
        the snapshot file's bytes, encoded here."""
        tree = self.db.tree
        if snapshot_child.can_fork():
            return tree.last_zxid, PipedSnapshot(snapshot_child.start_to_pipe(tree))
        return tree.last_zxid, encode_tree(tree)
