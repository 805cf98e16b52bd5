"""Snapshots of the tree at a zxid, written atomically, checked by CRCs: two file formats.

File ``snapshot.<zxid, 16 lower-case hex digits>``, a 32-byte header then a body. Version 2,
batched (what the server writes: the snapshot child, a SNAP received)::

    header (32 bytes, big-endian)
      magic    8s   b"CCORSNAP"
      version  u32  2
      zxid     u64  equals the file name
      reserved u64  0
      crc      u32  zlib.crc32 over the 28 header bytes above
    frames, each self-delimiting:
      kind     1s   b"N" a batch of nodes, b"S" the sessions, b"E" the end (the last frame)
      length   u32  body length in bytes
      crc      u32  zlib.crc32 of the body
      body     length bytes (CBOR encoded elsewhere: ccore.znodes.codec), except the end's:
    end body (20 bytes): nodes u64 (how many in all batches), zxid u64 (the header's),
      digest u32 (zlib.crc32 of every byte before the end frame, header included)

A writer needs neither the size nor a CRC of the whole before it starts, so the tree can be
written, streamed and read back batch by batch (server/snap_stream.py); every frame is checked
on its own as it comes, and the end frame vouches for the whole: nothing is used until it
checks out. Version 1, whole (older builds; still read, and `SnapshotStore.write` of an
opaque payload writes it)::

    header: magic 8s, version u32 = 1, zxid u64, length u64 (payload), crc u32 (over the 28
      header bytes above, then the payload)
    payload  length bytes

Written as ``snapshot.<zxid>.tmp`` (or received as ``snapshot.<zxid>.<tag>.tmp``), fsynced,
renamed, directory fsynced: a crash leaves the old set of snapshots plus at most temp files,
which the next `SnapshotStore` removes.
"""

from __future__ import annotations

import logging
import os
import re
import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import attrs

from ._fsutil import TMP_SUFFIX, atomic_write, fsync_dir
from .errors import CorruptSnapshotError

log = logging.getLogger(__name__)

SNAPSHOT_MAGIC = b"CCORSNAP"
WHOLE_VERSION = 1
BATCHED_VERSION = 2
SNAPSHOT_VERSION = BATCHED_VERSION  # what the server writes
_HEADER = struct.Struct(">8sIQQI")
HEADER_SIZE = _HEADER.size  # 32
_FRAME = struct.Struct(">cII")  # kind, length, crc
FRAME_HEADER_SIZE = _FRAME.size  # 9
_END = struct.Struct(">QQI")  # nodes, zxid, digest
NODES, SESSIONS, END = b"N", b"S", b"E"
WHOLE = b"W"  # the one "frame" of a version-1 snapshot: its payload
_NAME = re.compile(r"snapshot\.([0-9a-f]{16})")
_TMP_NAME = re.compile(r"snapshot\.[0-9a-f]{16}(\.[a-z0-9]+)?" + re.escape(TMP_SUFFIX))
READ_BYTES = 1024 * 1024
ADVICE = "delete it to use an older snapshot, or resync from the leader"
T = TypeVar("T")


def snapshot_name(zxid: int) -> str:
    return f"snapshot.{zxid:016x}"


def snapshot_size(header: bytes) -> int:
    """The size of a version-1 snapshot (header and payload), from its header."""
    length: int = _HEADER.unpack_from(header, 0)[3]
    return HEADER_SIZE + length


def snapshot_version(header: bytes) -> int:
    """The format version a snapshot's header names (nothing validated)."""
    version: int = _HEADER.unpack_from(header, 0)[1]
    return version


def snapshot_zxid(header: bytes) -> int:
    """The zxid a snapshot's header names (nothing validated: `parse_snapshot` does that)."""
    zxid: int = _HEADER.unpack_from(header, 0)[2]
    return zxid


def encode_snapshot_header(zxid: int, payload: bytes | bytearray | memoryview) -> bytes:
    """The header of a version-1 (whole) snapshot of `payload`."""
    body = _HEADER.pack(SNAPSHOT_MAGIC, WHOLE_VERSION, zxid, len(payload), 0)[:-4]
    return body + struct.pack(">I", zlib.crc32(payload, zlib.crc32(body)))


