"""The sans-I/O client core driven by a scripted server (znodes' server-side codec), no sockets."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccore.client import protocol as p
from ccore.client.protocol import ClientProtocol, ClientStateError, Phase, WatchKind
from ccore.znodes import protocol as wire
from ccore.znodes.constants import XID_AUTH, XID_SET_WATCHES, EventType, KeeperState, OpCode
from ccore.znodes.errors import Code
from ccore.znodes.jute import ProtocolError
from ccore.znodes.records import (
    ConnectResponse,
    ErrorResponse,
    ExistsRequest,
    ExistsResponse,
    GetChildren2Response,
    GetDataRequest,
    GetDataResponse,
    SetWatches,
    SetWatches2,
)
from ccore.znodes.stat import Stat

STAT = Stat(1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1)
PASSWD = b"p" * 16


class FakeServer:
    """Reads what the client wrote and answers with hand-built frames."""

    def __init__(self, client: ClientProtocol) -> None:
        self.client = client
        self.frames = wire.FrameReader()

    def read(self) -> list[bytes]:
        self.frames.feed(self.client.data_to_send())
        out = []
        while (f := self.frames.next_frame()) is not None:
            out.append(f)
        return out

    def requests(self) -> list:
        return [wire.decode_request(f) for f in self.read()]


def handshake(client: ClientProtocol, session_id: int = 0x1234, timeout: int = 9000) -> tuple[FakeServer, list]:
    server = FakeServer(client)
    client.start_connection()
    (req,) = [wire.decode_connect_request(f) for f in server.read()]
    events = client.receive_data(wire.encode_connect_response(ConnectResponse(0, timeout, session_id, PASSWD)))
    server.connect_request = req  # type: ignore[attr-defined]
    return server, events


def test_handshake_and_fifo_replies():
    client = ClientProtocol(10000)
    with pytest.raises(ClientStateError):
        client.request(OpCode.getData, GetDataRequest("/a"), "t")
    server, events = handshake(client)
    assert server.connect_request.session_id == 0 and server.connect_request.timeout == 10000
    assert events == [p.Connected(0x1234, 9000, False, True)]
    x1 = client.request(OpCode.getData, GetDataRequest("/a"), "one")
    x2 = client.request(OpCode.exists, ExistsRequest("/b"), "two")
    assert [h.xid for h, _ in server.requests()] == [x1, x2]
    data = wire.encode_reply(x1, 7, 0, GetDataResponse(b"v", STAT)) + wire.encode_reply(x2, 5, Code.NO_NODE)
    # Bytes may arrive in any chunks.
    events = [e for i in range(len(data)) for e in client.receive_data(data[i : i + 1])]
    assert events == [p.Reply("one", 7, 0, GetDataResponse(b"v", STAT)), p.Reply("two", 5, Code.NO_NODE, None)]
    assert client.last_zxid == 7  # the highest seen, not the last
    assert client.in_flight == 0


def test_out_of_order_or_unexpected_replies_are_protocol_errors():
    client = ClientProtocol(10000)
    handshake(client)
    xid = client.request(OpCode.getData, GetDataRequest("/a"), "t")
    with pytest.raises(ProtocolError, match="out of order"):
        client.receive_data(wire.encode_reply(xid + 1, 1, 0, GetDataResponse(b"", STAT)))
    client2 = ClientProtocol(10000)
    handshake(client2)
    with pytest.raises(ProtocolError):
        client2.receive_data(wire.encode_reply(5, 1, 0))
    with pytest.raises(ProtocolError):
        client2.receive_data(b"\xff\xff\xff\xff")


def event(etype: EventType, path: str) -> bytes:
    return wire.encode_watch_event(9, int(etype), int(KeeperState.SYNC_CONNECTED), path)


def register(client: ClientProtocol, kind: WatchKind, path: str, token: object, err: int = 0) -> None:
    op = {WatchKind.DATA: OpCode.getData, WatchKind.CHILD: OpCode.getChildren2}.get(kind, OpCode.exists)
    kind = WatchKind.DATA if kind is WatchKind.EXIST else kind
    xid = client.request(op, GetDataRequest(path, True), token, (kind, path, token))
    body = {OpCode.getData: GetDataResponse(b"", STAT), OpCode.exists: ExistsResponse(STAT),
            OpCode.getChildren2: GetChildren2Response((), STAT)}[op] if err == 0 else None  # fmt: skip
    client.receive_data(wire.encode_reply(xid, 1, err, body))


def fired(client: ClientProtocol, etype: EventType, path: str) -> set:
    (ev,) = client.receive_data(event(etype, path))
    assert isinstance(ev, p.WatchFired) and ev.event.path == path and ev.event.zxid == 9
    return set(ev.watchers)


def test_watch_materialization():
    client = ClientProtocol(10000)
    handshake(client)
    register(client, WatchKind.DATA, "/a", "data")
    register(client, WatchKind.EXIST, "/b", "exist", err=Code.NO_NODE)  # exists on a missing node
    register(client, WatchKind.CHILD, "/a", "child")
    register(client, WatchKind.DATA, "/nope", "failed", err=Code.NO_NODE)  # getData failed: no watch
    for kind, path, token in [(WatchKind.PERSISTENT, "/a", "pers"), (WatchKind.RECURSIVE, "/", "rec-root"),
                              (WatchKind.RECURSIVE, "/a", "rec-a")]:  # fmt: skip
        xid = client.request(OpCode.addWatch, None, token, (kind, path, token))
        client.receive_data(wire.encode_reply(xid, 1, 0, ErrorResponse(0)))
    assert client.watch_paths(WatchKind.EXIST) == ["/b"]
    assert fired(client, EventType.NODE_CHILDREN_CHANGED, "/a") == {"child", "pers"}
    assert fired(client, EventType.NODE_DATA_CHANGED, "/a") == {"data", "pers", "rec-root", "rec-a"}
    assert fired(client, EventType.NODE_DATA_CHANGED, "/a") == {"pers", "rec-root", "rec-a"}  # one-shot gone
    assert fired(client, EventType.NODE_CREATED, "/b") == {"exist", "rec-root"}
    assert fired(client, EventType.NODE_DELETED, "/a/x/y") == {"rec-root", "rec-a"}
    assert fired(client, EventType.NODE_CREATED, "/ab") == {"rec-root"}  # not below /a
    assert fired(client, EventType.NODE_CHILDREN_CHANGED, "/") == set()
    assert client.remove_watcher(WatchKind.RECURSIVE, "/a", "rec-a") is True
    assert fired(client, EventType.NODE_DELETED, "/a") == {"pers", "rec-root"}


def test_reconnect_resumes_session_and_restores_watches():
    client = ClientProtocol(10000, auth=[("digest", b"u:p")])
    server, events = handshake(client)
    assert events == [] and client.phase is Phase.AUTHENTICATING
    ((header, packet),) = server.requests()
    assert header.xid == XID_AUTH and packet.scheme == "digest"
    assert client.receive_data(wire.encode_reply(XID_AUTH, 0, 0)) == [p.Connected(0x1234, 9000, False, True)]
    register(client, WatchKind.DATA, "/d", "d")
    register(client, WatchKind.EXIST, "/e", "e", err=Code.NO_NODE)
    xid = client.request(OpCode.addWatch, None, "r", (WatchKind.RECURSIVE, "/r", "r"))
    client.receive_data(wire.encode_reply(xid, 42, 0, ErrorResponse(0)))
    client.request(OpCode.getData, GetDataRequest("/lost"), "in-flight")
    assert client.connection_lost() == ["in-flight"]
    assert client.phase is Phase.DISCONNECTED
    server, events = handshake(client)
    assert server.connect_request.session_id == 0x1234 and server.connect_request.last_zxid_seen == 42
    assert server.connect_request.passwd == PASSWD
    reqs = server.requests()
    assert [h.xid for h, _ in reqs] == [XID_AUTH, XID_SET_WATCHES]  # credentials first, then watches
    header, sw = reqs[1]
    assert header.type == OpCode.setWatches2 and sw == SetWatches2(42, ["/d"], ["/e"], [], [], ["/r"])
    client.receive_data(wire.encode_reply(XID_AUTH, 0, 0))
    assert client.phase is Phase.CONNECTED


def test_expiry_drops_session_and_watches():
    client = ClientProtocol(10000)
    handshake(client)
    register(client, WatchKind.DATA, "/d", "d")
    client.connection_lost()
    client.start_connection()
    client.data_to_send()
    events = client.receive_data(wire.encode_connect_response(ConnectResponse(0, 0, 0, bytes(16))))
    assert events == [p.SessionExpired(("d",))]
    assert client.session_id == 0 and client.phase is Phase.DISCONNECTED
    _, events = handshake(client, session_id=0x99)
    assert events == [p.Connected(0x99, 9000, False, True)]


def test_auth_failure_is_terminal():
    client = ClientProtocol(10000, auth=[("bogus", b"x")])
    handshake(client)
    assert client.receive_data(wire.encode_reply(XID_AUTH, 0, Code.AUTH_FAILED)) == [p.AuthFailed("bogus")]
    assert client.phase is Phase.CLOSED


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(list(WatchKind)), st.text("abc", min_size=1, max_size=40000)), max_size=30))
def test_set_watches_batches(watches):
    client = ClientProtocol(10000)
    handshake(client)
    for i, (kind, name) in enumerate(watches):
        path = f"/{i}{name}"
        client._add_watcher(kind, path, i)
    client.connection_lost()
    server, _ = handshake(client)
    seen: dict[WatchKind, list[str]] = {k: [] for k in WatchKind}
    for header, record in server.requests():
        assert header.xid == XID_SET_WATCHES
        if isinstance(record, SetWatches) and header.type == OpCode.setWatches:
            fields = (record.data_watches, record.exist_watches, record.child_watches, (), ())
        else:
            assert isinstance(record, SetWatches2)
            fields = (record.data_watches, record.exist_watches, record.child_watches,
                      record.persistent_watches, record.persistent_recursive_watches)  # fmt: skip
        total = sum(len(path) for paths in fields for path in paths)
        longest = max((len(path) for paths in fields for path in paths), default=0)
        assert total < p.SET_WATCHES_MAX_LENGTH + longest
        order = (WatchKind.DATA, WatchKind.EXIST, WatchKind.CHILD, WatchKind.PERSISTENT, WatchKind.RECURSIVE)
        for kind, paths in zip(order, fields, strict=True):
            seen[kind] += paths
    for kind in WatchKind:
        assert sorted(seen[kind]) == sorted(client.watch_paths(kind))
