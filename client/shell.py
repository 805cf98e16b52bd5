"""`ccore ls|tree|get|stat|create|set|delete|watch|config|reconfig|shell`: the client commands
for people.

Each command connects (`--server`, default 127.0.0.1:2181; `--tls-ca/--tls-cert/--tls-key` for
a TLS port; `--auth scheme:credential` to authenticate), does one thing, and prints its result on stdout; a failure is one line on stderr
(`ccore get: no node: /x`) and exit status 1, never a traceback. `ccore shell` runs the same commands at an interactive prompt on one
session; `ccore watch PATH` prints events until Ctrl-C.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable, Sequence
from typing import TextIO

from ccore.znodes.constants import EventType
from ccore.znodes.dynconfig import DynamicConfigError, parse_server_id, parse_server_line, split_list
from ccore.znodes.errors import (
    BadArgumentsError,
    BadVersionError,
    NewConfigNoQuorumError,
    NoAuthError,
    NoNodeError,
    ReconfigDisabledError,
    ReconfigInProgressError,
    UnimplementedError,
    ZKError,
)
from ccore.znodes.paths import join, parent
from ccore.znodes.stat import Stat

from . import blocking
from .blocking import BlockingClient

DEFAULT_SERVER = "127.0.0.1:2181"
PROMPT_COMMANDS = ("ls", "tree", "get", "stat", "create", "set", "delete", "watch", "config", "reconfig")


class _UsageError(Exception):
    """argparse wanted to exit (bad arguments, or --help)."""

    def __init__(self, status: int) -> None:
        self.status = status


class _Failure(Exception):
    """A command failed; its message is the one line printed for it."""


class _Parser(argparse.ArgumentParser):
    def exit(self, status: int = 0, message: str | None = None) -> None:  # type: ignore[override]
        if message:
            self._print_message(message, sys.stderr)
        raise _UsageError(status)


def _parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)  # a parent of _Parser subparsers: the same class
    # SUPPRESS: `--server` may come before or after the command without the later default
    # overwriting the earlier value.
    common.add_argument(
        "--server", default=argparse.SUPPRESS, help=f"host:port[,host:port...][/chroot] (default {DEFAULT_SERVER})"
    )
    common.add_argument("--timeout", type=float, default=argparse.SUPPRESS, help="connect timeout in seconds (default 5)")
    # TLS, for a server's secureClientPort; any of them turns it on.
    common.add_argument(
        "--tls-ca",
        default=argparse.SUPPRESS,
        metavar="PEM",
        help="CA certificates that sign the servers' (default: the system's)",
    )
    common.add_argument(
        "--tls-cert", default=argparse.SUPPRESS, metavar="PEM", help="our certificate, for servers that require one"
    )
    common.add_argument(
        "--tls-key", default=argparse.SUPPRESS, metavar="PEM", help="the private key of --tls-cert (if not in the same file)"
    )
    common.add_argument(
        "--auth",
        default=argparse.SUPPRESS,
        metavar="SCHEME:CREDENTIAL",
        help="authenticate, e.g. digest:super:PASSWORD (the super user) or digest:user:password",
    )
    p = _Parser(prog="ccore", description="consistent-core client commands", parents=[common])
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    c = sub.add_parser("ls", parents=[common], help="list a node's children")
    c.add_argument("path")
    c = sub.add_parser("tree", parents=[common], help="print a subtree")
    c.add_argument("path", nargs="?", default="/")
    c = sub.add_parser("get", parents=[common], help="print a node's data")
    c.add_argument("path")
    c.add_argument("-s", "--stat", action="store_true", help="print the stat too")
    c = sub.add_parser("stat", parents=[common], help="print a node's stat")
    c.add_argument("path")
    c = sub.add_parser("create", parents=[common], help="create a node")
    c.add_argument("path")
    c.add_argument("data", nargs="?", default="")
    c.add_argument("-e", "--ephemeral", action="store_true")
    c.add_argument("-s", "--sequential", action="store_true")
    c.add_argument("-c", "--container", action="store_true")
    c.add_argument("-t", "--ttl", type=float, metavar="SECONDS")
    c.add_argument("-p", "--parents", action="store_true", help="create missing parents")
    c = sub.add_parser("set", parents=[common], help="set a node's data")
    c.add_argument("path")
    c.add_argument("data")
    c.add_argument("-v", "--version", type=int, default=-1)
    c = sub.add_parser("delete", parents=[common], help="delete a node")
    c.add_argument("path")
    c.add_argument("-r", "--recursive", action="store_true", help="delete its subtree too")
    c.add_argument("-v", "--version", type=int, default=-1)
    c = sub.add_parser("watch", parents=[common], help="print events on a node until Ctrl-C")
    c.add_argument("path")
    c.add_argument("-r", "--recursive", action="store_true", help="the whole subtree")
    c.add_argument("-n", "--count", type=int, help="stop after this many events")
    sub.add_parser("config", parents=[common], help="print the ensemble's configuration (/zookeeper/config)")
    c = sub.add_parser(
        "reconfig",
        parents=[common],
        help="change the ensemble's members (needs reconfigEnabled and the super user)",
        description="Incremental (--add/--remove) or bulk (--members/--file); prints the new configuration.",
    )
    c.add_argument(
        "--add",
        action="append",
        default=[],
        metavar="SERVER",
        help="server.N=host:2888:3888[:observer];2181 (repeat or comma-separate)",
    )
    c.add_argument("--remove", action="append", default=[], metavar="IDS", help="server ids to remove, e.g. 2,3")
    c.add_argument(
        "--members",
        action="append",
        default=[],
        metavar="SERVERS",
        help="the whole new membership (server.N=... lines, comma-separated)",
    )
    c.add_argument("--file", metavar="PATH", help="the whole new membership from a dynamic config file")
    c.add_argument(
        "--from-config",
        metavar="VERSION",
        help="only if the current config is this version (hexadecimal, as `ccore config` prints it)",
    )
    sub.add_parser("shell", parents=[common], help="interactive prompt")
    # Listed for --help; ccore.main hands these to the server before this parser runs.
    sub.add_parser("serve", help="start a server (ccore serve --help)")
    sub.add_parser("ensemble", help="start a local ensemble of servers (ccore ensemble --help)")
    return p


# --- commands ------------------------------------------------------------------------------


def format_stat(stat: Stat) -> str:
    """A node's stat as zkCli prints it."""
    rows = [
        ("cZxid", hex(stat.czxid)), ("ctime", stat.ctime), ("mZxid", hex(stat.mzxid)),
        ("mtime", stat.mtime), ("pZxid", hex(stat.pzxid)), ("cversion", stat.cversion),
        ("dataVersion", stat.version), ("aclVersion", stat.aversion),
        ("ephemeralOwner", hex(stat.ephemeralOwner)), ("dataLength", stat.dataLength),
        ("numChildren", stat.numChildren),
    ]  # fmt: skip
    return "\n".join(f"{name} = {value}" for name, value in rows)


