"""The async ZooKeeper client, for Trio and asyncio (anyio): `connect(...)` and the `Client`
operations.

    async with connect("127.0.0.1:2181", session_timeout=10) as zk:
        await zk.create("/app/config", b"v1", make_parents=True)
        data, stat, watch = await zk.get("/app/config", watch=True)
        event = await watch                      # one-shot watch: the next change
        async with zk.watch("/app", recursive=True) as events:
            async for event in events:           # persistent watch until the block ends
                ...

Paths are the caller's (chroot applied here); results are typed (`Stat`, `(data, stat)`,
lists of child names); server errors are the znodes exceptions (`NoNodeError('/a')`, ...).
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import Any, Literal, TypeVar, cast, overload

import anyio
import anyio.abc

from ccore.znodes.acl import ACL, OPEN_ACL_UNSAFE
from ccore.znodes.constants import MAX_BUFFER, TTL_MAX_MS, CreateMode, OpCode
from ccore.znodes.errors import (
    NoAuthError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    ZKError,
)
from ccore.znodes.groups import first_error, unwrap_single
from ccore.znodes.paths import CONFIG, ROOT, ZOOKEEPER, join, parent, path_error
from ccore.znodes.records import (
    ClientInfo,
    Create2Response,
    CreateRequest,
    CreateTTLRequest,
    DeleteRequest,
    ErrorResult,
    ExistsRequest,
    GetACLRequest,
    GetAllChildrenNumberRequest,
    GetAllChildrenNumberResponse,
    GetChildren2Request,
    GetDataRequest,
    GetEphemeralsRequest,
    MultiRequest,
    ReconfigRequest,
    Record,
    SetACLRequest,
    SetACLResponse,
    SetDataRequest,
    SetDataResponse,
    SyncRequest,
)
from ccore.znodes.stat import Stat

from . import hosts as hosts_mod
from .errors import ClientClosedError, InvalidArgumentError, invalid_path
from .protocol import WatchKind
from .retry import Retry
from .session import Session
from .tls import PathLike
from .tls import make_context as make_tls_context
from .transaction import (
    GetChildren,
    GetData,
    Transaction,
    convert_result,
    raise_for_failure,
    read_request,
)
from .watches import ClientState, StateStream, Watch, WatchStream

log = logging.getLogger(__name__)
T = TypeVar("T")
Data = bytes | bytearray | memoryview
MAKE_PARENTS_TRIES = 5
_SIMPLE_PATH = re.compile(r"/(?:[\x20-\x2e\x30-\x7e]+(?:/[\x20-\x2e\x30-\x7e]+)*)?\Z")


class Client:
    """A connected ZooKeeper session; made by `connect`. Safe to use from many tasks (of the
    event loop it was made on): requests from all of them are pipelined on one connection,
    answered in the order sent."""

    def __init__(self, session: Session, background: anyio.abc.TaskGroup | None = None) -> None:
        self._session = session
        self.chroot = session.chroot
        self._background = background  # see start_background; `connect` provides it

    # --- state ----------------------------------------------------------------------------

    @property
    def state(self) -> ClientState:
        return self._session.state

    def states(self) -> StateStream:
        """A stream of every state entered from now on: `with zk.states() as s: async for ...`."""
        return self._session.state_stream()

    @property
    def session_id(self) -> int:
        return self._session.core.session_id

    @property
    def session_passwd(self) -> bytes:
        return self._session.core.passwd

    @property
    def session_timeout(self) -> float:
        """The session timeout the server granted, in seconds."""
        return self._session.session_timeout_s

    @property
    def requested_session_timeout(self) -> float:
        """The session timeout this client asked for, in seconds (the server clamps it)."""
        return self._session.core.session_timeout_ms / 1000.0

    @property
    def last_zxid(self) -> int:
        """The highest zxid seen in a reply; a server that has seen less refuses this client."""
        return self._session.core.last_zxid

    @property
    def server(self) -> str | None:
        """`host:port` of the server currently (or last) connected to."""
        return str(self._session.host) if self._session.host else None

    @property
    def server_read_only(self) -> bool:
        return self._session.core.server_read_only

    @property
    def hosts(self) -> list[str]:
        """The servers this client reconnects to, `host:port` each: those of the connection
        string, or those /zookeeper/config lists once read (`connect(..., follow_config=True)`)."""
        return [str(h) for h in self._session.hosts]

    async def close(self) -> None:
        """Close the session (its ephemerals go) and stop; idempotent."""
        await self._session.close()

    def start_background(self, fn: Callable[..., Awaitable[object]], *args: Any, name: str | None = None) -> None:
        """Run `await fn(*args)` in a task the client owns rather than the caller.

        For work the session needs done although nobody may wait for it: the task outlives
        the caller and the caller's cancellation (a recipe that was cancelled still deletes
        its node, Curator's "guaranteed delete"), and it is cancelled when the client closes,
        when whatever it was doing for the session no longer matters. An exception it raises
        is logged, not propagated: there is nobody to catch it, and it must not take the
        client's tasks down. Raises ClientClosedError once the client is closed.
        """
        if self._background is None:
            raise RuntimeError("this Client has no background task group (make it with client.connect)")
        if self._session.closed:
            raise ClientClosedError()
        try:
            self._background.start_soon(_log_failure, fn, args, name=name or getattr(fn, "__qualname__", None))
        except RuntimeError as e:  # the task group is closing: so is the client
            raise ClientClosedError() from e

    # --- paths and arguments --------------------------------------------------------------

    def _path(self, path: str, sequential: bool = False) -> str:
        # Fast path for the common case (printable ASCII names, no "." or ".." component),
        # a subset of what path_error accepts; checking character by character costs more
        # than the rest of a request's encoding.
        if sequential or type(path) is not str or not _SIMPLE_PATH.match(path) or "/." in path:
            why = path_error(path, sequential)
            if why:
                raise invalid_path(path, why)
        if self.chroot is None:
            return path
        return self.chroot if path == ROOT else self.chroot + path

    def _unroot(self, server_path: str) -> str:
        return self._session.to_client_path(server_path)

    @staticmethod
    def _check_data(data: object) -> None:
        if data is not None and not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"znode data must be bytes, not {type(data).__name__}")
        if data is not None and len(data) > MAX_BUFFER:
            raise InvalidArgumentError(None, f"data of {len(data)} bytes exceeds jute.maxbuffer ({MAX_BUFFER})")

    def _create_request(
        self, path: str, data: Data | None, acl: Sequence[ACL] | None,
        ephemeral: bool, sequence: bool, container: bool, ttl: float | None,
    ) -> tuple[int, Record]:  # fmt: skip
        full = self._path(path, sequential=sequence)
        self._check_data(data)
        acl = tuple(acl) if acl is not None else OPEN_ACL_UNSAFE
        if not acl:
            raise InvalidArgumentError(path, "an ACL must grant something to someone")
        value = bytes(data) if data is not None else None
        if container:
            if ephemeral or sequence or ttl is not None:
                raise InvalidArgumentError(path, "a container cannot be ephemeral, sequential or have a TTL")
            return OpCode.createContainer, CreateRequest(full, value, acl, int(CreateMode.CONTAINER))
        if ttl is not None:
            ttl_ms = int(ttl * 1000)
            if ephemeral or not 0 < ttl_ms <= TTL_MAX_MS:
                raise InvalidArgumentError(path, f"ttl must be in (0, {TTL_MAX_MS / 1000:g}] s on a persistent node")
            mode = CreateMode.PERSISTENT_SEQUENTIAL_WITH_TTL if sequence else CreateMode.PERSISTENT_WITH_TTL
            return OpCode.createTTL, CreateTTLRequest(full, value, acl, int(mode), ttl_ms)
        mode = CreateMode(int(ephemeral) | (int(sequence) << 1))
        return OpCode.create2, CreateRequest(full, value, acl, int(mode))

    # --- node operations ------------------------------------------------------------------

    @overload
    async def create(
        self,
        path: str,
        data: Data | None = ...,
        *,
        acl: Sequence[ACL] | None = ...,
        ephemeral: bool = ...,
        sequence: bool = ...,
        container: bool = ...,
        ttl: float | None = ...,
        make_parents: bool = ...,
        include_stat: Literal[False] = ...,
    ) -> str: ...
    @overload
    async def create(
        self,
        path: str,
        data: Data | None = ...,
        *,
        acl: Sequence[ACL] | None = ...,
        ephemeral: bool = ...,
        sequence: bool = ...,
        container: bool = ...,
        ttl: float | None = ...,
        make_parents: bool = ...,
        include_stat: Literal[True],
    ) -> tuple[str, Stat]: ...

    async def create(
        self,
        path: str,
        data: Data | None = b"",
        *,
        acl: Sequence[ACL] | None = None,
        ephemeral: bool = False,
        sequence: bool = False,
        container: bool = False,
        ttl: float | None = None,
        make_parents: bool = False,
        include_stat: bool = False,
    ) -> str | tuple[str, Stat]:
        """Create a node; returns its path (with the sequence number if `sequence`), and its
        Stat if `include_stat`. `ttl` is in seconds (a persistent node deleted once it has had
        no children and no change for that long; the server must enable TTL nodes).
        `make_parents` creates missing ancestors as plain persistent nodes with `acl`."""
        op, record = self._create_request(path, data, acl, ephemeral, sequence, container, ttl)
        for attempt in range(MAKE_PARENTS_TRIES):
            try:
                resp = await self._session.call(op, record, path)
                break
            except NoNodeError:
                if not make_parents or attempt == MAKE_PARENTS_TRIES - 1:
                    raise
                await self.ensure_path(parent(path), acl=acl)
        assert isinstance(resp, Create2Response)
        created = self._unroot(resp.path)
        return (created, resp.stat) if include_stat else created

    async def ensure_path(self, path: str, *, acl: Sequence[ACL] | None = None) -> None:
        """Create `path` and any missing ancestors (empty persistent nodes); no error if present."""
        self._path(path)
        if path == ROOT or await self.exists(path) is not None:
            return
        prefix = ""
        for name in path[1:].split("/"):
            prefix += "/" + name
            with contextlib.suppress(NodeExistsError):
                await self.create(prefix, b"", acl=acl)

    @overload
    async def get(self, path: str, *, watch: Literal[False] = ...) -> tuple[bytes, Stat]: ...
    @overload
    async def get(self, path: str, *, watch: Literal[True]) -> tuple[bytes, Stat, Watch]: ...

    async def get(self, path: str, *, watch: bool = False) -> tuple[bytes, Stat] | tuple[bytes, Stat, Watch]:
        """`(data, stat)`; with `watch=True` also a one-shot Watch for the next change or
        deletion. A null value reads as b""."""
        full = self._path(path)
        w = Watch(path, WatchKind.DATA, self._remover(full)) if watch else None
        resp: Any = await self._session.call(
            OpCode.getData, GetDataRequest(full, watch), path, (WatchKind.DATA, full, w) if w else None
        )
        data = resp.data or b""
        return (data, resp.stat, w) if w is not None else (data, resp.stat)

    @overload
    async def exists(self, path: str, *, watch: Literal[False] = ...) -> Stat | None: ...
    @overload
    async def exists(self, path: str, *, watch: Literal[True]) -> tuple[Stat | None, Watch]: ...

    async def exists(self, path: str, *, watch: bool = False) -> Stat | None | tuple[Stat | None, Watch]:
        """The node's Stat or None; with `watch=True` also a Watch for its creation, change or
        deletion."""
        full = self._path(path)
        w = Watch(path, WatchKind.DATA, self._remover(full)) if watch else None
        try:
            resp: Any = await self._session.call(
                OpCode.exists, ExistsRequest(full, watch), path, (WatchKind.DATA, full, w) if w else None
            )
            stat = resp.stat
        except NoNodeError:
            stat = None
        return (stat, w) if w is not None else stat

    @overload
    async def children(self, path: str, *, watch: Literal[False] = ..., include_stat: Literal[False] = ...) -> list[str]: ...
    @overload
    async def children(
        self, path: str, *, watch: Literal[False] = ..., include_stat: Literal[True]
    ) -> tuple[list[str], Stat]: ...
    @overload
    async def children(
        self, path: str, *, watch: Literal[True], include_stat: Literal[False] = ...
    ) -> tuple[list[str], Watch]: ...
    @overload
    async def children(
        self, path: str, *, watch: Literal[True], include_stat: Literal[True]
    ) -> tuple[list[str], Stat, Watch]: ...

    async def children(self, path: str, *, watch: bool = False, include_stat: bool = False) -> Any:
        """Child names (unsorted, as the server keeps them); `include_stat` adds the parent's
        Stat and `watch=True` a Watch for a change of the child list or the node's deletion."""
        full = self._path(path)
        w = Watch(path, WatchKind.CHILD, self._remover(full)) if watch else None
        resp: Any = await self._session.call(
            OpCode.getChildren2, GetChildren2Request(full, watch), path, (WatchKind.CHILD, full, w) if w else None
        )
        out: tuple[Any, ...] = (list(resp.children),)
        if include_stat:
            out += (resp.stat,)
        if w is not None:
            out += (w,)
        return out[0] if len(out) == 1 else out

    async def set(self, path: str, data: Data | None, *, version: int = -1) -> Stat:
        """Replace the node's data (if its version is `version`, unless -1); the new Stat."""
        self._check_data(data)
        resp = await self._session.call(
            OpCode.setData, SetDataRequest(self._path(path), bytes(data) if data is not None else None, version), path
        )
        return cast(SetDataResponse, resp).stat

    async def delete(self, path: str, *, version: int = -1, recursive: bool = False) -> None:
        """Delete the node (if its version is `version`); `recursive` deletes its subtree first
        (not atomic: children made meanwhile are deleted too, a few times, then NotEmptyError)."""
        full = self._path(path)
        if not recursive:
            await self._session.call(OpCode.delete, DeleteRequest(full, version), path)
            return
        for _ in range(MAKE_PARENTS_TRIES):
            try:
                children = await self.children(path)
            except NoNodeError:
                if version == -1:
                    return
                raise
            except NoAuthError:
                children = []  # unreadable: deleting needs DELETE on the parent only
            with first_error():
                async with anyio.create_task_group() as tasks:  # siblings go in parallel (pipelined)
                    for child in children:
                        child_path = join(path, child)
                        if child_path != ZOOKEEPER:
                            tasks.start_soon(self._delete_subtree, child_path)
            if path == ROOT:
                return
            try:
                await self._session.call(OpCode.delete, DeleteRequest(full, version), path)
                return
            except NotEmptyError:
                continue  # a child appeared meanwhile
            except NoNodeError:
                if version == -1:
                    return
                raise
        raise NotEmptyError(path)

    async def _delete_subtree(self, path: str) -> None:
        with contextlib.suppress(NoNodeError):
            await self.delete(path, recursive=True)

    async def get_acl(self, path: str) -> tuple[list[ACL], Stat]:
        resp: Any = await self._session.call(OpCode.getACL, GetACLRequest(self._path(path)), path)
        return list(resp.acl), resp.stat

    async def set_acl(self, path: str, acl: Sequence[ACL], *, version: int = -1) -> Stat:
        """Replace the node's ACL (if its ACL version is `version`); the new Stat."""
        resp = await self._session.call(OpCode.setACL, SetACLRequest(self._path(path), tuple(acl), version), path)
        return cast(SetACLResponse, resp).stat

    async def sync(self, path: str = ROOT) -> None:
        """Make the server catch up with the leader, so the next read sees every write
        committed before this call."""
        await self._session.call(OpCode.sync, SyncRequest(self._path(path)), path)

    async def ephemerals(self, prefix: str = ROOT) -> list[str]:
        """Paths of this session's ephemeral nodes under `prefix` (ZooKeeper 3.6+)."""
        resp: Any = await self._session.call(OpCode.getEphemerals, GetEphemeralsRequest(self._path(prefix)), prefix)
        return [self._unroot(p) for p in resp.ephemerals]

    async def descendant_count(self, path: str) -> int:
        """How many nodes are below `path` (getAllChildrenNumber, ZooKeeper 3.6+)."""
        resp = await self._session.call(OpCode.getAllChildrenNumber, GetAllChildrenNumberRequest(self._path(path)), path)
        return cast(GetAllChildrenNumberResponse, resp).total_number

    # --- the ensemble's configuration -------------------------------------------------------

    @overload
    async def get_config(self, *, watch: Literal[False] = ...) -> tuple[bytes, Stat]: ...
    @overload
    async def get_config(self, *, watch: Literal[True]) -> tuple[bytes, Stat, Watch]: ...

    async def get_config(self, *, watch: bool = False) -> tuple[bytes, Stat] | tuple[bytes, Stat, Watch]:
        """The ensemble's dynamic configuration: the data of /zookeeper/config (`server.N=...`
        lines and `version=<hex>`; ZooKeeper.getConfig), whatever the chroot. Like any read it
        is the connected server's view: `await zk.sync()` first for the latest. `watch=True`
        adds a Watch for the next change (a reconfig)."""
        w = Watch(CONFIG, WatchKind.DATA, self._remover(CONFIG)) if watch else None
        resp: Any = await self._session.call(
            OpCode.getData, GetDataRequest(CONFIG, watch), CONFIG, (WatchKind.DATA, CONFIG, w) if w else None
        )
        data = resp.data or b""
        return (data, resp.stat, w) if w is not None else (data, resp.stat)

    async def reconfig(
        self,
        joining: str | Sequence[str] | None = None,
        leaving: str | int | Sequence[str | int] | None = None,
        new_members: str | Sequence[str] | None = None,
        from_config: int = -1,
    ) -> tuple[bytes, Stat]:
        """Change the ensemble's membership (ZooKeeperAdmin.reconfig); returns the new config
        (`get_config`'s data) and Stat. Incremental: `joining` servers (`server.N=host:2888:3888
        [:observer];2181`, a comma-separated string or a list) are added or updated, `leaving`
        ids removed. Bulk: `new_members` is the whole new membership. `from_config`: only if
        the current config's version is this (else BadVersionError); -1: whatever it is.

        Needs the super user or WRITE on /zookeeper/config (NoAuthError), and reconfigEnabled
        on the servers (ReconfigDisabledError). Other refusals: BadArgumentsError (syntax, too
        few participants), NewConfigNoQuorumError (the new voters are not connected and synced
        with the leader yet), ReconfigInProgressError (another reconfig is under way).
        """
        if type(from_config) is not int:
            raise TypeError(f"from_config must be an int (a config version, or -1), not {type(from_config).__name__}")
        record = ReconfigRequest(
            _servers_argument("joining", joining),
            _servers_argument("leaving", leaving),
            _servers_argument("new_members", new_members),
            from_config,
        )
        resp: Any = await self._session.call(OpCode.reconfig, record, CONFIG)
        return resp.data or b"", resp.stat

    async def whoami(self) -> list[ClientInfo]:
        """The identities this session has authenticated as (ZooKeeper 3.7+)."""
        resp: Any = await self._session.call(OpCode.whoAmI, None)
        return list(resp.client_info)

    async def add_auth(self, scheme: str, credential: str | bytes) -> None:
        """Authenticate (e.g. `("digest", "user:password")`); kept for every reconnection."""
        cred = credential.encode("utf-8") if isinstance(credential, str) else bytes(credential)
        await self._session.add_auth(scheme, cred)

    # --- transactions ---------------------------------------------------------------------

    def transaction(self) -> Transaction:
        """A builder for an atomic multi: `await zk.transaction().create(..).set(..).commit()`."""
        return Transaction(self)

    async def _multi(self, ops: Sequence[tuple[int, Record]], paths: Sequence[str]) -> list[Any]:
        if not ops:
            return []
        resp: Any = await self._session.call(OpCode.multi, MultiRequest(tuple(ops)), paths[0])
        raise_for_failure(resp.results, paths)
        return [convert_result(r, self._unroot) for r in resp.results]

    async def multi_read(self, ops: Iterable[GetData | GetChildren]) -> list[Any]:
        """Several reads in one request (ZooKeeper 3.6+); each result is `(data, stat)`, a
        list of children, or the exception that op met (reads fail one by one)."""
        ops = list(ops)
        if not ops:
            return []
        records = tuple(read_request(op, self._path(op.path)) for op in ops)
        resp: Any = await self._session.call(OpCode.multiRead, MultiRequest(records), ops[0].path)
        out: list[Any] = []
        for op, result in zip(ops, resp.results, strict=True):
            if isinstance(result, ErrorResult):
                out.append(ZKError.from_code(result.err, op.path))
            else:
                out.append(convert_result(result, self._unroot))
        return out

    # --- watches --------------------------------------------------------------------------

    def _remover(self, full: str) -> Callable[[Watch], Awaitable[None]]:
        return lambda watch: self._session.remove_one_shot(watch, full)

    def watch(self, path: str, *, recursive: bool = False, connection_events: bool = False) -> WatchStream:
        """A persistent watch (every node below `path` too if `recursive`), open for the
        duration of an `async with` block; iterate it for WatchedEvents (see WatchStream)."""
        return WatchStream(self._session, path, self._path(path), recursive, connection_events)

    # --- retrying -------------------------------------------------------------------------

    async def retry(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """`await fn(*args, **kwargs)`, retried on connection loss with the default Retry
        policy; only for idempotent operations (or ones whose effect you check)."""
        return await Retry()(fn, *args, **kwargs)


def _servers_argument(name: str, value: object) -> str | None:
    """A reconfig argument as the wire carries it: comma-separated, or null when not given.
    Empty counts as not given, as kazoo sends it (ZooKeeper would take an empty new_members
    as a bulk change to no members)."""
    if value is None:
        return None
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        items = [str(value)]
    elif isinstance(value, (list, tuple)) and all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in value):
        items = [str(v) for v in value]
    else:
        raise TypeError(f"{name} must be a string or a list of strings, not {type(value).__name__}")
    joined = ",".join(item.strip() for item in items if item.strip())
    return joined or None


