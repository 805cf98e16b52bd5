"""Read-only mode (readonlymode.enabled), layer by layer: the mode's timing and the local
session table (pure), the connection core of a read-only session against the client's core
(in memory), the session manager's handshake decisions, and one ensemble member started
alone in-process, with the mode on and off."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio

from ccore.client.protocol import ClientProtocol, Connected, Reply
from ccore.server import cli
from ccore.server.config import ConfigError, PeerAddress, ServerConfig, load
from ccore.server.ensemble import free_ports
from ccore.server.readonly import Change, LocalSessions, ReadOnlyMode
from ccore.server.server_connection import Phase, ReadOnlySessionClosed, ServerConnection, SessionRequested, WriteSubmitted
from ccore.server.session_manager import SessionManager, SessionOpened, SessionRejected
from ccore.server.zkserver import ZKServer
from ccore.znodes import records as r
from ccore.znodes.acl import OPEN_ACL_UNSAFE
from ccore.znodes.constants import OpCode
from ccore.znodes.errors import Code
from ccore.znodes.records import ConnectRequest
from ccore.znodes.tree import DataTree
from ccore.znodes.txn import Create, CreateSession, Txn
from tests.polling import wait_for

from .helpers import RawClient
from .test_admin import command
from .test_server import four_letter
from .test_server_connection import SESSION
from .test_server_connection import Server as Services

# --- the mode's timing ----------------------------------------------------------------------


def test_read_only_mode_starts_after_the_grace_period_and_stops_with_looking() -> None:
    mode = ReadOnlyMode.for_tick(True, 0.2)
    assert mode.grace_s == 2.0  # ZooKeeper's floor: max(2 s, tickTime)
    assert ReadOnlyMode.for_tick(True, 5.0).grace_s == 5.0
    assert mode.observe(True, 10.0) is None
    assert mode.observe(True, 11.9) is None and not mode.active
    assert mode.observe(True, 12.0) is Change.STARTED and mode.active
    assert mode.observe(True, 13.0) is None and mode.active
    assert mode.observe(False, 14.0) is Change.STOPPED and not mode.active
    assert mode.observe(False, 15.0) is None
    # Looking again: a new grace period, counted from the new start.
    assert mode.observe(True, 20.0) is None
    assert mode.observe(True, 21.0) is None and not mode.active
    assert mode.observe(True, 22.0) is Change.STARTED


def test_read_only_mode_off_never_starts() -> None:
    mode = ReadOnlyMode.for_tick(False, 0.2)
    for t in range(100):
        assert mode.observe(True, float(t)) is None
    assert not mode.active


# --- local sessions -------------------------------------------------------------------------


def test_local_sessions_resume_within_their_timeout_and_expire_after_it() -> None:
    local = LocalSessions()
    local.add(1, b"p1", 1000, now=0.0)
    local.add(2, b"p2", 3000, now=0.0)
    assert local.resumable(1, b"p1", 0.9)
    assert not local.resumable(1, b"wrong", 0.9)
    assert not local.resumable(3, b"p1", 0.9)
    local.touch(1, 0.9)  # deadline 1.9 now
    assert local.resumable(1, b"p1", 1.8)
    assert local.expired(1.8) == []
    # 2 was touched first: it is first in line, and blocks nothing once past its deadline.
    assert local.expired(3.5) == [2, 1]
    assert len(local) == 0 and not local.resumable(1, b"p1", 3.5)
    local.add(4, b"p4", 1000, now=0.0)
    assert local.clear() == [4] and 4 not in local


# --- the connection core of a read-only session ---------------------------------------------


class ReadOnlyServices(Services):
    """The test server of test_server_connection, with read-only sessions known locally."""

    def __init__(self) -> None:
        super().__init__()
        self.local: set[int] = set()

    def is_closing(self, session_id: int) -> bool:
        return session_id not in self.local and super().is_closing(session_id)


LOCAL = 0x77


def _read_only_pair(services: ReadOnlyServices, *, read_only: bool = True) -> tuple[ServerConnection, ClientProtocol]:
    conn = ServerConnection(services, None, "127.0.0.1", 1 << 20)
    conn.watcher = conn
    client = ClientProtocol(10_000, read_only=True)
    client.start_connection()
    (requested,) = conn.receive_data(client.data_to_send())
    assert isinstance(requested, SessionRequested) and requested.request.read_only
    session = LOCAL if read_only else SESSION
    services.local.add(LOCAL)
    assert conn.accept_session(session, 10_000, bytes(16), read_only=read_only) == []
    (connected,) = client.receive_data(conn.data_to_send())
    assert isinstance(connected, Connected) and connected.read_only is read_only
    return conn, client


def _seed(services: ReadOnlyServices) -> None:
    tree = services.tree
    tree.apply(Txn(tree.last_zxid + 1, 0, SESSION, Create("/a", b"data", OPEN_ACL_UNSAFE, 0)))
    tree.apply(Txn(tree.last_zxid + 1, 0, SESSION, Create("/a/b", b"", OPEN_ACL_UNSAFE, 0)))


WRITES: list[tuple[int, Any]] = [
    (OpCode.create, r.CreateRequest("/new", b"", OPEN_ACL_UNSAFE, 0)),
    (OpCode.create2, r.CreateRequest("/new", b"", OPEN_ACL_UNSAFE, 0)),
    (OpCode.createContainer, r.CreateRequest("/new", b"", OPEN_ACL_UNSAFE, 4)),
    (OpCode.createTTL, r.CreateTTLRequest("/new", b"", OPEN_ACL_UNSAFE, 5, 1000)),
    (OpCode.delete, r.DeleteRequest("/a/b")),
    (OpCode.setData, r.SetDataRequest("/a", b"changed")),
    (OpCode.setACL, r.SetACLRequest("/a", OPEN_ACL_UNSAFE, -1)),
    (OpCode.check, r.CheckVersionRequest("/a", 0)),
    (OpCode.multi, r.MultiRequest(((OpCode.check, r.CheckVersionRequest("/a", 0)),))),
    (OpCode.sync, r.SyncRequest("/a")),
    (OpCode.setData, r.SetDataRequest("no-slash", b"")),  # refused before it is checked, as ZooKeeper does
]


def test_a_read_only_session_answers_reads_and_refuses_every_write_in_order() -> None:
    services = ReadOnlyServices()
    _seed(services)
    conn, client = _read_only_pair(services)
    before = services.tree.last_zxid
    reads: list[tuple[int, Any]] = [
        (OpCode.getData, r.GetDataRequest("/a", True)),
        (OpCode.exists, r.ExistsRequest("/a", False)),
        (OpCode.getChildren2, r.GetChildren2Request("/a", True)),
        (OpCode.getACL, r.GetACLRequest("/a")),
        (OpCode.getAllChildrenNumber, r.GetAllChildrenNumberRequest("/")),
        (OpCode.getEphemerals, r.GetEphemeralsRequest("/")),
        (OpCode.multiRead, r.MultiRequest(((OpCode.getData, r.GetDataRequest("/a")),))),
    ]
    sent: list[tuple[str, int]] = []
    # Interleaved: the answers must come back in the order sent.
    for i, (read, write) in enumerate(zip(reads, WRITES, strict=False)):
        client.request(read[0], read[1], ("read", i))
        client.request(write[0], write[1], ("write", i))
        sent += [("read", i), ("write", i)]
    for i, write in enumerate(WRITES[len(reads) :], len(reads)):
        client.request(write[0], write[1], ("write", i))
        sent.append(("write", i))
    events = conn.receive_data(client.data_to_send())
    assert events == []  # nothing reaches the committer
    replies = client.receive_data(conn.data_to_send())
    assert all(isinstance(e, Reply) for e in replies)
    assert [e.token for e in replies] == sent
    by_token = {e.token: e for e in replies}
    assert all(by_token[("read", i)].err == 0 for i in range(len(reads)))
    assert all(by_token[("write", i)].err == Code.NOT_READ_ONLY for i in range(len(WRITES)))
    assert by_token[("read", 0)].record.data == b"data"
    assert services.tree.last_zxid == before and services.tree.nodes["/a"].data == b"data"
    # Watches are set as on any server (they fire if this tree ever changes under them).
    assert services.watches.watch_count() == 2
    assert conn.phase is Phase.SERVING


def test_closing_a_read_only_session_is_answered_here() -> None:
    services = ReadOnlyServices()
    conn, client = _read_only_pair(services)
    client.request(OpCode.closeSession, None, "close")
    (closed,) = conn.receive_data(client.data_to_send())
    assert closed == ReadOnlySessionClosed(LOCAL)
    (reply,) = client.receive_data(conn.data_to_send())
    assert isinstance(reply, Reply) and reply.token == "close" and reply.err == 0
    assert conn.phase is Phase.CLOSING and conn.finished


def test_a_read_write_session_of_the_same_client_still_commits_its_writes() -> None:
    services = ReadOnlyServices()
    _seed(services)
    conn, client = _read_only_pair(services, read_only=False)  # a serving server says read_only=False
    client.request(OpCode.setData, r.SetDataRequest("/a", b"v2"), "set")
    (submitted,) = conn.receive_data(client.data_to_send())
    assert isinstance(submitted, WriteSubmitted)


# --- the session manager's decisions --------------------------------------------------------


class NotServing:
    """A committer between leaders; `read_only` says whether read-only mode is on."""

    serving = False
    owns_sessions = False
    mode = "looking"
    outstanding = 0

    def __init__(self, read_only: bool) -> None:
        self.read_only = read_only
        self.touched: list[int] = []
        self.submitted: list[Any] = []

    def submit(self, session: int, op: Any, auth: Any, on_done: Any) -> None:
        self.submitted.append(op)

    def session_touched(self, session: int, now: float) -> None:
        self.touched.append(session)

    def check_session(self, session: int, password: bytes, on_verdict: Any) -> None:
        raise AssertionError("a read-only server asks no leader")


class Conn:
    def __init__(self) -> None:
        self.closed = self.aborted = False

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True


GLOBAL = 0x55


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _manager(tmp_path: Path, read_only: bool) -> tuple[SessionManager, NotServing, Clock]:
    tree = DataTree()
    tree.apply(Txn(1, 0, GLOBAL, CreateSession(4000, b"g" * 16)))
    clock = Clock()
    sessions = SessionManager(ServerConfig(data_dir=tmp_path, tick_time_ms=200), lambda: tree, lambda: 1000.0, clock)
    committer = NotServing(read_only)
    sessions.bind(committer)  # type: ignore[arg-type]
    return sessions, committer, clock


def _decide(sessions: SessionManager, request: ConnectRequest) -> Any:
    decisions: list[Any] = []
    sessions.decide(request, "client", decisions.append)
    assert len(decisions) == 1  # a read-only server decides at once
    return decisions[0]


def _request(read_only: bool, session_id: int = 0, passwd: bytes | None = bytes(16)) -> ConnectRequest:
    return ConnectRequest(0, 0, 4000, session_id, passwd, read_only)


def test_without_read_only_mode_a_looking_server_refuses_read_only_clients(tmp_path: Path) -> None:
    sessions, _, _ = _manager(tmp_path, read_only=False)
    assert _decide(sessions, _request(True)) is None
    assert _decide(sessions, _request(False)) is None


def test_read_only_mode_opens_local_sessions_for_read_only_clients_only(tmp_path: Path) -> None:
    sessions, committer, clock = _manager(tmp_path, read_only=True)
    assert _decide(sessions, _request(False)) is None  # not a read-only client: closed, as ZooKeeper
    opened = _decide(sessions, _request(True))
    assert isinstance(opened, SessionOpened) and opened.read_only and opened.timeout_ms == 4000
    sid = opened.session_id
    assert sid != GLOBAL and sid in sessions.local
    assert committer.submitted == []  # never committed: the quorum never hears of it
    assert not sessions.is_closing(sid)
    sessions.touch(sid)
    assert committer.touched == []  # nothing to relay to a leader
    # A session of the quorum cannot be renewed here (ZooKeeper closes the connection).
    assert _decide(sessions, _request(True, GLOBAL, b"g" * 16)) is None
    # The local one resumes with its password, within its timeout...
    clock.now += 3.0
    assert _decide(sessions, _request(True, sid, opened.password)) == opened
    assert _decide(sessions, _request(True, sid, b"x" * 16)) == SessionRejected(read_only=True)
    # ...and is expired (its idle connection closed) once the timeout passes without a touch.
    conn = Conn()
    sessions.attach(sid, conn, "client", read_only=True)
    clock.now += 4.1
    sessions.expire_due()
    assert conn.closed and sid not in sessions.local
    assert _decide(sessions, _request(True, sid, opened.password)) == SessionRejected(read_only=True)


def test_leaving_read_only_mode_ends_every_local_session(tmp_path: Path) -> None:
    sessions, committer, _ = _manager(tmp_path, read_only=True)
    first, late = _decide(sessions, _request(True)), _decide(sessions, _request(True))
    conn = Conn()
    sessions.attach(first.session_id, conn, "client", read_only=True)
    committer.read_only = False
    sessions.read_only_changed(Change.STOPPED)
    assert conn.aborted and len(sessions.local) == 0
    # A handshake decided before the mode ended and attached after it: closed too.
    late_conn = Conn()
    sessions.attach(late.session_id, late_conn, "client", read_only=True)
    assert late_conn.aborted
    assert _decide(sessions, _request(True, first.session_id, first.password)) is None  # looking, not read-only


def test_a_read_only_client_closing_its_session_is_forgotten(tmp_path: Path) -> None:
    sessions, _, _ = _manager(tmp_path, read_only=True)
    opened = _decide(sessions, _request(True))
    sessions.attach(opened.session_id, Conn(), "client", read_only=True)
    sessions.end_local_session(opened.session_id)
    assert opened.session_id not in sessions.local
    assert _decide(sessions, _request(True, opened.session_id, opened.password)) == SessionRejected(read_only=True)


# --- one member of a three-server ensemble, alone, in-process -------------------------------


def _lonely_member(tmp_path: Path, read_only_mode: bool) -> ZKServer:
    ports = free_ports(6)
    peers = {sid: PeerAddress(sid, "127.0.0.1", ports[2 * sid - 2], ports[2 * sid - 1]) for sid in (1, 2, 3)}
    (tmp_path / "data").mkdir()
    config = ServerConfig(
        data_dir=tmp_path / "data",
        client_port=0,
        tick_time_ms=100,
        server_id=1,
        peers=peers,
        admin_port=0,
        read_only_mode=read_only_mode,
    )
    return ZKServer(config)


@pytest.mark.slow
async def test_a_member_without_quorum_serves_read_only_clients(nursery: trio.Nursery, tmp_path: Path) -> None:
    server: ZKServer = await nursery.start(_lonely_member(tmp_path, True).run)
    port = server.port
    assert port is not None
    assert await four_letter(port, "isro") == "null"  # looking, within the grace period
    await wait_for(lambda: server.read_only, timeout_s=10.0, interval_s=0.05)
    assert await four_letter(port, "isro") == "ro"
    assert "Mode: read-only" in await four_letter(port, "srvr")
    assert server.ops.admin is not None
    assert await command(server.ops.admin.port, "is_read_only") == (
        200,
        {"command": "is_read_only", "error": None, "read_only": True},
    )
    with pytest.raises(EOFError):  # a client that did not ask for read-only: closed, no answer
        await RawClient.connect(port)
    c = await RawClient.connect(port, read_only=True)
    assert c.read_only and c.session_id != 0 and c.timeout_ms > 0
    header, body = await c.call(OpCode.getChildren, r.GetChildrenRequest("/"))
    assert header.err == 0 and "zookeeper" in body.children
    header, _ = await c.create("/nope")
    assert header.err == Code.NOT_READ_ONLY
    header, _ = await c.call(OpCode.sync, r.SyncRequest("/"))
    assert header.err == Code.NOT_READ_ONLY
    header, _ = await c.call(OpCode.getData, r.GetDataRequest("/nope"))
    assert header.err == Code.NO_NODE
    # The session resumes on a new connection (same id and password).
    await c.aclose()
    again = await RawClient.connect(port, session_id=c.session_id, passwd=c.passwd, read_only=True)
    assert again.session_id == c.session_id and again.read_only
    header, _ = await again.call(OpCode.closeSession)
    assert header.err == 0
    await again.aclose()


@pytest.mark.slow
async def test_without_read_only_mode_a_member_without_quorum_refuses_everyone(nursery: trio.Nursery, tmp_path: Path) -> None:
    server: ZKServer = await nursery.start(_lonely_member(tmp_path, False).run)
    port = server.port
    assert port is not None
    await trio.sleep(2.5)  # past the grace period read-only mode would wait
    assert not server.read_only and server.mode == "looking"
    assert await four_letter(port, "isro") == "null"
    assert (await four_letter(port, "srvr")).startswith("This ZooKeeper instance is not currently serving")
    assert server.ops.admin is not None
    status, answer = await command(server.ops.admin.port, "is_read_only")
    assert status == 503 and "read_only" not in answer  # ZooKeeper: the command needs a running server
    for read_only in (True, False):
        with pytest.raises(EOFError):
            await RawClient.connect(port, read_only=read_only)


# --- configuration --------------------------------------------------------------------------


def test_readonlymode_enabled_is_read_from_zoo_cfg_and_the_command_line(tmp_path: Path) -> None:
    cfg = tmp_path / "zoo.cfg"
    cfg.write_text(f"dataDir={tmp_path}\nclientPort=2181\n")
    assert load(cfg).read_only_mode is False
    cfg.write_text(f"dataDir={tmp_path}\nreadonlymode.enabled=true\n")
    assert load(cfg).read_only_mode is True
    cfg.write_text(f"dataDir={tmp_path}\nreadonlymode.enabled=yes\n")
    with pytest.raises(ConfigError, match="readonlymode.enabled must be true or false"):
        load(cfg)
    ns = cli._parser().parse_args(["--data-dir", str(tmp_path), "--readonlymode"])
    assert cli.build_config(ns).read_only_mode is True
    ns = cli._parser().parse_args(["--data-dir", str(tmp_path)])
    assert cli.build_config(ns).read_only_mode is False
