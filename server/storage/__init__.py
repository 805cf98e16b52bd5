"""Durable storage: the transaction log, snapshots, epoch files, and the data dir holding them.

Plain blocking code that knows nothing of the tree or the record format: a transaction is
`(zxid, payload bytes)` and a snapshot is `(zxid, payload bytes)`. The Trio server appends and
syncs on its event loop (an fsync costs less than a worker-thread hand-off), batching appends
before each `sync()`; long operations (opening, snapshots, SNAP installs, truncations) run in a
worker thread, one at a time with the log (`Database.log_lock`), except the slow parts of a
purge (deleting snapshots and segments, fsyncing directories), which hold only the data dir's
own lock (see `DataDir`), so that appends never wait for them.

The log keeps its active segment padded with zeros (written and fsynced, 1 MiB at a time) ahead
of its records, so that an append's fdatasync changes no file metadata: see `txnlog`. Recovery
reads zeros after the last record as the end of the log, not as damage: see `_logformat`.
"""

from .datadir import DataDir, LogPurge, RecoveryPlan
from .epochs import EpochFile
from .errors import (
    CorruptEpochError,
    CorruptLogError,
    CorruptSnapshotError,
    DataDirAccessError,
    DataDirLockedError,
    LogFailedError,
    MissingHistoryError,
    PurgedHistoryError,
    StorageError,
)
from .snapshots import SnapshotStore
from .txnlog import DEFAULT_SEGMENT_BYTES, RecoveryInfo, TxnLog

__all__ = [
    "DEFAULT_SEGMENT_BYTES",
    "CorruptEpochError",
    "CorruptLogError",
    "CorruptSnapshotError",
    "DataDir",
    "DataDirAccessError",
    "DataDirLockedError",
    "EpochFile",
    "LogFailedError",
    "LogPurge",
    "MissingHistoryError",
    "PurgedHistoryError",
    "RecoveryInfo",
    "RecoveryPlan",
    "SnapshotStore",
    "StorageError",
    "TxnLog",
]
