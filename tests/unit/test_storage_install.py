"""Zab SNAP install: snapshot and log are replaced together, or not at all, across crashes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

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


def _received(d: DataDir, zxid: int) -> Path:
    """A SNAP received from a leader: a complete batched snapshot file under a temp name."""
    from ccore.server.snapshot_codec import encode_tree
    from ccore.znodes.tree import DataTree

    tree = DataTree()
    tree.last_zxid = zxid
    path = d.snapshots.directory / f"snapshot.{zxid:016x}.recv1.tmp"
    path.write_bytes(encode_tree(tree))
    return path


@pytest.mark.parametrize("crash", ["before-marker", "after-marker"])
def test_a_follower_restarted_mid_install_of_a_received_snapshot(tmp_path, monkeypatch, crash: str) -> None:
    import ccore.server.storage.datadir as mod

    d = _old(tmp_path)
    received = _received(d, 10)
    if crash == "before-marker":
        monkeypatch.setattr(mod, "atomic_write", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    else:
        monkeypatch.setattr(DataDir, "_finish_install", lambda self: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        d.install_snapshot(10, received, [(11, b"x")])
    monkeypatch.undo()
    d._unlock()  # the process died
    d = DataDir(tmp_path / "d")
    if crash == "before-marker":  # the old state, and neither the received file nor its snapshot
        assert _state(d) == (0, [(1, b"a"), (2, b"b"), (3, b"old-uncommitted")])
        assert d.snapshots.list() == []
    else:  # rolled forward: the received file is the snapshot
        assert _state(d) == (10, [(11, b"x")])
        plan = d.recover_plan()
        assert plan.snapshot is not None and plan.snapshot.version == 2
    assert not list(d.snapshots.directory.glob("*.tmp"))
    d.close()