async def _log_failure(fn: Callable[..., Awaitable[object]], args: tuple[Any, ...]) -> None:
    """A background task's body: `fn(*args)`, its failure logged (see start_background)."""
    try:
        await fn(*args)
    except ClientClosedError:
        pass  # the client closed under it: nothing left to do for the session
    except Exception:
        log.exception("background task %s failed", getattr(fn, "__qualname__", fn))


@contextlib.asynccontextmanager
async def connect(
    hosts: str,
    *,
    session_timeout: float = 10.0,
    connect_timeout: float | None = None,
    chroot: str | None = None,
    auth: Iterable[tuple[str, str | bytes]] = (),
    read_only: bool = False,
    randomize_hosts: bool = True,
    session: tuple[int, bytes] | None = None,
    tls_ca: PathLike | None = None,
    tls_cert: PathLike | None = None,
    tls_key: PathLike | None = None,
    ssl_context: ssl.SSLContext | None = None,
    follow_config: bool = False,
) -> AsyncIterator[Client]:
    """Connect to a ZooKeeper ensemble and yield a Client; close the session on exit.

    `hosts` is ZooKeeper's connection string (`h1:2181,h2:2181/optional/chroot`); `chroot`
    overrides its chroot. `session_timeout` (s) is asked of the server (which clamps it).
    Raises NoServerError (a ConnectionLossError) if no server answers within
    `connect_timeout` (default: the session timeout), AuthFailedError if `auth` is refused.
    `session=(id, password)` resumes an existing session instead of creating one.

    TLS (a server's secureClientPort): `tls_ca` is a PEM file of the CA certificates that sign
    the servers' (default: the system's); `tls_cert` (and `tls_key`, unless the key is in the
    same file) our PEM certificate, for servers that require one (ssl.clientAuth=need). Each
    server's certificate must name its host as written in `hosts`. Or pass a ready
    `ssl_context`. Unreadable files raise InvalidArgumentError before anything is sent.

    `follow_config`: after each (re)connection, read /zookeeper/config and, when it lists the
    servers' client addresses, reconnect to those from then on instead of `hosts` (so a
    client keeps up with reconfigs). Off by default: the config holds the addresses the
    servers know themselves by, which a client behind NAT, a proxy, a port-forward or a
    container network may not reach, and plain client ports only (never a TLS port).
    """
    parsed = hosts_mod.parse(hosts)
    root = hosts_mod.normalize_chroot(chroot) if chroot is not None else parsed.chroot
    if not 0 < session_timeout < math.inf:
        raise InvalidArgumentError(None, f"session_timeout must be a positive number of seconds, not {session_timeout!r}")
    credentials = [(s, c.encode("utf-8") if isinstance(c, str) else bytes(c)) for s, c in auth]
    context = make_tls_context(tls_ca=tls_ca, tls_cert=tls_cert, tls_key=tls_key, ssl_context=ssl_context)
    sess = Session(
        parsed.hosts,
        session_timeout_s=session_timeout,
        connect_timeout_s=connect_timeout if connect_timeout is not None else session_timeout,
        read_only=read_only,
        auth=credentials,
        chroot=root,
        randomize_hosts=randomize_hosts,
        session=session,
        ssl_context=context,
        follow_config=follow_config,
    )
    # The caller sees NoServerError or its own body's error, not the task groups' groups.
    with unwrap_single():
        async with anyio.create_task_group() as tasks:
            await tasks.start(sess.run)
            # A task group of its own for Client.start_background, so that a background task
            # can neither cancel the session's tasks nor be mistaken for the body's error.
            async with anyio.create_task_group() as background:
                client = Client(sess, background)
                try:
                    yield client
                finally:
                    with anyio.CancelScope(shield=True):
                        await sess.close()
                    background.cancel_scope.cancel()  # what they did for the session ended with it
