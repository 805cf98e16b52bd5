"""ZooKeeper's four-letter words, answered on the client port (ruok, srvr, stat, mntr, ...)."""

from __future__ import annotations

import os
import resource
from collections.abc import Collection
from typing import Any, Protocol

from ccore.znodes.tree import DataTree
from ccore.znodes.watches import WatchManager

from .config import ServerConfig
from .stalls import StallDetector
from .stats import ServerStats


class Described(Protocol):
    """A client connection, as `cons` and `stat` list it."""

    @property
    def sent(self) -> int: ...

    def describe(self) -> str: ...


class ServerView(Protocol):
    """What the four-letter words read of a server."""

    config: ServerConfig
    stats: ServerStats
    stalls: StallDetector
    watches: WatchManager

    @property
    def tree(self) -> DataTree: ...

    @property
    def last_zxid(self) -> int: ...

    @property
    def port(self) -> int | None: ...

    @property
    def connections(self) -> Collection[Described]: ...

    @property
    def outstanding(self) -> int: ...

    @property
    def serving(self) -> bool: ...

    @property
    def mode(self) -> str: ...

    def extra_metrics(self) -> list[tuple[str, Any]]: ...


VERSION = "3.8.4-consistent-core-0.1.0"
WORDS = frozenset(
    w.encode()
    for w in (
        "ruok",
        "srvr",
        "stat",
        "mntr",
        "conf",
        "cons",
        "wchs",
        "wchc",
        "wchp",
        "dump",
        "isro",
        "envi",
        "srst",
        "crst",
        "dirs",
    )
)


def _latency(server: ServerView) -> tuple[float, float, float]:
    s = server.stats
    if not s.latency_count:
        return 0.0, 0.0, 0.0
    return s.latency_min_ms, s.latency_total_ms / s.latency_count, s.latency_max_ms


def _srvr(server: ServerView, with_clients: bool) -> str:
    lo, avg, hi = _latency(server)
    lines = [f"Zookeeper version: {VERSION}, built on consistent-core"]
    if with_clients:
        lines.append("Clients:")
        lines.extend(c.describe() for c in server.connections)
        lines.append("")
    lines += [
        f"Latency min/avg/max: {lo:.0f}/{avg:.4f}/{hi:.0f}",
        f"Received: {server.stats.received}",
        f"Sent: {sum(c.sent for c in server.connections)}",
        f"Connections: {len(server.connections)}",
        f"Outstanding: {server.outstanding}",
        f"Zxid: {server.last_zxid:#x}",
        f"Mode: {server.mode}",
        f"Node count: {len(server.tree.nodes)}",
    ]
    return "\n".join(lines) + "\n"


def _mntr(server: ServerView) -> str:
    lo, avg, hi = _latency(server)
    tree = server.tree
    try:
        open_fds = len(os.listdir("/proc/self/fd"))
    except OSError:
        open_fds = -1
    data_size = sum(len(p) + (len(n.data) if n.data else 0) for p, n in tree.nodes.items())
    values = [
        ("zk_version", VERSION),
        ("zk_server_state", server.mode),
        ("zk_avg_latency", f"{avg:.4f}"),
        ("zk_max_latency", f"{hi:.0f}"),
        ("zk_min_latency", f"{lo:.0f}"),
        ("zk_packets_received", server.stats.received),
        ("zk_packets_sent", sum(c.sent for c in server.connections)),
        ("zk_num_alive_connections", len(server.connections)),
        ("zk_outstanding_requests", server.outstanding),
        ("zk_znode_count", len(tree.nodes)),
        ("zk_watch_count", server.watches.watch_count()),
        ("zk_ephemerals_count", sum(len(v) for v in tree.ephemerals.values())),
        ("zk_approximate_data_size", data_size),
        ("zk_open_file_descriptor_count", open_fds),
        ("zk_max_file_descriptor_count", resource.getrlimit(resource.RLIMIT_NOFILE)[0]),
        ("zk_global_sessions", len(tree.sessions)),
        ("zk_last_zxid", f"{server.last_zxid:#x}"),
        ("zk_commit_batches", server.stats.batches),
        ("zk_committed_txns", server.stats.txns),
        ("zk_loop_stalls", server.stalls.count),  # event-loop stalls over 100 ms
        ("zk_loop_stall_max_ms", round(server.stalls.max_s * 1000)),
    ]
    values.extend(server.extra_metrics())
    return "".join(f"{k}\t{v}\n" for k, v in values)


