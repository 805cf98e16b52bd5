"""The tree's nodes are invisible to the cyclic GC (znodes/untracked.py), and still freed.

A full collection walks every tracked object; on a million znodes that was a second-long stall.
"""

from __future__ import annotations

import gc
import sys

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
