"""The data tree and the one deterministic function that changes it: `DataTree.apply(txn)`.

Every check ZooKeeper's PrepRequestProcessor makes before a write is made here, in the same
order, inside `apply`: so a replica needs no separate validation pass, and every replica that
applies the same transactions reaches the same tree and returns the same results.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import attrs

from . import acl as acls
from . import paths
from .acl import ACL, OPEN_ACL_UNSAFE, Id
from .constants import (
    CONTAINER_EPHEMERAL_OWNER,
    TTL_EPHEMERAL_MASK,
    TTL_MAX_MS,
    CreateMode,
    EventType,
    Perms,
)
from .errors import (
    BadArgumentsError,
    BadVersionError,
    NoAuthError,
    NoChildrenForEphemeralsError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    SessionExpiredError,
    ZKError,
)
from .stat import Stat
from .txn import (
    MULTI_OPS,
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
    Refused,
    Result,
    SetACL,
    SetData,
    Trigger,
    Txn,
)
from .untracked import untrack

INT32_MAX = 2**31 - 1
SPECIAL_PATHS = frozenset({paths.ROOT, paths.ZOOKEEPER, paths.QUOTA, paths.CONFIG})

# apply runs once per transaction on every server: enum members bound to module names, the
# permission bits as plain ints (`&` on an IntFlag runs Python code) and the create modes as a
# table of flags (an enum lookup and four properties per create) are measurably cheaper there.
_READ, _WRITE, _CREATE, _DELETE, _ADMIN = (int(p) for p in (Perms.READ, Perms.WRITE, Perms.CREATE, Perms.DELETE, Perms.ADMIN))
_NODE_CREATED = EventType.NODE_CREATED
_NODE_DELETED = EventType.NODE_DELETED
_NODE_DATA_CHANGED = EventType.NODE_DATA_CHANGED
_NODE_CHILDREN_CHANGED = EventType.NODE_CHILDREN_CHANGED
# mode -> (is_ephemeral, is_sequential, is_container, is_ttl)
_MODES: dict[int, tuple[bool, bool, bool, bool]] = {
    int(m): (m.is_ephemeral, m.is_sequential, m.is_container, m.is_ttl) for m in CreateMode
}
_CONTAINER_MODE = _MODES[CreateMode.CONTAINER]
_OK = Result()  # frozen: one instance serves every plain success
# The writes a client's session makes (each op of a multi is one): they need a live session.
_SESSION_WRITES = frozenset({Create, Delete, SetData, Check, SetACL, DeleteContainer})

Undo = list[Callable[[], None]]


NO_CHILDREN: frozenset[str] = frozenset()
"""The children of every leaf: one shared empty set. A set object costs 216 bytes even
empty, and most znodes of a big tree are leaves (a million of them: 216 MB); a node gets a
set of its own with its first child and gives it back with its last."""


def new_children(first: str) -> set[str]:
    """A node's own set of children, made for its first child."""
    children = {first}
    untrack(children)  # never part of a cycle (see untracked.py)
    return children


