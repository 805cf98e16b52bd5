"""What the examples share: a server to run against, child processes, and printing.

Each example takes `--hosts host:port[,...]` to use a running ensemble (ours or Apache
ZooKeeper); without it, it starts a throwaway `python -m ccore serve` on a free loopback port.
And `--loop trio|asyncio`: the event loop every process of the example runs (the client and
recipes work on either); child processes inherit the choice through CCORE_EXAMPLE_LOOP.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]  # the examples need `pip install -e .` (or the wheel)
LOOPS = ("trio", "asyncio")
LOOP_ENV = "CCORE_EXAMPLE_LOOP"


def add_loop_option(parser: argparse.ArgumentParser) -> None:
    """`--loop trio|asyncio` (default: the parent's choice, else trio)."""
    parser.add_argument("--loop", choices=LOOPS, default=os.environ.get(LOOP_ENV, "trio"), help="the event loop to run on")


def use_loop(loop: str) -> None:
    """Run on `loop` from now on, in this process and the children it spawns."""
    os.environ[LOOP_ENV] = loop


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_server(port: int, proc: subprocess.Popen, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the server exited while starting")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"ruok")
            if sock.recv(16) == b"imok":
                return
        time.sleep(0.1)
    raise RuntimeError(f"no server on port {port} after {timeout_s}s")


@contextlib.contextmanager
def server(hosts: str | None, tick_ms: int = 100) -> Iterator[str]:
    """Yield a connection string: `hosts` if given, else a fresh local ccore server's."""
    if hosts:
        yield hosts
        return
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="ccore-example-") as data:
        argv = [
            sys.executable, "-m", "ccore", "serve", "--client-port", str(port), "--data-dir", data,
            "--tick-time", str(tick_ms), "--max-session-timeout", "60000", "--log-level", "WARNING",
        ]  # fmt: skip
        proc = subprocess.Popen(argv, cwd=REPO, env=child_env())
        try:
            _wait_for_server(port, proc)
            say(f"started a ccore server on 127.0.0.1:{port} (tick {tick_ms} ms)")
            yield f"127.0.0.1:{port}"
        finally:
            proc.kill()
            proc.wait()


def child_env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))


def spawn(script: str, *args: str) -> subprocess.Popen:
    """Run `python examples/<script> <args>` with its output line-buffered to ours."""
    return subprocess.Popen(
        [sys.executable, "-u", str(Path(__file__).parent / script), *args],
        env=child_env(), stdout=subprocess.PIPE, text=True, bufsize=1,
    )  # fmt: skip


def run(main: Callable[..., Coroutine[object, object, object]], *args: object) -> None:
    """`trio.run(main, *args)`, or `asyncio.run(main(*args))` if the loop chosen (use_loop)
    is asyncio's; Ctrl-C ends it with one line instead of a traceback."""
    from ccore.znodes.groups import unwrap_single

    loop = os.environ.get(LOOP_ENV, "trio")
    try:
        with unwrap_single():
            if loop == "asyncio":
                import asyncio

                asyncio.run(main(*args))
            else:
                import trio

                trio.run(main, *args)
    except KeyboardInterrupt:
        say("interrupted")
        sys.exit(130)


def say(text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')}.{int(time.time() * 1000) % 1000:03d} [{os.getpid()}] {text}", flush=True)
