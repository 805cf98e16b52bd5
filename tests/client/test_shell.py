"""The `ccore` client commands, called in-process with captured output and as a process."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from ccore.client.shell import main
from tests.compat.servers import REPO_ROOT


def run(*argv: str, stdin: str = "") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), stdin=io.StringIO(stdin), stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


@pytest.fixture
def sh(hosts):
    root = f"/shell-{uuid.uuid4().hex[:10]}"
    assert run("create", root, "--server", hosts)[0] == 0

    def call(*argv: str, stdin: str = "") -> tuple[int, str, str]:
        return run(*argv, "--server", hosts + root, stdin=stdin)

    yield call
    run("delete", "-r", root, "--server", hosts)


def test_create_get_set_stat_ls_tree_delete(sh):
    assert sh("create", "/a", "hello") == (0, "Created /a\n", "")
    assert sh("create", "/x/y/z", "deep", "-p")[0] == 0
    assert sh("create", "/a/s-", "-s", "-e") == (0, "Created /a/s-0000000000\n", "")
    assert sh("get", "/a") == (0, "hello\n", "")
    assert sh("set", "/a", "bye") == (0, "", "")
    status, out, _ = sh("get", "/a", "-s")
    assert status == 0 and out.startswith("bye\ncZxid = 0x") and "dataVersion = 1" in out
    status, out, _ = sh("stat", "/a")
    assert status == 0 and "numChildren = 0" in out  # the ephemeral went with its session
    assert sh("ls", "/") == (0, "a\nx\n", "")
    assert sh("tree", "/x") == (0, "/x\n  y\n    z\n", "")
    assert sh("delete", "/x")[0] == 1
    assert sh("delete", "-r", "/x") == (0, "", "")
    assert sh("ls", "/") == (0, "a\n", "")


def test_errors_are_one_line(sh, hosts):
    assert sh("get", "/nope") == (1, "", "ccore get: no node: /nope\n")
    assert sh("create", "/dup")[0] == 0
    assert sh("create", "/dup") == (1, "", "ccore create: node exists: /dup\n")
    assert sh("set", "/dup", "x", "-v", "7") == (1, "", "ccore set: bad version: /dup\n")
    assert sh("create", "/m/n/o", "x") == (
        1, "", "ccore create: no node: /m/n (the parent of /m/n/o); add -p to create missing parents\n",
    )  # fmt: skip
    status, _, err = sh("get", "no-slash")
    assert status == 1 and err.count("\n") == 1 and "path must start with /" in err
    status, _, err = run("ls", "/", "--server", "127.0.0.1:1", "--timeout", "0.3")
    assert status == 1 and err.startswith("ccore: could not connect to 127.0.0.1:1") and err.count("\n") == 1
    assert run("frobnicate")[0] == 2


def test_interactive_shell(sh):
    script = "create /i one\nget /i\nls /\nget /missing\nbogus\nhelp\nquit\n"
    _, out, err = sh("shell", stdin=script)
    assert out.splitlines()[:3] == ["Created /i", "one", "i"]
    assert "no node: /missing" in err and "unknown command 'bogus'" in err
    assert "commands:" in out


def test_watch_prints_events(sh):
    assert sh("create", "/w")[0] == 0
    import threading

    def change() -> None:
        time.sleep(0.5)
        sh("set", "/w", "x")
        sh("create", "/w/c")

    threading.Thread(target=change).start()
    status, out, _ = sh("watch", "/w", "-r", "-n", "2")
    assert status == 0
    assert out.splitlines()[1:] == ["NODE_DATA_CHANGED /w", "NODE_CREATED /w/c"]


def test_process_and_ctrl_c(hosts):
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    done = subprocess.run(
        [sys.executable, "-m", "ccore", "ls", "/", "--server", hosts],
        capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 0 and "zookeeper" in done.stdout.split()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ccore", "watch", "/", "--server", hosts],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO_ROOT,
        # A suite started in the background by a non-interactive shell runs with SIGINT
        # ignored, and children inherit that: give `ccore watch` a Ctrl-C it can hear.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    try:
        assert proc.stdout.readline().startswith("watching /")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=15)
    finally:
        proc.kill()
    assert proc.returncode == 0 and "Traceback" not in err
