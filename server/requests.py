"""Client requests in, transactions and responses out: the per-opcode knowledge of the server.

Writes become transaction ops (`to_op`) and their results become response records
(`write_response`); reads are answered from the local tree (`Reads`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ccore.znodes import paths
from ccore.znodes import records as r
from ccore.znodes.acl import Id
from ccore.znodes.constants import AddWatchMode, EventType, OpCode, WatcherType
from ccore.znodes.errors import BadArgumentsError, Code, NoWatcherError, ZKError
from ccore.znodes.records import Record
from ccore.znodes.stat import Stat
from ccore.znodes.tree import DataTree
from ccore.znodes.txn import Check, CloseSession, Create, Delete, Multi, NoOp, Op, Reconfigure, Result, SetACL, SetData
from ccore.znodes.watches import WatchManager

WRITE_OPS = frozenset(
    {
        OpCode.create,
        OpCode.create2,
        OpCode.createContainer,
        OpCode.createTTL,
        OpCode.delete,
        OpCode.setData,
        OpCode.setACL,
        OpCode.check,
        OpCode.multi,
        OpCode.closeSession,
        OpCode.reconfig,  # planned by the leader (server/reconfig.py), committed as a Reconfig
        # A sync goes down the write path as a NoOp: it is answered once every write submitted
        # before it is applied here. In an ensemble the NoOp is a transaction committed by a
        # quorum through the leader, which makes sync-then-read linearizable; a single server
        # treats it as a barrier in its commit queue.
        OpCode.sync,
    }
)
CREATE2_STYLE = frozenset({OpCode.create2, OpCode.createContainer, OpCode.createTTL})


def to_op(op_code: int, record: Any) -> Op:
    """The transaction op for a write request."""
    try:
        make = _TO_OP[op_code]
    except KeyError:
        raise BadArgumentsError(None, f"opcode {op_code} is not a write") from None
    return make(record)


# One small function per write opcode: a table lookup instead of a chain of comparisons,
# for every write a client sends.
_TO_OP: dict[int, Callable[[Any], Op]] = {
    OpCode.create: lambda rec: Create(rec.path, rec.data, tuple(rec.acl), rec.flags),
    OpCode.create2: lambda rec: Create(rec.path, rec.data, tuple(rec.acl), rec.flags),
    OpCode.createContainer: lambda rec: Create(rec.path, rec.data, tuple(rec.acl), rec.flags, container_request=True),
    OpCode.createTTL: lambda rec: Create(rec.path, rec.data, tuple(rec.acl), rec.flags, rec.ttl, ttl_request=True),
    OpCode.delete: lambda rec: Delete(rec.path, rec.version),
    OpCode.setData: lambda rec: SetData(rec.path, rec.data, rec.version),
    OpCode.setACL: lambda rec: SetACL(rec.path, tuple(rec.acl), rec.version),
    OpCode.check: lambda rec: Check(rec.path, rec.version),
    OpCode.multi: lambda rec: Multi(tuple(to_op(sub_code, sub) for sub_code, sub in rec.ops)),
    OpCode.closeSession: lambda rec: CloseSession(),
    OpCode.sync: lambda rec: NoOp(),
    OpCode.reconfig: lambda rec: Reconfigure(rec.joining_servers, rec.leaving_servers, rec.new_members, rec.cur_config_id),
}


def _path(result: Result) -> str:
    assert result.path is not None, result  # every successful create names its node
    return result.path


def _stat(result: Result) -> Stat:
    assert result.stat is not None, result  # every successful create2, setData and setACL has one
    return result.stat


def _op_result(op_code: int, result: Result, failed: bool) -> Record:
    if failed:
        # In a failed multi every op answers with an error: 0 (rolled back) before the
        # failing op, its code at it, RUNTIME_INCONSISTENCY after.
        return r.ErrorResult(result.err)
    if op_code in (OpCode.create, OpCode.create2):
        # ZooKeeper 3.8 answers create2 inside a multi like create: the path only.
        return r.CreateResult(_path(result))
    if op_code in CREATE2_STYLE:
        return r.Create2Result(_path(result), _stat(result))
    if op_code == OpCode.delete:
        return r.DeleteResult()
    if op_code == OpCode.setData:
        return r.SetDataResult(_stat(result))
    return r.CheckResult()


def write_response(op_code: int, record: Any, result: Result) -> tuple[int, Record | None]:
    """(error code, response record) for a committed write."""
    if op_code == OpCode.multi:
        failed = any(res.err for res in result.results)
        subs = tuple(_op_result(sub_code, res, failed) for (sub_code, _), res in zip(record.ops, result.results, strict=True))
        return 0, r.MultiResponse(subs)
    if result.err:
        return result.err, None
    if op_code == OpCode.create:
        return 0, r.CreateResponse(_path(result))
    if op_code in CREATE2_STYLE:
        return 0, r.Create2Response(_path(result), _stat(result))
    if op_code == OpCode.setData:
        return 0, r.SetDataResponse(_stat(result))
    if op_code == OpCode.setACL:
        return 0, r.SetACLResponse(_stat(result))
    if op_code == OpCode.sync:
        return 0, r.SyncResponse(record.path)
    if op_code == OpCode.reconfig:
        return 0, r.GetDataResponse(result.data, _stat(result))
    return 0, None


def _check_path(path: str) -> None:
    """For requests that validate their path (addWatch, removeWatches...). Plain reads do not:
    ZooKeeper looks a malformed path up and finds nothing (NoNode)."""
    if paths.path_error(path) is not None:
        raise BadArgumentsError(path)


class Reads:
    """Answers every non-write request from the local tree and this server's watch table."""

    def __init__(self, tree_getter: Callable[[], DataTree], watches: WatchManager) -> None:
        self._tree = tree_getter
        self.watches = watches
        self._table: dict[int, Callable[[Any, Any, tuple[Id, ...], int], Record | None]] = {
            OpCode.getData: self.get_data,
            OpCode.exists: self.exists,
            OpCode.getChildren: self.get_children,
            OpCode.getChildren2: self.get_children2,
            OpCode.getACL: self.get_acl,
            OpCode.getEphemerals: self.get_ephemerals,
            OpCode.getAllChildrenNumber: self.all_children_number,
            OpCode.multiRead: self.multi_read,
            OpCode.addWatch: self.add_watch,
            OpCode.removeWatches: self.remove_watches,
            OpCode.checkWatches: self.check_watches,
        }

    def handles(self, op_code: int) -> bool:
        return op_code in self._table

    def answer(self, op_code: int, record: Any, watcher: Any, auth: tuple[Id, ...], session: int) -> tuple[int, Record | None]:
        """(error code, response record); ZooKeeper errors become codes, nothing else is caught."""
        try:
            return 0, self._table[op_code](record, watcher, auth, session)
        except ZKError as e:
            return int(e.code), None

    def get_data(self, record: Any, watcher: Any, auth: tuple[Id, ...], session: int) -> Record:
        data, stat = self._tree().get_data(record.path, auth)
        if record.watch:
            self.watches.add_data_watch(record.path, watcher)
        return r.GetDataResponse(data, stat)

    def exists(self, record: Any, watcher: Any, auth: tuple[Id, ...], session: int) -> Record:
        if "\0" in record.path:
            raise BadArgumentsError(record.path)  # the one read ZooKeeper validates
        # An exists watch is set whether or not the node is there (it may be created).
        if record.watch:
            self.watches.add_data_watch(record.path, watcher)
        stat = self._tree().exists(record.path)
        if stat is None:
            raise ZKError.from_code(Code.NO_NODE, record.path)
        return r.ExistsResponse(stat)

    def _children(self, record: Any, watcher: Any, auth: tuple[Id, ...]) -> tuple[list[str], Any]:
        children, stat = self._tree().get_children(record.path, auth)
        if record.watch:
            self.watches.add_child_watch(record.path, watcher)
        return children, stat

    def get_children(self, record: Any, watcher: Any, auth: tuple[Id, ...], session: int) -> Record:
        children, _ = self._children(record, watcher, auth)
        return r.GetChildrenResponse(tuple(children))

    def get_children2(self, record: Any, watcher: Any, auth: tuple[Id, ...], session: int) -> Record:
        children, stat = self._children(record, watcher, auth)
        return r.GetChildren2Response(tuple(children), stat)

    def get_acl(self, record: Any, watcher: Any, auth: tuple[Id, ...], session: int) -> Record:
        acl, stat = self._tree().get_acl(record.path, auth)
        return r.GetACLResponse(tuple(acl), stat)

    def get_ephemerals(self, record: Any, watcher: Any, auth: tuple[Id, ...], session: int) -> Record:
        return r.GetEphemeralsResponse(tuple(self._tree().get_ephemerals(session, record.prefix_path)))

    def all_children_number(self, record: Any, watcher: Any, auth: tuple[Id, ...], session: int) -> Record:
        return r.GetAllChildrenNumberResponse(self._tree().all_children_number(record.path, auth))

    def multi_read(self, record: Any, watcher: Any, auth: tuple[Id, ...], session: int) -> Record:
        results: list[Record] = []
        for sub_code, sub in record.ops:
            try:
                if sub_code == OpCode.getData:
                    data, stat = self._tree().get_data(sub.path, auth)
                    if sub.watch:
                        self.watches.add_data_watch(sub.path, watcher)
                    results.append(r.GetDataResult(data, stat))
                elif sub_code == OpCode.getChildren:
                    children, _ = self._children(sub, watcher, auth)
                    results.append(r.GetChildrenResult(tuple(children)))
                else:
                    raise BadArgumentsError(getattr(sub, "path", None))
            except ZKError as e:
                results.append(r.ErrorResult(int(e.code)))
        return r.MultiResponse(tuple(results))

    def add_watch(self, record: Any, watcher: Any, auth: tuple[Id, ...], session: int) -> Record:
        _check_path(record.path)
        if record.mode not in (AddWatchMode.PERSISTENT, AddWatchMode.PERSISTENT_RECURSIVE):
            raise BadArgumentsError(record.path)
        self.watches.add_persistent(record.path, watcher, record.mode == AddWatchMode.PERSISTENT_RECURSIVE)
        return r.ErrorResponse(0)  # ZooKeeper answers addWatch with this body

    def _watcher_type(self, record: Any) -> WatcherType:
        _check_path(record.path)
        try:
            return WatcherType(record.type)
        except ValueError:
            raise BadArgumentsError(record.path) from None

    def remove_watches(self, record: Any, watcher: Any, auth: tuple[Id, ...], session: int) -> None:
        if not self.watches.remove(record.path, watcher, self._watcher_type(record)):
            raise NoWatcherError(record.path)
        return None

    def check_watches(self, record: Any, watcher: Any, auth: tuple[Id, ...], session: int) -> None:
        if not self.watches.contains(record.path, watcher, self._watcher_type(record)):
            raise NoWatcherError(record.path)
        return None


