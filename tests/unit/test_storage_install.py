"""Zab SNAP install: snapshot and log are replaced together, or not at all, across crashes."""

from __future__ import annotations

import shutil

from ccore.server.storage import DataDir


def _state(d: DataDir) -> tuple[int, list[tuple[int, bytes]]]:
    plan = d.recover_plan()
    return plan.snapshot_zxid, list(plan.records)


def _old(tmp_path) -> DataDir:
    d = DataDir(tmp_path / "d")
    d.log.append([(1, b"a"), (2, b"b"), (3, b"old-uncommitted")])
    d.log.sync()
    return d


def test_install_replaces_snapshot_and_log(tmp_path) -> None:
    d = _old(tmp_path)
    d.install_snapshot(10, b"tree@10", [(11, b"x"), (12, b"y")])
    assert _state(d) == (10, [(11, b"x"), (12, b"y")])
    d.log.append([(13, b"z")])
    d.log.sync()
    d.close()
    d = DataDir(tmp_path / "d")
    assert _state(d) == (10, [(11, b"x"), (12, b"y"), (13, b"z")])
    assert d.log.base_zxid == 10


def test_install_without_entries(tmp_path) -> None:
    d = _old(tmp_path)
    d.install_snapshot(10, b"tree@10", [])
    d.close()
    d = DataDir(tmp_path / "d")
    assert _state(d) == (10, [])
    assert d.log.last_zxid == 10 or d.log.base_zxid == 10


def test_crash_before_the_marker_keeps_the_old_state(tmp_path, monkeypatch) -> None:
    d = _old(tmp_path)
    import ccore.server.storage.datadir as mod

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("crash")

    monkeypatch.setattr(mod, "atomic_write", crash)
    try:
        d.install_snapshot(10, b"tree@10", [(11, b"x")])
    except KeyboardInterrupt:
        pass
    monkeypatch.undo()
    d._unlock()  # the process died: its lock goes with it
    d = DataDir(tmp_path / "d")
    assert _state(d) == (0, [(1, b"a"), (2, b"b"), (3, b"old-uncommitted")])
    assert d.snapshots.list() == []  # the half-installed snapshot is gone too
    assert not list((tmp_path / "d").glob("log.install.*"))


def test_crash_after_the_marker_rolls_forward(tmp_path, monkeypatch) -> None:
    d = _old(tmp_path)
    monkeypatch.setattr(DataDir, "_finish_install", lambda self: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        d.install_snapshot(10, b"tree@10", [(11, b"x")])
    except KeyboardInterrupt:
        pass
    monkeypatch.undo()
    d._unlock()
    assert (tmp_path / "d" / "INSTALL").exists()
    d = DataDir(tmp_path / "d")
    assert _state(d) == (10, [(11, b"x")])
    assert not (tmp_path / "d" / "INSTALL").exists()
    assert not (tmp_path / "d" / "log.old").exists()
    shutil.rmtree(tmp_path / "d")
