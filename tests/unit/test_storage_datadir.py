"""SnapshotStore, EpochFile and DataDir: atomic files, fallback, locking, recovery plan, purge."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ccore.server.storage import (
    CorruptEpochError,
    CorruptSnapshotError,
    DataDir,
    DataDirAccessError,
    DataDirLockedError,
    EpochFile,
    MissingHistoryError,
    SnapshotStore,
    StorageError,
    _fsutil,
)


def _latest(store: SnapshotStore) -> tuple[int, bytes] | None:
    """(zxid, payload) of the newest valid snapshot (these tests write opaque, version-1 ones)."""
    got = store.latest()
    return None if got is None else (got[0], got[1].payload)


def one_line(exc: BaseException) -> str:
    assert "\n" not in str(exc)
    return str(exc)


# -- snapshots ------------------------------------------------------------------------------


def test_snapshot_round_trip(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    assert store.latest() is None
    assert store.list() == []
    path = store.write(0x1_0000_0005, b"tree")
    assert path.name == "snapshot.0000000100000005"
    store.write(7, b"")
    assert store.list() == [7, 0x1_0000_0005]
    assert _latest(store) == (0x1_0000_0005, b"tree")
    assert store.read(7).payload == b""
    store.write(7, b"again")  # rewriting the same zxid replaces it atomically
    assert store.read(7).payload == b"again"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "snapshot.0000000000000007",
        "snapshot.0000000100000005",
    ]


@pytest.mark.parametrize("damage", ["flip_payload", "flip_header", "truncate", "extend", "empty", "rename"])
def test_latest_falls_back_when_newest_is_corrupt(tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture) -> None:
    store = SnapshotStore(tmp_path)
    store.write(10, b"old" * 100)
    newest = store.write(20, b"new" * 100)
    data = bytearray(newest.read_bytes())
    if damage == "flip_payload":
        data[-5] ^= 0x10
    elif damage == "flip_header":
        data[20] ^= 0x10
    elif damage == "truncate":
        data = data[:-1]
    elif damage == "extend":
        data += b"\x00"
    elif damage == "empty":
        data = bytearray()
    newest.write_bytes(data)
    if damage == "rename":  # a valid file under the wrong name
        newest.unlink()
        (tmp_path / "snapshot.0000000000000015").write_bytes(data)
    assert _latest(store) == (10, b"old" * 100)
    assert "skipping" in caplog.text
    with pytest.raises(CorruptSnapshotError) as info:
        store.read(store.list()[-1])
    assert "snapshot" in one_line(info.value)


def test_all_snapshots_corrupt_gives_none(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    store.write(1, b"x").write_bytes(b"garbage")
    assert store.latest() is None


def test_interrupted_snapshot_write_leaves_temp_that_is_ignored_then_cleaned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SnapshotStore(tmp_path)
    store.write(5, b"good")

    def crash(src: object, dst: object) -> None:
        raise KeyboardInterrupt("power cut before rename")

    monkeypatch.setattr(_fsutil.os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        store.write(9, b"half")
    monkeypatch.undo()
    tmp = tmp_path / "snapshot.0000000000000009.tmp"
    assert tmp.exists()
    assert store.list() == [5]
    assert _latest(store) == (5, b"good")
    SnapshotStore(tmp_path)  # the next start cleans up
    assert not tmp.exists()
    assert (tmp_path / "snapshot.0000000000000005").exists()


def test_failed_snapshot_write_removes_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = SnapshotStore(tmp_path)

    def full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_fsutil.os, "fsync", full)
    with pytest.raises(OSError):
        store.write(3, b"x")
    assert list(tmp_path.iterdir()) == []


def test_snapshot_purge_keeps_newest_valid(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    for zxid in (1, 2, 3, 4, 5):
        store.write(zxid, str(zxid).encode())
    assert store.purge(2) == 4
    assert store.list() == [4, 5]
    store.path(5).write_bytes(b"corrupt")
    # the corrupt newest does not count: keep 4 (valid) and 5 (corrupt, newer), remove nothing valid
    assert store.purge(1) == 4
    assert store.list() == [4, 5]
    assert store.purge(2) is None  # only one valid snapshot: nothing removed
    assert store.list() == [4, 5]
    with pytest.raises(ValueError):
        store.purge(0)


# -- epochs ---------------------------------------------------------------------------------


def test_epoch_file(tmp_path: Path) -> None:
    epoch = EpochFile(tmp_path / "accepted_epoch")
    assert epoch.read() == 0
    assert EpochFile(tmp_path / "x", default=-1).read() == -1
    epoch.write(7)
    assert (tmp_path / "accepted_epoch").read_bytes() == b"7\n"
    assert EpochFile(tmp_path / "accepted_epoch").read() == 7
    epoch.write(2**32 - 1)
    assert epoch.read() == 2**32 - 1
    for bad in (-1, 2**32, "3", 1.0):
        with pytest.raises(ValueError):
            epoch.write(bad)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == [tmp_path / "accepted_epoch"]


@pytest.mark.parametrize("content", [b"", b"7", b"abc\n", b"-1\n", b"07\n", b"1 2\n", b"4294967296\n", b"\x00\x00"])
def test_garbage_epoch_file_raises(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "current_epoch").write_bytes(content)
    with pytest.raises(CorruptEpochError) as info:
        EpochFile(tmp_path / "current_epoch").read()
    assert str(tmp_path / "current_epoch") in one_line(info.value)


def test_epoch_temp_file_is_cleaned(tmp_path: Path) -> None:
    (tmp_path / "current_epoch").write_bytes(b"3\n")
    (tmp_path / "current_epoch.tmp").write_bytes(b"4")
    assert EpochFile(tmp_path / "current_epoch").read() == 3
    assert not (tmp_path / "current_epoch.tmp").exists()


# -- data dir -------------------------------------------------------------------------------


def test_data_dir_layout_and_reopen(tmp_path: Path) -> None:
    root = tmp_path / "data" / "server1"
    with DataDir(root) as dd:
        assert (root / "log").is_dir() and (root / "snap").is_dir() and (root / "LOCK").exists()
        assert dd.log.last_zxid == 0
        dd.log.append([(1, b"a"), (2, b"b")])
        dd.accepted_epoch.write(1)
        dd.current_epoch.write(1)
    assert not (root / ".write-probe").exists()
    with DataDir(root) as dd:
        assert dd.log.last_zxid == 2  # close() synced
        assert (dd.accepted_epoch.read(), dd.current_epoch.read()) == (1, 1)


def test_data_dir_lock_refuses_second_opener(tmp_path: Path) -> None:
    first = DataDir(tmp_path)
    with pytest.raises(DataDirLockedError) as info:
        DataDir(tmp_path)
    message = one_line(info.value)
    assert str(tmp_path) in message and f"pid {os.getpid()}" in message
    first.close()
    DataDir(tmp_path).close()  # released on close


def test_data_dir_lock_across_processes(tmp_path: Path) -> None:
    code = (
        "import sys; from ccore.server.storage import DataDir, DataDirLockedError\n"
        "try:\n    DataDir(sys.argv[1])\nexcept DataDirLockedError as e:\n    print(e); sys.exit(3)\n"
    )
    with DataDir(tmp_path):
        proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=False)
    assert proc.returncode == 3, proc.stderr
    assert "in use by another server" in proc.stdout
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_data_dir_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    for path in (tmp_path / "f", tmp_path / "f" / "sub"):
        with pytest.raises(DataDirAccessError) as info:
            DataDir(path)
        assert str(tmp_path / "f") in one_line(info.value)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "log").write_text("not a dir")
    with pytest.raises(DataDirAccessError):
        DataDir(tmp_path / "d")


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores permission bits")
def test_data_dir_not_writable(tmp_path: Path) -> None:
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro").chmod(0o500)
    try:
        with pytest.raises(DataDirAccessError) as info:
            DataDir(tmp_path / "ro")
        assert "not readable and writable" in one_line(info.value)
    finally:
        (tmp_path / "ro").chmod(0o700)


def test_recover_plan(tmp_path: Path) -> None:
    recs = [(z, b"r%d" % z) for z in range(1, 31)]
    with DataDir(tmp_path, segment_bytes=120) as dd:
        plan = dd.recover_plan()
        assert (plan.snapshot_zxid, plan.snapshot, list(plan.records)) == (0, None, [])
        dd.log.append(recs)
        dd.log.sync()
        plan = dd.recover_plan()
        assert (plan.snapshot_zxid, plan.snapshot, list(plan.records)) == (0, None, recs)
        dd.snapshots.write(12, b"state@12")
        plan = dd.recover_plan()
        assert plan.snapshot is not None
        assert (plan.snapshot_zxid, plan.snapshot.payload, list(plan.records)) == (
            12,
            b"state@12",
            recs[12:],
        )
        dd.snapshots.write(40, b"state@40")  # e.g. installed by SNAP beyond our log
        plan = dd.recover_plan()
        assert (plan.snapshot_zxid, list(plan.records)) == (40, [])


def test_purge_and_missing_history(tmp_path: Path) -> None:
    recs = [(z, b"r%d" % z) for z in range(1, 101)]
    with DataDir(tmp_path, segment_bytes=150) as dd:
        dd.log.append(recs)
        dd.log.sync()
        assert dd.purge(3) is None  # no snapshots: nothing may go
        assert dd.log.base_zxid == 0
        for zxid in (20, 50, 80):
            dd.snapshots.write(zxid, b"s%d" % zxid)
        assert dd.purge(2) == 50
        assert dd.snapshots.list() == [50, 80]
        assert 0 < dd.log.base_zxid <= 50
        plan = dd.recover_plan()
        assert (plan.snapshot_zxid, list(plan.records)) == (80, recs[80:])
        dd.snapshots.write(90, b"s90")
        assert dd.purge(1) == 90
        assert 80 < dd.log.base_zxid <= 90
        # the snapshot the log was purged for rots: the older history is gone, say so
        dd.snapshots.path(90).write_bytes(b"rot")
        with pytest.raises(MissingHistoryError) as info:
            dd.recover_plan()
        assert "missing" in one_line(info.value)
        assert isinstance(info.value, StorageError)


def test_data_dir_releases_lock_when_recovery_fails(tmp_path: Path) -> None:
    with DataDir(tmp_path) as dd:
        dd.current_epoch.write(1)
    (tmp_path / "log" / "log.0000000000000001").write_bytes(b"CCORELOG" + b"\xff" * 100)
    (tmp_path / "log" / "log.0000000000000002").write_bytes(b"")
    with pytest.raises(StorageError):
        DataDir(tmp_path)
    (tmp_path / "log" / "log.0000000000000001").unlink()
    DataDir(tmp_path).close()  # not locked by the failed attempt
