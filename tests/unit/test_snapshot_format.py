"""The batched snapshot file format (storage/snapshots.py, version 2) and its tree codec
(server/snapshot_codec.py): round trips, every torn or damaged file refused, files of older
builds (version 1) still read, received files adopted by an install or removed at start."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from ccore.server.database import Database
from ccore.server.snapshot_codec import TreeReceiver, encode_tree, tree_of
from ccore.server.storage import CorruptSnapshotError, DataDir, SnapshotStore
from ccore.server.storage.snapshots import BATCHED_VERSION, WHOLE_VERSION, read_snapshot_file
from ccore.znodes.acl import OPEN_ACL_UNSAFE, READ_ACL_UNSAFE
from ccore.znodes.codec import encode_snapshot, encode_txn
from ccore.znodes.tree import DataTree
from ccore.znodes.txn import Create, CreateSession, Delete, Multi, SetData, Txn


def _tree(nodes: int, zxid: int = 0) -> DataTree:
    tree = DataTree()
    tree.apply(Txn(zxid + 1, 0, 9, CreateSession(4000, b"s" * 16)))
    tree.apply(Txn(zxid + 2, 0, 9, Create("/a", b"", OPEN_ACL_UNSAFE, 0)))
    for i in range(nodes):
        acl = READ_ACL_UNSAFE if i % 3000 == 2999 else OPEN_ACL_UNSAFE
        tree.apply(Txn(zxid + 3 + i, 0, 9, Create(f"/a/n{i}", bytes([i % 251]) * (i % 300), acl, 1 if i % 700 == 0 else 0)))
    return tree


def _same(a: DataTree, b: DataTree) -> None:
    assert encode_snapshot(a) == encode_snapshot(b)
    assert (a.ephemerals, a.data_size, a.last_zxid) == (b.ephemerals, b.data_size, b.last_zxid)


def test_a_tree_round_trips_through_a_batched_file(tmp_path: Path) -> None:
    tree = _tree(10_000)
    path = tmp_path / "snap"
    path.write_bytes(encode_tree(tree))
    stored = read_snapshot_file(path, tree.last_zxid, "")
    assert stored.version == BATCHED_VERSION and stored.nodes == len(tree.nodes)
    assert len(stored.frames) > 3  # several batches and the sessions
    _same(tree_of(stored), tree)
    (tmp_path / "empty").write_bytes(encode_tree(DataTree()))  # the four nodes of a new tree
    _same(tree_of(read_snapshot_file(tmp_path / "empty", 0, "")), DataTree())


@pytest.mark.parametrize("piece", [1, 7, 4096, 1 << 20])
def test_the_receiver_takes_any_piece_size(piece: int) -> None:
    tree = _tree(5000)
    data = encode_tree(tree)
    receiver = TreeReceiver(tree.last_zxid, "test", "")
    got = None
    for start in range(0, len(data), piece):
        assert got is None
        got = receiver.feed(data[start : start + piece])
    assert got is not None
    _same(got, tree)


def test_a_torn_or_damaged_file_never_reads(tmp_path: Path) -> None:
    tree = _tree(5000)
    data = encode_tree(tree)
    path = tmp_path / "snap"
    rng = random.Random(12)
    for cut in [0, 10, 31, 32, 40, len(data) // 2, len(data) - 21, len(data) - 1, *rng.sample(range(len(data)), 20)]:
        path.write_bytes(data[:cut])
        with pytest.raises(CorruptSnapshotError):
            read_snapshot_file(path, tree.last_zxid, "")
    for at in [0, 9, 12, 20, 30, 33, len(data) - 1, *rng.sample(range(len(data)), 40)]:
        flipped = bytearray(data)
        flipped[at] ^= 1 << rng.randrange(8)
        path.write_bytes(bytes(flipped))
        with pytest.raises(CorruptSnapshotError):
            read_snapshot_file(path, tree.last_zxid, "")
    path.write_bytes(data)
    with pytest.raises(CorruptSnapshotError, match="expected"):
        read_snapshot_file(path, tree.last_zxid + 1, "")


def test_the_newest_snapshot_torn_falls_back_to_an_older_one_of_either_version(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    old = _tree(100)
    store.write(old.last_zxid, encode_snapshot(old))  # version 1, as an older build wrote it
    new = _tree(200, zxid=old.last_zxid)
    data = encode_tree(new)
    store.path(new.last_zxid).write_bytes(data[: len(data) - 5])  # torn
    zxid, stored = store.latest() or (0, None)
    assert zxid == old.last_zxid and stored is not None and stored.version == WHOLE_VERSION
    _same(tree_of(stored), old)
    store.path(new.last_zxid).write_bytes(data)
    zxid, stored = store.latest() or (0, None)
    assert zxid == new.last_zxid and stored is not None
    _same(tree_of(stored), new)


def test_an_upgraded_server_restarts_from_an_old_data_dir(tmp_path: Path) -> None:
    """A data dir of an older build: a version-1 snapshot and the log after it."""
    tree = _tree(3000)
    snap_zxid = tree.last_zxid
    with DataDir(tmp_path) as d:
        d.log.start_at(snap_zxid)
        d.snapshots.write(snap_zxid, encode_snapshot(tree))
        later = [Txn(snap_zxid + 1 + i, 0, 9, SetData(f"/a/n{i}", b"new", -1)) for i in range(50)]
        d.log.append([(t.zxid, encode_txn(t)) for t in later])
        d.log.sync()
    for t in later:
        tree.apply(t)
    db = Database(tmp_path)
    try:
        got = db.open()
        _same(got, tree)
        assert db.snapshot_zxid == snap_zxid
    finally:
        db.close()


def test_a_received_file_is_adopted_by_the_install_and_temp_files_go_at_start(tmp_path: Path) -> None:
    tree = _tree(2000)
    with DataDir(tmp_path) as d:
        received = d.snapshots.directory / f"snapshot.{tree.last_zxid:016x}.recv1.tmp"
        received.write_bytes(encode_tree(tree))
        d.install_snapshot(tree.last_zxid, received, [])
        assert not received.exists() and d.snapshots.list() == [tree.last_zxid]
        plan = d.recover_plan()
        assert plan.snapshot is not None
        _same(tree_of(plan.snapshot), tree)
        # A follower killed mid-stream leaves its partial file: the next start removes it.
        (d.snapshots.directory / f"snapshot.{tree.last_zxid + 5:016x}.recv2.tmp").write_bytes(b"CCORSNAP partial")
    with DataDir(tmp_path) as d:
        assert sorted(p.name for p in d.snapshots.directory.iterdir()) == [f"snapshot.{tree.last_zxid:016x}"]


@pytest.mark.parametrize("seed", range(5))
def test_the_tree_keeps_parents_before_children_whatever_happens(seed: int) -> None:
    """The batches follow `tree.nodes`' order, which must put parents first: creates, deletes,
    a parent deleted and made again, multis that fail half-way and are undone."""
    rng = random.Random(seed)
    tree = DataTree()
    names = ["/a", "/b", "/a/x", "/a/y", "/b/x", "/a/x/1", "/a/x/2", "/b/x/1"]
    zxid = 0
    for _ in range(600):
        zxid += 1
        ops = []
        for _ in range(rng.choice((1, 1, 3))):
            path = rng.choice(names)
            ops.append(Create(path, b"", OPEN_ACL_UNSAFE, 0) if rng.random() < 0.6 else Delete(path))
        tree.apply(Txn(zxid, 0, 0, ops[0] if len(ops) == 1 else Multi(tuple(ops))))
        seen: set[str] = set()
        for path in tree.nodes:
            assert path == "/" or (path.rpartition("/")[0] or "/") in seen, (seed, zxid, path)
            seen.add(path)
    receiver = TreeReceiver(tree.last_zxid, "test", "")
    got = receiver.feed(encode_tree(tree))
    assert got is not None
    _same(got, tree)


def test_restore_takes_a_backup_or_a_snapshot_file_of_either_version(tmp_path: Path) -> None:
    from ccore.server.backup_cli import restore_into
    from ccore.server.storage.snapshots import encode_snapshot_header

    tree = _tree(3000)
    payload = encode_snapshot(tree)
    files = {"whole": encode_snapshot_header(tree.last_zxid, payload) + payload, "batched": encode_tree(tree)}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        zxid, znodes = restore_into(tmp_path / name, tmp_path / f"{name}-dir")
        assert (zxid, znodes) == (tree.last_zxid, len(tree.nodes))
        db = Database(tmp_path / f"{name}-dir")
        try:
            _same(db.open(), tree)
        finally:
            db.close()
        assert not list((tmp_path / f"{name}-dir" / "snap").glob("*.tmp"))
    (tmp_path / "torn").write_bytes(files["batched"][:-1])
    with pytest.raises(CorruptSnapshotError):
        restore_into(tmp_path / "torn", tmp_path / "torn-dir")


def test_a_restart_decodes_as_it_reads_and_falls_back_past_a_torn_newest(tmp_path: Path) -> None:
    from ccore.server.snapshot_codec import load_tree

    old = _tree(3000)
    new = _tree(9000, zxid=old.last_zxid)
    with DataDir(tmp_path) as d:
        d.snapshots.write(old.last_zxid, encode_snapshot(old))
        data = encode_tree(new)
        d.snapshots.path(new.last_zxid).write_bytes(data)
        plan = d.recover(load_tree)
        assert plan.snapshot_zxid == new.last_zxid and plan.snapshot is not None
        _same(plan.snapshot, new)
        # Torn after several batches were decoded: that partial tree is dropped, the older one loads.
        d.snapshots.path(new.last_zxid).write_bytes(data[: len(data) * 3 // 4])
        plan = d.recover(load_tree)
        assert plan.snapshot_zxid == old.last_zxid and plan.snapshot is not None
        _same(plan.snapshot, old)
