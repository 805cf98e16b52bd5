"""What the monitoring commands report, as data: one function per command, read on the loop.

ZooKeeper answers the same questions two ways, as four-letter words on the client port (text)
and as AdminServer commands over HTTP (JSON). Each question is answered once here, as plain
dicts and lists with ZooKeeper's JSON field names; `fourletter` renders them as the 4lw text
and `admin` as JSON. Everything here runs on the Trio thread: it reads the tree, the watch
tables and the connections as they are between two steps of the loop.
"""

from __future__ import annotations

import os
import platform
import resource
import socket
import sys
import time
from collections.abc import Collection
from typing import Any, Protocol

from ccore.znodes.tree import DataTree
from ccore.znodes.watches import WatchManager

from .config import ServerConfig
from .stalls import StallDetector
from .stats import ServerStats

VERSION = "3.8.4-consistent-core-0.1.0"
NOT_SERVING = "This ZooKeeper instance is not currently serving requests"


class Described(Protocol):
    """A client connection, as `cons` and `stat` list it."""

    @property
    def sent(self) -> int: ...

    def info(self) -> dict[str, Any]:
        """ZooKeeper's connection info fields (see `connection_info`)."""
        ...


class ServerView(Protocol):
    """What the commands read of a server."""

    config: ServerConfig
    stats: ServerStats
    stalls: StallDetector
    watches: WatchManager
    started_at: float  # time.monotonic() when the server object was made

    @property
    def tree(self) -> DataTree: ...

    @property
    def last_zxid(self) -> int: ...

    @property
    def port(self) -> int | None: ...

    @property
    def secure_port(self) -> int | None: ...

    @property
    def connections(self) -> Collection[Described]: ...

    @property
    def outstanding(self) -> int: ...

    @property
    def serving(self) -> bool: ...

    @property
    def read_only(self) -> bool:
        """Cut off from the quorum and answering read-only clients (readonlymode.enabled)."""
        ...

    @property
    def mode(self) -> str: ...

    @property
    def leader_id(self) -> int | None:
        """The server id of the current leader; None when standalone or between leaders."""
        ...

    def extra_metrics(self) -> list[tuple[str, Any]]: ...


def _latency(server: ServerView) -> tuple[float, float, float]:
    s = server.stats
    if not s.latency_count:
        return 0.0, 0.0, 0.0
    return s.latency_min_ms, s.latency_total_ms / s.latency_count, s.latency_max_ms


def data_size(tree: DataTree) -> int:
    """ZooKeeper's approximate_data_size: path and data bytes of every node (kept by the tree
    as writes apply)."""
    return tree.data_size


def open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return -1


def server_stats(server: ServerView) -> dict[str, Any]:
    """`srvr`: the server's counters (ZooKeeper's `server_stats` object)."""
    lo, avg, hi = _latency(server)
    return {
        "packets_sent": sum(c.sent for c in server.connections),
        "packets_received": server.stats.received,
        "max_latency": round(hi),
        "min_latency": round(lo),
        "avg_latency": round(avg, 4),
        "outstanding_requests": server.outstanding,
        "server_state": server.mode,
        "num_alive_client_connections": len(server.connections),
        "last_processed_zxid": server.last_zxid,
        "uptime": round((time.monotonic() - server.started_at) * 1000),
    }


def srvr(server: ServerView) -> dict[str, Any]:
    return {
        "version": VERSION,
        "read_only": server.read_only,
        "server_stats": server_stats(server),
        "node_count": len(server.tree.nodes),
    }


def connection_info(server: ServerView) -> list[dict[str, Any]]:
    """`cons`: one record per client connection."""
    return [c.info() for c in server.connections]


def stat(server: ServerView) -> dict[str, Any]:
    return {**srvr(server), "connections": connection_info(server)}


def monitor(server: ServerView) -> dict[str, Any]:
    """`mntr`: ZooKeeper's monitor keys (without the text form's `zk_` prefix), then ours."""
    lo, avg, hi = _latency(server)
    tree = server.tree
    values: dict[str, Any] = {
        "version": VERSION,
        "server_state": server.mode,
        "avg_latency": round(avg, 4),
        "max_latency": round(hi),
        "min_latency": round(lo),
        "packets_received": server.stats.received,
        "packets_sent": sum(c.sent for c in server.connections),
        "num_alive_connections": len(server.connections),
        "outstanding_requests": server.outstanding,
        "znode_count": len(tree.nodes),
        "watch_count": server.watches.watch_count(),
        "ephemerals_count": sum(len(v) for v in tree.ephemerals.values()),
        "approximate_data_size": data_size(tree),
        "open_file_descriptor_count": open_fds(),
        "max_file_descriptor_count": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        "global_sessions": len(tree.sessions),
        "last_zxid": f"{server.last_zxid:#x}",
        "commit_batches": server.stats.batches,
        "committed_txns": server.stats.txns,
        "loop_stalls": server.stalls.count,  # event-loop stalls over 100 ms
        "loop_stall_max_ms": round(server.stalls.max_s * 1000),
    }
    for key, value in server.extra_metrics():
        values[key.removeprefix("zk_")] = value
    return values


