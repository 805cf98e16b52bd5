"""ZooKeeper's four-letter words, answered on the client port (ruok, srvr, stat, mntr, ...).

The text rendering of `commands`: each word reads the same data the admin HTTP API returns
as JSON, and prints it the way ZooKeeper's 4lw does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import commands
from .commands import NOT_SERVING, VERSION, ServerView

__all__ = ["NOT_SERVING", "VERSION", "WORDS", "ServerView", "answer"]

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


def connection_line(info: dict[str, Any]) -> str:
    """One line of `cons`/`stat` for a connection's info record."""
    return (
        f" /{info['remote_socket_address']}[{info['interest_ops']}](queued={info['outstanding_requests']},"
        f"recved={info['packets_received']},sent={info['packets_sent']},sid={info['session_id']},"
        f"lop={info['last_operation']},est={info['established']},to={info['session_timeout']})"
    )


def _srvr(server: ServerView, with_clients: bool) -> str:
    data = commands.stat(server) if with_clients else commands.srvr(server)
    s = data["server_stats"]
    lines = [f"Zookeeper version: {data['version']}, built on consistent-core"]
    if with_clients:
        lines.append("Clients:")
        lines.extend(connection_line(c) for c in data["connections"])
        lines.append("")
    lines += [
        f"Latency min/avg/max: {s['min_latency']}/{s['avg_latency']:.4f}/{s['max_latency']}",
        f"Received: {s['packets_received']}",
        f"Sent: {s['packets_sent']}",
        f"Connections: {s['num_alive_client_connections']}",
        f"Outstanding: {s['outstanding_requests']}",
        f"Zxid: {s['last_processed_zxid']:#x}",
        f"Mode: {s['server_state']}",
        f"Node count: {data['node_count']}",
    ]
    return "\n".join(lines) + "\n"


def _mntr(server: ServerView) -> str:
    values = commands.monitor(server)
    values["avg_latency"] = f"{values['avg_latency']:.4f}"
    return "".join(f"zk_{k}\t{v}\n" for k, v in values.items())


def _conf(server: ServerView) -> str:
    data = commands.conf(server)
    return "".join(f"{cfg_key}={data[key]}\n" for key, cfg_key in commands.CONF_KEYS if key in data)


def _cons(server: ServerView) -> str:
    return "\n".join(connection_line(c) for c in commands.connection_info(server)) + "\n\n"


def _wchs(server: ServerView) -> str:
    w = commands.watch_summary(server)
    return f"{w['num_connections']} connections watching {w['num_paths']} paths\nTotal watches:{w['num_total_watches']}\n"


def _wchc(server: ServerView) -> str:
    out = []
    for sid, paths in commands.watches_by_session(server).items():
        out.append(f"{sid:#x}")
        out.extend(f"\t{p}" for p in paths)
    return "\n".join(out) + "\n"


def _wchp(server: ServerView) -> str:
    out = []
    for path, sids in commands.watches_by_path(server).items():
        out.append(path)
        out.extend(f"\t{sid:#x}" for sid in sids)
    return "\n".join(out) + "\n"


def _dump(server: ServerView) -> str:
    data = commands.dump(server)
    sessions, ephemerals = data["session_id_to_timeout_ms"], data["session_id_to_ephemeral_paths"]
    lines = ["SessionTracker dump:", f"Global Sessions({len(sessions)}):"]
    lines.extend(f"{sid:#x}\t{timeout}ms" for sid, timeout in sessions.items())
    lines.append("ephemeral nodes dump:")
    lines.append(f"Sessions with Ephemerals ({len(ephemerals)}):")
    for sid, owned in ephemerals.items():
        lines.append(f"{sid:#x}:")
        lines.extend(f"\t{p}" for p in owned)
    return "\n".join(lines) + "\n"


def _envi(server: ServerView) -> str:
    return "Environment:\n" + "".join(f"{k}={v}\n" for k, v in commands.environment(server).items())


def _isro(server: ServerView) -> str:
    # ZooKeeper answers "null" while no server runs (between leaders, read-only mode off):
    # kazoo's search for a read-write server must not take a looking server for one.
    if not commands.answering(server):
        return "null"
    return "ro" if commands.is_read_only(server)["read_only"] else "rw"


def _reset(reply: str) -> Callable[[ServerView], str]:
    def word(server: ServerView) -> str:
        commands.reset_stats(server)
        return reply

    return word


_TEXT: dict[str, Callable[[ServerView], str]] = {
    "srvr": lambda s: _srvr(s, with_clients=False),
    "stat": lambda s: _srvr(s, with_clients=True),
    "mntr": _mntr,
    "conf": _conf,
    "cons": _cons,
    "wchs": _wchs,
    "wchc": _wchc,
    "wchp": _wchp,
    "dump": _dump,
    "isro": _isro,
    "envi": _envi,
    "dirs": lambda s: "datadir_size: 0\nlogdir_size: 0\n",
    "srst": _reset("Server stats reset.\n"),
    "crst": _reset("Connection stats reset.\n"),
}
# Words that read the tree or the sessions: a server between leaders has nothing true to say.
NEEDS_SERVING = frozenset(("srvr", "stat", "cons", "wchs", "wchc", "wchp", "dump", "mntr"))


def answer(server: ServerView, word: str) -> str:
    if word == "ruok":
        return "imok"
    if word in NEEDS_SERVING and not commands.answering(server):
        return NOT_SERVING + "\n"
    text = _TEXT.get(word)
    if text is None:
        return f"{word} is not executed because it is not in the whitelist.\n"
    return text(server)