def _text(data: bytes) -> str:
    return data.decode("utf-8", "backslashreplace")


def cmd_ls(zk: BlockingClient, ns: argparse.Namespace, out: TextIO) -> int:
    for name in sorted(zk.children(ns.path)):
        print(name, file=out)
    return 0


def cmd_tree(zk: BlockingClient, ns: argparse.Namespace, out: TextIO) -> int:
    print(ns.path, file=out)

    def walk(path: str, depth: int) -> None:
        for name in sorted(zk.children(path)):
            print("  " * depth + name, file=out)
            walk(join(path, name), depth + 1)

    walk(ns.path, 1)
    return 0


def cmd_get(zk: BlockingClient, ns: argparse.Namespace, out: TextIO) -> int:
    data, stat = zk.get(ns.path)
    print(_text(data), file=out)
    if ns.stat:
        print(format_stat(stat), file=out)
    return 0


def cmd_stat(zk: BlockingClient, ns: argparse.Namespace, out: TextIO) -> int:
    stat = zk.exists(ns.path)
    if stat is None:
        raise NoNodeError(ns.path)
    print(format_stat(stat), file=out)
    return 0


def cmd_create(zk: BlockingClient, ns: argparse.Namespace, out: TextIO) -> int:
    try:
        created = zk.create(
            ns.path, ns.data.encode("utf-8"), ephemeral=ns.ephemeral, sequence=ns.sequential,
            container=ns.container, ttl=ns.ttl, make_parents=ns.parents,
        )  # fmt: skip
    except NoNodeError:
        if ns.parents:
            raise
        # The node cannot exist yet (create would say NodeExists): its parent is missing.
        missing = parent(ns.path)
        raise _Failure(f"no node: {missing} (the parent of {ns.path}); add -p to create missing parents") from None
    print(f"Created {created}", file=out)
    return 0


