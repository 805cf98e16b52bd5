"""On-disk format of transaction-log segments: the segment header, record frames, and scanning.

Functions over bytes (no file handles), so the recovery rules can be tested byte by byte.

Segment file ``log.<first zxid, 16 lower-case hex digits>``::

    header (32 bytes, big-endian)
      magic      8s   b"CCORELOG"
      version    u32  2 (1: transactions as cattrs maps; 2: hand-encoded CBOR arrays, see
                        znodes/codec.py; a segment of another version is refused, not read)
      first_zxid u64  zxid of the first record in this segment (equals the file name)
      prev_zxid  u64  zxid of the last record before this segment (0 for the first ever)
      crc        u32  zlib.crc32 of the 28 bytes above
    records, back to back
    zero padding, perhaps (see below)

Record frame (20-byte header + payload, big-endian)::

      magic   4s   b"\\xcc\\x7e\\x10\\x9a" (lets recovery find frames after a damaged one)
      crc     u32  zlib.crc32 over length, zxid and payload (every byte after this field)
      length  u32  payload length in bytes
      zxid    u64
      payload length bytes (opaque: CBOR encoded elsewhere)

Zero padding: the records may be followed by zero bytes up to the end of the file (the writer
preallocates space so that an append's fdatasync changes no metadata; see txnlog). The record
magic has no zero byte, so zeros never parse as a frame: where the records stop and only zeros
follow, to the end of the file, is the end of the data, in any segment. Zeros followed by
anything else are judged like any damaged frame (torn tail or corruption). Files without
padding read the same, so the version did not change for it.
"""

from __future__ import annotations

import logging
import re
import struct
import zlib
from pathlib import Path

import attrs

from .errors import CorruptLogError

log = logging.getLogger(__name__)

SEGMENT_MAGIC = b"CCORELOG"
SEGMENT_VERSION = 2
RECORD_MAGIC = b"\xcc\x7e\x10\x9a"
MAX_PAYLOAD_BYTES = 256 * 1024 * 1024
MAX_ZXID = (1 << 64) - 1

_SEGMENT_HEADER = struct.Struct(">8sIQQI")
_RECORD_HEADER = struct.Struct(">4sIIQ")
SEGMENT_HEADER_SIZE = _SEGMENT_HEADER.size  # 32
RECORD_HEADER_SIZE = _RECORD_HEADER.size  # 20
FIX = "restore this data dir from a backup, or move it aside and let the server resync from the leader"
_SEGMENT_NAME = re.compile(r"log\.([0-9a-f]{16})")


def segment_name(first_zxid: int) -> str:
    return f"log.{first_zxid:016x}"


def parse_segment_name(name: str) -> int | None:
    """The first zxid a segment file name announces, or None if it is not a segment name."""
    match = _SEGMENT_NAME.fullmatch(name)
    return int(match.group(1), 16) if match else None


def encode_segment_header(first_zxid: int, prev_zxid: int) -> bytes:
    body = _SEGMENT_HEADER.pack(SEGMENT_MAGIC, SEGMENT_VERSION, first_zxid, prev_zxid, 0)[:-4]
    return body + struct.pack(">I", zlib.crc32(body))


class BadHeader(ValueError):
    """The segment header is short, has the wrong magic/version, or fails its CRC."""


class UnsupportedVersion(BadHeader):
    """An intact header of another format version: written by another build, not damaged."""


def decode_segment_header(data: bytes | memoryview) -> tuple[int, int]:
    """Return (first_zxid, prev_zxid) or raise BadHeader with the reason."""
    if len(data) < SEGMENT_HEADER_SIZE:
        raise BadHeader(f"header is {len(data)} bytes, needs {SEGMENT_HEADER_SIZE}")
    magic, version, first, prev, crc = _SEGMENT_HEADER.unpack_from(data, 0)
    if magic != SEGMENT_MAGIC:
        raise BadHeader(f"bad magic {bytes(magic)!r}")
    if zlib.crc32(data[: SEGMENT_HEADER_SIZE - 4]) != crc:
        raise BadHeader("header CRC mismatch")
    if version != SEGMENT_VERSION:
        raise UnsupportedVersion(f"unsupported segment version {version} (this build reads {SEGMENT_VERSION})")
    return first, prev


def encode_record(zxid: int, payload: bytes | bytearray | memoryview) -> bytes:
    tail = struct.pack(">IQ", len(payload), zxid)
    crc = zlib.crc32(payload, zlib.crc32(tail))
    return b"".join((RECORD_MAGIC, struct.pack(">I", crc), tail, payload))


def record_size(payload_len: int) -> int:
    return RECORD_HEADER_SIZE + payload_len


class BadRecord(ValueError):
    """The bytes at an offset are not a complete, valid record frame."""


@attrs.frozen
class Frame:
    """One decoded record: its zxid, where it starts, where the next one starts."""

    zxid: int
    offset: int
    end: int


def parse_record(data: bytes, offset: int) -> Frame:
    """Decode the frame at `offset` of `data` or raise BadRecord saying why."""
    if offset + RECORD_HEADER_SIZE > len(data):
        raise BadRecord(f"incomplete record header ({len(data) - offset} bytes)")
    magic, crc, length, zxid = _RECORD_HEADER.unpack_from(data, offset)
    if magic != RECORD_MAGIC:
        raise BadRecord("bad record magic")
    end = offset + RECORD_HEADER_SIZE + length
    if length > MAX_PAYLOAD_BYTES or end > len(data):
        raise BadRecord(f"record length {length} runs past the end of the file")
    if zlib.crc32(memoryview(data)[offset + 8 : end]) != crc:
        raise BadRecord("record CRC mismatch")
    return Frame(zxid=zxid, offset=offset, end=end)


