"""The storage layer's exceptions: one flat family, each message one line saying what to do."""

from __future__ import annotations


class StorageError(Exception):
    """Base class: the data dir cannot be used as it is; the message says what to do."""


class CorruptLogError(StorageError):
    """The transaction log is damaged somewhere other than a torn tail."""


class CorruptSnapshotError(StorageError):
    """A snapshot file does not validate (bad header, size or CRC)."""


class CorruptEpochError(StorageError):
    """An epoch file exists but does not hold a valid epoch number."""


class DataDirLockedError(StorageError):
    """Another process holds the data dir's lock file."""


class DataDirAccessError(StorageError):
    """The data dir is missing, not a directory, or not readable and writable."""


class MissingHistoryError(StorageError):
    """The log does not reach back to the snapshot (or zxid) that recovery needs."""


class PurgedHistoryError(StorageError, LookupError):
    """`read_after(zxid)` was asked for history older than the log still holds."""


class LogFailedError(StorageError):
    """An earlier write or fsync failed; the log's on-disk state is unknown until restart."""