def cmd_set(zk: BlockingClient, ns: argparse.Namespace, out: TextIO) -> int:
    zk.set(ns.path, ns.data.encode("utf-8"), version=ns.version)
    return 0


def cmd_delete(zk: BlockingClient, ns: argparse.Namespace, out: TextIO) -> int:
    zk.delete(ns.path, version=ns.version, recursive=ns.recursive)
    return 0


def cmd_watch(zk: BlockingClient, ns: argparse.Namespace, out: TextIO) -> int:
    seen = 0
    with zk.watch(ns.path, recursive=ns.recursive, connection_events=True) as events:
        print(f"watching {ns.path}{' and below' if ns.recursive else ''} (Ctrl-C to stop)", file=out, flush=True)
        for event in events:
            # NONE events report the connection (DISCONNECTED, SYNC_CONNECTED), not the node.
            text = event.state.name if event.type is EventType.NONE else f"{event.type.name} {event.path}"
            print(text, file=out, flush=True)
            seen += 1
            if ns.count is not None and seen >= ns.count:
                break
    return 0


def cmd_config(zk: BlockingClient, ns: argparse.Namespace, out: TextIO) -> int:
    zk.sync("/")  # the latest config, not this server's possibly older view
    data, _ = zk.get_config()
    if not data:
        raise _Failure("the server has no dynamic configuration (a standalone server, or ZooKeeper before 3.5)")
    print(_text(data), file=out)
    return 0


# What to do about each refusal of a reconfig, said once here rather than as a bare error code.
_RECONFIG_HINTS: dict[type[ZKError], str] = {
    ReconfigDisabledError: "reconfig is disabled on the servers; set reconfigEnabled=true in their zoo.cfg",
    NoAuthError: "not allowed; authenticate as the super user (--auth digest:super:PASSWORD, matching the servers' "
    "superDigest) or as a user with WRITE on /zookeeper/config",
    BadVersionError: "the configuration is no longer that version; read it again (ccore config) and retry",
    NewConfigNoQuorumError: "no quorum of the new configuration is connected and synced with the leader; "
    "start the new servers first (they sync before they vote) and retry",
    ReconfigInProgressError: "another reconfig is in progress; retry in a moment",
    BadArgumentsError: "the server refused the change: a malformed server line, an address another member uses, "
    "or too few participants left",
    UnimplementedError: "this server cannot be reconfigured (a standalone server, or ZooKeeper before 3.5)",
}


def _reconfig_arguments(ns: argparse.Namespace) -> tuple[list[str] | None, list[str] | None, str | None, int]:
    """The reconfig's arguments, checked here first so a typo is named before anything is sent."""
    incremental = bool(ns.add or ns.remove)
    if ns.file and ns.members:
        raise _Failure("give the new membership with --members or --file, not both")
    if (ns.file or ns.members) and incremental:
        raise _Failure("--members/--file replace the whole membership; --add/--remove change it: use one kind")
    if not (incremental or ns.file or ns.members):
        raise _Failure("nothing to change: give --add, --remove, --members or --file")
    joining, leaving = split_list(ns.add), split_list(ns.remove)
    try:
        for item in joining or []:
            if parse_server_line(item, shorthand=True).client_port is None:
                raise _Failure(f"--add {item}: give the client port after ';', as in server.4=host:2888:3888;2181")
        for item in leaving or []:
            parse_server_id(item, f"--remove {item}")
    except DynamicConfigError as e:
        raise _Failure(str(e)) from None
    members: str | None = None
    if ns.file:
        try:
            with open(ns.file, encoding="utf-8") as f:
                members = ",".join(line.strip() for line in f if line.strip() and not line.startswith("#"))
        except OSError as e:
            raise _Failure(f"cannot read {ns.file}: {e.strerror}") from None
    elif ns.members:
        members = ",".join(ns.members)
    version = -1
    if ns.from_config is not None:
        try:
            version = int(ns.from_config.removeprefix("0x"), 16)
        except ValueError:
            raise _Failure(f"--from-config {ns.from_config}: a version is hexadecimal, as `ccore config` prints it") from None
    return joining or None, leaving or None, members, version


