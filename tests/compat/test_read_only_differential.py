"""Read-only mode, ours against Apache ZooKeeper 3.8: one member of a three-server ensemble
started alone (so it never finds a quorum) with read-only mode on, driven by the raw jute
client; the handshake, every read and write opcode's error code and the four-letter `isro`
must be the same on both.

ZooKeeper is started as its users do it: `-Dreadonlymode.enabled=true` (it reads only the
system property) and `localSessionsEnabled=true` in zoo.cfg (since 3.5 its read-only server
cannot open a session without it; ours always opens local ones)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .rawzk import (
    OPEN_ACL_UNSAFE,
    MultiOp,
    Op,
    RawClient,
    create_body,
    multi_body,
    path_body,
    path_version_body,
    path_watch_body,
    set_data_body,
)
from .servers import REPO_ROOT, free_ports, isro, zookeeper_classpath

pytestmark = pytest.mark.slow

START_TIMEOUT_S = 60.0


def _config_lines(base: Path, client_port: int, peer_ports: list[int]) -> list[str]:
    return [
        "tickTime=200",
        "initLimit=10",
        "syncLimit=5",
        f"dataDir={base / 'data'}",
        f"clientPort={client_port}",
        "clientPortAddress=127.0.0.1",
        *(f"server.{i + 1}=127.0.0.1:{peer_ports[2 * i]}:{peer_ports[2 * i + 1]}" for i in range(3)),
    ]


def _lonely_member(kind: str, base: Path, read_only_mode: bool) -> tuple[subprocess.Popen[bytes], int]:
    """Server 1 of three, the others never started; returns the process and its client port."""
    ports = free_ports(7)
    client_port, peer_ports = ports[0], ports[1:]
    (base / "data").mkdir(parents=True)
    (base / "data" / "myid").write_text("1\n")
    lines = _config_lines(base, client_port, peer_ports)
    env = dict(os.environ)
    if kind == "apache":
        classpath = zookeeper_classpath()
        assert classpath is not None
        lines += ["localSessionsEnabled=true", "4lw.commands.whitelist=*", "admin.enableServer=false"]
        argv = [
            shutil.which("java") or "java",
            "-Xmx256m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            f"-Dreadonlymode.enabled={str(read_only_mode).lower()}",
            "-Dzookeeper.admin.enableServer=false",
            "-Djava.net.preferIPv4Stack=true",
            "-cp",
            os.pathsep.join(map(str, classpath)),
            "org.apache.zookeeper.server.quorum.QuorumPeerMain",
            str(base / "zoo.cfg"),
        ]
    else:
        lines += [f"readonlymode.enabled={str(read_only_mode).lower()}", "admin.enableServer=false"]
        argv = [sys.executable, "-m", "ccore", "serve", "--config", str(base / "zoo.cfg")]
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    (base / "zoo.cfg").write_text("\n".join(lines) + "\n")
    with open(base / "server.log", "wb") as log:
        proc = subprocess.Popen(argv, cwd=base, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    return proc, client_port


@pytest.fixture(params=["apache", "ccore"])
def kind(request: pytest.FixtureRequest) -> str:
    if request.param == "apache" and zookeeper_classpath() is None:
        pytest.skip("Apache ZooKeeper (Debian package zookeeper) or java is not installed")
    return str(request.param)


@pytest.fixture
def read_only_member(kind: str, tmp_path: Path) -> Iterator[int]:
    proc, port = _lonely_member(kind, tmp_path, True)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while isro(port) != "ro":
            assert proc.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, f"{kind}: not read-only within {START_TIMEOUT_S} s"
            time.sleep(0.1)
        yield port
    finally:
        proc.kill()
        proc.wait(timeout=10)


def _handshake(port: int, read_only: bool) -> str:
    client = RawClient("127.0.0.1", port, io_timeout_s=5.0)
    try:
        client.connect(4000, read_only=read_only)
    except (OSError, ConnectionError, EOFError, TimeoutError) as e:
        return f"closed ({type(e).__name__})"
    except Exception as e:  # the raw client's own ConnectionLoss: the server closed it
        return f"closed ({type(e).__name__})"
    answer = f"session, readOnly={client.read_only}"
    client.close()
    return answer


def _scenario(port: int) -> dict[str, Any]:
    """Every opcode's answer in a read-only session, as (error code, a digest of the body)."""
    out: dict[str, Any] = {"plain client": _handshake(port, False), "read-only client": _handshake(port, True)}
    client = RawClient("127.0.0.1", port, io_timeout_s=5.0).connect(4000, read_only=True)
    try:
        calls: list[tuple[str, int, bytes]] = [
            ("getData /zookeeper", Op.getData, path_watch_body("/zookeeper", True)),
            ("exists /zookeeper", Op.exists, path_watch_body("/zookeeper", False)),
            ("exists /missing", Op.exists, path_watch_body("/missing", True)),
            ("getChildren /", Op.getChildren, path_watch_body("/", True)),
            ("getChildren2 /", Op.getChildren2, path_watch_body("/", False)),
            ("getACL /", Op.getACL, path_body("/")),
            ("getAllChildrenNumber /zookeeper", Op.getAllChildrenNumber, path_body("/zookeeper")),
            ("getEphemerals /", Op.getEphemerals, path_body("/")),
            ("create /x", Op.create, create_body("/x", b"", OPEN_ACL_UNSAFE, 0)),
            ("create2 /x", Op.create2, create_body("/x", b"", OPEN_ACL_UNSAFE, 0)),
            ("setData /zookeeper", Op.setData, set_data_body("/zookeeper", b"", -1)),
            ("setData bad path", Op.setData, set_data_body("no-slash", b"", -1)),
            ("delete /missing", Op.delete, path_version_body("/missing", -1)),
            ("check /", Op.check, path_version_body("/", 0)),
            ("sync /", Op.sync, path_body("/")),
            ("multi [create]", Op.multi, multi_body([MultiOp(Op.create, create_body("/y", b"", OPEN_ACL_UNSAFE, 0))])),
            ("multiRead [getData]", Op.multiRead, multi_body([MultiOp(Op.getData, path_watch_body("/zookeeper", False))])),
            ("getData /zookeeper after the refusals", Op.getData, path_watch_body("/zookeeper", False)),
        ]
        for name, op, body in calls:
            _zxid, err, reader = client.call_raw(op, body)
            out[name] = (err, reader.remaining() > 0)
        _zxid, err, _ = client.call_raw(Op.closeSession, b"")
        out["closeSession"] = err
    finally:
        client.close()
    out["isro"] = isro(port)
    return out