def parse_snapshot(data: bytes | bytearray, zxid: int, name: str, advice: str) -> bytes:
    """The payload of a version-1 snapshot (header, then payload) that must be at `zxid`;
    raises CorruptSnapshotError naming `name` and giving `advice` if it does not validate."""

    def corrupt(what: str) -> CorruptSnapshotError:
        return CorruptSnapshotError(f"{name}: {what}; {advice}")

    if len(data) < HEADER_SIZE:
        raise corrupt(f"{len(data)} bytes, shorter than the header")
    magic, version, header_zxid, length, crc = _HEADER.unpack_from(data, 0)
    if magic != SNAPSHOT_MAGIC:
        raise corrupt(f"bad magic {magic!r}")
    if version != WHOLE_VERSION:
        raise corrupt(f"version {version}, not a whole (version {WHOLE_VERSION}) snapshot")
    if header_zxid != zxid:
        raise corrupt(f"header says zxid {header_zxid:#x}, expected {zxid:#x}")
    if HEADER_SIZE + length != len(data):
        raise corrupt(f"header says {length} payload bytes, there are {len(data) - HEADER_SIZE}")
    view = memoryview(data)
    if zlib.crc32(view[HEADER_SIZE:], zlib.crc32(view[: HEADER_SIZE - 4])) != crc:
        raise corrupt("CRC mismatch")
    return bytes(view[HEADER_SIZE:])


class BatchedWriter:
    """The bytes of a version-2 snapshot at `zxid`, piece by piece: `header()`, then
    `frame(kind, body)` for each batch and the sessions, then `end(nodes)`."""

    def __init__(self, zxid: int) -> None:
        self.zxid = zxid
        self._digest = 0

    def _out(self, data: bytes) -> bytes:
        self._digest = zlib.crc32(data, self._digest)
        return data

    def header(self) -> bytes:
        body = _HEADER.pack(SNAPSHOT_MAGIC, BATCHED_VERSION, self.zxid, 0, 0)[:-4]
        return self._out(body + struct.pack(">I", zlib.crc32(body)))

    def frame(self, kind: bytes, body: bytes) -> bytes:
        head = _FRAME.pack(kind, len(body), zlib.crc32(body))
        self._digest = zlib.crc32(body, zlib.crc32(head, self._digest))
        return head + body

    def end(self, nodes: int) -> bytes:
        body = _END.pack(nodes, self.zxid, self._digest)
        return _FRAME.pack(END, len(body), zlib.crc32(body)) + body


@attrs.frozen
class SnapshotEnd:
    nodes: int
    zxid: int


