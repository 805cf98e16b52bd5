"""One server's data dir: layout, exclusive lock, start-up checks, recovery plan and retention.

Layout::

    data_dir/
      LOCK              flock()ed while a server runs; holds its pid (for the error message)
      log/log.<zxid>    transaction-log segments (see txnlog)
      snap/snapshot.<zxid>
      accepted_epoch    Zab epoch files (see epochs)
      current_epoch
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import shutil
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Generic, Self, TypeVar

import attrs

from ._fsutil import atomic_write, fsync_dir
from .epochs import EpochFile
from .errors import DataDirAccessError, DataDirLockedError, MissingHistoryError
from .snapshots import ADVICE, SnapshotStore, StoredSnapshot, read_snapshot_file, snapshot_name
from .txnlog import DEFAULT_SEGMENT_BYTES, TxnLog

log = logging.getLogger(__name__)

LOCK_NAME = "LOCK"
_INSTALL_MARKER = "INSTALL"
_INSTALL_PREFIX = "log.install."
_NEW_SNAPSHOT_FLAG = "NEW_SNAPSHOT"
_PROBE_NAME = ".write-probe"
T = TypeVar("T")


@attrs.frozen
class RecoveryPlan(Generic[T]):
    """How to rebuild state: load `snapshot` (if any), then apply `records` in order.

    `snapshot_zxid` is 0 when there is no snapshot; then `records` is the whole log.
    `snapshot` is what the plan's loader made of the file (`recover_plan`: a StoredSnapshot).
    """

    snapshot_zxid: int
    snapshot: T | None
    records: Iterator[tuple[int, bytes]]


@attrs.frozen
class LogPurge:
    """Log segments detached by `DataDir.detach_log`, for `DataDir.remove_detached`."""

    log: TxnLog  # the log they were detached from
    paths: tuple[Path, ...]


class DataDir:
    """Opens (creating if needed) and locks a data dir, recovering its log; close() releases it.

    Threads: the log is the caller's to serialise (the server's `Database.log_lock`), as are
    epoch files. What changes the set of files beside the log's own appends, truncations and
    rolls (snapshot writes and purges, a snapshot install, removing purged log segments)
    takes `_files_lock` here, so a purge in one thread can unlink and fsync without the log
    lock while a snapshot install may run in another. Lock order: the log lock, then
    `_files_lock`; never the other way round.
    """

    def __init__(self, path: Path, segment_bytes: int = DEFAULT_SEGMENT_BYTES) -> None:
        self.path = Path(path)
        self._files_lock = threading.Lock()
        self._lock_fd: int | None = None
        self._prepare()
        self._lock()
        self.segment_bytes = segment_bytes
        try:
            self._finish_install()
            self.log = TxnLog.recover(self.path / "log", segment_bytes)
            self.snapshots = SnapshotStore(self.path / "snap")
            self.accepted_epoch = EpochFile(self.path / "accepted_epoch")
            self.current_epoch = EpochFile(self.path / "current_epoch")
        except BaseException:
            self._unlock()
            raise

    def _prepare(self) -> None:
        """Create the layout and prove we can read and write it, with one-line errors."""
        fix = "create it, or fix its owner/permissions, or choose another data_dir"
        try:
            created = not self.path.exists()
            self.path.mkdir(parents=True, exist_ok=True)
            for sub in ("log", "snap"):
                if not (self.path / sub).is_dir():
                    (self.path / sub).mkdir()
                    created = True
            if created:
                fsync_dir(self.path)
                fsync_dir(self.path.parent)
        except OSError as exc:
            raise DataDirAccessError(f"data dir {self.path} cannot be set up ({_reason(exc)}); {fix}") from None
        if not os.access(self.path, os.R_OK | os.W_OK | os.X_OK):
            raise DataDirAccessError(f"data dir {self.path} is not readable and writable by this user; {fix}")
        for directory in (self.path, self.path / "log", self.path / "snap"):
            probe = directory / _PROBE_NAME
            try:  # os.access says yes to root even on a read-only mount: really write
                fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.close(fd)
                probe.unlink()
                os.listdir(directory)
            except OSError as exc:
                raise DataDirAccessError(f"data dir {directory} is not readable and writable ({_reason(exc)}); {fix}") from None

    def _lock(self) -> None:
        lock_path = self.path / LOCK_NAME
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            owner = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise DataDirLockedError(
                    f"data dir {self.path} is in use by another server (pid {owner}, lock {lock_path}); "
                    f"stop that server or give this one its own data_dir"
                ) from None
            raise DataDirAccessError(f"cannot lock {lock_path} ({_reason(exc)})") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            fd, self._lock_fd = self._lock_fd, None
            os.close(fd)  # closing the last descriptor releases the flock

    def recover_plan(self) -> RecoveryPlan[StoredSnapshot]:
        """The newest valid snapshot and the log records after it.

        Raises MissingHistoryError if the log was purged past that snapshot (for instance
        because the newer snapshot it was purged for turned out corrupt).
        """
        return self.recover(lambda path, zxid: read_snapshot_file(path, zxid, ADVICE))

    def recover(self, load: Callable[[Path, int], T]) -> RecoveryPlan[T]:
        """`recover_plan`, the newest snapshot that `load(path, zxid)` loads (reading, checking
        and perhaps decoding it in one pass; CorruptSnapshotError moves on to an older one)."""
        latest = self.snapshots.latest_loaded(load)
        snap_zxid, payload = latest if latest is not None else (0, None)
        if self.log.base_zxid > snap_zxid:
            where = f"the newest valid snapshot is at zxid {snap_zxid:#x}" if latest else "there is no valid snapshot"
            raise MissingHistoryError(
                f"data dir {self.path}: the log only holds records after zxid {self.log.base_zxid:#x} but "
                f"{where}; the history between is missing: resync this server (move the data dir aside)"
            )
        return RecoveryPlan(snap_zxid, payload, self.log.read_after(snap_zxid))

    # -- Zab SNAP: replace snapshot and log together, crash-atomically ----------------------

    def install_snapshot(self, zxid: int, payload: bytes | Path, entries: Sequence[tuple[int, bytes]]) -> None:
        """Make the data dir hold snapshot `zxid` and a log holding exactly `entries` after it.

        `payload`: an opaque payload to write (version 1), or a complete snapshot file already
        written in the snapshot directory under a temp name (a SNAP received: it is renamed).

        A crash leaves either the old snapshot and log or the new ones, never a mix: the new log
        is built aside in `log.install.<zxid>/`, the snapshot written, and only then the
        INSTALL marker (the commit point); the directory swap after it is redone at start.
        The caller holds the log lock (the log is replaced).
        """
        with self._files_lock:
            self._install_snapshot(zxid, payload, entries)

    def _install_snapshot(self, zxid: int, payload: bytes | Path, entries: Sequence[tuple[int, bytes]]) -> None:
        staging = self.path / f"{_INSTALL_PREFIX}{zxid:016x}"
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir()
        fsync_dir(self.path)
        if zxid not in self.snapshots.list():
            (staging / _NEW_SNAPSHOT_FLAG).touch()  # undo it if the install never commits
        new_log = TxnLog(staging, self.segment_bytes).open()
        new_log.start_at(zxid)
        new_log.append(entries)
        new_log.sync()
        new_log.close()
        fsync_dir(staging)
        if isinstance(payload, Path):
            self.snapshots.adopt(zxid, payload)
        else:
            self.snapshots.write(zxid, payload)
        atomic_write(self.path / _INSTALL_MARKER, [f"{zxid:016x}\n".encode()])
        self.log.close()
        self._finish_install()
        self.log = TxnLog.recover(self.path / "log", self.segment_bytes)

    def _finish_install(self) -> None:
        """Roll a committed install forward; roll an uncommitted one back."""
        marker = self.path / _INSTALL_MARKER
        if marker.exists():
            zxid = int(marker.read_text().strip(), 16)
            staging = self.path / f"{_INSTALL_PREFIX}{zxid:016x}"
            if staging.exists():
                live, old = self.path / "log", self.path / "log.old"
                if old.exists():
                    shutil.rmtree(old)
                if live.exists():
                    live.rename(old)
                staging.rename(live)
                (live / _NEW_SNAPSHOT_FLAG).unlink(missing_ok=True)
                fsync_dir(self.path)
                shutil.rmtree(old, ignore_errors=True)
            marker.unlink()
            fsync_dir(self.path)
            log.info("data dir %s: installed the snapshot at zxid %#x with its log", self.path, zxid)
        for staging in self.path.glob(f"{_INSTALL_PREFIX}*"):
            zxid = int(staging.name[len(_INSTALL_PREFIX) :], 16)
            if (staging / _NEW_SNAPSHOT_FLAG).exists():
                (self.path / "snap" / snapshot_name(zxid)).unlink(missing_ok=True)
            shutil.rmtree(staging)
            fsync_dir(self.path)
            log.warning("data dir %s: dropped an unfinished snapshot install at zxid %#x", self.path, zxid)
        shutil.rmtree(self.path / "log.old", ignore_errors=True)

    # -- snapshots and retention ------------------------------------------------------------

    def write_snapshot(self, zxid: int, payload: bytes | bytearray | memoryview) -> Path:
        """Store a snapshot durably (see SnapshotStore.write); no log lock needed."""
        with self._files_lock:  # an install may be writing snapshot files too
            return self.snapshots.write(zxid, payload)

    def purge(self, retain_count: int) -> int | None:
        """Keep the newest `retain_count` valid snapshots and the log needed after the oldest.

        Returns the zxid of the oldest snapshot kept, or None if fewer than `retain_count`
        snapshots validate (then nothing is purged). For a single thread; with a log lock,
        call the steps apart and hold the lock over `detach_log` only:
        `purge_snapshots`, then `detach_log`, then `remove_detached`.
        """
        floor = self.purge_snapshots(retain_count)
        if floor is not None:
            self.remove_detached(self.detach_log(floor))
        return floor

    def purge_snapshots(self, retain_count: int) -> int | None:
        """Remove the snapshots older than the newest `retain_count` valid ones (reading and
        checking those, unlinking, fsyncing snap/: slow, so no log lock). Returns the zxid of
        the oldest snapshot kept, the log purge's floor, or None (then nothing was removed)."""
        with self._files_lock:
            return self.snapshots.purge(retain_count)

    def detach_log(self, floor: int) -> LogPurge:
        """Under the log lock, quick: take the segments holding only records <= `floor` (all
        but the newest) out of the log (TxnLog.detach_purgeable). Their files stay until
        `remove_detached`: a crash before then leaves a longer log, which recovers."""
        return LogPurge(self.log, tuple(self.log.detach_purgeable(floor, keep_segments=1)))

    def remove_detached(self, purge: LogPurge) -> None:
        """Without the log lock: unlink what `detach_log` took and fsync log/ (slow)."""
        with self._files_lock:
            if purge.log is not self.log:
                # A snapshot install replaced the log meanwhile: the old files went with the
                # old directory, and a name may now be a segment of the new log.
                return
            purge.log.remove_segments(purge.paths)

    def close(self) -> None:
        """Sync and close the log, then release the lock."""
        try:
            self.log.close()
        finally:
            self._unlock()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"DataDir({str(self.path)!r})"


def _reason(exc: OSError) -> str:
    return exc.strerror or exc.__class__.__name__
