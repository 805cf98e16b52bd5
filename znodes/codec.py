"""CBOR encoding of transactions and tree snapshots, for the log, snapshots and replication.

A transaction is a CBOR array built and parsed by hand, one small function per op class,
rather than through a generic converter: every follower decodes every transaction, so this
is per-write CPU on every server (3x faster to decode, 2x to encode than the cattrs tagged
union it replaced; bench/codec_bench.py).
Snapshots are flat lists per node, since a tree can hold millions of nodes: either one CBOR
map of everything (`encode_snapshot`, format 1, the payload of a whole snapshot), or batches of
some thousands of nodes (`snapshot_batches`, `SnapshotBuilder`), so that a big tree is written,
sent and rebuilt piece by piece; the framing and checks of those pieces are the server's.

Transaction layout (format 2; format 1 was a cattrs map, refused with a clear error)::

    [2, zxid, time_ms, session, origin, request_id, [scheme, id, ...], op]

    op:  [0, path, data, [perms, scheme, id, ...], mode, ttl, ttl_request, container_request]  Create
         [1, path, version]                   Delete
         [2, path]                            DeleteContainer
         [3, path, data, version]             SetData
         [4, path, [perms, scheme, id, ...], version]   SetACL
         [5, path, version]                   Check
         [6, [op, ...]]                       Multi
         [7, timeout_ms, password]            CreateSession
         [8]                                  CloseSession
         [9]                                  NoOp

ACLs and identities are flat lists of their fields. There are no maps, so the same
transaction always encodes to the same bytes (logs of replicas are compared byte for byte).
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from typing import Any

import cattrs
import cbor2
from cattrs.strategies import configure_tagged_union

from . import paths
from .acl import ACL, CREATOR_ALL_ACL, OPEN_ACL_UNSAFE, READ_ACL_UNSAFE, Id
from .tree import NO_CHILDREN, DataTree, Node, SessionInfo, new_children
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
    Reconfig,
    Reconfigure,
    Refused,
    SetACL,
    SetData,
    Txn,
)
from .untracked import untrack

SNAPSHOT_FORMAT = 1
TXN_FORMAT = 2
# Membership changes are marked by a format number of their own, so the Zab core (which calls
# `is_reconfig_txn` on every entry it logs) tells them from their first two bytes, without
# decoding anything.
RECONFIG_TXN_FORMAT = 18
_RECONFIG_PREFIX = bytes([0x88, RECONFIG_TXN_FORMAT])  # CBOR: an array of 8, then the small int 18

_dumps = cbor2.dumps
_loads = cbor2.loads


class TxnDecodeError(ValueError):
    """Bytes that are not a transaction (or op) of this build's format (`TXN_FORMAT`)."""


# What decoding malformed bytes can raise, all turned into TxnDecodeError (a CBOR error is
# not a ValueError in cbor2 6; a wrong arity is a ValueError, a wrong type a TypeError).
# MemoryError too: older cbor2 (5.4.6, our oldest allowed) believes a string's declared length and allocates
# it (9 bytes of garbage can ask for 25 GB); newer releases check it against the input first.
_MALFORMED = (cbor2.CBORError, ValueError, TypeError, KeyError, IndexError, MemoryError)


# -- ACLs and identities ---------------------------------------------------------------------

# Decoded ACLs and identity lists are interned: a follower then holds one tuple per distinct
# ACL instead of one per node, the tree can recognise the open ACL by identity, and decoding
# the common cases is a dict lookup. Bounded, because identities come from clients.
_INTERN_MAX = 4096
_ACLS: dict[tuple[Any, ...], tuple[ACL, ...]] = {}
_IDS: dict[tuple[Any, ...], tuple[Id, ...]] = {(): ()}


def _acl_fields(acl: tuple[ACL, ...]) -> list[Any]:
    return [x for a in acl for x in (a.perms, a.id.scheme, a.id.id)]


def _ids_fields(ids: tuple[Id, ...]) -> list[Any]:
    return [x for i in ids for x in (i.scheme, i.id)]


_ACLS.update({tuple(_acl_fields(known)): known for known in (OPEN_ACL_UNSAFE, READ_ACL_UNSAFE, CREATOR_ALL_ACL)})
_OPEN_ACL_FIELDS = _acl_fields(OPEN_ACL_UNSAFE)


def _acl_out(acl: tuple[ACL, ...]) -> list[Any]:
    return _OPEN_ACL_FIELDS if acl is OPEN_ACL_UNSAFE else _acl_fields(acl)


