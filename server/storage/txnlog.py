"""The append-only transaction log: `(zxid, payload)` records in CRC-framed segment files.

Blocking code, not thread-safe: the server calls it from one thread at a time (appends on the
Trio thread, truncations and installs in a worker thread), batching many records per
`append` + `sync` (group commit); the one exception is `remove_segments`, which may run beside
the others (see there). The on-disk format is described in `_logformat`.

Durability rules:
- `append` only writes (page cache); nothing is durable until `sync` returns.
- `sync` is one fdatasync of the active segment: earlier segments were fsynced when rolled.
- A new segment's header is fsynced and the directory fsynced before records go into it.
- `truncate_after` and `purge` fsync what they change before returning. `purge` is also
  there in two steps, `detach_purgeable` (memory only) and `remove_segments` (unlinks and a
  directory fsync), so that the server holds its log lock over the first only.
- Any OSError while changing the log poisons it (`LogFailedError` afterwards): after a failed
  fsync the page cache may have dropped the data, so retrying would lie. Restart and recover.

Preallocation (like ZooKeeper's `zookeeper.preAllocSize`): the active segment is padded with
zero bytes, written and fsynced ahead of the write position, so that an append overwrites
allocated, written blocks and its fdatasync flushes data only, with no size or extent change
to commit to the journal. Measured on ext4 on a virtual disk, fdatasync after a 250-byte
append: p50 ~170 us when it grows the file, ~112 us over fsynced zeros. Not fallocate: its
extents stay "unwritten" until the first write into each block converts them, a metadata
change that costs what growing the file does (~170 us measured for those writes).
- Padding is added `preallocate_bytes` (1 MiB) at a time, never past `segment_bytes`: when a
  segment is created, at open and after a truncation (fsynced there before any record goes
  in), and when a write runs past it (that write grew the file, so the fdatasync after it
  commits metadata anyway, and takes the next step along). A step blocks the appending thread
  (the Trio loop): writing and syncing one took ~0.8 ms for 1 MiB here, ~3 ms for 4 MiB and
  ~12 ms for 16 MiB, hence the small step.
- `_Segment.size` is where the records end (the roll threshold counts records, not padding);
  `file_size` is the file's length. A rolled segment gives its padding back (truncated).
- `truncate_after` cuts the file at the truncation point (a journaled size change: atomic)
  and pads it again with freshly written zeros, so removed records cannot be read back.
- Recovery reads zeros after the last record as the end of the log (see `_logformat`).
Reading: each segment keeps a sparse in-memory index, (zxid, offset) of its first record and
then of one record every `index_stride_bytes` (64 KiB), built by the recovery scan and kept up
by appends and truncations. A read after any zxid starts at the nearest point at or before it,
so `read_batch` (the Zab core's bounded reads, on the event loop) costs what it returns plus
at most one stride, wherever in a 64 MiB segment it starts. About 1000 points per full
segment: a few tens of KiB of memory.

- Relies on ext4's default data=ordered, as appends always did: data written into newly
  allocated blocks reaches the disk before the size that exposes them.
- A power failure during an fdatasync may persist the blocks of a multi-record batch out of
  order (no size update orders them any more): zeros, then a whole record. Recovery refuses
  that as corruption, as it must a lost write, which looks the same (move the data dir aside
  and let the server resync).
"""

from __future__ import annotations

import bisect
import logging
import os
from collections.abc import Generator, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

import attrs

from . import _logformat as fmt
from ._fsutil import datasync, fsync_dir, write_all
from .errors import CorruptLogError, LogFailedError, PurgedHistoryError

log = logging.getLogger(__name__)

DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024
DEFAULT_PREALLOCATE_BYTES = 1024 * 1024
DEFAULT_INDEX_STRIDE_BYTES = 64 * 1024
# A batch read opens the file with this much buffering: a 1 MiB buffer (what a replay from
# the start uses) would read 1 MiB for a probe of one record.
_BATCH_READ_BUFFER = 64 * 1024
_ZEROS = bytes(256 * 1024)


