"""Snapshots of the tree at a zxid: opaque payloads written atomically with a header and CRC.

File ``snapshot.<zxid, 16 lower-case hex digits>``::

    header (32 bytes, big-endian)
      magic    8s   b"CCORSNAP"
      version  u32  1
      zxid     u64  equals the file name
      length   u64  payload length in bytes
      crc      u32  zlib.crc32 over the 28 header bytes above, then the payload
    payload  length bytes (CBOR encoded elsewhere)

Written as ``snapshot.<zxid>.tmp``, fsynced, renamed, directory fsynced: a crash leaves the
old set of snapshots plus at most a temp file, which the next `SnapshotStore` removes.
"""

from __future__ import annotations

import logging
import re
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

from ._fsutil import TMP_SUFFIX, atomic_write, fsync_dir
from .errors import CorruptSnapshotError

log = logging.getLogger(__name__)

SNAPSHOT_MAGIC = b"CCORSNAP"
SNAPSHOT_VERSION = 1
_HEADER = struct.Struct(">8sIQQI")
HEADER_SIZE = _HEADER.size  # 32
_NAME = re.compile(r"snapshot\.([0-9a-f]{16})")
_TMP_NAME = re.compile(r"snapshot\.[0-9a-f]{16}" + re.escape(TMP_SUFFIX))


def snapshot_name(zxid: int) -> str:
    return f"snapshot.{zxid:016x}"


def snapshot_size(header: bytes) -> int:
    """The size of a snapshot in the file format (header and payload), from its header."""
    length: int = _HEADER.unpack_from(header, 0)[3]
    return HEADER_SIZE + length


def snapshot_zxid(header: bytes) -> int:
    """The zxid a snapshot's header names (nothing validated: `parse_snapshot` does that)."""
    zxid: int = _HEADER.unpack_from(header, 0)[2]
    return zxid


def encode_snapshot_header(zxid: int, payload: bytes | bytearray | memoryview) -> bytes:
    body = _HEADER.pack(SNAPSHOT_MAGIC, SNAPSHOT_VERSION, zxid, len(payload), 0)[:-4]
    return body + struct.pack(">I", zlib.crc32(payload, zlib.crc32(body)))


def parse_snapshot(data: bytes | bytearray, zxid: int, name: str, advice: str) -> bytes:
    """The payload of a snapshot in the file format (header, then payload) that must be at
    `zxid`; raises CorruptSnapshotError naming `name` and giving `advice` if it does not validate."""

    def corrupt(what: str) -> CorruptSnapshotError:
        return CorruptSnapshotError(f"{name}: {what}; {advice}")

    if len(data) < HEADER_SIZE:
        raise corrupt(f"{len(data)} bytes, shorter than the header")
    magic, version, header_zxid, length, crc = _HEADER.unpack_from(data, 0)
    if magic != SNAPSHOT_MAGIC:
        raise corrupt(f"bad magic {magic!r}")
    if version != SNAPSHOT_VERSION:
        raise corrupt(f"unsupported version {version} (this build reads {SNAPSHOT_VERSION})")
    if header_zxid != zxid:
        raise corrupt(f"header says zxid {header_zxid:#x}, expected {zxid:#x}")
    if HEADER_SIZE + length != len(data):
        raise corrupt(f"header says {length} payload bytes, there are {len(data) - HEADER_SIZE}")
    view = memoryview(data)
    if zlib.crc32(view[HEADER_SIZE:], zlib.crc32(view[: HEADER_SIZE - 4])) != crc:
        raise corrupt("CRC mismatch")
    return bytes(view[HEADER_SIZE:])


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

    def read(self, zxid: int) -> bytes:
        """The payload of the snapshot at `zxid`; raises CorruptSnapshotError if it does not validate."""
        path = self.path(zxid)
        return parse_snapshot(
            path.read_bytes(), zxid, f"snapshot {path}", "delete it to use an older snapshot, or resync from the leader"
        )

    def _valid_newest_first(self) -> Iterator[tuple[int, bytes]]:
        """Yield (zxid, payload) of snapshots that validate, newest first; logs corrupt ones."""
        for zxid in reversed(self.list()):
            try:
                yield zxid, self.read(zxid)
            except CorruptSnapshotError as exc:
                log.warning("%s; skipping it", exc)
            except FileNotFoundError:
                continue

    def latest(self) -> tuple[int, bytes] | None:
        """(zxid, payload) of the newest snapshot that validates, or None if there is none."""
        return next(self._valid_newest_first(), None)

    def purge(self, keep: int) -> int | None:
        """Keep the newest `keep` valid snapshots and remove every snapshot older than them.

        Returns the zxid of the oldest snapshot kept (the log is only needed after it), or None
        if fewer than `keep` snapshots validate, in which case nothing is removed.
        """
        if keep < 1:
            raise ValueError("keep must be at least 1")
        kept: list[int] = []
        for zxid, _payload in self._valid_newest_first():
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