# (JSON key, zoo.cfg key) in the order `conf` prints them.
CONF_KEYS = (
    ("client_port", "clientPort"),
    ("secure_client_port", "secureClientPort"),  # only when configured
    ("client_port_address", "clientPortAddress"),
    ("data_dir", "dataDir"),
    ("data_log_dir", "dataLogDir"),
    ("tick_time", "tickTime"),
    ("max_client_cnxns", "maxClientCnxns"),
    ("min_session_timeout", "minSessionTimeout"),
    ("max_session_timeout", "maxSessionTimeout"),
    ("server_id", "serverId"),
)


def conf(server: ServerView) -> dict[str, Any]:
    c = server.config
    secure = {} if c.secure_client_port is None else {"secure_client_port": server.secure_port}
    return {
        "client_port": server.port,
        **secure,
        "client_port_address": c.client_port_address,
        "data_dir": str(c.data_dir),
        "data_log_dir": str(c.data_dir),
        "tick_time": c.tick_time_ms,
        "max_client_cnxns": c.max_client_cnxns,
        "min_session_timeout": c.min_session_timeout,
        "max_session_timeout": c.max_session_timeout,
        "server_id": c.server_id,
    }


def watch_summary(server: ServerView) -> dict[str, Any]:
    w = server.watches
    return {"num_connections": w.watchers(), "num_paths": w.paths_watched(), "num_total_watches": w.watch_count()}


def _sid(watcher: object) -> int:
    return int(getattr(watcher, "session_id", 0))


def watches_by_session(server: ServerView) -> dict[int, list[str]]:
    """`wchc`: session id -> the paths it watches."""
    return {_sid(conn): sorted(watched) for conn, watched in server.watches.by_watcher().items()}


def watches_by_path(server: ServerView) -> dict[str, list[int]]:
    """`wchp`: path -> the sessions watching it."""
    return {path: sorted(_sid(c) for c in conns) for path, conns in sorted(server.watches.by_path().items())}


def dump(server: ServerView) -> dict[str, Any]:
    """`dump`: sessions with their timeouts, and the ephemerals each owns."""
    tree = server.tree
    return {
        "session_id_to_timeout_ms": {sid: info.timeout_ms for sid, info in sorted(tree.sessions.items())},
        "session_id_to_ephemeral_paths": {sid: sorted(owned) for sid, owned in sorted(tree.ephemerals.items())},
    }


def environment(server: ServerView) -> dict[str, Any]:
    """`envi`: ZooKeeper's environment keys, with Python's facts where it lists the JVM's."""
    uname = os.uname()
    return {
        "zookeeper.version": VERSION,
        "host.name": socket.gethostname(),
        "python.version": platform.python_version(),
        "python.executable": sys.executable,
        "os.name": uname.sysname,
        "os.arch": uname.machine,
        "os.version": uname.release,
        "user.dir": os.getcwd(),
        "process.id": os.getpid(),
    }


def answering(server: ServerView) -> bool:
    """Whether the server has clients to answer about: serving, or in read-only mode (as
    ZooKeeper's read-only server, which answers srvr, stat, mntr... as a running server)."""
    return server.serving or server.read_only


def is_read_only(server: ServerView) -> dict[str, Any]:
    """`isro`: in read-only mode (readonlymode.enabled, cut off from the quorum) or not."""
    return {"read_only": server.read_only}


def leader(server: ServerView) -> dict[str, Any]:
    """`leader`: whether this server leads, and which one does (as the server knows it)."""
    if not server.config.replicated:
        return {"error": "server is not initialized"}  # ZooKeeper's answer for a standalone server
    lid = server.leader_id
    peer = server.config.peers.get(lid) if lid is not None else None
    return {
        "is_leader": server.mode == "leader",
        "leader_id": lid if lid is not None else -1,
        "leader_ip": peer.host if peer is not None else "",
    }


def voting_view(server: ServerView) -> dict[str, Any]:
    """`voting_view`: the voting members, each as its server.N line reads."""
    view: dict[int, str] = {}
    for sid, p in sorted(server.config.peers.items()):
        if p.observer:
            continue
        view[sid] = p.value()  # as its server.N line renders (QuorumServer.toString)
    return {"current_config": view}


def reset_stats(server: ServerView) -> dict[str, Any]:
    server.stats.reset()
    return {}