@attrs.define
class _Segment:
    path: Path
    first_zxid: int
    prev_zxid: int
    last_zxid: int  # == prev_zxid while the segment holds no record yet
    size: int  # where its records end: the next one is written here
    file_size: int  # the file's length: `size`, then zero padding
    # The sparse index (see the module docstring): zxids and offsets of some records, ascending.
    index_zxids: list[int] = attrs.Factory(list)
    index_offsets: list[int] = attrs.Factory(list)

    def note_record(self, zxid: int, offset: int, stride: int) -> None:
        """Record `zxid` starts at `offset`: make it an index point if the last is a stride back."""
        if not self.index_offsets or offset - self.index_offsets[-1] >= stride:
            self.index_zxids.append(zxid)
            self.index_offsets.append(offset)

    def start_offset(self, after: int) -> int:
        """Where to start reading for the records above `after`: the last index point at or
        below it (its record and a few more are skipped), else the first record."""
        i = bisect.bisect_right(self.index_zxids, after)
        return self.index_offsets[i - 1] if i else fmt.SEGMENT_HEADER_SIZE

    def cut_index(self, size: int) -> None:
        """The records end at `size` now (truncated): forget points at or past it."""
        i = bisect.bisect_left(self.index_offsets, size)
        del self.index_zxids[i:], self.index_offsets[i:]


@attrs.frozen
class RecoveryInfo:
    """What `TxnLog.open` found and repaired."""

    segments: int
    records: int
    truncated_bytes: int = 0
    torn_at: tuple[Path, int] | None = None
    removed: tuple[Path, ...] = ()