class Node:
    """One znode: its data, ACL, the persisted Stat fields and its children's names."""

    __slots__ = (
        "data",
        "acl",
        "czxid",
        "mzxid",
        "ctime",
        "mtime",
        "version",
        "cversion",
        "aversion",
        "ephemeral_owner",
        "pzxid",
        "children",
    )
    FIELDS = __slots__[:-1]

    def __init__(
        self,
        data: bytes | None,
        acl: tuple[ACL, ...],
        zxid: int = 0,
        time_ms: int = 0,
        ephemeral_owner: int = 0,
    ) -> None:
        self.data = data
        self.acl = acl
        self.czxid = self.mzxid = self.pzxid = zxid
        self.ctime = self.mtime = time_ms
        self.version = self.cversion = self.aversion = 0
        self.ephemeral_owner = ephemeral_owner
        self.children: set[str] | frozenset[str] = NO_CHILDREN
        # Never part of a cycle: the cyclic collector need not walk it (see untracked.py).
        untrack(self)

    def stat(self) -> Stat:
        """The Stat a client sees, translated as ZooKeeper's DataNode.copyStat does."""
        children = len(self.children)
        owner = self.ephemeral_owner
        # Containers and TTL nodes borrow the owner field; clients see 0 for them.
        # (`is_ephemeral` inlined: this runs for every write and every read.)
        if owner and (owner == CONTAINER_EPHEMERAL_OWNER or owner & TTL_EPHEMERAL_MASK == TTL_EPHEMERAL_MASK):
            owner = 0
        return Stat(
            self.czxid,
            self.mzxid,
            self.ctime,
            self.mtime,
            self.version,
            # Stored cversion counts child creations (it names sequential nodes); clients see
            # creations plus deletions: every create has a delete but for the children left.
            self.cversion * 2 - children,
            self.aversion,
            owner,
            len(self.data) if self.data is not None else 0,
            children,
            self.pzxid,
        )

    def add_child(self, name: str) -> None:
        children = self.children
        if isinstance(children, set):
            children.add(name)
        else:
            self.children = new_children(name)

    def remove_child(self, name: str) -> None:
        children = self.children
        if isinstance(children, set):
            children.discard(name)
            if not children:
                self.children = NO_CHILDREN  # a set keeps the room it grew to: give it back

    def fields(self) -> tuple[Any, ...]:
        return tuple(getattr(self, f) for f in self.FIELDS)

    def restore(self, fields: tuple[Any, ...]) -> None:
        for name, value in zip(self.FIELDS, fields, strict=True):
            setattr(self, name, value)

    @property
    def is_container(self) -> bool:
        return self.ephemeral_owner == CONTAINER_EPHEMERAL_OWNER

    @property
    def ttl_ms(self) -> int | None:
        """The time-to-live of a TTL node, None for any other kind."""
        owner = self.ephemeral_owner & 0xFFFFFFFFFFFFFFFF
        if owner & TTL_EPHEMERAL_MASK == TTL_EPHEMERAL_MASK:
            return owner & TTL_MAX_MS
        return None

    @property
    def is_ephemeral(self) -> bool:
        """A session's ephemeral (not a container or TTL node, which borrow the field)."""
        return self.ephemeral_owner != 0 and not self.is_container and self.ttl_ms is None


@attrs.frozen(slots=True)
class SessionInfo:
    timeout_ms: int
    password: bytes


def ttl_owner(ttl_ms: int) -> int:
    """The signed ephemeralOwner ZooKeeper stores for a TTL node."""
    return (TTL_EPHEMERAL_MASK | ttl_ms) - (1 << 64)


def next_version(current: int, expected: int, path: str) -> int:
    """ZooKeeper's checkAndIncVersion: -1 matches any version; versions wrap as Java ints."""
    if expected != -1 and expected != current:
        raise BadVersionError(path)
    nxt = current + 1
    if nxt > INT32_MAX:
        nxt = -(2**31)
    return 0 if nxt == -1 else nxt


def _size(data: bytes | None) -> int:
    return len(data) if data is not None else 0


