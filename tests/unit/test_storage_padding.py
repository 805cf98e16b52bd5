"""TxnLog preallocation: zero padding ahead of the records, recovery, truncation, roll, crashes."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest

from ccore.server.storage import CorruptLogError, DataDir, TxnLog
from ccore.server.storage import _logformat as fmt
from ccore.server.storage import txnlog as txnlog_module

HDR = fmt.SEGMENT_HEADER_SIZE
REC = fmt.RECORD_HEADER_SIZE
STEP = 4096  # small steps, so that a test crosses several of them


def records(n: int, start: int = 1, size: int = 30) -> list[tuple[int, bytes]]:
    return [(z, bytes([z % 251 or 1]) * size + str(z).encode()) for z in range(start, start + n)]


def data_end(recs: list[tuple[int, bytes]]) -> int:
    """Where the records of a single segment holding `recs` end."""
    return HDR + sum(REC + len(p) for _z, p in recs)


def only_segment(directory: Path) -> Path:
    [path] = sorted(directory.glob("log.*"))
    return path


def read_all(directory: Path, **kwargs: int) -> list[tuple[int, bytes]]:
    with TxnLog.recover(directory, **kwargs) as log:
        return list(log.read_after(log.base_zxid))


def write_log(directory: Path, recs: list[tuple[int, bytes]], **kwargs: int) -> None:
    with TxnLog.recover(directory, **kwargs) as log:
        log.append(recs)
        log.sync()


# -- the padding itself ---------------------------------------------------------------------


def test_zeros_are_never_a_record() -> None:
    for n in (0, 1, REC - 1, REC, REC + 100):
        with pytest.raises(fmt.BadRecord):
            fmt.parse_record(bytes(n), 0)
    assert fmt.find_valid_record(bytes(10_000), 0) is None
    assert fmt.is_padding(b"abc" + bytes(7), 3) and fmt.is_padding(b"abc", 3)
    assert not fmt.is_padding(b"abc" + bytes(7) + b"\x01", 3)


def test_new_segment_is_padded_with_real_zeros(tmp_path: Path) -> None:
    with TxnLog.recover(tmp_path, preallocate_bytes=STEP * 4) as log:
        log.append(records(1))
        log.sync()
        path = only_segment(tmp_path)
        size = path.stat().st_size
        assert size == HDR + STEP * 4
        assert fmt.is_padding(path.read_bytes(), data_end(records(1)))
        # Written zeros, not a hole or fallocate's unwritten extents (whose first write into
        # each block is a metadata change again).
        assert path.stat().st_blocks * 512 >= size
        fd = os.open(path, os.O_RDONLY)
        try:
            assert os.lseek(fd, 0, os.SEEK_HOLE) == size
        finally:
            os.close(fd)


def test_appends_into_the_padding_do_not_grow_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The point of the padding: the fdatasync of an append finds the file's size as the last
    sync left it (no metadata to commit), except once per step."""
    sizes: list[int] = []
    real = txnlog_module.datasync

    def spy(fd: int) -> None:
        sizes.append(os.fstat(fd).st_size)
        real(fd)

    monkeypatch.setattr(txnlog_module, "datasync", spy)
    with TxnLog.recover(tmp_path, preallocate_bytes=STEP) as log:
        for z in range(1, 401):  # 51 bytes each: ~20 KB, about five steps
            log.append([(z, b"v" * 20 + str(z).encode())])
            log.sync()
        path = only_segment(tmp_path)
        end = data_end([(z, b"v" * 20 + str(z).encode()) for z in range(1, 401)])
        assert end < path.stat().st_size <= end + STEP
    grew = sum(1 for before, after in itertools.pairwise(sizes) if after != before)
    assert 3 <= grew <= 6, grew
    assert read_all(tmp_path) == [(z, b"v" * 20 + str(z).encode()) for z in range(1, 401)]


def test_padding_never_passes_the_segment_size_and_rolls_are_unchanged(tmp_path: Path) -> None:
    recs = records(300)
    for prealloc in (0, 64, STEP, 1 << 20):
        d = tmp_path / f"p{prealloc}"
        with TxnLog.recover(d, segment_bytes=1000, preallocate_bytes=prealloc) as log:
            for i in range(0, len(recs), 7):
                log.append(recs[i : i + 7])
                log.sync()
            # The last segment is padded up to the segment size at most; rolled ones are
            # exactly their records.
            *rolled, last = log.segments
            assert last.stat().st_size <= max(1000, log._segments[-1].size)
            for seg, path in zip(log._segments[:-1], rolled, strict=True):
                assert path.stat().st_size == seg.size
        assert read_all(d, segment_bytes=1000) == recs
    names = {p: sorted(x.name for x in (tmp_path / f"p{p}").iterdir()) for p in (0, 64, STEP, 1 << 20)}
    assert names[64] == names[0] == names[STEP] == names[1 << 20]  # rolls count records only