def _acl_in(fields: list[Any]) -> tuple[ACL, ...]:
    key = tuple(fields)
    acl = _ACLS.get(key)
    if acl is None:
        if len(key) % 3:
            raise TxnDecodeError(f"an ACL of {len(key)} fields (3 per entry)")
        acl = tuple(ACL(key[i], Id(key[i + 1], key[i + 2])) for i in range(0, len(key), 3))
        if len(_ACLS) >= _INTERN_MAX:
            _ACLS.clear()
        _ACLS[key] = acl
    return acl


def _ids_in(fields: list[Any]) -> tuple[Id, ...]:
    key = tuple(fields)
    ids = _IDS.get(key)
    if ids is None:
        if len(key) % 2:
            raise TxnDecodeError(f"an identity list of {len(key)} fields (2 per identity)")
        ids = tuple(Id(key[i], key[i + 1]) for i in range(0, len(key), 2))
        if len(_IDS) >= _INTERN_MAX:
            _IDS.clear()
        _IDS[key] = ids
    return ids


# -- ops ------------------------------------------------------------------------------------

(
    _CREATE,
    _DELETE,
    _DELETE_CONTAINER,
    _SET_DATA,
    _SET_ACL,
    _CHECK,
    _MULTI,
    _CREATE_SESSION,
    _CLOSE_SESSION,
    _NOOP,
    _RECONFIG,
    _REFUSED,
    _RECONFIGURE,
) = range(13)


def _encode_op(op: Op) -> list[Any]:
    try:
        encode = _ENCODERS[type(op)]
    except KeyError:
        raise TypeError(f"not a transaction op: {op!r}") from None
    return encode(op)


_ENCODERS: dict[type, Callable[[Any], list[Any]]] = {
    Create: lambda op: [_CREATE, op.path, op.data, _acl_out(op.acl), op.mode, op.ttl, op.ttl_request, op.container_request],
    Delete: lambda op: [_DELETE, op.path, op.version],
    DeleteContainer: lambda op: [_DELETE_CONTAINER, op.path],
    SetData: lambda op: [_SET_DATA, op.path, op.data, op.version],
    SetACL: lambda op: [_SET_ACL, op.path, _acl_out(op.acl), op.version],
    Check: lambda op: [_CHECK, op.path, op.version],
    Multi: lambda op: [_MULTI, [_encode_op(sub) for sub in op.ops]],
    CreateSession: lambda op: [_CREATE_SESSION, op.timeout_ms, op.password],
    CloseSession: lambda op: [_CLOSE_SESSION],
    NoOp: lambda op: [_NOOP],
    Reconfig: lambda op: [_RECONFIG, op.data],
    Refused: lambda op: [_REFUSED, op.err],
    # Not a transaction: a follower forwards a client's reconfig to the leader as this.
    Reconfigure: lambda op: [_RECONFIGURE, op.joining, op.leaving, op.new_members, op.from_config],
}

# Each decoder unpacks its array whole, so an array of the wrong length raises ValueError.


def _create_in(a: list[Any]) -> Create:
    _, path, data, acl, mode, ttl, ttl_request, container_request = a
    return Create(path, data, _acl_in(acl), mode, ttl, ttl_request, container_request)


def _delete_in(a: list[Any]) -> Delete:
    _, path, version = a
    return Delete(path, version)


def _delete_container_in(a: list[Any]) -> DeleteContainer:
    _, path = a
    return DeleteContainer(path)


def _set_data_in(a: list[Any]) -> SetData:
    _, path, data, version = a
    return SetData(path, data, version)


def _set_acl_in(a: list[Any]) -> SetACL:
    _, path, acl, version = a
    return SetACL(path, _acl_in(acl), version)


def _check_in(a: list[Any]) -> Check:
    _, path, version = a
    return Check(path, version)


def _multi_in(a: list[Any]) -> Multi:
    _, ops = a
    return Multi(tuple([_decode_op(sub) for sub in ops]))


def _create_session_in(a: list[Any]) -> CreateSession:
    _, timeout_ms, password = a
    return CreateSession(timeout_ms, password)


_CLOSE_SESSION_OP = CloseSession()
_NOOP_OP = NoOp()


def _no_fields(a: list[Any], op: Op) -> Op:
    if len(a) != 1:
        raise ValueError(f"{type(op).__name__} has no fields")
    return op