class SnapshotReader:
    """A snapshot in either format, fed in pieces of any size (a file read in blocks, a SNAP
    stream as it comes); `feed` returns the frames completed so far, each checked: (kind,
    body), and a version-1 snapshot as one `WHOLE` frame once all of it came and its CRC holds.
    `end` is set once the end frame checked out; anything wrong raises CorruptSnapshotError."""

    def __init__(self, zxid: int, name: str, advice: str) -> None:
        self.zxid = zxid
        self._name, self._advice = name, advice
        self._buf = bytearray()
        self.version: int | None = None
        self.received = 0
        self._digest = 0
        self._whole_size = 0
        self.end: SnapshotEnd | None = None

    def corrupt(self, what: str) -> CorruptSnapshotError:
        return CorruptSnapshotError(f"{self._name}: {what}; {self._advice}")

    def feed(self, data: bytes | bytearray | memoryview) -> list[tuple[bytes, bytes]]:
        if self.end is not None and data:
            raise self.corrupt(f"{len(data)} bytes after the end")
        self.received += len(data)
        buf = self._buf
        buf += data
        if self.version is None:
            if len(buf) < HEADER_SIZE:
                return []
            self._header()
        if self.version == WHOLE_VERSION:
            if len(buf) < self._whole_size:
                return []
            if len(buf) > self._whole_size:
                raise self.corrupt(f"{len(buf)} bytes, the header says {self._whole_size}")
            payload = parse_snapshot(buf, self.zxid, self._name, self._advice)
            self._buf = bytearray()
            self.end = SnapshotEnd(-1, self.zxid)
            return [(WHOLE, payload)]
        frames: list[tuple[bytes, bytes]] = []
        pos, size = 0, len(buf)
        while size - pos >= FRAME_HEADER_SIZE:
            kind, length, crc = _FRAME.unpack_from(buf, pos)
            start = pos + FRAME_HEADER_SIZE
            if size - start < length:
                break
            body = bytes(memoryview(buf)[start : start + length])  # one copy; the view goes at once
            if zlib.crc32(body) != crc:
                raise self.corrupt(f"CRC mismatch in a {kind!r} frame at byte {self.received - size + pos:,}")
            if kind == END:
                self._finish(body)
                if start + length != size:
                    raise self.corrupt(f"{size - start - length} bytes after the end")
                pos = size
                break
            if kind not in (NODES, SESSIONS):
                raise self.corrupt(f"unknown frame kind {kind!r}")
            self._digest = zlib.crc32(memoryview(buf)[pos:start], self._digest)
            self._digest = zlib.crc32(body, self._digest)
            frames.append((kind, body))
            pos = start + length
        del buf[:pos]
        return frames

    def _header(self) -> None:
        magic, version, zxid, length, crc = _HEADER.unpack_from(self._buf, 0)
        if magic != SNAPSHOT_MAGIC:
            raise self.corrupt(f"bad magic {magic!r}")
        if zxid != self.zxid:
            raise self.corrupt(f"header says zxid {zxid:#x}, expected {self.zxid:#x}")
        if version == WHOLE_VERSION:
            self.version, self._whole_size = version, HEADER_SIZE + length
            return
        if version != BATCHED_VERSION:
            raise self.corrupt(f"unsupported version {version} (this build reads {WHOLE_VERSION} and {BATCHED_VERSION})")
        head = bytes(self._buf[: HEADER_SIZE - 4])
        if length != 0 or zlib.crc32(head) != crc:
            raise self.corrupt("header CRC mismatch")
        self.version = version
        self._digest = zlib.crc32(self._buf[:HEADER_SIZE])
        del self._buf[:HEADER_SIZE]

    def _finish(self, body: bytes) -> None:
        if len(body) != _END.size:
            raise self.corrupt(f"an end frame of {len(body)} bytes")
        nodes, zxid, digest = _END.unpack(body)
        if zxid != self.zxid:
            raise self.corrupt(f"end frame says zxid {zxid:#x}, expected {self.zxid:#x}")
        if digest != self._digest:
            raise self.corrupt("the digest of the whole does not match its end frame")
        self.end = SnapshotEnd(nodes, zxid)

    def close(self) -> SnapshotEnd:
        """No more bytes: the end, or CorruptSnapshotError if it never came."""
        if self.end is None:
            raise self.corrupt(f"{self.received:,} bytes and no end (torn)")
        return self.end


@attrs.frozen
class StoredSnapshot:
    """A snapshot read from disk and checked: its frames in order (one `WHOLE` frame for a
    version-1 file: its payload)."""

    zxid: int
    version: int
    frames: tuple[tuple[bytes, bytes], ...] = attrs.field(repr=lambda frames: f"<{len(frames)} frames>")
    nodes: int = -1  # as the end frame says (-1: version 1, which does not say)

    @property
    def payload(self) -> bytes:
        """A version-1 snapshot's payload."""
        if self.version != WHOLE_VERSION:
            raise ValueError(f"the snapshot at {self.zxid:#x} is batched (version {self.version}): it has no single payload")
        return self.frames[0][1]


def read_snapshot_file(path: Path, zxid: int, advice: str, keep: bool = True) -> StoredSnapshot:
    """The snapshot in file `path` (either version), every CRC checked; CorruptSnapshotError
    if it does not validate, FileNotFoundError if it is gone. Without `keep`, only checked:
    the frames are not kept (the snapshot returned has none)."""
    reader = SnapshotReader(zxid, f"snapshot {path}", advice)
    frames: list[tuple[bytes, bytes]] = []
    with open(path, "rb", buffering=0) as f:
        while block := f.read(READ_BYTES):
            got = reader.feed(block)
            if keep:
                frames += got
    end = reader.close()
    assert reader.version is not None
    return StoredSnapshot(zxid, reader.version, tuple(frames), end.nodes)


