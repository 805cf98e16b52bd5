"""The tree's nodes are invisible to the cyclic GC (znodes/untracked.py), and still freed;
leaves share one empty set of children (znodes/tree.py, NO_CHILDREN).

A full collection walks every tracked object; on a million znodes that was a second-long stall.
A node gets a set of its own with its first child and gives it back with its last, through
every way a tree is built or changed: an empty set costs 216 bytes, and most znodes of a big
tree are leaves.
"""

from __future__ import annotations

import gc
import sys
import tracemalloc

from ccore.server.snapshot_codec import TreeReceiver, encode_tree
from ccore.znodes.acl import OPEN_ACL_UNSAFE
from ccore.znodes.codec import decode_snapshot, encode_snapshot
from ccore.znodes.constants import CreateMode
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


def create(path: str, data: bytes = b"", mode: CreateMode = CreateMode.PERSISTENT) -> Create:
    return Create(path, data, OPEN_ACL_UNSAFE, int(mode))


make = Writer


def test_nodes_made_by_writes_and_by_a_snapshot_are_untracked() -> None:
    a = make()
    a(create("/app"))
    for i in range(200):
        a(create(f"/app/n{i}", b"x"))
    a(create("/app/e", b"", CreateMode.EPHEMERAL))
    a(Multi((create("/app/m"), SetData("/app/m", b"y", -1))))
    for tree in (a.tree, decode_snapshot(encode_snapshot(a.tree))):
        for path, node in tree.nodes.items():
            assert not gc.is_tracked(node), path
            # A leaf holds the one shared empty set (test_leaf_children.py); any other set is its own.
            assert node.children is NO_CHILDREN or not gc.is_tracked(node.children), path


def test_the_collector_walks_no_more_objects_as_the_tree_grows() -> None:
    a = make()
    a(create("/app"))
    gc.collect()
    before = len(gc.get_objects())
    for i in range(5000):
        a(create(f"/app/n{i}", b"x"))
    gc.collect()
    assert len(gc.get_objects()) - before < 100  # was two per node: 10,000


def test_a_deleted_node_is_freed_by_reference_counting() -> None:
    a = make()
    a(create("/app"))
    a(create("/app/gone", b"x"))
    a(Multi((create("/app/undone"), Delete("/app/missing", -1))))  # fails: its undo relinks nothing
    node = a.tree.nodes["/app/gone"]
    a(Delete("/app/gone", -1))
    assert "/app/undone" not in a.tree.nodes
    # Only `node` here and getrefcount's argument hold it: nothing else, no cycle, is left.
    assert sys.getrefcount(node) == 2


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
    w = make()
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
    w = make()
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