def cmd_reconfig(zk: BlockingClient, ns: argparse.Namespace, out: TextIO) -> int:
    joining, leaving, members, version = _reconfig_arguments(ns)
    try:
        data, _ = zk.reconfig(joining=joining, leaving=leaving, new_members=members, from_config=version)
    except tuple(_RECONFIG_HINTS) as e:
        hint = next(text for cls, text in _RECONFIG_HINTS.items() if isinstance(e, cls))
        raise _Failure(hint) from None
    print(_text(data), file=out)
    return 0


COMMANDS: dict[str, Callable[[BlockingClient, argparse.Namespace, TextIO], int]] = {
    "ls": cmd_ls, "tree": cmd_tree, "get": cmd_get, "stat": cmd_stat, "create": cmd_create,
    "set": cmd_set, "delete": cmd_delete, "watch": cmd_watch, "config": cmd_config,
    "reconfig": cmd_reconfig,
}  # fmt: skip


def _run(zk: BlockingClient, ns: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """One command; ZooKeeper errors become one line on `err`."""
    try:
        return COMMANDS[ns.command](zk, ns, out)
    except ZKError as e:
        print(f"ccore {ns.command}: {e}", file=err)
        return 1
    except (_Failure, TypeError, ValueError) as e:
        print(f"ccore {ns.command}: {e}", file=err)
        return 1


def shell(zk: BlockingClient, server: str, parser: argparse.ArgumentParser, inp: TextIO, out: TextIO, err: TextIO) -> int:
    """The interactive prompt: the commands above (without `ccore`), `help`, `quit`."""
    interactive = inp.isatty()
    if interactive:
        try:
            import readline  # noqa: F401  (line editing and history for input())
        except ImportError:
            pass
    status = 0
    while True:
        try:
            if interactive:
                line = input(f"ccore {server}> ")
            else:
                line = inp.readline()
                if not line:
                    break
        except EOFError:
            break
        except KeyboardInterrupt:
            print(file=out)
            continue
        try:
            words = shlex.split(line)
        except ValueError as e:
            print(f"ccore: {e}", file=err)
            continue
        if not words:
            continue
        if words[0] in ("quit", "exit"):
            break
        if words[0] in ("help", "?"):
            print("commands: " + ", ".join(PROMPT_COMMANDS) + ", quit  (`<command> -h` for its options)", file=out)
            continue
        if words[0] not in COMMANDS:
            print(f"ccore: unknown command {words[0]!r} (try help)", file=err)
            status = 1
            continue
        try:
            ns = parser.parse_args(words)
        except _UsageError:
            continue
        try:
            status = _run(zk, ns, out, err)
        except KeyboardInterrupt:
            print(file=out)
    return status


def main(
    argv: Sequence[str] | None = None, *, stdin: TextIO | None = None, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    """Run one `ccore` client command; returns the exit status."""
    out, err = stdout or sys.stdout, stderr or sys.stderr
    parser = _parser()
    try:
        ns = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except _UsageError as e:
        return e.status
    server = getattr(ns, "server", DEFAULT_SERVER)
    timeout = getattr(ns, "timeout", 5.0)
    tls = {name: getattr(ns, name) for name in ("tls_ca", "tls_cert", "tls_key") if hasattr(ns, name)}
    auth: list[tuple[str, str]] = []
    if hasattr(ns, "auth"):
        scheme, sep, credential = ns.auth.partition(":")
        if not sep or not scheme:
            print(f"ccore: --auth {ns.auth}: expected SCHEME:CREDENTIAL, e.g. digest:super:PASSWORD", file=err)
            return 2
        auth.append((scheme, credential))
    try:
        zk = blocking.connect(server, connect_timeout=timeout, session_timeout=max(timeout, 10.0), auth=auth, **tls)
    except ZKError as e:
        print(f"ccore: {e}", file=err)
        return 1
    except KeyboardInterrupt:
        return 130
    try:
        if ns.command == "shell":
            return shell(zk, server, parser, stdin or sys.stdin, out, err)
        return _run(zk, ns, out, err)
    except KeyboardInterrupt:
        return 0 if ns.command == "watch" else 130
    finally:
        zk.close()