def _conf(server: ServerView) -> str:
    c = server.config
    secure = f"secureClientPort={c.secure_client_port}\n" if c.secure_client_port is not None else ""
    return (
        f"clientPort={server.port}\n"
        f"{secure}"
        f"clientPortAddress={c.client_port_address}\n"
        f"dataDir={c.data_dir}\n"
        f"dataLogDir={c.data_dir}\n"
        f"tickTime={c.tick_time_ms}\n"
        f"maxClientCnxns={c.max_client_cnxns}\n"
        f"minSessionTimeout={c.min_session_timeout}\n"
        f"maxSessionTimeout={c.max_session_timeout}\n"
        f"serverId={c.server_id}\n"
    )


def _wchs(server: ServerView) -> str:
    w = server.watches
    return f"{w.watchers()} connections watching {w.paths_watched()} paths\nTotal watches:{w.watch_count()}\n"


def _wchc(server: ServerView) -> str:
    out = []
    for conn, watched in server.watches.by_watcher().items():
        out.append(f"{getattr(conn, 'session_id', 0):#x}")
        out.extend(f"\t{p}" for p in sorted(watched))
    return "\n".join(out) + "\n"


def _wchp(server: ServerView) -> str:
    out = []
    for path, conns in sorted(server.watches.by_path().items()):
        out.append(path)
        out.extend(f"\t{getattr(c, 'session_id', 0):#x}" for c in conns)
    return "\n".join(out) + "\n"


def _dump(server: ServerView) -> str:
    tree = server.tree
    lines = ["SessionTracker dump:", f"Global Sessions({len(tree.sessions)}):"]
    for session_id, info in sorted(tree.sessions.items()):
        lines.append(f"{session_id:#x}\t{info.timeout_ms}ms")
    lines.append("ephemeral nodes dump:")
    lines.append(f"Sessions with Ephemerals ({len(tree.ephemerals)}):")
    for session_id, owned in sorted(tree.ephemerals.items()):
        lines.append(f"{session_id:#x}:")
        lines.extend(f"\t{p}" for p in sorted(owned))
    return "\n".join(lines) + "\n"


NOT_SERVING = "This ZooKeeper instance is not currently serving requests\n"


def answer(server: ServerView, word: str) -> str:
    if word == "ruok":
        return "imok"
    if not server.serving and word in ("srvr", "stat", "cons", "wchs", "wchc", "wchp", "dump", "mntr"):
        return NOT_SERVING
    if word == "srvr":
        return _srvr(server, with_clients=False)
    if word == "stat":
        return _srvr(server, with_clients=True)
    if word == "mntr":
        return _mntr(server)
    if word == "conf":
        return _conf(server)
    if word == "cons":
        return "\n".join(c.describe() for c in server.connections) + "\n\n"
    if word == "wchs":
        return _wchs(server)
    if word == "wchc":
        return _wchc(server)
    if word == "wchp":
        return _wchp(server)
    if word == "dump":
        return _dump(server)
    if word == "isro":
        return "rw"
    if word == "envi":
        return f"Environment:\nzookeeper.version={VERSION}\nos.name={os.uname().sysname}\nuser.dir={os.getcwd()}\n"
    if word == "dirs":
        return "datadir_size: 0\nlogdir_size: 0\n"
    if word in ("srst", "crst"):
        server.stats.reset()
        return "Server stats reset.\n" if word == "srst" else "Connection stats reset.\n"
    return f"{word} is not executed because it is not in the whitelist.\n"