def test_bad_preallocate_size(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        TxnLog(tmp_path, preallocate_bytes=-1)
    write_log(tmp_path, records(3), preallocate_bytes=0)
    assert only_segment(tmp_path).stat().st_size == data_end(records(3))


# -- recovery -------------------------------------------------------------------------------


def test_recovery_reads_padding_as_the_end(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    recs = records(20)
    write_log(tmp_path, recs, preallocate_bytes=STEP)
    with TxnLog.recover(tmp_path, preallocate_bytes=STEP) as log:
        assert log.recovery is not None
        assert (log.recovery.truncated_bytes, log.recovery.torn_at) == (0, None)
        assert list(log.read_after(0)) == recs
        size = only_segment(tmp_path).stat().st_size
        assert size == data_end(recs) + STEP  # open tops the padding up to a whole step
        log.append([(21, b"next")])
    assert "torn" not in caplog.text
    assert only_segment(tmp_path).stat().st_size == size  # the append went into the padding
    assert read_all(tmp_path) == recs + [(21, b"next")]


def test_reopen_restores_the_padding_lead(tmp_path: Path) -> None:
    recs = records(3)
    write_log(tmp_path, recs, preallocate_bytes=0)
    assert only_segment(tmp_path).stat().st_size == data_end(recs)
    with TxnLog.recover(tmp_path, preallocate_bytes=STEP):
        pass
    data = only_segment(tmp_path).read_bytes()
    assert len(data) == data_end(recs) + STEP and fmt.is_padding(data, data_end(recs))


def test_torn_record_before_padding_is_cut_and_padding_restored(tmp_path: Path) -> None:
    recs = records(5)
    write_log(tmp_path, recs, preallocate_bytes=STEP)
    path = only_segment(tmp_path)
    data = bytearray(path.read_bytes())
    torn = fmt.encode_record(6, b"x" * 40)[:30]  # half a record written over the zeros
    data[data_end(recs) : data_end(recs) + len(torn)] = torn
    path.write_bytes(data)
    with TxnLog.recover(tmp_path, preallocate_bytes=STEP) as log:
        assert log.recovery is not None and log.recovery.torn_at == (path, data_end(recs))
        assert log.last_zxid == 5
        after = path.read_bytes()
        assert len(after) == data_end(recs) + STEP and fmt.is_padding(after, data_end(recs))
        log.append([(6, b"again")])
    assert read_all(tmp_path) == recs + [(6, b"again")]


def test_stray_byte_in_padding_is_a_torn_tail(tmp_path: Path) -> None:
    """Bytes after the zeros but no whole record: nothing acknowledged is there (a write torn
    out of order), so it is cut like any torn tail."""
    recs = records(5)
    write_log(tmp_path, recs, preallocate_bytes=STEP)
    path = only_segment(tmp_path)
    data = bytearray(path.read_bytes())
    data[data_end(recs) + 1000] = 0x5A
    path.write_bytes(data)
    with TxnLog.recover(tmp_path) as log:
        assert log.recovery is not None and log.recovery.torn_at == (path, data_end(recs))
    assert read_all(tmp_path) == recs


def test_record_after_a_hole_of_zeros_is_corruption(tmp_path: Path) -> None:
    """Zeros followed by a valid record are not padding: a record was lost in the middle."""
    recs = records(5)
    write_log(tmp_path, recs, preallocate_bytes=STEP)
    path = only_segment(tmp_path)
    data = bytearray(path.read_bytes())
    at = data_end(recs) + 100
    data[at : at + REC + 3] = fmt.encode_record(7, b"abc")
    path.write_bytes(data)
    with pytest.raises(CorruptLogError) as info:
        TxnLog.recover(tmp_path)
    assert f"offset {data_end(recs)}" in str(info.value) and "valid records follow" in str(info.value)
    # And a record zeroed out in the middle of the log is corruption, as a bad byte is.
    write_log(tmp_path / "b", recs, preallocate_bytes=STEP)
    path = only_segment(tmp_path / "b")
    data = bytearray(path.read_bytes())
    start = data_end(recs[:2])
    data[start : data_end(recs[:3])] = bytes(data_end(recs[:3]) - start)
    path.write_bytes(data)
    with pytest.raises(CorruptLogError, match=f"offset {start}: bad record magic, but valid records follow"):
        TxnLog.recover(tmp_path / "b")


def test_corrupt_middle_record_in_a_padded_segment(tmp_path: Path) -> None:
    recs = records(5)
    write_log(tmp_path, recs, preallocate_bytes=STEP)
    path = only_segment(tmp_path)
    data = bytearray(path.read_bytes())
    start = data_end(recs[:2])
    data[start + REC + 3] ^= 0x01
    path.write_bytes(data)
    with pytest.raises(CorruptLogError) as info:
        TxnLog.recover(tmp_path)
    message = str(info.value)
    assert "\n" not in message and f"offset {start}: record CRC mismatch, but valid records follow" in message
    assert path.read_bytes() == data  # nothing was "repaired"


def test_crash_at_any_point_while_padding(tmp_path: Path) -> None:
    """Padding written but not yet synced when the machine stopped: the file ends anywhere in
    it (a new segment's header included), and recovery keeps every record."""
    recs = records(4)
    write_log(tmp_path / "orig", recs, preallocate_bytes=0)
    grown = only_segment(tmp_path / "orig").read_bytes() + bytes(STEP)
    end = data_end(recs)
    for cut in sorted({end, end + 1, end + REC - 1, end + REC, end + 777, len(grown) - 1, len(grown)}):
        d = tmp_path / f"cut{cut}"
        d.mkdir()
        (d / "log.0000000000000001").write_bytes(grown[:cut])
        with TxnLog.recover(d, preallocate_bytes=STEP) as log:
            assert log.recovery is not None and log.recovery.truncated_bytes == 0
            assert list(log.read_after(0)) == recs
            log.append([(5, b"five")])
        assert read_all(d) == recs + [(5, b"five")]
    # A new segment: header then padding, all unsynced; recs[-1] is in the one before.
    header_and_padding = fmt.encode_segment_header(5, 4) + bytes(STEP)
    for cut in (0, 1, HDR - 1, HDR, HDR + 1, HDR + 500, len(header_and_padding)):
        d = tmp_path / f"new{cut}"
        d.mkdir()
        (d / "log.0000000000000001").write_bytes(grown[:end])
        (d / "log.0000000000000005").write_bytes(header_and_padding[:cut])
        with TxnLog.recover(d, preallocate_bytes=STEP) as log:
            assert log.recovery is not None
            assert log.recovery.removed == ((d / "log.0000000000000005",) if cut < HDR else ())
            log.append([(5, b"five")])
        assert read_all(d) == recs + [(5, b"five")]


def test_padding_in_a_segment_that_is_not_the_last(tmp_path: Path) -> None:
    """Accepted as the end of its records; records missing there show as a gap."""
    recs = records(6)
    with TxnLog.recover(tmp_path, preallocate_bytes=0) as log:
        log.append(recs[:3])
        log.roll()
        log.append(recs[3:])
    first = tmp_path / "log.0000000000000001"
    with open(first, "ab") as f:
        f.write(bytes(5000))
    assert read_all(tmp_path) == recs
    data = first.read_bytes()
    first.write_bytes(data[: data_end(recs[:2])] + bytes(len(data) - data_end(recs[:2])))
    with pytest.raises(CorruptLogError, match="gap between segments"):
        TxnLog.recover(tmp_path)


# -- truncation -----------------------------------------------------------------------------


@pytest.mark.parametrize("keep", [0, 1, 37, 199])
def test_truncate_after_removes_the_records_from_the_file(tmp_path: Path, keep: int) -> None:
    """Zab TRUNC: the records after the point are gone from disk, not merely skipped, even
    where the file held far more than the new padding; new records then go after the point."""
    recs = records(200, size=60)  # ~20 KB: the file grew several steps
    with TxnLog.recover(tmp_path, preallocate_bytes=STEP) as log:
        log.append(recs)
        log.sync()
        log.truncate_after(keep)
        assert log.last_zxid == keep and log.last_synced_zxid == keep
        path = only_segment(tmp_path)
        data = path.read_bytes()
        assert len(data) == data_end(recs[:keep]) + STEP
        assert fmt.is_padding(data, data_end(recs[:keep]))
        assert fmt.RECORD_MAGIC not in data[data_end(recs[:keep]) :]
    with TxnLog.recover(tmp_path, preallocate_bytes=STEP) as log:
        assert log.recovery is not None and log.recovery.truncated_bytes == 0
        assert log.last_zxid == keep
        assert list(log.read_after(0)) == recs[:keep]
        new = [(z, b"new" + str(z).encode()) for z in range(keep + 1, keep + 4)]
        log.append(new)
        log.sync()
    assert read_all(tmp_path) == recs[:keep] + new


def test_truncate_after_across_rolled_segments(tmp_path: Path) -> None:
    recs = records(100)
    with TxnLog.recover(tmp_path, segment_bytes=1000, preallocate_bytes=STEP) as log:
        log.append(recs)
        assert len(log.segments) > 3
        victim = log._segments[1]
        zxid = victim.first_zxid + 1
        log.truncate_after(zxid)
        assert log.segments[-1] == victim.path
        data = victim.path.read_bytes()
        assert len(data) > victim.size  # the rolled, unpadded segment was padded again
        assert fmt.is_padding(data, victim.size)
    with TxnLog.recover(tmp_path, segment_bytes=1000) as log:
        assert list(log.read_after(0)) == recs[:zxid]
        log.append([(zxid + 1, b"after")])
    assert read_all(tmp_path, segment_bytes=1000) == recs[:zxid] + [(zxid + 1, b"after")]


def test_crash_inside_truncate_after(tmp_path: Path) -> None:
    """ftruncate, padding, fsync: a crash before the fsync leaves the old file (the TRUNC did
    not happen), the cut file, or the cut file with part of the new padding; never a mix of
    old records after new zeros (the cut frees the old blocks, the padding takes new ones)."""
    recs = records(30)
    write_log(tmp_path / "orig", recs, preallocate_bytes=STEP)
    old = only_segment(tmp_path / "orig").read_bytes()
    cut = data_end(recs[:10])
    states = {"old": old, "cut": old[:cut]}
    states.update({f"padded{n}": old[:cut] + bytes(n) for n in (1, REC, 1000, STEP)})
    for name, content in states.items():
        d = tmp_path / name
        d.mkdir()
        (d / "log.0000000000000001").write_bytes(content)
        expected = recs if name == "old" else recs[:10]
        assert read_all(d) == expected


# -- roll, start_at, purge, snapshot install ------------------------------------------------


def test_roll_gives_the_padding_back(tmp_path: Path) -> None:
    with TxnLog.recover(tmp_path, preallocate_bytes=STEP) as log:
        log.append(records(3))
        first = only_segment(tmp_path)
        assert first.stat().st_size == HDR + STEP
        log.roll()
        assert first.stat().st_size == data_end(records(3))
        log.append(records(2, start=10))
        second = log.segments[-1]
        assert second.stat().st_size == HDR + STEP
    assert read_all(tmp_path) == records(3) + records(2, start=10)


def test_roll_of_an_empty_padded_segment_then_reuse(tmp_path: Path) -> None:
    with TxnLog.recover(tmp_path, preallocate_bytes=STEP) as log:
        log.start_at(7)
        seg = only_segment(tmp_path)
        assert seg.stat().st_size == HDR + STEP
        log.roll()
        assert seg.stat().st_size == HDR
        log.append([(8, b"eight")])  # reuses log.8, which is padded again
        assert seg.stat().st_size == data_end([(8, b"eight")]) + STEP
    assert read_all(tmp_path) == [(8, b"eight")]


def test_purge_and_snapshot_install_with_padded_segments(tmp_path: Path) -> None:
    with DataDir(tmp_path / "d", segment_bytes=2000) as d:
        d.log.append(records(100))
        d.log.sync()
        d.snapshots.write(60, b"tree@60")
        d.purge(1)
        assert d.log.base_zxid <= 60 and list(d.log.read_after(60)) == records(40, start=61)
        d.install_snapshot(200, b"tree@200", [(201, b"a"), (202, b"b")])
        [seg] = d.log.segments
        data = seg.read_bytes()
        assert fmt.is_padding(data, data_end([(201, b"a"), (202, b"b")]))
        assert len(data) > data_end([(201, b"a"), (202, b"b")])
        d.log.append([(203, b"c")])
        d.log.sync()
    with DataDir(tmp_path / "d", segment_bytes=2000) as d:
        plan = d.recover_plan()
        assert (plan.snapshot_zxid, list(plan.records)) == (200, [(201, b"a"), (202, b"b"), (203, b"c")])
