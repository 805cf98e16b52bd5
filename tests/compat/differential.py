"""The machinery of the differential test: operations, running them on one server through
kazoo, normalising what came back, and printing the two transcripts side by side.

One example = a list of operations on a small alphabet of paths under a fresh example root.
Each side runs it with a fresh worker session (plus, when asked, an "other" session that owns
ephemerals and then closes), records every result or exception, every watch event the server
sent the worker (attributed to the operation during which it arrived), and finally dumps the
subtree. Normalising makes the transcripts of two correct servers identical:

- zxids become labels: "@k" for the zxid that operation k's reply carried, ">k" for a zxid
  between the replies of k and k+1, "root" for the example root's creation, "pre" before it;
- ctime/mtime are dropped; ephemeralOwner becomes "0", "worker", "other1", "other2", ...;
- children lists are sorted (ZooKeeper returns hash order); events of a session close are
  sorted (ZooKeeper deletes a session's ephemerals in hash-set order).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import uuid
from collections.abc import Callable
from typing import Any

import attrs
from hypothesis import strategies as st
from kazoo.client import KazooClient
from kazoo.exceptions import KazooException, NoNodeError
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.protocol.serialization import Watch
from kazoo.protocol.states import ZnodeStat
from kazoo.security import ACL, Id, Permissions, make_digest_acl_credential

from tests.compat.helpers import close_kazoo, new_kazoo
from tests.compat.rawzk import (
    CreateFlag,
    KCreate,
    KMulti,
    KPathRequest,
    MultiError,
    Op,
    kazoo_call,
    multi_check,
    multi_create,
    multi_delete,
    multi_set,
    path_int_body,
)
from tests.compat.servers import ServerHandle

log = logging.getLogger(__name__)

# --- the alphabet ------------------------------------------------------------------------------

NAMES = ["", "a", "b", "c", "a/x", "a/y", "b/x", "a/x/q"]  # "" is the example root
# Nothing in the alphabet lives under these, so a container created there never gets a child,
# never has cversion > 0 and is never reaped: reaping runs on a timer, which two servers
# cannot be made to agree on within one example.
LEAVES = ["c", "a/y", "b/x", "a/x/q"]
# ZooKeeper 3.8 keeps one watch mode per (connection, path): a standard watch set on a path
# that has a persistent one downgrades it, and PERSISTENT after PERSISTENT_RECURSIVE replaces
# it (ZOOKEEPER-4466, fixed in 3.9). Keep each path to one kind of watch so the test does
# not encode that bug: the root only recursive, "b" only persistent, the rest standard.
STANDARD_WATCH_NAMES = [n for n in NAMES if n not in ("", "b")]
PERSISTENT_WATCHES = [("", True), ("b", False)]  # (name, recursive)
DATA = [b"", b"v1", b"v22"]
VERSIONS = [-1, 0, 1, 2]
TTL_MS = [3_600_000, 0]  # an hour (never expires mid-example) or invalid

ALICE_ID = Id("digest", make_digest_acl_credential("alice", "secret"))
# Every choice keeps ADMIN for someone the cleanup client is (world, or alice) so the cleanup
# can open the ACL again and delete.
ACLS: dict[str, list[ACL]] = {
    "open": [ACL(Permissions.ALL, Id("world", "anyone"))],
    "read-admin": [ACL(Permissions.READ | Permissions.ADMIN, Id("world", "anyone"))],
    "no-create": [ACL(Permissions.ALL & ~Permissions.CREATE, Id("world", "anyone"))],
    "no-delete": [ACL(Permissions.ALL & ~Permissions.DELETE, Id("world", "anyone"))],
    "no-read": [ACL(Permissions.ALL & ~Permissions.READ, Id("world", "anyone"))],
    "alice": [ACL(Permissions.ALL, ALICE_ID), ACL(Permissions.READ, Id("world", "anyone"))],
    "auth": [ACL(Permissions.ALL, Id("auth", ""))],
}
MODES = ["persistent", "ephemeral", "persistent_seq", "ephemeral_seq", "container", "ttl", "ttl_seq"]
MODE_FLAGS = {
    "persistent": CreateFlag.PERSISTENT,
    "ephemeral": CreateFlag.EPHEMERAL,
    "persistent_seq": CreateFlag.PERSISTENT_SEQUENTIAL,
    "ephemeral_seq": CreateFlag.EPHEMERAL_SEQUENTIAL,
    "container": CreateFlag.CONTAINER,
    "ttl": CreateFlag.PERSISTENT_WITH_TTL,
    "ttl_seq": CreateFlag.PERSISTENT_SEQUENTIAL_WITH_TTL,
}
OP_TIMEOUT_S = 10.0


@attrs.frozen
class KAddWatch:
    path: str
    mode: int
    type = Op.addWatch

    def serialize(self) -> bytes:
        return path_int_body(self.path, self.mode)

    @classmethod
    def deserialize(cls, data, offset):
        return None


@attrs.frozen
class KRemoveWatches:
    path: str
    watcher_type: int
    type = Op.removeWatches

    def serialize(self) -> bytes:
        return path_int_body(self.path, self.watcher_type)

    @classmethod
    def deserialize(cls, data, offset):
        return None


# --- operations ----------------------------------------------------------------------------------


@attrs.define
class Context:
    """What an operation runs against on one side."""

    handle: ServerHandle
    root: str
    worker: KazooClient
    others: list[KazooClient] = attrs.Factory(list)
    other_sessions: list[int] = attrs.Factory(list)
    other_alive: bool = False
    # zxids carried by the replies of each operation (for labelling)
    reply_zxids: list[int] = attrs.Factory(list)

    def path(self, name: str) -> str:
        return f"{self.root}/{name}" if name else self.root

    def other(self) -> KazooClient:
        if not self.other_alive:
            self.others.append(new_kazoo(self.handle.connect_string))
            self.other_sessions.append(self.others[-1].client_id[0])
            self.other_alive = True
        return self.others[-1]


def noop_watch(_event) -> None:
    pass


@attrs.frozen
class Create:
    name: str
    data: bytes
    mode: str
    acl: str
    include_data: bool
    ttl_ms: int

    def run(self, ctx: Context):
        path = ctx.path(self.name)
        acl = ACLS[self.acl]
        flags = MODE_FLAGS[self.mode]
        if self.mode == "container":
            return kazoo_call(ctx.worker, KCreate(path, self.data, acl, flags, None, Op.createContainer), OP_TIMEOUT_S)
        if self.mode in ("ttl", "ttl_seq"):
            return kazoo_call(ctx.worker, KCreate(path, self.data, acl, flags, self.ttl_ms, Op.createTTL), OP_TIMEOUT_S)
        return ctx.worker.create(
            path,
            self.data,
            acl=acl,
            ephemeral=self.mode.startswith("ephemeral"),
            sequence=self.mode.endswith("_seq"),
            include_data=self.include_data,
        )

    def __str__(self) -> str:
        extra = f", ttl={self.ttl_ms}" if self.mode.startswith("ttl") else ""
        extra += ", include_data" if self.include_data and self.mode not in ("container", "ttl", "ttl_seq") else ""
        return f"create({self.name!r}, {self.data!r}, {self.mode}, acl={self.acl}{extra})"


@attrs.frozen
class Delete:
    name: str
    version: int

    def run(self, ctx: Context):
        return ctx.worker.delete(ctx.path(self.name), version=self.version)

    def __str__(self) -> str:
        return f"delete({self.name!r}, version={self.version})"


@attrs.frozen
class SetData:
    name: str
    data: bytes
    version: int

    def run(self, ctx: Context):
        return ctx.worker.set(ctx.path(self.name), self.data, version=self.version)

    def __str__(self) -> str:
        return f"set({self.name!r}, {self.data!r}, version={self.version})"


@attrs.frozen
class GetData:
    name: str
    watch: bool

    def run(self, ctx: Context):
        return ctx.worker.get(ctx.path(self.name), watch=noop_watch if self.watch else None)

    def __str__(self) -> str:
        return f"get({self.name!r}{', watch' if self.watch else ''})"


@attrs.frozen
class Exists:
    name: str
    watch: bool

    def run(self, ctx: Context):
        return ctx.worker.exists(ctx.path(self.name), watch=noop_watch if self.watch else None)

    def __str__(self) -> str:
        return f"exists({self.name!r}{', watch' if self.watch else ''})"


@attrs.frozen
class Children:
    name: str
    watch: bool
    include_data: bool

    def run(self, ctx: Context):
        return ctx.worker.get_children(
            ctx.path(self.name), watch=noop_watch if self.watch else None, include_data=self.include_data
        )

    def __str__(self) -> str:
        flags = (", watch" if self.watch else "") + (", include_data" if self.include_data else "")
        return f"children({self.name!r}{flags})"


@attrs.frozen
class WatchAll:
    """get, exists and getChildren with a watch on one path (events are what we are after)."""

    name: str

    def run(self, ctx: Context):
        results = []
        path = ctx.path(self.name)
        for call in (
            lambda: ctx.worker.get(path, watch=noop_watch),
            lambda: ctx.worker.exists(path, watch=noop_watch),
            lambda: ctx.worker.get_children(path, watch=noop_watch),
        ):
            try:
                results.append(call())
            except KazooException as exc:
                results.append(Failed(type(exc).__name__))
        return tuple(results)

    def __str__(self) -> str:
        return f"watch_all({self.name!r})"


@attrs.frozen
class WatchEverything:
    """watch_all on every name that takes standard watches: the ops that follow will fire them."""

    def run(self, ctx: Context):
        return tuple(WatchAll(name).run(ctx) for name in STANDARD_WATCH_NAMES)

    def __str__(self) -> str:
        return "watch_all(every name)"


@attrs.frozen
class GetAcl:
    name: str

    def run(self, ctx: Context):
        return ctx.worker.get_acls(ctx.path(self.name))

    def __str__(self) -> str:
        return f"get_acls({self.name!r})"


@attrs.frozen
class SetAcl:
    name: str
    acl: str
    version: int

    def run(self, ctx: Context):
        return ctx.worker.set_acls(ctx.path(self.name), ACLS[self.acl], version=self.version)

    def __str__(self) -> str:
        return f"set_acls({self.name!r}, {self.acl}, version={self.version})"


@attrs.frozen
class Sync:
    name: str

    def run(self, ctx: Context):
        return ctx.worker.sync(ctx.path(self.name))

    def __str__(self) -> str:
        return f"sync({self.name!r})"


@attrs.frozen
class AddWatch:
    name: str
    recursive: bool

    def run(self, ctx: Context):
        return kazoo_call(ctx.worker, KAddWatch(ctx.path(self.name), 1 if self.recursive else 0), OP_TIMEOUT_S)

    def __str__(self) -> str:
        return f"add_watch({self.name!r}, {'PERSISTENT_RECURSIVE' if self.recursive else 'PERSISTENT'})"


@attrs.frozen
class RemoveWatches:
    name: str
    watcher_type: int  # 1 children, 2 data, 3 any

    def run(self, ctx: Context):
        return kazoo_call(ctx.worker, KRemoveWatches(ctx.path(self.name), self.watcher_type), OP_TIMEOUT_S)

    def __str__(self) -> str:
        return f"remove_watches({self.name!r}, {['', 'Children', 'Data', 'Any'][self.watcher_type]})"


@attrs.frozen
class AllChildrenNumber:
    name: str

    def run(self, ctx: Context):
        return kazoo_call(ctx.worker, KPathRequest(Op.getAllChildrenNumber, ctx.path(self.name)), OP_TIMEOUT_S)

    def __str__(self) -> str:
        return f"get_all_children_number({self.name!r})"


@attrs.frozen
class Ephemerals:
    def run(self, ctx: Context):
        return sorted(kazoo_call(ctx.worker, KPathRequest(Op.getEphemerals, ctx.root), OP_TIMEOUT_S))

    def __str__(self) -> str:
        return "get_ephemerals(root)"


@attrs.frozen
class Auth:
    def run(self, ctx: Context):
        return ctx.worker.add_auth("digest", "alice:secret")

    def __str__(self) -> str:
        return "add_auth(digest alice)"


@attrs.frozen
class MultiCreate:
    name: str
    data: bytes
    mode: str
    ttl_ms: int

    def sub(self, ctx: Context):
        flags = MODE_FLAGS[self.mode]
        ttl = self.ttl_ms if self.mode.startswith("ttl") else None
        return multi_create(ctx.path(self.name), self.data, ACLS["open"], flags, ttl)

    def __str__(self) -> str:
        return f"create({self.name!r}, {self.data!r}, {self.mode})"


@attrs.frozen
class MultiDelete:
    name: str
    version: int

    def sub(self, ctx: Context):
        return multi_delete(ctx.path(self.name), self.version)

    def __str__(self) -> str:
        return f"delete({self.name!r}, {self.version})"


@attrs.frozen
class MultiSet:
    name: str
    data: bytes
    version: int

    def sub(self, ctx: Context):
        return multi_set(ctx.path(self.name), self.data, self.version)

    def __str__(self) -> str:
        return f"set({self.name!r}, {self.data!r}, {self.version})"


@attrs.frozen
class MultiCheck:
    name: str
    version: int

    def sub(self, ctx: Context):
        return multi_check(ctx.path(self.name), self.version)

    def __str__(self) -> str:
        return f"check({self.name!r}, {self.version})"


@attrs.frozen
class Multi:
    ops: tuple

    def run(self, ctx: Context):
        return kazoo_call(ctx.worker, KMulti(tuple(op.sub(ctx) for op in self.ops)), OP_TIMEOUT_S)

    def __str__(self) -> str:
        return f"multi[{'; '.join(map(str, self.ops))}]"


@attrs.frozen
class OtherEphemeral:
    """Another session creates an ephemeral (its first use opens that session)."""

    name: str

    def run(self, ctx: Context):
        other = ctx.other()
        try:
            return other.create(ctx.path(self.name), b"o", ephemeral=True)
        finally:
            ctx.reply_zxids.append(other.last_zxid)
            # the worker's watches fired by that create reach it before this sync's reply
            ctx.worker.sync("/")

    def __str__(self) -> str:
        return f"other.create_ephemeral({self.name!r})"


@attrs.frozen
class CloseOther:
    """The other session closes: its ephemerals go and their watches fire."""

    def run(self, ctx: Context):
        if ctx.other_alive:
            ctx.others[-1].stop()
            ctx.other_alive = False
        # every event the close caused reaches the worker before this sync's reply
        return ctx.worker.sync("/")

    def __str__(self) -> str:
        return "other.close()"


SORTED_EVENT_OPS = (CloseOther,)

# --- strategies ----------------------------------------------------------------------------------

names = st.sampled_from(NAMES)
non_root = st.sampled_from(NAMES[1:])
datas = st.sampled_from(DATA)
watches = st.sampled_from([True, True, False])
versions = st.sampled_from(VERSIONS)
acl_names = st.sampled_from(list(ACLS))


def _create_ok(op) -> bool:
    return op.mode != "container" or op.name in LEAVES


creates = st.builds(
    Create,
    name=non_root,
    data=datas,
    mode=st.sampled_from(MODES),
    acl=acl_names | st.just("open"),  # mostly open, so that more of the program can act
    include_data=st.booleans(),
    ttl_ms=st.sampled_from(TTL_MS),
).filter(_create_ok)

multi_subops = st.one_of(
    st.builds(MultiCreate, name=non_root, data=datas, mode=st.sampled_from(MODES), ttl_ms=st.sampled_from(TTL_MS)).filter(
        _create_ok
    ),
    st.builds(MultiDelete, name=non_root, version=versions),
    st.builds(MultiSet, name=names, data=datas, version=versions),
    st.builds(MultiCheck, name=names, version=versions),
)

# (weight, strategy): drawn by sampled_from, which spreads evenly, where a one_of of many
# branches would mostly produce the first few.
WEIGHTED_OPERATIONS = [  # Hypothesis favours the front of the list: the busiest ops first
    (3, st.builds(WatchAll, name=st.sampled_from(STANDARD_WATCH_NAMES))),
    (3, st.builds(SetData, name=names, data=datas, version=versions)),
    (6, creates),
    (2, st.builds(Delete, name=names, version=versions)),
    (3, st.builds(Multi, ops=st.lists(multi_subops, min_size=1, max_size=4).map(tuple))),
    (2, st.builds(GetData, name=st.sampled_from(STANDARD_WATCH_NAMES), watch=watches)),
    (2, st.builds(Exists, name=st.sampled_from(STANDARD_WATCH_NAMES), watch=watches)),
    (2, st.builds(Children, name=st.sampled_from(STANDARD_WATCH_NAMES), watch=watches, include_data=st.booleans())),
    (1, st.sampled_from([AddWatch(name, recursive) for name, recursive in PERSISTENT_WATCHES])),
    (1, st.builds(OtherEphemeral, name=non_root)),
    (1, st.just(CloseOther())),
    (1, st.builds(SetAcl, name=names, acl=acl_names, version=st.sampled_from([-1, 0, 1]))),
    (1, st.builds(GetAcl, name=names)),
    (1, st.builds(RemoveWatches, name=st.sampled_from(STANDARD_WATCH_NAMES), watcher_type=st.sampled_from([1, 2, 3]))),
    (1, st.builds(GetData, name=names, watch=st.just(False))),
    (1, st.builds(Children, name=names, watch=st.just(False), include_data=st.booleans())),
    (1, st.builds(AllChildrenNumber, name=names)),
    (1, st.just(Ephemerals())),
    (1, st.just(Auth())),
    (1, st.builds(Sync, name=names)),
]
operations = st.sampled_from([s for weight, s in WEIGHTED_OPERATIONS for _ in range(weight)]).flatmap(lambda s: s)

# Most programs start by building a little tree, parents first, so that later operations
# find something to act on.
scaffold = st.lists(
    st.builds(
        Create,
        name=st.sampled_from(["a", "a", "b", "b", "c", "a/x", "a/y", "b/x", "a/x/q"]),
        data=datas,
        mode=st.sampled_from(["persistent", "persistent", "persistent", "ephemeral", "persistent_seq", "ttl"]),
        acl=st.just("open"),
        include_data=st.booleans(),
        ttl_ms=st.just(TTL_MS[0]),
    ),
    min_size=2,
    max_size=6,
).map(lambda ops: sorted(ops, key=lambda op: op.name.count("/")))

# ...then watches every name (so the rest of the program fires watches), maybe adds a
# persistent watch, and then does anything.
persistent_prelude = st.lists(
    st.sampled_from([AddWatch(name, recursive) for name, recursive in PERSISTENT_WATCHES]), max_size=2, unique=True
)

programs = st.builds(
    lambda head, persistent, tail: head + [WatchEverything()] + persistent + tail,
    scaffold,
    persistent_prelude,
    st.lists(operations, min_size=4, max_size=25),
)

# --- running one side ----------------------------------------------------------------------------


@attrs.frozen
class Failed:
    """An operation that raised: the exception class is what is compared."""

    error: str

    def __repr__(self) -> str:
        return self.error


@attrs.define
class Transcript:
    results: list[Any]
    events: list[list[tuple]]  # per operation
    tree: list[tuple]
    note: str = ""


class EventTap:
    """Records every watch event the server sends a kazoo client, in arrival order, tagged
    with the operation running at the time (events come before the reply that follows them)."""

    def __init__(self, client: KazooClient) -> None:
        self.current = -1
        self.events: list[tuple[int, int, str]] = []
        connection = client._connection
        original = connection._read_watch_event

        def tapped(buffer, offset):
            watch, _ = Watch.deserialize(buffer, offset)
            self.events.append((self.current, watch.type, watch.path))
            return original(buffer, offset)

        connection._read_watch_event = tapped


_example_ids = itertools.count()


def new_example_root() -> str:
    return f"/diff-{uuid.uuid4().hex[:6]}-{next(_example_ids)}"


def run_side(handle: ServerHandle, admin: KazooClient, root: str, program: list) -> Transcript:
    admin.create(root)
    root_czxid = admin.exists(root).czxid
    worker = new_kazoo(handle.connect_string)
    tap = EventTap(worker)
    ctx = Context(handle=handle, root=root, worker=worker)
    results: list[Any] = []
    op_zxids: list[list[int]] = []
    try:
        for index, op in enumerate(program):
            tap.current = index
            ctx.reply_zxids = []
            try:
                results.append(op.run(ctx))
            except (KazooException, KazooTimeoutError) as exc:
                results.append(Failed(type(exc).__name__))
            ctx.reply_zxids.append(worker.last_zxid)
            op_zxids.append(list(ctx.reply_zxids))
        tap.current = len(program)
        worker.sync("/")
        tree = dump_tree(worker, root)
        sessions = {worker.client_id[0]: "worker"}
        for number, session_id in enumerate(ctx.other_sessions, 1):
            sessions[session_id] = f"other{number}"
    finally:
        for client in [worker, *ctx.others]:
            close_kazoo(client)
        with contextlib.suppress(KazooException):
            remove_tree(admin, root)
    labeller = ZxidLabeller(root_czxid, op_zxids)
    norm = Normaliser(labeller, sessions, root)
    events: list[list[tuple]] = [[] for _ in range(len(program) + 1)]
    for index, type_, path in tap.events:
        events[index].append((type_, norm.path(path)))
    for index, op in enumerate(program):
        if isinstance(op, SORTED_EVENT_OPS):
            events[index].sort()
    events[-1].sort()  # the worker's own close: its ephemerals go in hash-set order too
    return Transcript(
        results=[norm.value(r) for r in results],
        events=events,
        tree=[norm.value(entry) for entry in tree],
    )


def dump_tree(client: KazooClient, root: str) -> list[tuple]:
    """(path, data or error, stat, acl or error) for every node, depth first, sorted."""
    out: list[tuple] = []

    def visit(path: str) -> None:
        try:
            data, stat = client.get(path)
        except NoNodeError:
            return
        except KazooException as exc:
            data, stat = Failed(type(exc).__name__), client.exists(path)
        try:
            acl = client.get_acls(path)[0]
        except KazooException as exc:
            acl = Failed(type(exc).__name__)
        out.append((path, data, stat, acl))
        try:
            children = sorted(client.get_children(path))
        except KazooException as exc:
            out.append((path + " [children]", Failed(type(exc).__name__)))
            return
        for child in children:
            visit(f"{path}/{child}")

    visit(root)
    return out


def remove_tree(client: KazooClient, path: str) -> None:
    """Open the ACL (every ACL in the alphabet leaves ADMIN to the cleanup client), then
    delete depth first."""
    try:
        client.set_acls(path, ACLS["open"])
        children = client.get_children(path)
    except NoNodeError:
        return
    for child in children:
        remove_tree(client, f"{path}/{child}")
    with contextlib.suppress(NoNodeError):
        client.delete(path)


# --- normalising -----------------------------------------------------------------------------------


class ZxidLabeller:
    def __init__(self, root_czxid: int, op_zxids: list[list[int]]) -> None:
        self.root_czxid = root_czxid
        self.first_op: dict[int, int] = {}
        self.points: list[tuple[int, int]] = []  # (zxid, op index), in op order
        for index, zxids in enumerate(op_zxids):
            for zxid in zxids:
                self.first_op.setdefault(zxid, index)
                self.points.append((zxid, index))

    def __call__(self, zxid: int) -> str:
        if zxid == 0:
            return "0"
        if zxid == self.root_czxid:
            return "root"
        if zxid < self.root_czxid:
            return "pre"
        if zxid in self.first_op:
            return f"@{self.first_op[zxid]}"
        below = [index for z, index in self.points if z < zxid]
        return f">{max(below)}" if below else ">root"


@attrs.define
class Normaliser:
    zxid: Callable[[int], str]
    sessions: dict[int, str]
    root: str

    def path(self, path: str) -> str:
        if path == self.root:
            return "R"
        if path.startswith(self.root + "/"):
            return "R" + path[len(self.root) :]
        return path

    def stat(self, stat: ZnodeStat) -> tuple:
        owner = stat.ephemeralOwner
        owner_label = "0" if owner == 0 else self.sessions.get(owner, f"0x{owner & (2**64 - 1):x}")
        return (
            f"czxid={self.zxid(stat.czxid)}",
            f"mzxid={self.zxid(stat.mzxid)}",
            f"pzxid={self.zxid(stat.pzxid)}",
            f"v={stat.version}",
            f"cv={stat.cversion}",
            f"av={stat.aversion}",
            f"owner={owner_label}",
            f"len={stat.dataLength}",
            f"kids={stat.numChildren}",
        )

    def value(self, value: Any) -> Any:
        if isinstance(value, ZnodeStat):
            return ("Stat",) + self.stat(value)
        if isinstance(value, str):
            return self.path(value)
        if isinstance(value, MultiError):
            return f"MultiError({value.code})"
        if isinstance(value, ACL):
            return f"{value.id.scheme}:{value.id.id}:{value.perms}"
        if isinstance(value, list):
            items = [self.value(v) for v in value]
            if value and all(isinstance(v, str) for v in value) and not any(v.startswith("/") for v in value):
                return sorted(items)  # a children list: ZooKeeper's order is a hash order
            return items
        if isinstance(value, tuple):
            return tuple(self.value(v) for v in value)
        return value


# --- comparing --------------------------------------------------------------------------------------


def describe_mismatch(program: list, names: tuple[str, str], a: Transcript, b: Transcript) -> str | None:
    """None when the transcripts agree, else a side-by-side listing with '!!' on differences."""
    if (a.results, a.events, a.tree) == (b.results, b.events, b.tree):
        return None
    left, right = names
    width = max(len(left), len(right))
    lines = [f"{left} and {right} disagree (paths under the example root are shown as R):"]
    for index, op in enumerate(program):
        same = a.results[index] == b.results[index] and a.events[index] == b.events[index]
        lines.append(f"{'  ' if same else '!!'} #{index} {op}")
        if a.results[index] == b.results[index]:
            lines.append(f"      both{' ' * (width - 4)}: {a.results[index]!r}")
        else:
            lines.append(f"      {left:<{width}}: {a.results[index]!r}")
            lines.append(f"      {right:<{width}}: {b.results[index]!r}")
        if a.events[index] or b.events[index]:
            if a.events[index] == b.events[index]:
                lines.append(f"      events{' ' * (width - 6)}: {a.events[index]}")
            else:
                lines.append(f"      {left + ' events':<{width}}: {a.events[index]}")
                lines.append(f"      {right + ' events':<{width}}: {b.events[index]}")
    if a.events[-1] != b.events[-1]:
        lines.append(f"!! events after the last operation: {left} {a.events[-1]} / {right} {b.events[-1]}")
    if a.tree != b.tree:
        lines.append("!! final trees differ:")
        for entry in sorted(set(map(repr, a.tree)) ^ set(map(repr, b.tree))):
            where = left if entry in set(map(repr, a.tree)) else right
            lines.append(f"      only {where}: {entry}")
    return "\n".join(lines)