def restore_watches(tree: DataTree, watches: WatchManager, watcher: Any, record: Any) -> list[tuple[int, str]]:
    """setWatches/setWatches2: register each watch, or return the event it missed since
    `relative_zxid` (ZooKeeper's DataTree.setWatches)."""
    missed: list[tuple[int, str]] = []
    rel = record.relative_zxid
    for path in record.data_watches:
        node = tree.nodes.get(path)
        if node is None:
            missed.append((EventType.NODE_DELETED, path))
        elif node.mzxid > rel:
            missed.append((EventType.NODE_DATA_CHANGED, path))
        else:
            watches.add_data_watch(path, watcher)
    for path in record.exist_watches:
        if path in tree.nodes:
            missed.append((EventType.NODE_CREATED, path))
        else:
            watches.add_data_watch(path, watcher)
    for path in record.child_watches:
        node = tree.nodes.get(path)
        if node is None:
            missed.append((EventType.NODE_DELETED, path))
        elif node.pzxid > rel:
            missed.append((EventType.NODE_CHILDREN_CHANGED, path))
        else:
            watches.add_child_watch(path, watcher)
    for path in getattr(record, "persistent_watches", ()):
        watches.add_persistent(path, watcher, recursive=False)
    for path in getattr(record, "persistent_recursive_watches", ()):
        watches.add_persistent(path, watcher, recursive=True)
    return missed
