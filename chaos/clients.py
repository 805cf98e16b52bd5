"""kazoo and our own blocking client behind one small interface, for the thread workloads.

A workload worker calls `get`, `set`, `sync`, `create` and sorts what comes back into a
history: a value, `Missing` (NoNode: certainly no effect), `Conflict` (BadVersion: an
answer), `Exists` (NodeExists), or any other exception (timeout, connection loss, expired
session...: the outcome of a write is unknown). Every call is bounded by `op_timeout_s`.

What each client can tell about zxids differs, so a `Read` carries both: `mzxid` (from the
znode's Stat: the zxid of the write that made the version read) and `zxid` (the reply
header's zxid: the server's last applied zxid when it answered). kazoo exposes the header
zxid (`last_zxid` is the newest reply's); our client keeps only the highest seen, so `zxid`
is None for it and the checkers use the Stat.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Protocol

import attrs
from kazoo.client import KazooClient
from kazoo.exceptions import BadVersionError as KzBadVersion
from kazoo.exceptions import NodeExistsError as KzNodeExists
from kazoo.exceptions import NoNodeError as KzNoNode
from kazoo.retry import KazooRetry

from ccore.client import blocking
from ccore.znodes.errors import BadVersionError, NodeExistsError, NoNodeError

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 30.0
CLOSE_TIMEOUT_S = 5.0
KINDS = ("kazoo", "native")


class Missing(Exception):
    """NoNode: the operation certainly had no effect."""


class Conflict(Exception):
    """BadVersion: a conditional set was refused (an answer, not an error)."""


class Exists(Exception):
    """NodeExists."""


@attrs.frozen
class Read:
    value: str | None
    version: int
    mzxid: int
    zxid: int | None  # the reply header's zxid, when the client reports it


@attrs.frozen
class Written:
    version: int
    zxid: int  # the Stat's mzxid: the zxid of this very write


class Adapter(Protocol):
    kind: str

    def get(self, path: str) -> Read: ...
    def set(self, path: str, value: str, version: int = -1) -> Written: ...
    def sync(self, path: str) -> None: ...
    def create(self, path: str, value: str = "", *, ephemeral: bool = False, makepath: bool = False) -> int: ...
    def close(self) -> None: ...


def _decode(data: bytes | None) -> str | None:
    return data.decode("utf-8", "replace") if data else None


class KazooAdapter:
    kind = "kazoo"

    def __init__(self, hosts: str, *, session_timeout_s: float, op_timeout_s: float) -> None:
        self.op_timeout_s = op_timeout_s
        self.zk = KazooClient(
            hosts=hosts,
            timeout=session_timeout_s,
            # Reconnect quickly after a restart; give up on nothing (ops have their own timeout).
            connection_retry=KazooRetry(max_tries=-1, delay=0.05, backoff=1.5, max_delay=0.5),
        )
        try:
            self.zk.start(timeout=CONNECT_TIMEOUT_S)
        except BaseException:
            self.zk.stop()
            self.zk.close()
            raise

    def _wait(self, async_result: Any) -> Any:
        try:
            return async_result.get(timeout=self.op_timeout_s)
        except KzNoNode as exc:
            raise Missing(str(exc)) from exc
        except KzBadVersion as exc:
            raise Conflict(str(exc)) from exc
        except KzNodeExists as exc:
            raise Exists(str(exc)) from exc

    def get(self, path: str) -> Read:
        data, stat = self._wait(self.zk.get_async(path))
        return Read(_decode(data), stat.version, stat.mzxid, self.zk.last_zxid or None)

    def set(self, path: str, value: str, version: int = -1) -> Written:
        stat = self._wait(self.zk.set_async(path, value.encode(), version))
        return Written(stat.version, stat.mzxid)

    def sync(self, path: str) -> None:
        self._wait(self.zk.sync_async(path))

    def create(self, path: str, value: str = "", *, ephemeral: bool = False, makepath: bool = False) -> int:
        _path, stat = self._wait(
            self.zk.create_async(path, value.encode(), ephemeral=ephemeral, makepath=makepath, include_data=True)
        )
        return int(stat.czxid)

    def close(self) -> None:
        _in_thread(lambda: (self.zk.stop(), self.zk.close()))


class NativeAdapter:
    """Our client (`client.blocking`): its own Trio thread, requests bounded by op_timeout_s."""

    kind = "native"

    def __init__(self, hosts: str, *, session_timeout_s: float, op_timeout_s: float) -> None:
        self.zk: Any = blocking.connect(
            hosts, request_timeout=op_timeout_s, session_timeout=session_timeout_s, connect_timeout=CONNECT_TIMEOUT_S
        )

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except NoNodeError as exc:
            raise Missing(str(exc)) from exc
        except BadVersionError as exc:
            raise Conflict(str(exc)) from exc
        except NodeExistsError as exc:
            raise Exists(str(exc)) from exc

    def get(self, path: str) -> Read:
        data, stat = self._call(self.zk.get, path)
        return Read(_decode(data), stat.version, stat.mzxid, None)

    def set(self, path: str, value: str, version: int = -1) -> Written:
        stat = self._call(self.zk.set, path, value.encode(), version=version)
        return Written(stat.version, stat.mzxid)

    def sync(self, path: str) -> None:
        self._call(self.zk.sync, path)

    def create(self, path: str, value: str = "", *, ephemeral: bool = False, makepath: bool = False) -> int:
        _path, stat = self._call(
            self.zk.create, path, value.encode(), ephemeral=ephemeral, make_parents=makepath, include_stat=True
        )
        return int(stat.czxid)

    def close(self) -> None:
        _in_thread(self.zk.close)


def connect(kind: str, hosts: str, *, session_timeout_s: float, op_timeout_s: float) -> Adapter:
    if kind == "kazoo":
        return KazooAdapter(hosts, session_timeout_s=session_timeout_s, op_timeout_s=op_timeout_s)
    if kind == "native":
        return NativeAdapter(hosts, session_timeout_s=session_timeout_s, op_timeout_s=op_timeout_s)
    raise ValueError(f"unknown client kind {kind!r}; known: {', '.join(KINDS)}")


def _in_thread(fn: Any, timeout_s: float = CLOSE_TIMEOUT_S) -> None:
    """Close a client in a helper thread: saying goodbye to a dead or paused server must not
    hold up the end of the run."""

    def close() -> None:
        try:
            fn()
        except Exception as exc:  # a client of a dead server may fail to say goodbye
            log.debug("closing a client: %r", exc)

    t = threading.Thread(target=close, name="chaos-close-client", daemon=True)
    t.start()
    t.join(timeout_s)


def error_name(exc: BaseException) -> str:
    return type(exc).__name__ + (f": {exc}" if str(exc) else "")