class TxnLog:
    """Segmented append-only log; call `open()` (or `TxnLog.recover(...)`) before use."""

    def __init__(
        self,
        directory: Path,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        preallocate_bytes: int = DEFAULT_PREALLOCATE_BYTES,
        index_stride_bytes: int = DEFAULT_INDEX_STRIDE_BYTES,
    ) -> None:
        if index_stride_bytes < 1:
            raise ValueError("index_stride_bytes must be 1 or more")
        if segment_bytes <= fmt.SEGMENT_HEADER_SIZE:
            raise ValueError(f"segment_bytes must exceed {fmt.SEGMENT_HEADER_SIZE}")
        if preallocate_bytes < 0:
            raise ValueError("preallocate_bytes must be 0 (no padding) or more")
        self.directory = Path(directory)
        self.segment_bytes = segment_bytes
        self.preallocate_bytes = preallocate_bytes
        self.index_stride_bytes = index_stride_bytes
        self.recovery: RecoveryInfo | None = None
        self._segments: list[_Segment] = []
        self._fd: int | None = None  # open on the last segment while it takes appends
        self._dirty = False
        self._synced_zxid = 0
        self._failed: BaseException | None = None
        self._opened = False

    @classmethod
    def recover(
        cls,
        directory: Path,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        preallocate_bytes: int = DEFAULT_PREALLOCATE_BYTES,
        index_stride_bytes: int = DEFAULT_INDEX_STRIDE_BYTES,
    ) -> TxnLog:
        """Open the log in `directory`, validating every record and repairing a torn tail."""
        return cls(directory, segment_bytes, preallocate_bytes, index_stride_bytes).open()

    # -- properties -------------------------------------------------------------------------

    @property
    def last_zxid(self) -> int:
        """zxid of the last record appended (synced or not); 0 for an empty log."""
        return self._segments[-1].last_zxid if self._segments else 0

    @property
    def last_synced_zxid(self) -> int:
        """zxid of the last record known to be on stable storage: safe to acknowledge."""
        return self._synced_zxid

    @property
    def base_zxid(self) -> int:
        """The log holds every record after this zxid (older ones were purged); 0 if none."""
        return self._segments[0].prev_zxid if self._segments else 0

    @property
    def segments(self) -> list[Path]:
        return [seg.path for seg in self._segments]

    # -- open and recover -------------------------------------------------------------------

    def open(self) -> TxnLog:
        """Scan and validate every segment, truncate a torn tail, and get ready to append.

        Raises CorruptLogError for damage that is not a torn tail: a bad record with valid
        records after it, a bad segment header, zxids out of order, or a gap between segments.
        """
        if self._opened:
            raise RuntimeError("TxnLog.open() called twice")
        self.directory.mkdir(parents=True, exist_ok=True)
        found = sorted(
            (zxid, path) for path in self.directory.iterdir() if (zxid := fmt.parse_segment_name(path.name)) is not None
        )
        records = truncated = 0
        torn_at: tuple[Path, int] | None = None
        removed: list[Path] = []
        for index, (name_zxid, path) in enumerate(found):
            is_last = index == len(found) - 1
            data = path.read_bytes()
            prev = self._segments[-1] if self._segments else None
            scan = fmt.scan_segment(
                path,
                name_zxid,
                data,
                prev.path if prev else None,
                prev.last_zxid if prev else None,
                is_last,
                self.index_stride_bytes,
            )
            if scan is None:  # a torn header: the crash came while the segment was created
                path.unlink()
                removed.append(path)
                fsync_dir(self.directory)
                truncated += len(data)
                continue
            records += scan.records
            file_size = len(data)
            if scan.torn_offset is not None:
                # Cut, padding and all (the padding is written again below): the torn bytes
                # can then never be mistaken for records, whatever was left after them.
                torn_at = (path, scan.torn_offset)
                truncated += len(data) - scan.torn_offset
                os.truncate(path, scan.torn_offset)
                file_size = scan.torn_offset
            seg = _Segment(path, scan.first_zxid, scan.prev_zxid, scan.last_zxid, scan.end, file_size)
            seg.index_zxids = [zxid for zxid, _ in scan.index]
            seg.index_offsets = [offset for _, offset in scan.index]
            self._segments.append(seg)
        if self._segments:
            last = self._segments[-1]
            self._fd = os.open(last.path, os.O_WRONLY)
            self._pad(last)
            # What we recovered may sit only in the page cache (the process, not the machine,
            # crashed): make it durable before anyone is told about last_zxid. The padding
            # goes with it, so the first append overwrites durable zeros.
            os.fsync(self._fd)
            self._dirty = False
            fsync_dir(self.directory)
        self._synced_zxid = self.last_zxid
        self._opened = True
        self.recovery = RecoveryInfo(
            segments=len(self._segments),
            records=records,
            truncated_bytes=truncated,
            torn_at=torn_at,
            removed=tuple(removed),
        )
        log.info(
            "txn log %s: %d segments, %d records, zxids (%#x, %#x]",
            self.directory,
            len(self._segments),
            records,
            self.base_zxid,
            self.last_zxid,
        )
        return self

    # -- writing ----------------------------------------------------------------------------

    def append(self, records: Sequence[tuple[int, bytes]]) -> None:
        """Write records (zxids strictly increasing, above last_zxid); durable after `sync()`."""
        self._check_usable()
        last = self.last_zxid
        for zxid, payload in records:
            if not isinstance(zxid, int) or not last < zxid <= fmt.MAX_ZXID:
                raise ValueError(f"zxid {zxid!r} must be an integer above {last:#x}")
            if len(payload) > fmt.MAX_PAYLOAD_BYTES:
                raise ValueError(f"payload of zxid {zxid:#x} is {len(payload)} bytes, over the limit")
            last = zxid
        try:
            buf = bytearray()
            for zxid, payload in records:
                if self._fd is None or self._segments[-1].last_zxid == self._segments[-1].prev_zxid:
                    self._activate_segment(zxid)
                seg = self._segments[-1]
                seg.note_record(zxid, seg.size + len(buf), self.index_stride_bytes)
                buf += fmt.encode_record(zxid, payload)
                seg.last_zxid = zxid
                if seg.size + len(buf) >= self.segment_bytes:
                    self._write(buf)
                    buf.clear()
                    self.roll()
            self._write(buf)
        except OSError as exc:
            self._fail(exc)
            raise

    def _write(self, buf: bytearray) -> None:
        if buf:
            assert self._fd is not None
            seg = self._segments[-1]
            _pwrite_all(self._fd, buf, seg.size)
            seg.size += len(buf)
            self._dirty = True
            if seg.size > seg.file_size:
                # This write grew the file, so the coming fdatasync commits metadata anyway:
                # the next step of padding goes with it, and later appends overwrite zeros.
                seg.file_size = seg.size
                self._pad(seg)

    def _pad(self, seg: _Segment) -> None:
        """Write zeros ahead of `seg`'s records, up to one step past them (not yet synced).

        The caller syncs before the padding is relied on: an fdatasync of a write into zeros
        not yet durable would still commit their allocation and size.
        """
        target = min(seg.size + self.preallocate_bytes, self.segment_bytes)
        if seg.file_size >= target:
            return
        assert self._fd is not None
        offset = seg.file_size
        while offset < target:
            count = min(len(_ZEROS), target - offset)
            _pwrite_all(self._fd, memoryview(_ZEROS)[:count], offset)
            offset += count
        seg.file_size = target
        self._dirty = True

    def _activate_segment(self, first_zxid: int) -> None:
        """Make the segment that takes record `first_zxid` the open, last one.

        Reuses the last segment if it holds no record yet and is named `first_zxid`; otherwise
        creates `log.<first_zxid>` (header fsynced, then the directory) and, if the last
        segment was empty, removes it only afterwards, so the base zxid is always on disk.
        """
        last = self._segments[-1] if self._segments else None
        empty = last if last is not None and last.last_zxid == last.prev_zxid else None
        if empty is not None and empty.first_zxid == first_zxid:
            if self._fd is None:  # rolled while empty, so unpadded: _write pads it
                self._fd = os.open(empty.path, os.O_WRONLY)
            return
        if self._fd is not None and empty is None:
            return
        self._close_fd()
        self._create_segment(first_zxid, self.last_zxid)
        if empty is not None:
            self._segments.remove(empty)
            empty.path.unlink()
            fsync_dir(self.directory)

    def start_at(self, base_zxid: int) -> None:
        """Make an empty log begin after `base_zxid` (the snapshot a Zab SNAP installs): it
        then holds every record after it, and the first record appended must be above it."""
        self._check_usable()
        if self._segments:
            raise ValueError(f"log {self.directory} is not empty; start_at({base_zxid:#x}) needs an empty log")
        self._create_segment(base_zxid + 1, base_zxid)
        self._synced_zxid = base_zxid

    def _create_segment(self, first_zxid: int, prev_zxid: int) -> None:
        """Create `log.<first_zxid>` as the open, last segment: header and padding fsynced,
        then the directory, before any record goes in."""
        path = self.directory / fmt.segment_name(first_zxid)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        self._fd = fd
        header = fmt.SEGMENT_HEADER_SIZE
        seg = _Segment(path, first_zxid, prev_zxid, prev_zxid, header, header)
        self._segments.append(seg)
        write_all(fd, fmt.encode_segment_header(first_zxid, prev_zxid))
        self._pad(seg)
        os.fsync(fd)
        self._dirty = False
        fsync_dir(self.directory)

    def sync(self) -> None:
        """Make every appended record durable: one fdatasync for the whole batch."""
        self._check_usable()
        if self._dirty:
            assert self._fd is not None
            try:
                datasync(self._fd)
            except OSError as exc:
                self._fail(exc)
                raise
            self._dirty = False
        self._synced_zxid = self.last_zxid

    def roll(self) -> None:
        """Close the active segment (fsynced, its padding cut off); the next append starts a
        new segment."""
        self._check_usable()
        if self._fd is None:
            return
        try:
            seg = self._segments[-1]
            if seg.file_size > seg.size:
                # It takes no more records: give the padding back, so that the file holds
                # exactly its records (disk use is what the sizes say). The fdatasync below
                # makes the new size durable; a crash before it leaves valid padding.
                os.ftruncate(self._fd, seg.size)
                seg.file_size = seg.size
                self._dirty = True
            if self._dirty:
                datasync(self._fd)
                self._dirty = False
        except OSError as exc:
            self._fail(exc)
            raise
        finally:
            self._close_fd()
        self._synced_zxid = self.last_zxid

    def truncate_after(self, zxid: int) -> None:
        """Drop every record with a zxid above `zxid`, durably (Zab TRUNC).

        Raises PurgedHistoryError if `zxid` is older than the log's base: the records at and
        below it are gone, so the caller needs a snapshot (SNAP), not a truncation.
        """
        self._check_usable()
        if zxid >= self.last_zxid:
            return
        if zxid < self.base_zxid:
            raise PurgedHistoryError(
                f"txn log {self.directory}: cannot truncate to zxid {zxid:#x}, the log starts "
                f"after {self.base_zxid:#x}; sync this server from a snapshot instead"
            )
        try:
            self._close_fd()
            # Newest first, so a crash leaves a valid prefix; the oldest segment stays (perhaps
            # emptied) so that the base zxid stays on disk.
            while len(self._segments) > 1 and self._segments[-1].first_zxid > zxid:
                self._segments.pop().path.unlink()
            fsync_dir(self.directory)
            self._cut_last_segment(zxid)
        except (OSError, CorruptLogError) as exc:
            self._fail(exc)
            raise
        self._synced_zxid = self.last_zxid
        log.info("txn log %s: truncated after zxid %#x", self.directory, zxid)

    def _cut_last_segment(self, zxid: int) -> None:
        seg = self._segments[-1]
        data = seg.path.read_bytes()
        offset, last = fmt.SEGMENT_HEADER_SIZE, seg.prev_zxid
        while offset < seg.size:
            try:
                frame = fmt.parse_record(data, offset)
            except fmt.BadRecord as exc:
                raise CorruptLogError(f"txn log {seg.path} at offset {offset}: {exc} while truncating; {fmt.FIX}") from None
            if frame.zxid > zxid:
                break
            offset, last = frame.end, frame.zxid
        fd = os.open(seg.path, os.O_WRONLY)
        self._fd = fd
        # Cut, not zeroed in place: the size change is one journaled update, so a crash leaves
        # the records after `zxid` all there (the TRUNC did not happen) or all gone, where
        # zeroing could leave zeros before surviving records. The padding after the cut is
        # fresh zeros in newly allocated blocks (data=ordered writes them before the size
        # that exposes them), so the old records cannot come back; one fsync covers both.
        os.ftruncate(fd, offset)
        seg.size, seg.file_size, seg.last_zxid = offset, offset, last
        seg.cut_index(offset)
        self._pad(seg)
        os.fsync(fd)
        self._dirty = False

    def purge(self, upto_zxid: int, keep_segments: int = 1) -> list[Path]:
        """Remove the oldest segments whose records are all <= upto_zxid; returns their paths.

        Always keeps the newest `keep_segments` segments (and never fewer than one). This is
        `detach_purgeable` then `remove_segments`; a caller that serialises the log with a
        lock calls them apart, so that the unlinks and the directory fsync run outside it.
        """
        removed = self.detach_purgeable(upto_zxid, keep_segments)
        self.remove_segments(removed)
        return removed

    def detach_purgeable(self, upto_zxid: int, keep_segments: int = 1) -> list[Path]:
        """Forget the oldest segments whose records are all <= upto_zxid (keeping the newest
        `keep_segments`, at least one); returns their paths, for `remove_segments`.

        Only memory changes, so it is quick: `base_zxid` moves up at once (reads below it
        raise PurgedHistoryError) while the files stay on disk until `remove_segments`. A
        crash in between leaves them where recovery reads them back as the log's older part
        (they precede the kept segments without a gap): a longer log, never a broken one.
        """
        self._check_usable()
        removable = 0
        for seg in self._segments[: max(0, len(self._segments) - max(1, keep_segments))]:
            if seg.last_zxid > upto_zxid:
                break
            removable += 1
        detached = [seg.path for seg in self._segments[:removable]]
        del self._segments[:removable]
        return detached

    def remove_segments(self, paths: Sequence[Path]) -> None:
        """Unlink segments that `detach_purgeable` returned, oldest first, then fsync the
        directory once.

        Safe to run while another thread appends to, reads or truncates this log: those touch
        only the segments still attached, and a new segment is named by a zxid above the
        base, so never like one of these. (A snapshot install replaces the whole directory:
        excluding that is the caller's business; see DataDir.) An OSError poisons the log,
        as any failed change does.
        """
        if not paths:
            return
        self._check_usable()
        try:
            for path in paths:  # oldest first: a crash leaves a contiguous suffix
                path.unlink()
            fsync_dir(self.directory)
        except OSError as exc:
            self._fail(exc)
            raise
        log.info("txn log %s: purged %d segments, up to %s", self.directory, len(paths), paths[-1].name)

    # -- reading ----------------------------------------------------------------------------

    def read_after(self, zxid: int) -> Iterator[tuple[int, bytes]]:
        """Records with a zxid above `zxid`, oldest first, across segments.

        Reads what was appended before the call; do not truncate or purge while iterating.
        Raises PurgedHistoryError at once if records after `zxid` were already purged.
        """
        self._check_readable_after(zxid)
        return self._read(self._plan(zxid), zxid, 1 << 20)

    def read_batch(self, zxid: int, max_entries: int, max_bytes: int) -> list[tuple[int, bytes]]:
        """The first records above `zxid`, oldest first: at most `max_entries`, and no more
        payload bytes in all than `max_bytes` unless the first record alone has more (it is
        returned all the same, so a caller always gets on). Empty if none is above `zxid`.

        Costs what it returns plus at most one index stride (see the module docstring), so
        a caller that must not block long (the Zab core on the event loop) reads a big log
        in batches. Raises PurgedHistoryError as `read_after` does.
        """
        if max_entries < 1 or max_bytes < 1:
            raise ValueError(f"read_batch needs max_entries >= 1 and max_bytes >= 1, not {max_entries}, {max_bytes}")
        self._check_readable_after(zxid)
        out: list[tuple[int, bytes]] = []
        total = 0
        records = self._read(self._plan(zxid), zxid, _BATCH_READ_BUFFER)
        try:
            for record in records:
                if out and total + len(record[1]) > max_bytes:
                    break
                out.append(record)
                total += len(record[1])
                if len(out) >= max_entries or total >= max_bytes:
                    break
        finally:
            records.close()  # closes the segment file now, not when collected
        return out

    def _check_readable_after(self, zxid: int) -> None:
        self._check_open()
        if zxid < self.base_zxid:
            raise PurgedHistoryError(
                f"txn log {self.directory}: records after zxid {zxid:#x} were purged "
                f"(the log starts after {self.base_zxid:#x}); send a snapshot instead"
            )

    def _plan(self, after: int) -> list[tuple[Path, int, int]]:
        """(path, start offset, end of records) of each segment holding records above `after`."""
        i = bisect.bisect_right([seg.last_zxid for seg in self._segments], after)
        plan = [(seg.path, fmt.SEGMENT_HEADER_SIZE, seg.size) for seg in self._segments[i:]]
        if plan:
            path, _, size = plan[0]
            plan[0] = (path, self._segments[i].start_offset(after), size)
        return plan

    @staticmethod
    def _read(plan: list[tuple[Path, int, int]], after: int, buffering: int) -> Generator[tuple[int, bytes], None, None]:
        for path, start, size in plan:
            with open(path, "rb", buffering=buffering) as f:
                f.seek(start)
                offset = start
                while offset < size:
                    head = f.read(fmt.RECORD_HEADER_SIZE)
                    length = int.from_bytes(head[8:12], "big") if len(head) == 20 else 0
                    data = head + f.read(min(length, size - offset - len(head)))
                    try:
                        frame = fmt.parse_record(data, 0)
                    except fmt.BadRecord as exc:
                        raise CorruptLogError(f"txn log {path} at offset {offset}: {exc} while reading; {fmt.FIX}") from None
                    if frame.zxid > after:
                        yield frame.zxid, data[fmt.RECORD_HEADER_SIZE :]
                    offset += frame.end

    # -- lifecycle --------------------------------------------------------------------------

    def close(self) -> None:
        """Sync what was appended (unless the log failed) and release the file handle."""
        if self._fd is not None and self._failed is None and self._dirty:
            self.sync()
        self._close_fd()

    def _close_fd(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _check_open(self) -> None:
        if not self._opened:
            raise RuntimeError("TxnLog used before open()")

    def _check_usable(self) -> None:
        self._check_open()
        if self._failed is not None:
            raise LogFailedError(f"txn log {self.directory} failed earlier ({self._failed}); restart the server to recover it")

    def _fail(self, exc: BaseException) -> None:
        log.error("txn log %s: I/O error, refusing further writes: %s", self.directory, exc)
        self._failed = exc


def _pwrite_all(fd: int, data: bytes | bytearray | memoryview, offset: int) -> None:
    """Write every byte of `data` at `offset` (the file is padded: appends are not at its end)."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written
