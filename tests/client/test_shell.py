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
from ccore.znodes.constants import OpCode
from ccore.znodes.errors import Code
from ccore.znodes.records import AuthPacket, ReconfigRequest
from tests.client.fakezk import FakeServer, serve_in_thread
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


# --- config and reconfig ------------------------------------------------------------------------

NEW_CONFIG = (
    "server.1=10.0.0.1:2888:3888:participant;0.0.0.0:2181\nserver.4=h4:2888:3888:observer;0.0.0.0:2181\nversion=100000005"
)


def test_reconfig_sends_the_change_with_the_auth_and_prints_the_new_config():
    fake = FakeServer(config=NEW_CONFIG.encode(), reconfig_answer=NEW_CONFIG.encode())
    with serve_in_thread(fake) as port:
        server = f"127.0.0.1:{port}"
        assert run("config", "--server", server) == (0, NEW_CONFIG + "\n", "")
        status, out, err = run(
            "reconfig", "--server", server, "--auth", "digest:super:test",
            "--add", "server.4=h4:2888:3888:observer;2181", "--remove", "2,3", "--from-config", "100000004",
        )  # fmt: skip
        assert (status, out, err) == (0, NEW_CONFIG + "\n", "")
        assert run("reconfig", "--server", server, "--members", "server.1=a:1:2;2181", "--members", "server.2=b:1:2;2181")[0] == 0
    assert fake.sent(OpCode.reconfig) == [
        ReconfigRequest("server.4=h4:2888:3888:observer;2181", "2,3", None, 0x100000004),
        ReconfigRequest(None, None, "server.1=a:1:2;2181,server.2=b:1:2;2181", -1),
    ]
    assert fake.auth == [AuthPacket(0, "digest", b"super:test")]


@pytest.mark.parametrize(
    ("code", "says"),
    [
        (Code.RECONFIG_DISABLED, "set reconfigEnabled=true"),
        (Code.NO_AUTH, "--auth digest:super:PASSWORD"),
        (Code.NEW_CONFIG_NO_QUORUM, "start the new servers first"),
        (Code.BAD_VERSION, "read it again (ccore config)"),
    ],
)
def test_reconfig_refusals_say_what_to_do(code, says):
    with serve_in_thread(FakeServer(reconfig_answer=code)) as port:
        status, out, err = run("reconfig", "--server", f"127.0.0.1:{port}", "--remove", "3")
    assert status == 1 and out == "" and err.count("\n") == 1 and err.startswith("ccore reconfig: ") and says in err


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        ([], "nothing to change"),
        (["--add", "server.4=h4:2888"], "expected host:quorumPort"),
        (["--add", "server.4=h4:2888:3888"], "give the client port"),
        (["--remove", "two"], "bad server id"),
        (["--add", "server.4=h:1:2;2181", "--members", "server.1=a:1:2;2181"], "use one kind"),
        (["--remove", "2", "--from-config", "v7"], "hexadecimal"),
    ],
)
def test_reconfig_arguments_are_checked_before_sending(argv, says):
    fake = FakeServer()
    with serve_in_thread(fake) as port:
        status, _, err = run("reconfig", "--server", f"127.0.0.1:{port}", *argv)
    assert status == 1 and err.count("\n") == 1 and says in err
    assert fake.sent(OpCode.reconfig) == []


def test_config_and_reconfig_of_a_standalone_server_are_one_line(hosts):
    status, out, err = run("config", "--server", hosts)
    assert (status, out) == (1, "") and "no dynamic configuration" in err and err.count("\n") == 1
    status, out, err = run("reconfig", "--server", hosts, "--remove", "2")
    assert (status, out) == (1, "") and err.startswith("ccore reconfig: ") and err.count("\n") == 1
    assert run("ls", "/", "--server", hosts, "--auth", "nocolon")[0] == 2