class SnapshotStore:
    """The snapshot files of one data dir; not thread-safe (one writer, the server)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        removed = False
        for path in self.directory.iterdir():
            if _TMP_NAME.fullmatch(path.name):
                log.info(
                    "snapshots %s: removing %s left by an interrupted write",
                    self.directory,
                    path.name,
                )
                path.unlink()
                removed = True
        if removed:
            fsync_dir(self.directory)

    def path(self, zxid: int) -> Path:
        return self.directory / snapshot_name(zxid)

    def write(self, zxid: int, payload: bytes | bytearray | memoryview) -> Path:
        """Store `payload` as the snapshot at `zxid`, durably and atomically; returns its path."""
        if not 0 <= zxid < 1 << 64:
            raise ValueError(f"zxid {zxid!r} out of range")
        path = self.path(zxid)
        atomic_write(path, [encode_snapshot_header(zxid, payload), payload])
        log.info("snapshots %s: wrote %s (%d bytes)", self.directory, path.name, len(payload))
        return path

    def list(self) -> list[int]:
        """zxids of the snapshot files present, oldest first (not validated)."""
        return sorted(int(match.group(1), 16) for path in self.directory.iterdir() if (match := _NAME.fullmatch(path.name)))

    def adopt(self, zxid: int, written: Path) -> Path:
        """Make `written`, a complete snapshot file at `zxid` in this directory (a temp name),
        the snapshot at `zxid`, durably: fsync, rename, fsync the directory."""
        fd = os.open(written, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        path = self.path(zxid)
        os.replace(written, path)
        fsync_dir(self.directory)
        log.info("snapshots %s: wrote %s (%d bytes, received)", self.directory, path.name, path.stat().st_size)
        return path

    def read(self, zxid: int) -> StoredSnapshot:
        """The snapshot at `zxid`, checked; raises CorruptSnapshotError if it does not validate."""
        return read_snapshot_file(self.path(zxid), zxid, ADVICE)

    def _valid_newest_first(self, load: Callable[[Path, int], T]) -> Iterator[tuple[int, T]]:
        """Yield (zxid, load(path, zxid)) of snapshots that load, newest first; logs those
        that raise CorruptSnapshotError."""
        for zxid in reversed(self.list()):
            try:
                yield zxid, load(self.path(zxid), zxid)
            except CorruptSnapshotError as exc:
                log.warning("%s; skipping it", exc)
            except FileNotFoundError:
                continue

    def latest(self) -> tuple[int, StoredSnapshot] | None:
        """(zxid, snapshot) of the newest snapshot that validates, or None if there is none."""
        return self.latest_loaded(lambda path, zxid: read_snapshot_file(path, zxid, ADVICE))

    def latest_loaded(self, load: Callable[[Path, int], T]) -> tuple[int, T] | None:
        """(zxid, load(path, zxid)) of the newest snapshot that loads: `load` reads and checks
        the file (raising CorruptSnapshotError), and may decode it as it reads."""
        return next(self._valid_newest_first(load), None)

    def purge(self, keep: int) -> int | None:
        """Keep the newest `keep` valid snapshots and remove every snapshot older than them.

        Returns the zxid of the oldest snapshot kept (the log is only needed after it), or None
        if fewer than `keep` snapshots validate, in which case nothing is removed.
        """
        if keep < 1:
            raise ValueError("keep must be at least 1")
        kept: list[int] = []
        for zxid, _checked in self._valid_newest_first(lambda path, zxid: read_snapshot_file(path, zxid, ADVICE, keep=False)):
            kept.append(zxid)
            if len(kept) == keep:
                break
        else:
            return None
        floor = kept[-1]
        doomed = [self.path(zxid) for zxid in self.list() if zxid < floor]
        for path in doomed:
            path.unlink()
        if doomed:
            fsync_dir(self.directory)
            log.info("snapshots %s: purged %d older than zxid %#x", self.directory, len(doomed), floor)
        return floor