_DECODERS: dict[int, Callable[[list[Any]], Op]] = {
    _CREATE: _create_in,
    _DELETE: _delete_in,
    _DELETE_CONTAINER: _delete_container_in,
    _SET_DATA: _set_data_in,
    _SET_ACL: _set_acl_in,
    _CHECK: _check_in,
    _MULTI: _multi_in,
    _CREATE_SESSION: _create_session_in,
    _CLOSE_SESSION: lambda a: _no_fields(a, _CLOSE_SESSION_OP),
    _NOOP: lambda a: _no_fields(a, _NOOP_OP),
    _RECONFIG: lambda a: _reconfig_in(a),
    _REFUSED: lambda a: _refused_in(a),
    _RECONFIGURE: lambda a: _reconfigure_in(a),
}


def _reconfigure_in(a: list[Any]) -> Reconfigure:
    _, joining, leaving, new_members, from_config = a
    if not all(v is None or type(v) is str for v in (joining, leaving, new_members)) or type(from_config) is not int:
        raise ValueError("a reconfig request carries three strings (or nulls) and a version")
    return Reconfigure(joining, leaving, new_members, from_config)


def _refused_in(a: list[Any]) -> Refused:
    _, err = a
    if type(err) is not int:
        raise ValueError("a refusal carries an error code")
    return Refused(err)


def _reconfig_in(a: list[Any]) -> Reconfig:
    _, data = a
    if type(data) is not bytes:
        raise ValueError("a reconfig carries its configuration as bytes")
    return Reconfig(data)


def _decode_op(a: list[Any]) -> Op:
    if type(a) is not list or not a:
        raise TxnDecodeError(f"an op is a non-empty array, not {a!r:.60}")
    try:
        decode = _DECODERS[a[0]]
    except (KeyError, TypeError):
        raise TxnDecodeError(f"unknown op tag {a[0]!r:.60}") from None
    return decode(a)


# -- transactions ---------------------------------------------------------------------------


def encode_txn(txn: Txn) -> bytes:
    return _dumps(
        [
            RECONFIG_TXN_FORMAT if type(txn.op) is Reconfig else TXN_FORMAT,
            txn.zxid,
            txn.time_ms,
            txn.session,
            txn.origin,
            txn.request_id,
            _ids_fields(txn.auth) if txn.auth else [],
            _encode_op(txn.op),
        ]
    )


def is_reconfig_txn(payload: bytes) -> bool:
    """Is this encoded transaction a `Reconfig`? (Cheap: two bytes.)"""
    return payload[:2] == _RECONFIG_PREFIX


def decode_txn(payload: bytes) -> Txn:
    """The transaction in `payload`; TxnDecodeError if it is not one of format `TXN_FORMAT`."""
    try:
        items = _loads(payload)
        if type(items) is not list or len(items) != 8 or items[0] not in (TXN_FORMAT, RECONFIG_TXN_FORMAT):
            raise TxnDecodeError(_not_a_txn(items))
        kind, zxid, time_ms, session, origin, request_id, auth, op = items
        decoded = _decode_op(op)
        if (kind == RECONFIG_TXN_FORMAT) != (type(decoded) is Reconfig):
            raise TxnDecodeError(f"format {kind} does not fit a {type(decoded).__name__} transaction")
        return Txn(zxid, time_ms, session, decoded, _ids_in(auth), origin, request_id)
    except TxnDecodeError:
        raise
    except _MALFORMED as e:
        raise TxnDecodeError(f"not a format-{TXN_FORMAT} transaction: {e}") from e


def _not_a_txn(items: Any) -> str:
    if isinstance(items, dict) and "zxid" in items:
        return (
            f"a transaction of format 1 (written by an older build); this build reads format {TXN_FORMAT} "
            "only: move the data dir aside (a member of an ensemble then resyncs from its leader)"
        )
    return f"not a format-{TXN_FORMAT} transaction: {items!r:.80}"


# -- other records (peer messages) ----------------------------------------------------------

_OP_CLASSES = (
    Create,
    Delete,
    DeleteContainer,
    SetData,
    SetACL,
    Check,
    Multi,
    CreateSession,
    CloseSession,
    NoOp,
    Reconfig,
    Reconfigure,
    Refused,
)
_TAGS: dict[type, str] = {cls: cls.__name__ for cls in _OP_CLASSES}

converter = cattrs.Converter()
configure_tagged_union(Op, converter, tag_generator=_TAGS.__getitem__, tag_name="op")


def encode_value(obj: Any, cls: Any) -> bytes:
    """Any attrs record (peer messages reuse this) as CBOR; ops and transactions take the
    hand-written path above (a follower forwards every write of its clients as an op)."""
    if cls is Op or cls in _ENCODERS:
        return _dumps(_encode_op(obj))
    if cls is Txn:
        return encode_txn(obj)
    return _dumps(converter.unstructure(obj, cls))