def test_read_only_member_answers_as_zookeeper_does(read_only_member: int, kind: str) -> None:
    got = _scenario(read_only_member)
    # One expectation for both servers (an Apache run that differs fails here, listing what).
    expected: dict[str, Any] = {
        "plain client": got["plain client"],  # checked below: closed, whatever the exception
        "read-only client": "session, readOnly=True",
        "getData /zookeeper": (0, True),
        "exists /zookeeper": (0, True),
        "exists /missing": (-101, False),
        "getChildren /": (0, True),
        "getChildren2 /": (0, True),
        "getACL /": (0, True),
        "getAllChildrenNumber /zookeeper": (0, True),
        "getEphemerals /": (0, True),
        "create /x": (-119, False),
        "create2 /x": (-119, False),
        "setData /zookeeper": (-119, False),
        "setData bad path": (-119, False),
        "delete /missing": (-119, False),
        "check /": (-119, False),
        "sync /": (-119, False),
        "multi [create]": (-119, False),
        "multiRead [getData]": (0, True),
        "getData /zookeeper after the refusals": (0, True),
        "closeSession": 0,
        "isro": "ro",
    }
    assert got == expected, kind
    assert got["plain client"].startswith("closed"), (kind, got["plain client"])


def test_read_only_mode_off_isro_says_null(kind: str, tmp_path: Path) -> None:
    proc, port = _lonely_member(kind, tmp_path, False)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while isro(port) == "down":
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "server.log").read_text()[-3000:]
            time.sleep(0.1)
        time.sleep(3.0)  # past the 2 s a read-only server would wait
        assert isro(port) == "null", kind
        assert _handshake(port, True).startswith("closed"), kind
    finally:
        proc.kill()
        proc.wait(timeout=10)