class DataTree:
    """The replicated state: znodes, sessions and their ephemerals, the last applied zxid."""

    def __init__(self) -> None:
        root = Node(b"", acls.OPEN_ACL_UNSAFE)
        zk = Node(b"", acls.OPEN_ACL_UNSAFE)
        quota = Node(b"", acls.OPEN_ACL_UNSAFE)
        config = Node(b"", acls.READ_ACL_UNSAFE)
        config.aversion = -1  # as ZooKeeper creates it
        root.add_child("zookeeper")
        zk.add_child("quota")
        zk.add_child("config")
        self.nodes: dict[str, Node] = {
            paths.ROOT: root,
            paths.ZOOKEEPER: zk,
            paths.QUOTA: quota,
            paths.CONFIG: config,
        }
        # ZooKeeper's approximate_data_size, kept as writes apply (mntr must not walk the tree):
        # the bytes of every node's path and data.
        self.data_size = sum(len(path) for path in self.nodes)
        self.sessions: dict[int, SessionInfo] = {}
        self.ephemerals: dict[int, set[str]] = {}
        self.containers: set[str] = set()
        self.ttls: set[str] = set()
        self.last_zxid = 0

    # -- reads ---------------------------------------------------------------------------

    def node(self, path: str) -> Node:
        node = self.nodes.get(path)
        if node is None:
            raise NoNodeError(path)
        return node

    def get_data(self, path: str, auth: tuple[Id, ...]) -> tuple[bytes | None, Stat]:
        node = self.node(path)
        acls.check(path, node.acl, _READ, auth)
        return node.data, node.stat()

    def exists(self, path: str) -> Stat | None:
        node = self.nodes.get(path)
        return None if node is None else node.stat()

    def get_children(self, path: str, auth: tuple[Id, ...]) -> tuple[list[str], Stat]:
        node = self.node(path)
        acls.check(path, node.acl, _READ, auth)
        return list(node.children), node.stat()

    def get_acl(self, path: str, auth: tuple[Id, ...]) -> tuple[tuple[ACL, ...], Stat]:
        node = self.node(path)
        acls.check(path, node.acl, _READ | _ADMIN, auth)
        try:
            acls.check(path, node.acl, _ADMIN, auth)
        except NoAuthError:
            # Without ADMIN a reader sees digest ids with the hash blanked out (ZooKeeper 3.8).
            redacted = tuple(
                ACL(a.perms, Id(a.id.scheme, a.id.id.split(":", 1)[0] + ":x")) if a.id.scheme == "digest" else a for a in node.acl
            )
            return redacted, node.stat()
        return node.acl, node.stat()

    def get_ephemerals(self, session: int, prefix: str) -> list[str]:
        mine = self.ephemerals.get(session, set())
        if prefix == paths.ROOT:
            return sorted(mine)
        return sorted(p for p in mine if p.startswith(prefix))

    def all_children_number(self, path: str, auth: tuple[Id, ...]) -> int:
        node = self.node(path)
        acls.check(path, node.acl, _READ, auth)
        if path == paths.ROOT:
            return len(self.nodes) - 1
        prefix = path + "/"
        return sum(1 for p in self.nodes if p.startswith(prefix))

    def walk(self, path: str = paths.ROOT) -> Iterator[str]:
        """Every path at and below `path`, parents before children, children sorted."""
        stack = [path]
        while stack:
            p = stack.pop()
            yield p
            stack.extend(paths.join(p, c) for c in sorted(self.node(p).children, reverse=True))

    # -- apply ---------------------------------------------------------------------------

    def apply(self, txn: Txn) -> tuple[Result, list[Trigger]]:
        """Apply one committed transaction; return its result and the watch triggers it fired.

        Errors are results, never exceptions: a failed write changes nothing.
        """
        if txn.zxid <= self.last_zxid and txn.zxid != 0:
            raise ValueError(f"zxid {txn.zxid:#x} applied after {self.last_zxid:#x}")
        triggers: list[Trigger] = []
        try:
            result = self._apply_op(txn, txn.op, triggers, None)
        except ZKError as e:
            result = Result(err=int(e.code))
            triggers = []
        if txn.zxid > self.last_zxid:
            self.last_zxid = txn.zxid
        return result, triggers

    def _apply_op(self, txn: Txn, op: Op, triggers: list[Trigger], undo: Undo | None) -> Result:
        if txn.session and txn.session not in self.sessions and type(op) in _SESSION_WRITES:
            # The session closed before this write committed (a follower forwarded it while
            # the close was on its way): it fails, as ZooKeeper's leader fails it, so that
            # nothing of a session happens after its end. Session 0 is the server's own.
            raise SessionExpiredError(getattr(op, "path", ""))
        if isinstance(op, Create):
            return self._create(txn, op, triggers, undo)
        if isinstance(op, Delete):
            return self._delete(txn, op, triggers, undo)
        if isinstance(op, SetData):
            return self._set_data(txn, op, triggers, undo)
        if isinstance(op, Check):
            self._check_version(txn, op)
            return _OK
        if isinstance(op, SetACL):
            return self._set_acl(txn, op, undo)
        if isinstance(op, Multi):
            return self._multi(txn, op, triggers)
        if isinstance(op, CreateSession):
            self.sessions[txn.session] = SessionInfo(op.timeout_ms, op.password)
            return _OK
        if isinstance(op, CloseSession):
            return self._close_session(txn, triggers)
        if isinstance(op, DeleteContainer):
            return self._delete_container(txn, op, triggers)
        if isinstance(op, NoOp):
            return _OK
        if isinstance(op, Reconfig):
            return self._reconfig(txn, op, triggers, undo)
        if isinstance(op, Refused):
            return Result(err=op.err)
        raise TypeError(f"unknown transaction op {op!r}")

    # -- the writes, each with ZooKeeper's checks in ZooKeeper's order -----------------------

    def _create(self, txn: Txn, op: Create, triggers: list[Trigger], undo: Undo | None) -> Result:
        path = op.path
        mode = _MODES.get(op.mode)
        if mode is None:
            raise BadArgumentsError(path)
        is_ephemeral, is_sequential, is_container, is_ttl = mode
        ttl = op.ttl if op.ttl_request else -1
        if is_ttl:
            if not 0 < ttl <= TTL_MAX_MS:
                raise BadArgumentsError(path)
        elif ttl >= 0:
            raise BadArgumentsError(path)
        if op.container_request:
            # The createContainer opcode makes a container whatever the (valid) flags say.
            is_ephemeral, is_sequential, is_container, is_ttl = _CONTAINER_MODE
        if is_ephemeral and txn.session not in self.sessions:
            raise SessionExpiredError(path)
        slash = path.rfind("/")
        if slash == -1 or "\0" in path:
            raise BadArgumentsError(path)
        parent_path = path[:slash] or paths.ROOT
        # The open ACL needs no fixing up (decoders hand it over as this very tuple).
        acl = op.acl if op.acl is OPEN_ACL_UNSAFE else acls.fixup_acl(path, txn.auth, op.acl)
        parent = self.node(parent_path)
        acls.check(path, parent.acl, _CREATE, txn.auth)
        if is_sequential:
            path = f"{path}{parent.cversion:010d}"
        if paths.path_error(path) is not None:
            raise BadArgumentsError(path)
        if path in self.nodes:
            raise NodeExistsError(path)
        if parent.is_ephemeral:
            raise NoChildrenForEphemeralsError(path)

        if is_container:
            owner = CONTAINER_EPHEMERAL_OWNER
        elif is_ttl:
            owner = ttl_owner(ttl)
        elif is_ephemeral:
            owner = txn.session
        else:
            owner = 0
        if undo is not None:
            self._save(parent, undo)
        parent.cversion += 1
        parent.pzxid = txn.zxid
        node = Node(op.data, acl, txn.zxid, txn.time_ms, owner)
        self._link(path, parent, node, undo)
        triggers.append((_NODE_CREATED, path, acl))
        triggers.append((_NODE_CHILDREN_CHANGED, parent_path, parent.acl))
        return Result(0, path, node.stat())

    def _parent_for_delete(self, path: str) -> str:
        slash = path.rfind("/")
        if slash == -1 or "\0" in path or path in SPECIAL_PATHS:
            raise BadArgumentsError(path)
        return path[:slash] or paths.ROOT

    def _delete(self, txn: Txn, op: Delete, triggers: list[Trigger], undo: Undo | None) -> Result:
        path = op.path
        parent_path = self._parent_for_delete(path)
        parent = self.node(parent_path)
        acls.check(path, parent.acl, _DELETE, txn.auth)
        node = self.node(path)
        next_version(node.version, op.version, path)
        if node.children:
            raise NotEmptyError(path)
        self._unlink(path, parent, node, txn.zxid, undo)
        triggers.append((_NODE_DELETED, path, node.acl))
        triggers.append((_NODE_CHILDREN_CHANGED, parent_path, parent.acl))
        return _OK

    def _delete_container(self, txn: Txn, op: DeleteContainer, triggers: list[Trigger]) -> Result:
        path = op.path
        parent_path = self._parent_for_delete(path)
        node = self.node(path)
        if node.children:
            raise NotEmptyError(path)
        ttl = node.ttl_ms
        if node.is_container:
            # A container that never had a child is left alone, as ZooKeeper's ContainerManager does.
            if node.cversion == 0:
                raise BadVersionError(path)
        elif ttl is None or txn.time_ms - node.mtime <= ttl:
            raise BadVersionError(path)
        parent = self.node(parent_path)
        self._unlink(path, parent, node, txn.zxid, None)
        triggers.append((_NODE_DELETED, path, node.acl))
        triggers.append((_NODE_CHILDREN_CHANGED, parent_path, parent.acl))
        return _OK

    def _valid_node(self, path: str) -> Node:
        if paths.path_error(path) is not None:
            raise BadArgumentsError(path)
        return self.node(path)

    def _set_data(self, txn: Txn, op: SetData, triggers: list[Trigger], undo: Undo | None) -> Result:
        node = self._valid_node(op.path)
        acls.check(op.path, node.acl, _WRITE, txn.auth)
        self._write_data(txn, op.path, node, op.data, next_version(node.version, op.version, op.path), triggers, undo)
        return Result(0, None, node.stat())

    def _write_data(
        self, txn: Txn, path: str, node: Node, data: bytes | None, version: int, triggers: list[Trigger], undo: Undo | None
    ) -> None:
        """A node's new data and version, as setData and reconfig write them."""
        self._save(node, undo)
        grown = _size(data) - _size(node.data)
        self.data_size += grown
        if undo is not None:
            undo.append(lambda: self._grow(-grown))
        node.data = data
        node.version = version
        node.mtime = txn.time_ms
        node.mzxid = txn.zxid
        triggers.append((_NODE_DATA_CHANGED, path, node.acl))

    def _reconfig(self, txn: Txn, op: Reconfig, triggers: list[Trigger], undo: Undo | None) -> Result:
        """The new membership becomes /zookeeper/config's data (mzxid, mtime, a data watch
        fired). Its dataVersion stays -1: ZooKeeper sets the node with version -1 each time,
        and clients tell configurations apart by the `version=` line. Who may reconfigure was
        checked before the transaction was proposed, as ZooKeeper does."""
        node = self.nodes[paths.CONFIG]
        self._write_data(txn, paths.CONFIG, node, op.data, -1, triggers, undo)
        return Result(0, None, node.stat(), data=op.data)

    def set_config_locally(self, data: bytes) -> None:
        """/zookeeper/config as this server's configuration says, outside any transaction
        (ZooKeeper's initConfigInZKDatabase at start: every member writes the same text)."""
        node = self.nodes[paths.CONFIG]
        self.data_size += _size(data) - _size(node.data)
        node.data = data
        node.version = -1

    def _set_acl(self, txn: Txn, op: SetACL, undo: Undo | None) -> Result:
        if paths.path_error(op.path) is not None:
            raise BadArgumentsError(op.path)
        acl = acls.fixup_acl(op.path, txn.auth, op.acl)
        node = self.node(op.path)
        acls.check(op.path, node.acl, _ADMIN, txn.auth)
        version = next_version(node.aversion, op.version, op.path)
        self._save(node, undo)
        node.acl = acl
        node.aversion = version
        return Result(0, None, node.stat())

    def _check_version(self, txn: Txn, op: Check) -> None:
        node = self._valid_node(op.path)
        acls.check(op.path, node.acl, _READ, txn.auth)
        next_version(node.version, op.version, op.path)

    def _multi(self, txn: Txn, op: Multi, triggers: list[Trigger]) -> Result:
        """All or nothing: on the first failure every earlier op is undone, and the results
        say OK before it, its error at it and RUNTIME_INCONSISTENCY after (as ZooKeeper)."""
        undo: Undo = []
        mine: list[Trigger] = []
        results: list[Result] = []
        for i, sub in enumerate(op.ops):
            try:
                if not isinstance(sub, MULTI_OPS):
                    raise BadArgumentsError(getattr(sub, "path", None))
                results.append(self._apply_op(txn, sub, mine, undo))
            except ZKError as e:
                for step in reversed(undo):
                    step()
                failed = [Result(err=0)] * i + [Result(err=int(e.code))]
                failed += [Result(err=-2)] * (len(op.ops) - i - 1)
                return Result(results=tuple(failed))
        triggers.extend(mine)
        return Result(results=tuple(results))

    def _close_session(self, txn: Txn, triggers: list[Trigger]) -> Result:
        for path in sorted(self.ephemerals.get(txn.session, ()), reverse=True):
            parent_path = paths.parent(path)
            parent, node = self.nodes[parent_path], self.nodes[path]
            self._unlink(path, parent, node, txn.zxid, None)
            triggers.append((_NODE_DELETED, path, node.acl))
            triggers.append((_NODE_CHILDREN_CHANGED, parent_path, parent.acl))
        self.sessions.pop(txn.session, None)
        self.ephemerals.pop(txn.session, None)
        return _OK

    # -- mutation primitives that know how to undo themselves (for multi) -------------------

    def _save(self, node: Node, undo: Undo | None) -> None:
        if undo is not None:
            fields = node.fields()  # the values now, restored by the undo step
            undo.append(lambda: node.restore(fields))

    def _link(self, path: str, parent: Node, node: Node, undo: Undo | None) -> None:
        parent.add_child(path[path.rfind("/") + 1 :])
        self.nodes[path] = node
        self.data_size += len(path) + _size(node.data)
        if node.ephemeral_owner:
            self._index_for(node).add(path)  # type: ignore[union-attr]
        if undo is not None:
            undo.append(lambda: self._forget(path, parent, node))

    def _unlink(self, path: str, parent: Node, node: Node, zxid: int, undo: Undo | None) -> None:
        self._save(parent, undo)
        self._forget(path, parent, node)
        # A pzxid only moves forward (ZooKeeper's deleteNode), so replays cannot lower it.
        if zxid > parent.pzxid:
            parent.pzxid = zxid
        if undo is not None:
            undo.append(lambda: self._link(path, parent, node, None))

    def _forget(self, path: str, parent: Node, node: Node) -> None:
        parent.remove_child(paths.split(path)[1])
        del self.nodes[path]
        self.data_size -= len(path) + _size(node.data)
        index = self._index_for(node)
        if index is not None:
            index.discard(path)
            if not index and node.is_ephemeral:
                del self.ephemerals[node.ephemeral_owner]

    def _grow(self, delta: int) -> None:
        self.data_size += delta

    def _index_for(self, node: Node) -> set[str] | None:
        if node.ephemeral_owner == 0:
            return None
        if node.is_container:
            return self.containers
        if node.ttl_ms is not None:
            return self.ttls
        return self.ephemerals.setdefault(node.ephemeral_owner, set())

    # -- server housekeeping ----------------------------------------------------------------

    def due_for_deletion(self, now_ms: int) -> list[str]:
        """Empty containers that once had children, and TTL nodes past their time to live."""
        due = [p for p in self.containers if not self.nodes[p].children and self.nodes[p].cversion > 0]
        for p in self.ttls:
            node = self.nodes[p]
            ttl = node.ttl_ms
            if not node.children and ttl is not None and now_ms - node.mtime > ttl:
                due.append(p)
        return sorted(due)
