"""Database.write_snapshot purges old snapshots and log segments without holding `log_lock`
over the slow part (unlinks, directory fsyncs), so persist() on the event loop never waits
behind it; and each step of the split purge leaves a data dir that recovers."""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path

import pytest

from ccore.server.database import Database
from ccore.server.storage import DataDir, _fsutil, datadir, snapshots, txnlog

SLOW_S = 1.0
PERSIST_BUDGET_S = 0.3  # a persist (append + fdatasync, perhaps a new segment) takes ms


def records(first: int, last: int) -> list[tuple[int, bytes]]:
    return [(z, b"txn %d" % z) for z in range(first, last + 1)]


def database(path: Path) -> Database:
    db = Database(path, snap_retain_count=1)
    db.open(replay=False)
    return db


def test_persist_does_not_wait_for_the_purge_fsyncs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = database(tmp_path)
    try:
        db.persist(records(1, 100))
        db.write_snapshot(100, b"tree@100")  # rolls: segment (0, 100] is closed
        db.persist(records(101, 200))
        # The next snapshot has an old snapshot and an old segment to purge: each purge
        # fsyncs its directory. Make those fsyncs slow, in the snapshot thread only (a
        # persist may create a segment and fsync the directory itself).
        entered: queue.Queue[Path] = queue.Queue()
        real = _fsutil.fsync_dir
        main = threading.current_thread()

        def slow_fsync_dir(directory: Path) -> None:
            if threading.current_thread() is not main:
                entered.put(directory)
                time.sleep(SLOW_S)
            real(directory)

        for module in (txnlog, snapshots, datadir):
            monkeypatch.setattr(module, "fsync_dir", slow_fsync_dir)
        errors: list[BaseException] = []

        def snapshot() -> None:
            try:
                db.write_snapshot(200, b"tree@200")
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        thread = threading.Thread(target=snapshot)
        thread.start()
        zxid, slow_fsyncs = 200, []
        for _ in range(10):  # one round per slow fsync; there are two
            try:
                slow_fsyncs.append(entered.get(timeout=5 * SLOW_S))
            except queue.Empty:
                break
            started = time.monotonic()
            db.persist(records(zxid + 1, zxid + 10))
            zxid += 10
            elapsed = time.monotonic() - started
            assert elapsed < PERSIST_BUDGET_S, f"persist waited {elapsed:.2f}s behind the purge's fsync of {slow_fsyncs[-1]}"
        thread.join(timeout=10 * SLOW_S)
        assert not thread.is_alive() and not errors, errors
        assert sorted(p.name for p in slow_fsyncs) == ["log", "snap"], "the purge removed a snapshot and a segment"
        assert db.dir is not None
        assert db.dir.snapshots.list() == [200]
        assert db.dir.log.base_zxid == 100
    finally:
        db.close()
    with DataDir(tmp_path) as d:
        plan = d.recover_plan()
        assert plan.snapshot_zxid == 200
        assert [z for z, _ in plan.records] == list(range(201, zxid + 1))


@pytest.mark.parametrize("stop_before", ["detach", "remove", "fsync"])
def test_a_crash_between_the_purge_steps_leaves_a_data_dir_that_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stop_before: str
) -> None:
    class Crash(Exception):
        pass

    def crash(*args: object, **kwargs: object) -> None:
        raise Crash

    db = database(tmp_path)
    db.persist(records(1, 100))
    db.write_snapshot(100, b"tree@100")
    db.persist(records(101, 200))
    if stop_before == "detach":
        monkeypatch.setattr(DataDir, "detach_log", crash)
    elif stop_before == "remove":
        monkeypatch.setattr(DataDir, "remove_detached", crash)
    else:
        monkeypatch.setattr(txnlog, "fsync_dir", crash)
    with pytest.raises(Crash):
        db.write_snapshot(200, b"tree@200")
    monkeypatch.undo()
    assert db.dir is not None
    db.dir._unlock()  # the process dies: no close
    db.dir = None
    with DataDir(tmp_path) as d:
        plan = d.recover_plan()
        assert plan.snapshot_zxid == 200
        assert list(plan.records) == []
        assert d.log.base_zxid <= 200 and d.log.last_zxid == 200
        assert list(d.log.read_after(d.log.base_zxid)) == records(d.log.base_zxid + 1, 200)
