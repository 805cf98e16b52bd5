"""Snapshots written by a forked child (server/snapshot_child.py): the tree as it was at the
fork, whatever the server does meanwhile; nothing inherited kept open; failures reported."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from ccore.server import snapshot_child
from ccore.server.snapshot_child import SnapshotChildError
from ccore.server.snapshot_codec import tree_of
from ccore.server.storage.snapshots import SnapshotStore
from ccore.znodes.acl import OPEN_ACL_UNSAFE
from ccore.znodes.codec import encode_snapshot
from ccore.znodes.tree import DataTree
from ccore.znodes.txn import Create, Txn

pytestmark = pytest.mark.skipif(not snapshot_child.can_fork(), reason="no fork on this platform")


def _tree(nodes: int) -> DataTree:
    tree = DataTree()
    for i in range(nodes):
        tree.apply(Txn(i + 1, 0, 0, Create(f"/n{i}", b"v" * 20, OPEN_ACL_UNSAFE, 0)))
    return tree


def test_the_child_writes_the_tree_as_it_was_at_the_fork(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    tree = _tree(2000)
    expected = encode_snapshot(tree)
    child = snapshot_child.start(tree, store.path(tree.last_zxid))
    # The server goes on applying while the child writes: the child's copy does not change.
    for i in range(2000, 2100):
        tree.apply(Txn(i + 1, 0, 0, Create(f"/n{i}", b"later", OPEN_ACL_UNSAFE, 0)))
    size = child.wait()
    stored = store.read(2000)
    assert stored.version == 2 and len(stored.frames) > 1  # batched: nodes, then sessions
    assert encode_snapshot(tree_of(stored)) == expected
    assert size == store.path(2000).stat().st_size


def test_a_killed_child_is_a_failure_and_leaves_no_snapshot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = SnapshotStore(tmp_path)
    monkeypatch.setattr(snapshot_child, "write_tree", lambda tree, write: time.sleep(30))
    child = snapshot_child.start(_tree(3), store.path(3))
    child.kill()
    with pytest.raises(SnapshotChildError):
        child.wait()
    assert store.list() == []


def test_a_failing_child_reports_it(tmp_path: Path) -> None:
    child = snapshot_child.start(_tree(3), tmp_path / "no-such-dir" / "snapshot")
    with pytest.raises(SnapshotChildError):
        child.wait()


def test_the_child_keeps_no_inherited_descriptor_open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A client socket the server closes must reach EOF at once, not when the child ends."""
    ours, theirs = socket.socketpair()
    monkeypatch.setattr(snapshot_child, "write_tree", lambda tree, write: time.sleep(2))
    child = snapshot_child.start(_tree(3), tmp_path / "snapshot")
    try:
        ours.close()
        theirs.settimeout(1.0)
        assert theirs.recv(10) == b""  # EOF now, though the child still runs
        fds = set(os.listdir(f"/proc/{child.pid}/fd")) if os.path.isdir(f"/proc/{child.pid}/fd") else {"0", "1", "2"}
        # Its own output (the snapshot's temp file, which it writes as it encodes) and nothing else.
        own = {fd for fd in fds - {"0", "1", "2"} if os.readlink(f"/proc/{child.pid}/fd/{fd}").startswith(str(tmp_path))}
        assert fds - own <= {"0", "1", "2"} and len(own) <= 1
    finally:
        child.kill()
        theirs.close()
        with pytest.raises(SnapshotChildError):
            child.wait()


def test_children_yield_the_cpu_to_the_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A periodic snapshot runs at the lowest priority, a streamed one (SNAP, backup) lower
    than the server: on a busy machine the server's loop gets the CPU first."""
    server = os.getpriority(os.PRIO_PROCESS, 0)

    def report_niceness(tree: DataTree, write: object) -> None:
        write(str(os.getpriority(os.PRIO_PROCESS, 0)).encode())  # type: ignore[operator]

    monkeypatch.setattr(snapshot_child, "write_tree", report_niceness)
    child = snapshot_child.start(_tree(3), tmp_path / "snap")
    child.wait()
    assert int((tmp_path / "snap").read_text()) == min(19, server + snapshot_child.PERIODIC_NICENESS)
    piped = snapshot_child.start_to_pipe(_tree(3))
    assert piped.fd is not None
    with os.fdopen(piped.fd, "rb") as pipe:
        got = pipe.read()
    piped.wait()
    assert int(got) == min(19, server + snapshot_child.STREAMED_NICENESS)


def test_a_snapshot_file_is_flushed_as_it_is_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not all dirty at once before one fsync: the server's log fsyncs would queue behind it."""
    flushes = tmp_path / "flushes"

    def record_flush(fd: int) -> None:
        with flushes.open("a") as f:
            f.write(f"{os.lseek(fd, 0, os.SEEK_CUR)}\n")

    monkeypatch.setattr(snapshot_child, "FLUSH_BYTES", 64 * 1024)
    monkeypatch.setattr(snapshot_child, "_datasync", record_flush)
    store = SnapshotStore(tmp_path / "snaps")
    tree = _tree(20_000)  # about 1 MB of snapshot
    size = snapshot_child.start(tree, store.path(tree.last_zxid)).wait()
    offsets = [int(line) for line in flushes.read_text().split()]
    # A flush as soon as a frame (a batch: at most 512 KiB of paths and data) crosses the
    # threshold: never more than that unflushed, however big the file.
    assert len(offsets) >= 4
    gaps = [b - a for a, b in zip([0, *offsets], [*offsets, size], strict=True)]
    assert max(gaps) < 64 * 1024 + 600 * 1024, gaps
    assert encode_snapshot(tree_of(store.read(tree.last_zxid))) == encode_snapshot(tree)
