"""Leaves share one empty set of children (znodes/tree.py, NO_CHILDREN): a node gets a set of
its own with its first child and gives it back with its last, through every way a tree is
built or changed. An empty set costs 216 bytes, and most znodes of a big tree are leaves."""

from __future__ import annotations

import gc
import tracemalloc

from ccore.server.snapshot_codec import TreeReceiver, encode_tree
from ccore.znodes.acl import OPEN_ACL_UNSAFE
from ccore.znodes.codec import decode_snapshot, encode_snapshot
from ccore.znodes.tree import NO_CHILDREN, DataTree
from ccore.znodes.txn import Create, CreateSession, Delete, Multi, SetData, Txn

SESSION = 0x100


class Writer:
    def __init__(self) -> None:
        self.tree = DataTree()
        self.zxid = 0
        self(CreateSession(4000, b"p" * 16))

    def __call__(self, op: object) -> object:
        self.zxid += 1
        return self.tree.apply(Txn(self.zxid, 1_000_000, SESSION, op, ()))


def create(path: str, data: bytes = b"") -> Create:
    return Create(path, data, OPEN_ACL_UNSAFE, 0)


def _check(tree: DataTree) -> None:
    """Every leaf holds NO_CHILDREN; every other node an untracked set naming its children."""
    expected: dict[str, set[str]] = {path: set() for path in tree.nodes}
    for path in tree.nodes:
        if path != "/":
            parent, _, name = path.rpartition("/")
            expected[parent or "/"].add(name)
    for path, node in tree.nodes.items():
        if expected[path]:
            assert type(node.children) is set and node.children == expected[path], path
            assert not gc.is_tracked(node.children), path
        else:
            assert node.children is NO_CHILDREN, path


def _built() -> Writer:
    w = Writer()
    w(create("/app"))
    w(create("/app/a"))
    w(create("/app/a/deep"))
    for i in range(50):
        w(create(f"/app/n{i}", b"x"))
    w(create("/empty"))
    return w


def test_leaves_share_the_empty_set_after_writes_and_after_either_snapshot_format() -> None:
    w = _built()
    _check(w.tree)
    _check(decode_snapshot(encode_snapshot(w.tree)))
    receiver = TreeReceiver(w.tree.last_zxid, "test", "")
    data = encode_tree(w.tree)
    got = None
    for start in range(0, len(data), 100):
        got = receiver.feed(data[start : start + 100])
    assert got is not None
    _check(got)


def test_a_node_gives_its_set_back_with_its_last_child_and_a_failed_multi_restores_it() -> None:
    w = _built()
    w(Delete("/app/a/deep", -1))
    assert w.tree.nodes["/app/a"].children is NO_CHILDREN
    w(create("/app/a/again"))
    assert w.tree.nodes["/app/a"].children == {"again"}
    # Deletes the last child, then fails: the undo links it back into a set of its own.
    w(Multi((Delete("/app/a/again", -1), SetData("/missing", b"", -1))))
    _check(w.tree)
    assert w.tree.nodes["/app/a"].children == {"again"}
    # Creates the first child of a leaf, then fails: the leaf is a leaf again.
    w(Multi((create("/empty/first"), SetData("/missing", b"", -1))))
    _check(w.tree)
    assert w.tree.nodes["/empty"].children is NO_CHILDREN


def test_a_leaf_costs_no_set() -> None:
    w = Writer()
    w(create("/app"))
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(5000):
            w(create(f"/app/n{i:08d}", b"x" * 100))
        per_leaf = (tracemalloc.get_traced_memory()[0] - before) / 5000
    finally:
        tracemalloc.stop()
    # The node (128 B), its path, name, data, ints and dict entry, as tracemalloc counts them:
    # about 620 bytes with a set of children per leaf, about 400 without.
    assert per_leaf < 500, per_leaf