def decode_value(payload: bytes, cls: Any) -> Any:
    if cls is Op or cls in _ENCODERS:
        try:
            op = _decode_op(_loads(payload))
        except TxnDecodeError:
            raise
        except _MALFORMED as e:
            raise TxnDecodeError(f"not an op: {e}") from e
        if cls is not Op and type(op) is not cls:
            raise TxnDecodeError(f"expected {cls.__name__}, got {type(op).__name__}")
        return op
    if cls is Txn:
        return decode_txn(payload)
    return converter.structure(_loads(payload), cls)


def encode_snapshot(tree: DataTree) -> bytes:
    acl_index: dict[tuple[ACL, ...], int] = {}
    acl_table: list[list[list[Any]]] = []
    nodes = []
    tree_nodes = tree.nodes
    for path in tree.walk():
        node = tree_nodes[path]
        index = acl_index.get(node.acl)
        if index is None:
            index = acl_index[node.acl] = len(acl_table)
            acl_table.append([[a.perms, a.id.scheme, a.id.id] for a in node.acl])
        # Node.FIELDS after data and acl, spelled out: a million nodes make this loop hot.
        nodes.append(
            [
                path,
                node.data,
                index,
                node.czxid,
                node.mzxid,
                node.ctime,
                node.mtime,
                node.version,
                node.cversion,
                node.aversion,
                node.ephemeral_owner,
                node.pzxid,
            ]
        )
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
    # The cyclic collector would walk the growing heap again and again while a big tree is
    # built (two thirds of the time at 300k nodes); the tree has no cycles to find.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _decode_snapshot(payload)
    finally:
        if enabled:
            gc.enable()


def _decode_snapshot(payload: bytes) -> DataTree:
    doc = cbor2.loads(payload)
    if doc.get("format") != SNAPSHOT_FORMAT:
        raise ValueError(f"unknown snapshot format {doc.get('format')!r}")
    acl_table = [tuple(ACL(p, Id(s, i)) for p, s, i in entry) for entry in doc["acls"]]
    tree = DataTree()
    nodes = tree.nodes
    nodes.clear()
    new_node = Node.__new__
    root = paths.ROOT
    data_size = 0
    # Restart time is mostly this loop: attributes set directly, parents found by rpartition
    # (paths.split's result, inlined), the ephemeral index only for nodes that have an owner.
    for path, data, index, czxid, mzxid, ctime, mtime, version, cversion, aversion, owner, pzxid in doc["nodes"]:
        node = new_node(Node)
        node.data = data
        node.acl = acl_table[index]
        node.czxid, node.mzxid, node.ctime, node.mtime = czxid, mzxid, ctime, mtime
        node.version, node.cversion, node.aversion = version, cversion, aversion
        node.ephemeral_owner, node.pzxid = owner, pzxid
        node.children = NO_CHILDREN
        untrack(node)  # as Node.__init__ does
        nodes[path] = node
        data_size += len(path) + (len(data) if data is not None else 0)
        if path != root:
            parent_path, _, name = path.rpartition("/")
            nodes[parent_path or root].add_child(name)
        if owner:
            index_set = tree._index_for(node)
            if index_set is not None:
                index_set.add(path)
    tree.data_size = data_size
    tree.sessions = {sid: SessionInfo(t, pw) for sid, t, pw in doc["sessions"]}
    tree.last_zxid = doc["last_zxid"]
    return tree


# -- snapshots in batches -------------------------------------------------------------------
#
# A batch is the CBOR array [acls, nodes]: `acls` the ACLs first used in this batch (each a
# flat list of its fields; they extend the table the batches before built, whose indices the
# nodes use), `nodes` one flat list per node as in format 1. Nodes come parents first (the
# order of `DataTree.walk`); the sessions go apart (`encode_sessions`), after the nodes.

BATCH_NODES = 4096
BATCH_BYTES = 512 * 1024  # paths and data: a batch of big nodes is cut short


