"""CBOR encoding of transactions and tree snapshots, for the log, snapshots and replication.

Transactions go through one cattrs converter (a tagged union over the op classes); snapshots
are flat lists per node, since a tree can hold millions of nodes and the generic path would be
several times slower there.
"""

from __future__ import annotations

from typing import Any

import cattrs
import cbor2
from cattrs.strategies import configure_tagged_union

from . import paths
from .acl import ACL, Id
from .tree import DataTree, Node, SessionInfo
from .txn import (
    Check,
    CloseSession,
    Create,
    CreateSession,
    Delete,
    DeleteContainer,
    Multi,
    NoOp,
    Op,
    SetACL,
    SetData,
    Txn,
)

SNAPSHOT_FORMAT = 1

_OP_CLASSES = (Create, Delete, DeleteContainer, SetData, SetACL, Check, Multi, CreateSession, CloseSession, NoOp)
_TAGS = {cls: cls.__name__ for cls in _OP_CLASSES}

converter = cattrs.Converter()
configure_tagged_union(Op, converter, tag_generator=_TAGS.__getitem__, tag_name="op")


def encode_txn(txn: Txn) -> bytes:
    return cbor2.dumps(converter.unstructure(txn, Txn))


def decode_txn(payload: bytes) -> Txn:
    return converter.structure(cbor2.loads(payload), Txn)


def encode_value(obj: Any, cls: type) -> bytes:
    """Any attrs record (peer messages reuse this) as CBOR."""
    return cbor2.dumps(converter.unstructure(obj, cls))


def decode_value(payload: bytes, cls: type) -> Any:
    return converter.structure(cbor2.loads(payload), cls)


def encode_snapshot(tree: DataTree) -> bytes:
    acl_index: dict[tuple[ACL, ...], int] = {}
    acl_table: list[list[list[Any]]] = []
    nodes = []
    for path in tree.walk():
        node = tree.nodes[path]
        index = acl_index.get(node.acl)
        if index is None:
            index = acl_index[node.acl] = len(acl_table)
            acl_table.append([[a.perms, a.id.scheme, a.id.id] for a in node.acl])
        nodes.append([path, node.data, index, *node.fields()[2:]])
    sessions = [[sid, s.timeout_ms, s.password] for sid, s in sorted(tree.sessions.items())]
    return cbor2.dumps(
        {
            "format": SNAPSHOT_FORMAT,
            "last_zxid": tree.last_zxid,
            "acls": acl_table,
            "nodes": nodes,
            "sessions": sessions,
        }
    )


def decode_snapshot(payload: bytes) -> DataTree:
    doc = cbor2.loads(payload)
    if doc.get("format") != SNAPSHOT_FORMAT:
        raise ValueError(f"unknown snapshot format {doc.get('format')!r}")
    acl_table = [tuple(ACL(p, Id(s, i)) for p, s, i in entry) for entry in doc["acls"]]
    tree = DataTree()
    tree.nodes.clear()
    for path, data, index, *fields in doc["nodes"]:
        node = Node(data, acl_table[index])
        node.restore((data, acl_table[index], *fields))
        tree.nodes[path] = node
        if path != paths.ROOT:
            parent_path, name = paths.split(path)
            tree.nodes[parent_path].children.add(name)
        index_set = tree._index_for(node)
        if index_set is not None:
            index_set.add(path)
    tree.sessions = {sid: SessionInfo(t, pw) for sid, t, pw in doc["sessions"]}
    tree.last_zxid = doc["last_zxid"]
    return tree
