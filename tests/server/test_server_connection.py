"""The server's connection core against the client's, in memory (the h11 way).

`ClientProtocol` and `ServerConnection` exchange bytes directly; the test plays the committer,
choosing when each write commits, so the ordering guarantees are checked without sockets:
FIFO replies, watch events before the reply that reflects them, auth, abandoned writes, and
requests pipelined behind the handshake.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ccore.client.protocol import (
    AuthFailed,
    AuthReply,
    ClientProtocol,
    Connected,
    Reply,
    SessionExpired,
    WatchFired,
)
from ccore.server.requests import Reads, restore_watches
from ccore.server.server_connection import (
    FourLetterWord,
    Phase,
    ServerConnection,
    SessionRequested,
    WriteSubmitted,
)
from ccore.znodes.acl import CREATOR_ALL_ACL, OPEN_ACL_UNSAFE, SUPER, Id
from ccore.znodes.constants import EventType, OpCode
from ccore.znodes.errors import Code
from ccore.znodes.records import (
    CreateRequest,
    GetDataRequest,
    SetDataRequest,
)
from ccore.znodes.tree import DataTree
from ccore.znodes.txn import CreateSession, Txn
from ccore.znodes.watches import WatchManager

SESSION = 0x1234


class Server:
    """The server around one or more connection cores: a real tree and watch table; writes
    wait in `submitted` until the test commits them (in order, as a committer does)."""

    def __init__(self) -> None:
        self.tree = DataTree()
        self.watches = WatchManager()
        self.reads = Reads(lambda: self.tree, self.watches)
        self.submitted: list[tuple[ServerConnection, WriteSubmitted]] = []
        self.touched: list[int] = []
        self.clock = 0.0
        self.tree.apply(Txn(1, 0, SESSION, CreateSession(10_000, bytes(16))))

    # ConnectionServices
    @property
    def last_zxid(self) -> int:
        return self.tree.last_zxid

    def monotonic(self) -> float:
        return self.clock

    def request_received(self, session_id: int) -> None:
        self.touched.append(session_id)

    def record_latency(self, seconds: float, update: bool = False) -> None:
        pass

    def is_closing(self, session_id: int) -> bool:
        return session_id not in self.tree.sessions

    def answer_read(self, op: int, record: Any, watcher: Any, auth: tuple[Id, ...], session_id: int) -> Any:
        return self.reads.answer(op, record, watcher, auth, session_id) if self.reads.handles(op) else None

    def restore_watches(self, watcher: Any, record: Any) -> list[tuple[int, str]]:
        return restore_watches(self.tree, self.watches, watcher, record)

    # the committer's part
    def take(self, conn: ServerConnection, events: list[Any]) -> None:
        for event in events:
            assert isinstance(event, WriteSubmitted), event
            self.submitted.append((conn, event))

    def commit_next(self) -> None:
        conn, event = self.submitted.pop(0)
        txn = Txn(self.tree.last_zxid + 1, 0, conn.session_id, event.op, conn.auth)
        result, triggers = self.tree.apply(txn)
        for watcher, event_type, path, acl in self.watches.fire(triggers):
            watcher.send_event(event_type, path, acl)
        conn.write_committed(event.write, txn, result)


class Pair:
    """A connected client core and server core."""

    def __init__(self, server: Server, client: ClientProtocol | None = None, super_digest: str | None = None) -> None:
        self.server = server
        self.conn = ServerConnection(server, None, "127.0.0.1", 1 << 20, super_digest=super_digest)
        self.conn.watcher = self.conn  # the driver registers itself; here the core does
        self.client = client or ClientProtocol(10_000)
        self.client.start_connection()
        (request,) = self.conn.receive_data(self.client.data_to_send())
        assert isinstance(request, SessionRequested)
        server.take(self.conn, self.conn.accept_session(SESSION, 10_000, bytes(16)))
        (connected,) = self.to_client()
        assert isinstance(connected, Connected)

    def to_server(self) -> None:
        self.server.take(self.conn, self.conn.receive_data(self.client.data_to_send()))

    def to_client(self) -> list[Any]:
        return self.client.receive_data(self.conn.data_to_send())

    def request(self, op: int, record: Any, token: Any, watch: Any = None) -> None:
        self.client.request(op, record, token, watch)
        self.to_server()


def _create(path: str, acl: Any = OPEN_ACL_UNSAFE) -> CreateRequest:
    return CreateRequest(path, b"v0", acl, 0)


def test_a_read_behind_a_write_waits_for_it_and_sees_it():
    server = Server()
    pair = Pair(server)
    pair.request(OpCode.create, _create("/a"), "create")
    pair.request(OpCode.getData, GetDataRequest("/a"), "read")
    pair.request(OpCode.getData, GetDataRequest("/missing"), "read-missing")
    assert pair.to_client() == []  # nothing may overtake the write
    server.commit_next()
    replies = pair.to_client()
    assert [(e.token, e.err) for e in replies] == [("create", 0), ("read", 0), ("read-missing", Code.NO_NODE)]
    assert replies[1].record.data == b"v0"


def test_a_watch_event_arrives_before_the_reply_that_reflects_it():
    server = Server()
    pair = Pair(server)
    pair.request(OpCode.create, _create("/w"), "create")
    server.commit_next()
    pair.to_client()
    pair.request(OpCode.getData, GetDataRequest("/w", True), "watch", watch=_data_watch("/w", "watcher"))
    pair.to_client()
    pair.request(OpCode.setData, SetDataRequest("/w", b"v1"), "set")
    server.commit_next()
    events = pair.to_client()
    assert [type(e) for e in events] == [WatchFired, Reply]
    assert events[0].event.type == EventType.NODE_DATA_CHANGED and events[0].event.path == "/w"
    assert events[1].token == "set"


def _data_watch(path: str, token: Any) -> Any:
    from ccore.client.protocol import WatchKind

    return (WatchKind.DATA, path, token)


def test_a_watch_event_of_another_connection_is_filtered_by_the_nodes_acl():
    server = Server()
    owner, other = Pair(server), Pair(server)
    owner.client.add_auth("digest", b"u:p", "auth")
    owner.to_server()
    assert owner.to_client() == [AuthReply("auth", 0)]
    owner.request(OpCode.create, _create("/secret", CREATOR_ALL_ACL), "create")
    server.commit_next()
    assert owner.to_client()[0].err == 0
    # `other` may not read /secret: its watch is kept out of what it cannot see.
    server.watches.add_data_watch("/secret", other.conn)
    owner.request(OpCode.setData, SetDataRequest("/secret", b"x"), "set")
    server.commit_next()
    assert other.to_client() == []
    other.request(OpCode.getData, GetDataRequest("/secret"), "read")
    assert [(e.token, e.err) for e in other.to_client()] == [("read", Code.NO_AUTH)]


SUPER_DIGEST = "super:D/InIHSb7yEEbrWz8b9l71RjZJU="  # super:test


def test_the_super_user_is_a_property_of_its_connection():
    server = Server()
    owner = Pair(server, super_digest=SUPER_DIGEST)
    owner.client.add_auth("digest", b"u:p", "auth")
    owner.to_server()
    owner.to_client()
    owner.request(OpCode.create, _create("/secret", CREATOR_ALL_ACL), "create")
    server.commit_next()
    owner.to_client()
    root, wrong, elsewhere = (Pair(server, super_digest=SUPER_DIGEST) for _ in range(3))
    root.client.add_auth("digest", b"super:test", "auth")
    wrong.client.add_auth("digest", b"super:nope", "auth")
    for pair in (root, wrong):
        pair.to_server()
        assert pair.to_client() == [AuthReply("auth", 0)]
    assert root.conn.auth == (Id("ip", "127.0.0.1"), SUPER, Id("digest", SUPER_DIGEST))
    for pair in (root, wrong, elsewhere):
        pair.request(OpCode.getData, GetDataRequest("/secret"), "read")
        pair.request(OpCode.setData, SetDataRequest("/secret", b"x"), "set")
        server.commit_next()
    assert [(e.token, e.err) for e in root.to_client()] == [("read", 0), ("set", 0)]
    for pair in (wrong, elsewhere):
        assert [(e.token, e.err) for e in pair.to_client()] == [("read", Code.NO_AUTH), ("set", Code.NO_AUTH)]
    # Without a superDigest in zoo.cfg, super:test is an ordinary digest identity.
    plain = Pair(server)
    plain.client.add_auth("digest", b"super:test", "auth")
    plain.to_server()
    plain.to_client()
    assert SUPER not in plain.conn.auth


def test_an_auth_with_an_unknown_scheme_fails_and_closes():
    server = Server()
    pair = Pair(server)
    pair.client.add_auth("kerberos", b"x", "auth")
    pair.to_server()
    events = pair.to_client()
    assert [type(e) for e in events] == [AuthFailed]
    assert pair.conn.phase is Phase.CLOSING and pair.conn.finished


def test_an_abandoned_write_ends_the_connection_and_nothing_after_it_is_answered():
    server = Server()
    pair = Pair(server)
    pair.request(OpCode.create, _create("/a"), "create")
    pair.request(OpCode.getData, GetDataRequest("/a"), "read")
    _, event = server.submitted.pop(0)
    pair.conn.write_abandoned(event.write)
    assert pair.conn.phase is Phase.ABORTED and pair.conn.finished
    assert pair.conn.data_to_send() == b""


def test_requests_pipelined_behind_the_connect_request_wait_for_the_session():
    server = Server()
    conn = ServerConnection(server, None, "127.0.0.1", 1 << 20)
    conn.watcher = conn
    client = ClientProtocol(10_000)
    client.start_connection()
    handshake = client.data_to_send()
    # A raw request frame right behind the ConnectRequest, in the same segment.
    from ccore.znodes import protocol as wire

    events = conn.receive_data(handshake + wire.encode_request(1, OpCode.create, _create("/p")))
    assert [type(e) for e in events] == [SessionRequested]
    assert conn.phase is Phase.CONNECTING
    after = conn.accept_session(SESSION, 10_000, bytes(16))
    assert [type(e) for e in after] == [WriteSubmitted]


def test_an_expired_session_gets_zookeepers_answer_then_the_connection_closes():
    server = Server()
    conn = ServerConnection(server, None, "127.0.0.1", 1 << 20)
    client = ClientProtocol(10_000, session_id=0x99, passwd=b"p" * 16)
    client.start_connection()
    conn.receive_data(client.data_to_send())
    conn.reject_session()
    events = client.receive_data(conn.data_to_send())
    assert [type(e) for e in events] == [SessionExpired]
    assert conn.finished


def test_requests_of_an_expiring_session_are_answered_session_expired():
    server = Server()
    pair = Pair(server)
    del server.tree.sessions[SESSION]  # closed by the leader meanwhile
    pair.request(OpCode.getData, GetDataRequest("/"), "read")
    assert [(e.token, e.err) for e in pair.to_client()] == [("read", Code.SESSION_EXPIRED)]


def test_a_four_letter_word_is_recognised_in_pieces():
    conn = ServerConnection(Server(), None, "127.0.0.1", 1 << 20)
    assert conn.receive_data(b"ru") == []
    assert conn.receive_data(b"ok") == [FourLetterWord("ruok")]
    assert conn.phase is Phase.CLOSING


def test_garbage_aborts_the_connection_without_raising():
    conn = ServerConnection(Server(), None, "127.0.0.1", 1 << 20)
    assert conn.receive_data(b"\xff\xff\xff\xff" + b"x" * 20) == []
    assert conn.phase is Phase.ABORTED


def test_a_write_completed_twice_is_refused():
    server = Server()
    pair = Pair(server)
    pair.request(OpCode.create, _create("/a"), "create")
    conn, event = server.submitted[0]
    server.commit_next()
    try:
        conn.write_abandoned(event.write)
    except RuntimeError as e:
        assert "twice" in str(e)
    else:
        raise AssertionError("a second completion was accepted")


@settings(max_examples=150, deadline=None)
@given(
    ops=st.lists(st.sampled_from(["create", "set", "read", "exists", "ping"]), min_size=1, max_size=30),
    chunk=st.integers(1, 64),
    commit_points=st.lists(st.integers(0, 30), max_size=30),
)
def test_replies_keep_the_clients_order_whatever_the_timing(ops, chunk, commit_points):
    """Any mix of reads and writes, any split of the bytes, writes committed at any moments:
    every reply arrives in request order, and each read sees every write sent before it."""
    server = Server()
    pair = Pair(server)
    sent: list[tuple[int, str]] = []  # (index, kind) of every request that gets a reply
    got: list[Any] = []
    for i, kind in enumerate(ops):
        token = (i, kind)
        if kind == "create":
            pair.client.request(OpCode.create, _create(f"/n{i}"), token)
        elif kind == "set":
            pair.client.request(OpCode.setData, SetDataRequest("/", str(i).encode()), token)
        elif kind == "read":
            pair.client.request(OpCode.getChildren, _children("/"), token)
        elif kind == "exists":
            pair.client.request(OpCode.getData, GetDataRequest("/"), token)
        else:
            pair.client.ping()
        if kind != "ping":
            sent.append(token)
        data = pair.client.data_to_send()
        for start in range(0, len(data), chunk):
            server.take(pair.conn, pair.conn.receive_data(data[start : start + chunk]))
        if i in commit_points and server.submitted:
            server.commit_next()
        got += pair.to_client()
    while server.submitted:
        server.commit_next()
        got += pair.to_client()
    replies = [e for e in got if isinstance(e, Reply)]
    assert [e.token for e in replies] == sent
    for e in replies:
        i, kind = e.token
        if kind == "read":
            assert len(e.record.children) - 1 == sum(1 for j, k in sent if k == "create" and j < i)  # and /zookeeper
        elif kind == "exists":
            sets_before = [j for j, k in sent if k == "set" and j < i]
            assert e.record.data == (str(sets_before[-1]).encode() if sets_before else b"")


def _children(path: str) -> Any:
    from ccore.znodes.records import GetChildrenRequest

    return GetChildrenRequest(path, False)