def snapshot_batches(
    tree: DataTree, batch_nodes: int = BATCH_NODES, batch_bytes: int = BATCH_BYTES
) -> Iterator[tuple[bytes, int]]:
    """The nodes of `tree` as CBOR batches: (batch, how many nodes it holds).

    Nodes go in the order of `tree.nodes`, which puts every parent before its children: a node
    is inserted when made, its parent is there already, and a parent can only be deleted (and
    made again, at the end) once it has no children; a multi's undo re-inserts in reverse. That
    is the order a builder needs, without `walk`'s sorting and joining (half the encode)."""
    acl_index: dict[tuple[ACL, ...], int] = {}
    new_acls: list[list[Any]] = []
    rows: list[list[Any]] = []
    size = 0
    last_acl: tuple[ACL, ...] | None = None
    last_index = -1
    for path, node in tree.nodes.items():
        acl = node.acl
        if acl is not last_acl:  # ACLs are interned: mostly the same tuple, node after node
            index = acl_index.get(acl)
            if index is None:
                index = acl_index[acl] = len(acl_index)
                new_acls.append(_acl_fields(acl))
            last_acl, last_index = acl, index
        data = node.data
        # Node.FIELDS after data and acl, spelled out: a million nodes make this loop hot.
        rows.append(
            [
                path,
                data,
                last_index,
                node.czxid,
                node.mzxid,
                node.ctime,
                node.mtime,
                node.version,
                node.cversion,
                node.aversion,
                node.ephemeral_owner,
                node.pzxid,
            ]
        )
        size += len(path) + (len(data) if data is not None else 0)
        if len(rows) >= batch_nodes or size >= batch_bytes:
            yield _dumps([new_acls, rows]), len(rows)
            new_acls, rows, size = [], [], 0
    if rows or new_acls:
        yield _dumps([new_acls, rows]), len(rows)


def encode_sessions(tree: DataTree) -> bytes:
    return _dumps([[sid, s.timeout_ms, s.password] for sid, s in sorted(tree.sessions.items())])


class SnapshotBuilder:
    """A tree rebuilt from `snapshot_batches`' batches, one at a time, then the sessions;
    `finish` checks the count and returns it. Malformed content raises ValueError."""

    def __init__(self) -> None:
        self.tree = DataTree()
        self.tree.nodes.clear()
        self.nodes = 0
        self._acls: list[tuple[ACL, ...]] = []
        self._data_size = 0
        self._sessions = False

    def add_batch(self, batch: bytes) -> None:
        # As decode_snapshot: no cyclic collection while the nodes of a batch are made.
        enabled = gc.isenabled()
        gc.disable()
        try:
            self._add_batch(batch)
        except _MALFORMED as e:
            raise ValueError(f"a malformed snapshot batch after {self.nodes:,} nodes: {e!r:.200}") from e
        finally:
            if enabled:
                gc.enable()

    def _add_batch(self, batch: bytes) -> None:
        new_acls, rows = _loads(batch)
        acl_table = self._acls
        for fields in new_acls:
            acl_table.append(_acl_in(fields))
        tree = self.tree
        nodes = tree.nodes
        new_node = Node.__new__
        root = paths.ROOT
        data_size = 0
        # The loop of _decode_snapshot (see there), but for the parent: siblings come one after
        # another, so the last parent is looked up (and given its set of children) once.
        last_parent: str | None = None
        siblings: set[str] = set()
        for path, data, index, czxid, mzxid, ctime, mtime, version, cversion, aversion, owner, pzxid in rows:
            node = new_node(Node)
            node.data = data
            node.acl = acl_table[index]
            node.czxid, node.mzxid, node.ctime, node.mtime = czxid, mzxid, ctime, mtime
            node.version, node.cversion, node.aversion = version, cversion, aversion
            node.ephemeral_owner, node.pzxid = owner, pzxid
            node.children = NO_CHILDREN
            untrack(node)
            data_size += len(path) + (len(data) if data is not None else 0)
            if path != root:
                parent_path, _, name = path.rpartition("/")
                if parent_path != last_parent:
                    parent = nodes[parent_path or root]
                    if isinstance(parent.children, set):
                        siblings = parent.children
                    else:
                        siblings = parent.children = new_children(name)
                    last_parent = parent_path
                if path in nodes:
                    raise ValueError(f"{path} comes twice")
                siblings.add(name)
            nodes[path] = node
            if owner:
                index_set = tree._index_for(node)
                if index_set is not None:
                    index_set.add(path)
        self.nodes += len(rows)
        self._data_size += data_size

    def add_sessions(self, body: bytes) -> None:
        try:
            self.tree.sessions = {sid: SessionInfo(t, pw) for sid, t, pw in _loads(body)}
        except _MALFORMED as e:
            raise ValueError(f"malformed snapshot sessions: {e!r:.200}") from e
        self._sessions = True

    def finish(self, nodes: int, zxid: int) -> DataTree:
        """The tree at `zxid`, once all `nodes` came (the end frame's count)."""
        if nodes != self.nodes:
            raise ValueError(f"the snapshot says {nodes:,} nodes, its batches held {self.nodes:,}")
        if not self._sessions:
            raise ValueError("the snapshot has no sessions record")
        if paths.ROOT not in self.tree.nodes:
            raise ValueError("the snapshot has no root node")
        self.tree.data_size = self._data_size
        self.tree.last_zxid = zxid
        return self.tree