def is_padding(data: bytes, offset: int) -> bool:
    """True if every byte from `offset` to the end of `data` is zero: the end of the records.

    C-speed (about 2 GB/s): recovery calls it once per segment, over at most one padding step.
    """
    return data.count(0, offset) == len(data) - offset


def find_valid_record(data: bytes, start: int) -> int | None:
    """Offset of the first valid frame at or after `start`, or None.

    Used only after a damaged frame: a valid frame after the damage means the damage is in
    the middle of the log (corruption), while none means a torn tail (a crash mid-write).
    The record magic makes this a C-speed `find`, not a Python loop over every byte.
    """
    pos = start
    while (pos := data.find(RECORD_MAGIC, pos)) != -1:
        try:
            parse_record(data, pos)
        except BadRecord:
            pos += 1
            continue
        return pos
    return None


@attrs.frozen
class ScanResult:
    """A validated segment: its zxid range, where its valid records end, and any torn tail."""

    first_zxid: int
    prev_zxid: int
    last_zxid: int  # == prev_zxid when it holds no record
    end: int  # where the records end (zero padding or a torn tail may follow)
    records: int
    torn_offset: int | None
    # (zxid, offset) of the first record, then of a record at least `index_stride` bytes
    # after the previous point: where a reader may start instead of the segment's header.
    index: tuple[tuple[int, int], ...] = ()


def scan_segment(
    path: Path,
    name_zxid: int,
    data: bytes,
    prev_path: Path | None,
    prev_last_zxid: int | None,
    is_last: bool,
    index_stride: int | None = None,
) -> ScanResult | None:
    """Validate a whole segment; None means a torn header (a crash while creating the file).

    The records end where only zero bytes (padding) follow, or at the end of the file; `end`
    is that offset. In the last segment, a damaged record with no valid frame after it is a torn tail
    (reported in `torn_offset`, to be truncated). Any other damage raises CorruptLogError:
    a bad record followed by valid ones, damage in an older segment, zxids out of order, or
    a segment that does not follow the one before it (a gap).

    With `index_stride`, the result carries a sparse index of the records (see ScanResult).
    """

    def corrupt(offset: int, what: str) -> CorruptLogError:
        return CorruptLogError(f"txn log {path} at offset {offset}: {what}; {FIX}")

    try:
        first_zxid, prev_zxid = decode_segment_header(data)
    except UnsupportedVersion as exc:
        # Never taken for a torn header: its records would be misread, or silently dropped.
        raise CorruptLogError(
            f"txn log {path}: {exc}; it was written by another build of the server: move the data dir "
            "aside (a member of an ensemble then resyncs from its leader)"
        ) from None
    except BadHeader as exc:
        if is_last and find_valid_record(data, 0) is None:
            log.warning("txn log %s: torn segment header (%s), removing the file", path, exc)
            return None
        raise corrupt(0, f"bad segment header ({exc})") from None
    if first_zxid != name_zxid or first_zxid <= prev_zxid:
        raise corrupt(
            0,
            f"header says zxids ({prev_zxid:#x}, {first_zxid:#x}...) but the name says {name_zxid:#x}",
        )
    if prev_last_zxid is not None and prev_zxid != prev_last_zxid:
        raise corrupt(
            0,
            (
                f"gap between segments: {prev_path.name if prev_path else '?'} ends at zxid {prev_last_zxid:#x} "
                f"but this segment follows zxid {prev_zxid:#x}"
            ),
        )
    last, count, offset = prev_zxid, 0, SEGMENT_HEADER_SIZE
    index: list[tuple[int, int]] = []
    while offset < len(data):
        try:
            frame = parse_record(data, offset)
        except BadRecord as exc:
            if is_padding(data, offset):
                # Preallocated space, not damage. In a segment that is not the last, records
                # lost at its end would still show: the next segment's prev_zxid is checked.
                break
            if not is_last:
                raise corrupt(offset, f"{exc} in a segment that is not the last") from None
            later = find_valid_record(data, offset + 1)
            if later is not None:
                raise corrupt(offset, f"{exc}, but valid records follow at offset {later}") from None
            log.warning(
                "txn log %s: torn tail at offset %d after zxid %#x (%s); truncating %d bytes",
                path,
                offset,
                last,
                exc,
                len(data) - offset,
            )
            return ScanResult(first_zxid, prev_zxid, last, offset, count, offset, tuple(index))
        if frame.zxid <= last:
            raise corrupt(offset, f"zxid {frame.zxid:#x} does not follow {last:#x}")
        if count == 0 and frame.zxid != first_zxid:
            raise corrupt(offset, f"first record has zxid {frame.zxid:#x}, the name says {first_zxid:#x}")
        if index_stride is not None and (not index or offset - index[-1][1] >= index_stride):
            index.append((frame.zxid, offset))
        last, offset, count = frame.zxid, frame.end, count + 1
    return ScanResult(first_zxid, prev_zxid, last, offset, count, None, tuple(index))
