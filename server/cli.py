"""`ccore serve`: start a server from flags or a zoo.cfg file, logging where it listens."""

from __future__ import annotations

import argparse
import errno
import logging
import signal
import sys
from pathlib import Path

import trio

from ccore.znodes.groups import unwrap_single

from . import config as cfg
from . import logfilter
from .storage import StorageError
from .zkserver import ZKServer

log = logging.getLogger("ccore")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ccore serve", description="Run a consistent-core server.")
    p.add_argument("--config", type=Path, help="a zoo.cfg-style file (flags override its values)")
    p.add_argument("--data-dir", type=Path, help="where the log and snapshots live (default ./ccore-data)")
    p.add_argument("--client-port", type=int, help="client port (default 2181)")
    p.add_argument("--client-address", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--tick-time", type=int, metavar="MS", help="tickTime in ms (default 2000)")
    p.add_argument("--min-session-timeout", type=int, metavar="MS", help="default 2 x tickTime")
    p.add_argument("--max-session-timeout", type=int, metavar="MS", help="default 20 x tickTime")
    p.add_argument("--snap-count", type=int, help="transactions between snapshots (default 100000)")
    p.add_argument("--max-client-cnxns", type=int, metavar="N", help="connections per client address (default 60; 0: unlimited)")
    p.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING (default INFO)")
    p.add_argument("--log-format", choices=("text", "json"), default="text", help="json: one JSON object per line")
    p.add_argument(
        "--readonlymode",
        action="store_true",
        default=None,
        help="ensemble members: serve reads to read-only clients while cut off from the quorum (readonlymode.enabled)",
    )
    p.add_argument("--admin-port", type=int, metavar="PORT", help="admin API port (admin.serverPort, default 8080)")
    return p


def build_config(ns: argparse.Namespace) -> cfg.ServerConfig:
    config = cfg.load(ns.config) if ns.config else cfg.ServerConfig()
    overrides = {
        "data_dir": ns.data_dir,
        "client_port": ns.client_port,
        "client_port_address": ns.client_address,
        "tick_time_ms": ns.tick_time,
        "min_session_timeout_ms": ns.min_session_timeout,
        "max_session_timeout_ms": ns.max_session_timeout,
        "snap_count": ns.snap_count,
        "max_client_cnxns": ns.max_client_cnxns,
        "admin_port": ns.admin_port,
        "read_only_mode": ns.readonlymode,
    }
    for key, value in overrides.items():
        if value is not None:
            setattr(config, key, value)
    config.validate()
    return config


async def _serve_until_signalled(server: ZKServer) -> None:
    """Run until SIGTERM or SIGINT, then stop cleanly (the data dir lock is released)."""
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(server.run)
            async for signum in signals:
                log.info("received %s; stopping", signal.Signals(signum).name)
                nursery.cancel_scope.cancel()
                break


def _raise_open_file_limit() -> None:
    """Every client connection is a file descriptor: take all the system allows (the JVM does
    the same for ZooKeeper), so that thousands of clients are not refused at a soft 1024."""
    try:
        import resource
    except ImportError:  # not on this platform
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 1 << 20)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as e:
            log.warning("could not raise the open file limit from %d to %d: %s", soft, hard, e)


def serve(argv: list[str]) -> int:
    ns = _parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(ns.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for handler in logging.getLogger().handlers:
        logfilter.install(handler, json_lines=ns.log_format == "json")  # a flood of bad clients is a line a second
    try:
        config = build_config(ns)
        _raise_open_file_limit()
        with unwrap_single():  # a failed listen arrives from inside the server's nurseries
            trio.run(_serve_until_signalled, ZKServer(config))
    except (cfg.ConfigError, StorageError) as e:
        print(f"ccore serve: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        if e.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES) and e.filename is None:
            print(
                f"ccore serve: cannot listen: {e.strerror or e}; is another server on that port? try --client-port",
                file=sys.stderr,
            )
        else:
            print(f"ccore serve: stopped by an I/O error: {e}; check the disk and the data dir", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        log.info("stopped")
    return 0


def main(argv: list[str]) -> int:
    command, rest = argv[0], argv[1:]
    if command == "serve":
        return serve(rest)
    if command in ("backup", "restore"):
        from . import backup_cli

        return backup_cli.backup(rest) if command == "backup" else backup_cli.restore(rest)
    if command == "ensemble":
        from .ensemble import main as ensemble_main

        return ensemble_main(rest)
    print(f"ccore: unknown server command '{command}'", file=sys.stderr)
    return 2
