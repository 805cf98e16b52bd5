"""TxnLog.read_batch and the sparse index: bounded reads that start near the zxid asked for,
and ZabStorage.entries_after (the Zab core's bounded read) over a real data dir."""

from __future__ import annotations

from pathlib import Path

import pytest

from ccore.server.database import Database
from ccore.server.storage import PurgedHistoryError, TxnLog
from ccore.server.storage import _logformat as fmt
from ccore.server.zabstorage import ZabStorage

PAYLOAD = 100
RECORD = fmt.RECORD_HEADER_SIZE + PAYLOAD
STRIDE = 4096


def records(n: int, start: int = 1) -> list[tuple[int, bytes]]:
    return [(z, b"%0*d" % (PAYLOAD, z)) for z in range(start, start + n)]


class ParseCounter:
    """Counts record frames parsed: what a read costs, wherever the bytes come from."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        real = fmt.parse_record

        def counting(data: bytes, offset: int) -> fmt.Frame:
            self.count += 1
            return real(data, offset)

        monkeypatch.setattr(fmt, "parse_record", counting)


def open_log(directory: Path) -> TxnLog:
    return TxnLog.recover(directory, segment_bytes=64 << 20, index_stride_bytes=STRIDE)


@pytest.mark.parametrize("reopen", [False, True], ids=["appended", "recovered"])
def test_a_read_deep_in_a_segment_parses_at_most_a_stride_more_than_it_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reopen: bool
) -> None:
    recs = records(20_000)  # 2.4 MB in one segment
    log = open_log(tmp_path)
    for i in range(0, len(recs), 1000):
        log.append(recs[i : i + 1000])
    log.sync()
    assert len(log.segments) == 1
    if reopen:  # the index is rebuilt by the recovery scan
        log.close()
        log = open_log(tmp_path)
    counter = ParseCounter(monkeypatch)
    with log:
        for after in (0, 1, 9_999, 15_000, 19_990, 20_000):
            counter.count = 0
            got = log.read_batch(after, 5, 1 << 20)
            assert got == recs[after : after + 5]
            assert counter.count <= 5 + STRIDE // RECORD + 2, (after, counter.count)
        counter.count = 0
        assert [z for z, _ in log.read_after(19_995)] == list(range(19_996, 20_001))
        assert counter.count <= 5 + STRIDE // RECORD + 2


def test_read_batch_bounds(tmp_path: Path) -> None:
    with open_log(tmp_path) as log:
        log.append(records(10) + [(11, b"x" * 1000), (12, b"y")])
        log.sync()
        assert log.read_batch(0, 3, 1 << 20) == records(3)
        assert log.read_batch(0, 100, 250) == records(2), "two 100-byte payloads fit in 250 bytes"
        assert log.read_batch(0, 100, 200) == records(2)
        assert log.read_batch(10, 100, 10) == [(11, b"x" * 1000)], "the first record comes even if too big"
        assert log.read_batch(10, 100, 1001) == [(11, b"x" * 1000), (12, b"y")]
        assert log.read_batch(12, 100, 100) == []
        assert log.read_batch(99, 1, 1) == []
        with pytest.raises(ValueError):
            log.read_batch(0, 0, 100)
        with pytest.raises(ValueError):
            log.read_batch(0, 1, 0)


def test_read_batch_across_segments_truncation_and_purge(tmp_path: Path) -> None:
    recs = records(300)
    with TxnLog.recover(tmp_path, segment_bytes=2000, index_stride_bytes=300) as log:
        log.append(recs)
        log.sync()
        assert len(log.segments) > 10
        for after in range(0, 301, 7):
            assert log.read_batch(after, 40, 1 << 20) == recs[after : after + 40]
        log.truncate_after(150)
        log.append(records(5, start=151))  # same zxids, new payloads at the cut point
        log.sync()
        assert log.read_batch(140, 100, 1 << 20) == recs[140:150] + records(5, start=151)
        log.purge(100)
        base = log.base_zxid
        assert 0 < base <= 100
        with pytest.raises(PurgedHistoryError):
            log.read_batch(base - 1, 1, 1)
        assert log.read_batch(base, 3, 1 << 20) == recs[base : base + 3]


def test_zab_storage_entries_after_is_one_bounded_batch(tmp_path: Path) -> None:
    db = Database(tmp_path)
    db.open(replay=False)
    try:
        recs = records(5000)
        db.persist(recs)
        storage = ZabStorage(db)
        assert storage.entries_after(0, 10, 1 << 20) == recs[:10]
        assert storage.entries_after(4990, 1000, 1 << 20) == recs[4990:]
        assert storage.entries_after(100, 1000, 450) == recs[100:104]
        assert storage.entries_after(5000, 10, 10) == []
        assert db.dir is not None
        db.dir.log.roll()
        db.persist(records(1, start=5001))
        db.dir.log.purge(5000)
        assert storage.first_zxid() == 5000
        assert storage.entries_after(10, 10, 10) is None, "purged: the core sends a snapshot"
    finally:
        db.close()
