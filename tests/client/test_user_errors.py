"""What a person sees when something goes wrong: one line, the documented error, no group.

Trio nurseries raise exception groups; these tests hold the public boundaries to their
documented errors (`except NoServerError` catches a failed connect) and the commands to one
line on stderr, Ctrl-C included.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid

import anyio
import pytest

from ccore.client import NoServerError, blocking, connect
from ccore.znodes.errors import ConnectionLossError
from tests.compat.servers import REPO_ROOT, wait_for_imok

# Every async test on Trio and on asyncio (see tests/client/conftest.py).
pytestmark = pytest.mark.anyio

ENV = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
DEAD = "127.0.0.1:1"  # nothing listens on port 1 of loopback


def ccore(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ccore", *argv], capture_output=True, text=True, env=ENV, cwd=REPO_ROOT,
        timeout=timeout, check=False,
    )  # fmt: skip


async def test_a_failed_connect_raises_no_server_error_itself():
    with pytest.raises(NoServerError, match="could not connect to 127.0.0.1:1"):
        async with connect(DEAD, connect_timeout=0.3):
            pass


def test_a_failed_blocking_connect_raises_no_server_error_itself():
    with pytest.raises(NoServerError):
        blocking.connect(DEAD, connect_timeout=0.3)


async def test_an_error_in_the_body_of_connect_comes_out_as_itself(hosts):
    class Mine(Exception):
        pass

    with pytest.raises(Mine):
        async with connect(hosts):
            raise Mine()


async def test_recursive_delete_of_many_children_raises_one_error(hosts, monkeypatch):
    # Siblings are deleted in parallel: when each fails alike (the connection went), the
    # caller gets one ConnectionLossError, not a group of them.
    root = f"/many-{uuid.uuid4().hex[:8]}"
    async with connect(hosts) as zk:
        await zk.create(f"{root}/c0", b"", make_parents=True)
        await zk.create(f"{root}/c1", b"")
        real_children = zk.children

        async def children(path: str, **kw: object) -> object:
            if path != root:
                await anyio.sleep(0.01)
                raise ConnectionLossError(path)
            return await real_children(path, **kw)

        monkeypatch.setattr(zk, "children", children)
        with pytest.raises(ConnectionLossError):
            await zk.delete(root, recursive=True)
        monkeypatch.undo()
        await zk.delete(root, recursive=True)


def test_ccore_against_a_dead_port_prints_one_line():
    done = ccore("ls", "/", "--server", DEAD, "--timeout", "0.5")
    assert done.returncode == 1
    assert done.stderr.startswith("ccore: could not connect to 127.0.0.1:1") and done.stderr.count("\n") == 1


def test_ccore_help_lists_the_server_commands():
    done = ccore("--help")
    assert done.returncode == 0
    assert "serve" in done.stdout and "ensemble" in done.stdout


def test_ccore_serve_on_a_port_in_use_prints_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = ccore("serve", "--client-port", str(port), "--data-dir", str(tmp_path / "data"), "--log-level", "WARNING")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "cannot listen" in done.stderr and "--client-port" in done.stderr


def test_ctrl_c_stops_ccore_serve_quietly(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = tmp_path / "server.log"
    with log.open("w") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ccore", "serve", "--client-port", str(port), "--data-dir", str(tmp_path / "d"),
             "--log-level", "WARNING"],
            stdout=log_file, stderr=subprocess.STDOUT, env=ENV, cwd=REPO_ROOT,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )  # fmt: skip
    try:
        wait_for_imok(port, proc, log)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
    finally:
        proc.kill()
    err = log.read_text()
    assert proc.returncode == 0 and "Traceback" not in err and "Group" not in err


def test_ctrl_c_while_waiting_for_a_lock_prints_at_most_one_line(hosts):
    code = (
        "import anyio\n"
        "import trio\n"
        "from ccore import connect\n"
        "from ccore.recipes import Lock\n"
        "async def main():\n"
        f"    async with connect({hosts!r}) as zk:\n"
        "        async with Lock(zk, '/ctrl-c-lock'):\n"
        "            print('holding', flush=True)\n"
        "            await anyio.sleep_forever()\n"
        "trio.run(main)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=ENV, cwd=REPO_ROOT)
    waiter = None
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "holding\n"
        # The same program through the examples' runner: Ctrl-C while queued behind the holder.
        waiter_code = code.replace("trio.run(main)\n", "import _common\n_common.run(main)\n")
        waiter = subprocess.Popen(
            [sys.executable, "-c", waiter_code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=dict(ENV, PYTHONPATH=os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "examples")])), cwd=REPO_ROOT,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )  # fmt: skip
        time.sleep(2)  # connected and queued
        waiter.send_signal(signal.SIGINT)
        out, err = waiter.communicate(timeout=20)
        assert waiter.returncode == 130
        assert err == "" and out.strip().endswith("interrupted") and out.count("\n") <= 1
    finally:
        holder.kill()
        holder.wait()
        if waiter is not None:
            waiter.kill()
            waiter.wait()
