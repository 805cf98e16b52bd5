"""TxnLog: round trips, torn tails, corruption, segments, truncation, purge, I/O failure."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import pytest

from ccore.server.storage import CorruptLogError, LogFailedError, PurgedHistoryError, TxnLog
from ccore.server.storage import _logformat as fmt
from ccore.server.storage import txnlog as txnlog_module

HDR = fmt.SEGMENT_HEADER_SIZE
REC = fmt.RECORD_HEADER_SIZE


def records(n: int, start: int = 1, size: int = 10) -> list[tuple[int, bytes]]:
    return [(z, bytes([z % 251]) * size + str(z).encode()) for z in range(start, start + n)]


def write_log(directory: Path, recs: list[tuple[int, bytes]], segment_bytes: int = 1 << 20) -> None:
    with TxnLog.recover(directory, segment_bytes) as log:
        log.append(recs)
        log.sync()


def read_all(directory: Path, segment_bytes: int = 1 << 20) -> list[tuple[int, bytes]]:
    with TxnLog.recover(directory, segment_bytes) as log:
        return list(log.read_after(log.base_zxid))


def offsets(recs: list[tuple[int, bytes]]) -> list[int]:
    """Start offset of each record in a single segment holding `recs`."""
    out, pos = [], HDR
    for _zxid, payload in recs:
        out.append(pos)
        pos += REC + len(payload)
    return out + [pos]


def only_segment(directory: Path) -> Path:
    [path] = sorted(directory.glob("log.*"))
    return path


def assert_one_line(exc: BaseException, *must_contain: str) -> None:
    message = str(exc)
    assert "\n" not in message
    for part in must_contain:
        assert part in message, (part, message)


# -- round trips ----------------------------------------------------------------------------


def test_empty_log(tmp_path: Path) -> None:
    with TxnLog.recover(tmp_path) as log:
        assert log.last_zxid == 0
        assert log.base_zxid == 0
        assert list(log.read_after(0)) == []
        assert log.segments == []
        log.sync()  # nothing to do, must not fail


def test_round_trip_and_reopen(tmp_path: Path) -> None:
    recs = records(50) + [(1 << 32 | 1, b""), (1 << 32 | 2, b"\x00" * 1000)]
    with TxnLog.recover(tmp_path) as log:
        log.append(recs[:10])
        log.append(recs[10:])
        assert log.last_zxid == recs[-1][0]
        assert log.last_synced_zxid == 0
        log.sync()
        assert log.last_synced_zxid == recs[-1][0]
        assert list(log.read_after(0)) == recs
        assert list(log.read_after(25)) == recs[25:]
        assert list(log.read_after(recs[-1][0])) == []
    assert read_all(tmp_path) == recs
    assert only_segment(tmp_path).name == "log.0000000000000001"


def test_unsynced_appends_are_readable(tmp_path: Path) -> None:
    with TxnLog.recover(tmp_path) as log:
        log.append(records(3))
        assert [z for z, _ in log.read_after(0)] == [1, 2, 3]


def test_append_rejects_bad_zxids_and_writes_nothing(tmp_path: Path) -> None:
    with TxnLog.recover(tmp_path) as log:
        log.append(records(3))
        size = only_segment(tmp_path).stat().st_size
        for bad in (
            [(3, b"x")],
            [(4, b"x"), (4, b"y")],
            [(5, b"x"), (4, b"y")],
            [(0, b"")],
            [(-1, b"")],
        ):
            with pytest.raises(ValueError):
                log.append(bad)
        with pytest.raises(ValueError):
            log.append([(1 << 64, b"")])
        assert only_segment(tmp_path).stat().st_size == size
        assert log.last_zxid == 3
        log.append([(4, b"ok")])
        assert log.last_zxid == 4


def test_open_twice_and_use_before_open(tmp_path: Path) -> None:
    log = TxnLog(tmp_path)
    with pytest.raises(RuntimeError):
        log.append(records(1))
    log.open()
    with pytest.raises(RuntimeError):
        log.open()
    log.close()


# -- torn tails -----------------------------------------------------------------------------


@pytest.mark.parametrize("padding", [0, 300], ids=["file-grew", "written-into-padding"])
def test_torn_tail_at_every_offset_of_last_record(tmp_path: Path, padding: int) -> None:
    """A crash while the last record was written: the file either grew by part of it, or (the
    preallocated case) holds part of it and then the zeros it was written over."""
    recs = records(5, size=30)
    write_log(tmp_path / "orig", recs)
    original = only_segment(tmp_path / "orig").read_bytes()
    start, end = offsets(recs)[-2:]
    assert fmt.is_padding(original, end)
    for cut in range(start, end):
        d = tmp_path / f"cut{cut}"
        d.mkdir()
        (d / "log.0000000000000001").write_bytes(original[:cut] + bytes(padding))
        with TxnLog.recover(d) as log:
            assert log.last_zxid == 4
            assert log.recovery is not None
            assert log.recovery.torn_at == ((d / "log.0000000000000001", start) if cut > start else None)
            # A torn record is cut with whatever follows it; zeros right after the last whole
            # record are padding, not damage.
            assert log.recovery.truncated_bytes == (cut + padding - start if cut > start else 0)
            log.append([(9, b"after")])
            log.sync()
        assert read_all(d) == recs[:4] + [(9, b"after")]


def test_bad_byte_in_last_record_is_a_torn_tail(tmp_path: Path) -> None:
    recs = records(4, size=20)
    write_log(tmp_path / "orig", recs)
    original = only_segment(tmp_path / "orig").read_bytes()
    start, end = offsets(recs)[-2:]
    for pos in range(start, end):
        d = tmp_path / f"flip{pos}"
        d.mkdir()
        damaged = bytearray(original)
        damaged[pos] ^= 0xFF
        (d / "log.0000000000000001").write_bytes(damaged)
        assert read_all(d) == recs[:3], pos


@pytest.mark.parametrize("tail", [b"\x00" * 4096, b"\x00" * 3, b"\x00" * 25])
def test_zero_tail_is_padding_not_damage(tmp_path: Path, tail: bytes, caplog: pytest.LogCaptureFixture) -> None:
    recs = records(3)
    write_log(tmp_path, recs)
    path = only_segment(tmp_path)
    data = path.read_bytes()[: offsets(recs)[-1]]
    path.write_bytes(data + tail)  # as a log without padding would have it, plus zeros
    with TxnLog.recover(tmp_path, preallocate_bytes=0) as log:
        assert log.recovery is not None
        assert (log.recovery.truncated_bytes, log.recovery.torn_at) == (0, None)
    assert "torn" not in caplog.text
    assert path.read_bytes() == data + tail  # kept as it was: valid padding
    assert read_all(tmp_path) == recs


@pytest.mark.parametrize("tail", [bytes(range(256)) * 8, b"\x00" * 40 + b"\x01", b"\x07"])
def test_garbage_tail_is_truncated(tmp_path: Path, tail: bytes, caplog: pytest.LogCaptureFixture) -> None:
    recs = records(3)
    write_log(tmp_path, recs)
    path = only_segment(tmp_path)
    with open(path, "ab") as f:  # after the padding: zeros, then something
        f.write(tail)
    size = path.stat().st_size
    with TxnLog.recover(tmp_path) as log:
        assert log.recovery is not None and log.recovery.truncated_bytes == size - offsets(recs)[-1]
    assert f"torn tail at offset {offsets(recs)[-1]} after zxid 0x3" in caplog.text
    data = path.read_bytes()
    assert fmt.is_padding(data, offsets(recs)[-1])  # cut, then padded again with zeros
    assert read_all(tmp_path) == recs


def test_torn_new_segment(tmp_path: Path) -> None:
    """A crash while creating a segment: a partial header goes, a whole one stays (empty)."""
    recs = records(3)
    write_log(tmp_path / "orig", recs)
    header = fmt.encode_segment_header(4, 3)
    partial_record = fmt.encode_record(4, b"abc")
    for cut in range(len(header) + len(partial_record)):
        for next_zxid in (4, 7):
            d = tmp_path / f"cut{cut}-{next_zxid}"
            d.mkdir()
            (d / "log.0000000000000001").write_bytes(only_segment(tmp_path / "orig").read_bytes())
            (d / "log.0000000000000004").write_bytes((header + partial_record)[:cut])
            with TxnLog.recover(d) as log:
                assert log.last_zxid == 3
                assert log.recovery is not None
                if cut < HDR:
                    assert log.recovery.removed == (d / "log.0000000000000004",)
                else:
                    assert log.recovery.removed == ()
                    data = (d / "log.0000000000000004").read_bytes()
                    assert data[:HDR] == header and fmt.is_padding(data, HDR)
                log.append([(next_zxid, b"new")])
            assert read_all(d) == recs + [(next_zxid, b"new")]
            if cut >= HDR:  # the empty segment was reused or replaced; else log.1 took the record
                assert sorted(p.name for p in d.iterdir()) == [
                    "log.0000000000000001",
                    fmt.segment_name(next_zxid),
                ]


def test_empty_segments_keep_the_base(tmp_path: Path) -> None:
    with TxnLog.recover(tmp_path, segment_bytes=100) as log:
        log.append(records(20, size=30))
        log.purge(10)
        base = log.base_zxid
        assert base > 0
        log.truncate_after(base)  # every record goes, the oldest segment stays, emptied
    with TxnLog.recover(tmp_path, segment_bytes=100) as log:
        assert (log.base_zxid, log.last_zxid, list(log.read_after(base))) == (base, base, [])
        log.append([(base + 5, b"x")])
        log.roll()
        log.append([(base + 6, b"y")])
    with TxnLog.recover(tmp_path, segment_bytes=100) as log:
        assert log.base_zxid == base
        assert list(log.read_after(base)) == [(base + 5, b"x"), (base + 6, b"y")]


def test_empty_segment_before_a_full_one_is_valid(tmp_path: Path) -> None:
    """A crash while replacing an empty segment leaves both: the chain still holds."""
    (tmp_path / "log.0000000000000004").write_bytes(fmt.encode_segment_header(4, 3))
    (tmp_path / "log.0000000000000009").write_bytes(fmt.encode_segment_header(9, 3) + fmt.encode_record(9, b"z"))
    with TxnLog.recover(tmp_path) as log:
        assert (log.base_zxid, list(log.read_after(3))) == (3, [(9, b"z")])


# -- corruption -----------------------------------------------------------------------------


def test_bad_byte_in_middle_record_raises(tmp_path: Path) -> None:
    recs = records(5, size=20)
    write_log(tmp_path / "orig", recs)
    original = only_segment(tmp_path / "orig").read_bytes()
    starts = offsets(recs)
    for pos in range(starts[2], starts[3]):
        d = tmp_path / f"flip{pos}"
        d.mkdir()
        damaged = bytearray(original)
        damaged[pos] ^= 0x01
        path = d / "log.0000000000000001"
        path.write_bytes(damaged)
        with pytest.raises(CorruptLogError) as info:
            TxnLog.recover(d)
        assert_one_line(info.value, str(path), f"offset {starts[2]}", "valid records follow")
        assert path.read_bytes() == damaged  # nothing was "repaired"


def test_bad_record_in_older_segment_raises(tmp_path: Path) -> None:
    recs = records(40, size=20)
    write_log(tmp_path, recs, segment_bytes=300)
    segments = sorted(tmp_path.glob("log.*"))
    assert len(segments) > 3
    victim = segments[1]
    data = bytearray(victim.read_bytes())
    data[-1] ^= 0xFF  # the last record of a segment that is not the last
    victim.write_bytes(data)
    with pytest.raises(CorruptLogError) as info:
        TxnLog.recover(tmp_path, 300)
    assert_one_line(info.value, str(victim), "not the last")


def test_truncated_older_segment_raises(tmp_path: Path) -> None:
    write_log(tmp_path, records(40, size=20), segment_bytes=300)
    victim = min(tmp_path.glob("log.*"))
    os.truncate(victim, victim.stat().st_size - 3)
    with pytest.raises(CorruptLogError):
        TxnLog.recover(tmp_path, 300)


def test_bad_header_in_older_segment_raises(tmp_path: Path) -> None:
    write_log(tmp_path, records(40, size=20), segment_bytes=300)
    victim = min(tmp_path.glob("log.*"))
    data = bytearray(victim.read_bytes())
    data[3] ^= 0xFF
    victim.write_bytes(data)
    with pytest.raises(CorruptLogError) as info:
        TxnLog.recover(tmp_path, 300)
    assert_one_line(info.value, str(victim), "offset 0", "header")


def _old_version_segment(path: Path, records_in: list[tuple[int, bytes]]) -> Path:
    """A segment as the previous build wrote it: header version 1 (a valid CRC)."""
    first = records_in[0][0] if records_in else 1
    body = struct.pack(">8sIQQ", fmt.SEGMENT_MAGIC, 1, first, 0)
    seg = path / fmt.segment_name(first)
    seg.write_bytes(body + struct.pack(">I", zlib.crc32(body)) + b"".join(fmt.encode_record(z, p) for z, p in records_in))
    return seg


@pytest.mark.parametrize("n_records", [0, 3])
def test_segment_of_an_older_format_is_refused_not_dropped(tmp_path: Path, n_records: int) -> None:
    # Version 1 held transactions in the old encoding: neither read nor taken for a torn header
    # (which would delete it), even when it is the last segment and holds no record.
    seg = _old_version_segment(tmp_path, records(n_records) or [])
    with pytest.raises(CorruptLogError) as info:
        TxnLog.recover(tmp_path)
    assert_one_line(info.value, str(seg), "unsupported segment version 1 (this build reads 2)", "another build")
    assert seg.exists()


def test_missing_middle_segment_is_a_gap(tmp_path: Path) -> None:
    write_log(tmp_path, records(40, size=20), segment_bytes=300)
    segments = sorted(tmp_path.glob("log.*"))
    segments[2].unlink()
    with pytest.raises(CorruptLogError) as info:
        TxnLog.recover(tmp_path, 300)
    assert_one_line(info.value, str(segments[3]), "gap between segments")


def test_zxids_not_increasing_raise(tmp_path: Path) -> None:
    path = tmp_path / "log.0000000000000005"
    path.write_bytes(fmt.encode_segment_header(5, 0) + fmt.encode_record(5, b"a") + fmt.encode_record(5, b"b"))
    with pytest.raises(CorruptLogError) as info:
        TxnLog.recover(tmp_path)
    assert_one_line(info.value, str(path), "does not follow")


def test_name_must_match_first_record(tmp_path: Path) -> None:
    path = tmp_path / "log.0000000000000005"
    path.write_bytes(fmt.encode_segment_header(5, 0) + fmt.encode_record(6, b"a"))
    with pytest.raises(CorruptLogError):
        TxnLog.recover(tmp_path)
    (tmp_path / "log.0000000000000006").write_bytes(path.read_bytes())
    path.unlink()
    with pytest.raises(CorruptLogError):  # header says 5, name says 6
        TxnLog.recover(tmp_path)


def test_unknown_files_are_ignored(tmp_path: Path) -> None:
    write_log(tmp_path, records(2))
    (tmp_path / "log.notasegment").write_bytes(b"junk")
    (tmp_path / "README").write_text("hi")
    assert read_all(tmp_path) == records(2)


def test_read_detects_damage_after_open(tmp_path: Path) -> None:
    with TxnLog.recover(tmp_path) as log:
        log.append(records(3))
        log.sync()
        path = only_segment(tmp_path)
        with open(path, "r+b") as f:
            f.seek(offsets(records(3))[1] + REC)
            f.write(b"!")
        with pytest.raises(CorruptLogError):
            list(log.read_after(0))


# -- segments -------------------------------------------------------------------------------


def test_many_segments_and_read_after_across_them(tmp_path: Path) -> None:
    recs = [(z * 3, os.urandom(z % 50)) for z in range(1, 400)]
    with TxnLog.recover(tmp_path, segment_bytes=512) as log:
        for i in range(0, len(recs), 7):
            log.append(recs[i : i + 7])
            log.sync()
        assert len(log.segments) > 20
        for after in [0, 1, 2, 3, 4, 299, 300, 301, recs[-1][0] - 1, recs[-1][0]]:
            assert list(log.read_after(after)) == [r for r in recs if r[0] > after]
    names = sorted(p.name for p in tmp_path.glob("log.*"))
    firsts = [int(n[4:], 16) for n in names]
    assert all(z in {r[0] for r in recs} for z in firsts)
    with TxnLog.recover(tmp_path, segment_bytes=512) as log:
        assert list(log.read_after(0)) == recs
        assert log.recovery is not None and log.recovery.records == len(recs)


def test_roll_starts_new_segment_named_by_next_zxid(tmp_path: Path) -> None:
    with TxnLog.recover(tmp_path) as log:
        log.append(records(3))
        log.roll()
        log.roll()  # idempotent
        assert log.last_synced_zxid == 3
        log.append([(10, b"x")])
        assert [p.name for p in log.segments] == ["log.0000000000000001", "log.000000000000000a"]
    assert read_all(tmp_path) == records(3) + [(10, b"x")]


def test_record_larger_than_segment(tmp_path: Path) -> None:
    big = [(1, b"a" * 5000), (2, b"b"), (3, b"c" * 5000)]
    write_log(tmp_path, big, segment_bytes=100)
    assert read_all(tmp_path, 100) == big


# -- truncate_after -------------------------------------------------------------------------


@pytest.mark.parametrize("cut", [0, 1, 5, 17, 18, 50, 99, 100, 200])
def test_truncate_after_then_append(tmp_path: Path, cut: int) -> None:
    recs = records(100, size=20)
    with TxnLog.recover(tmp_path, segment_bytes=400) as log:
        log.append(recs)
        log.truncate_after(cut)
        kept = [r for r in recs if r[0] <= cut]
        assert log.last_zxid == (kept[-1][0] if kept else 0)
        if cut < 100:  # a real truncation is durable when it returns
            assert log.last_synced_zxid == log.last_zxid
        assert list(log.read_after(0)) == kept
        log.append([(log.last_zxid + 1, b"new")])
        log.sync()
        expected = kept + [(log.last_zxid, b"new")]
    assert read_all(tmp_path, 400) == expected


def test_truncate_below_purged_history_raises(tmp_path: Path) -> None:
    with TxnLog.recover(tmp_path, segment_bytes=200) as log:
        log.append(records(30, size=20))
        log.purge(10, keep_segments=1)
        base = log.base_zxid
        assert base > 0
        with pytest.raises(PurgedHistoryError):
            log.truncate_after(base - 1)
        with pytest.raises(PurgedHistoryError):
            log.read_after(base - 1)
        log.truncate_after(base)  # all records removed, the base is remembered
        assert log.last_zxid == base
        log.append([(base + 1, b"x")])
        assert list(log.read_after(base)) == [(base + 1, b"x")]
    with TxnLog.recover(tmp_path, segment_bytes=200) as log:
        assert (log.base_zxid, log.last_zxid) == (base, base + 1)


# -- purge ----------------------------------------------------------------------------------


def test_purge_keeps_what_it_must(tmp_path: Path) -> None:
    recs = records(200, size=20)
    with TxnLog.recover(tmp_path, segment_bytes=300) as log:
        log.append(recs)
        log.sync()
        total = len(log.segments)
        assert log.purge(0) == []
        removed = log.purge(77, keep_segments=1)
        assert removed and all(not p.exists() for p in removed)
        assert log.base_zxid <= 77
        assert list(log.read_after(77)) == recs[77:]
        assert len(log.segments) == total - len(removed)
        # keep_segments wins over upto_zxid; never the last segment
        assert log.purge(10_000, keep_segments=3) and len(log.segments) == 3
        assert log.purge(10_000, keep_segments=0) and len(log.segments) == 1
        assert log.purge(10_000, keep_segments=5) == []
        assert log.last_zxid == 200
    with TxnLog.recover(tmp_path, segment_bytes=300) as log:
        assert log.base_zxid > 77
        assert list(log.read_after(log.base_zxid)) == [r for r in recs if r[0] > log.base_zxid]


# -- I/O failure ----------------------------------------------------------------------------


def test_failed_fsync_poisons_the_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = TxnLog.recover(tmp_path)
    log.append(records(2))

    def broken(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(txnlog_module, "datasync", broken)
    with pytest.raises(OSError):
        log.sync()
    assert log.last_synced_zxid == 0
    with pytest.raises(LogFailedError) as info:
        log.append([(3, b"x")])
    assert_one_line(info.value, "restart")
    with pytest.raises(LogFailedError):
        log.sync()
    log.close()  # must not try to sync again
    monkeypatch.undo()
    assert read_all(tmp_path) == records(2)  # the page cache still had them


def test_segment_header_layout(tmp_path: Path) -> None:
    write_log(tmp_path, [(0x1_0000_0001, b"p")])
    data = only_segment(tmp_path).read_bytes()
    magic, version, first, prev, _crc = struct.unpack(">8sIQQI", data[:HDR])
    assert (magic, version, first, prev) == (b"CCORELOG", 2, 0x1_0000_0001, 0)
    rmagic, _rcrc, length, zxid = struct.unpack(">4sIIQ", data[HDR : HDR + REC])
    assert (rmagic, length, zxid, data[HDR + REC : HDR + REC + 1]) == (fmt.RECORD_MAGIC, 1, 0x1_0000_0001, b"p")
    assert fmt.is_padding(data, HDR + REC + 1)
