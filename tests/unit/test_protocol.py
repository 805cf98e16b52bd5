"""The client-protocol codec: every record round-trips, frames survive any chunking, golden
bytes match zookeeper.jute, malformed frames raise ProtocolError, and kazoo agrees with us."""

from __future__ import annotations

import inspect
import struct

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ccore.znodes.records as rec
from ccore.znodes.acl import ACL, Id
from ccore.znodes.constants import MAX_BUFFER, XID_AUTH, XID_PING, XID_SET_WATCHES, OpCode
from ccore.znodes.errors import Code
from ccore.znodes.jute import ProtocolError, Reader, Writer
from ccore.znodes.protocol import (
    REQUEST_RECORDS,
    RESPONSE_RECORDS,
    BadRequest,
    FrameReader,
    FrameTooLarge,
    UnknownOpcode,
    decode_connect_request,
    decode_connect_response,
    decode_reply,
    decode_request,
    encode_connect_request,
    encode_connect_response,
    encode_reply,
    encode_request,
    encode_watch_event,
    frame,
)
from ccore.znodes.stat import Stat

ints = st.integers(-(2**31), 2**31 - 1)
longs = st.integers(-(2**63), 2**63 - 1)
texts = st.text(st.characters(codec="utf-8"), max_size=16)
maybe_texts = st.none() | texts  # ReconfigRequest's fields: null is "not given"
datas = st.none() | st.binary(max_size=48)
bools = st.booleans()
stats = st.builds(Stat, longs, longs, longs, longs, ints, ints, ints, longs, ints, ints, longs)
acls = st.lists(st.builds(ACL, ints, st.builds(Id, texts, texts)), max_size=3).map(tuple)
strs = st.lists(texts, max_size=4).map(tuple)

FIELDS: dict[type, tuple[st.SearchStrategy, ...]] = {
    rec.ConnectRequest: (ints, longs, ints, longs, datas, bools),
    rec.ConnectResponse: (ints, ints, longs, datas, bools),
    rec.RequestHeader: (ints, ints),
    rec.ReplyHeader: (ints, longs, ints),
    rec.WatcherEvent: (ints, ints, texts),
    rec.ErrorResponse: (ints,),
    rec.AuthPacket: (ints, texts, datas),
    rec.SetWatches: (longs, strs, strs, strs),
    rec.SetWatches2: (longs, strs, strs, strs, strs, strs),
    rec.ClientInfo: (texts, texts),
    rec.CreateRequest: (texts, datas, acls, ints),
    rec.CreateTTLRequest: (texts, datas, acls, ints, longs),
    rec.DeleteRequest: (texts, ints),
    rec.DeleteContainerRequest: (texts,),
    rec.ExistsRequest: (texts, bools),
    rec.GetDataRequest: (texts, bools),
    rec.SetDataRequest: (texts, datas, ints),
    rec.GetACLRequest: (texts,),
    rec.SetACLRequest: (texts, acls, ints),
    rec.GetChildrenRequest: (texts, bools),
    rec.GetChildren2Request: (texts, bools),
    rec.SyncRequest: (texts,),
    rec.CheckVersionRequest: (texts, ints),
    rec.AddWatchRequest: (texts, ints),
    rec.RemoveWatchesRequest: (texts, ints),
    rec.CheckWatchesRequest: (texts, ints),
    rec.GetEphemeralsRequest: (texts,),
    rec.GetAllChildrenNumberRequest: (texts,),
    rec.ReconfigRequest: (maybe_texts, maybe_texts, maybe_texts, longs),
    rec.CreateResponse: (texts,),
    rec.Create2Response: (texts, stats),
    rec.ExistsResponse: (stats,),
    rec.GetDataResponse: (datas, stats),
    rec.SetDataResponse: (stats,),
    rec.GetACLResponse: (acls, stats),
    rec.SetACLResponse: (stats,),
    rec.GetChildrenResponse: (strs,),
    rec.GetChildren2Response: (strs, stats),
    rec.SyncResponse: (texts,),
    rec.GetEphemeralsResponse: (strs,),
    rec.GetAllChildrenNumberResponse: (ints,),
    rec.CreateResult: (texts,),
    rec.Create2Result: (texts, stats),
    rec.DeleteResult: (),
    rec.CheckResult: (),
    rec.SetDataResult: (stats,),
    rec.GetDataResult: (datas, stats),
    rec.GetChildrenResult: (strs,),
    rec.ErrorResult: (ints,),
}
STRATEGIES: dict[type, st.SearchStrategy] = {cls: st.builds(cls, *f) for cls, f in FIELDS.items()}
STRATEGIES[rec.WhoAmIResponse] = st.builds(rec.WhoAmIResponse, st.lists(STRATEGIES[rec.ClientInfo], max_size=3))


def multi_ops(allowed: set[int] | None = None) -> st.SearchStrategy:
    ops = [
        st.tuples(st.just(OpCode(op)), STRATEGIES[cls])
        for op, cls in rec.MULTI_OP_RECORDS.items()
        if allowed is None or op in allowed
    ]
    return st.lists(st.one_of(ops), max_size=5)


WRITE_OPS = {OpCode.create, OpCode.create2, OpCode.createContainer, OpCode.createTTL,
             OpCode.delete, OpCode.setData, OpCode.check}  # fmt: skip
READ_OPS = {OpCode.getData, OpCode.getChildren}
results = st.one_of([STRATEGIES[cls] for cls in rec.MULTI_RESULT_RECORDS.values()])
STRATEGIES[rec.MultiRequest] = st.builds(rec.MultiRequest, multi_ops())
STRATEGIES[rec.MultiResponse] = st.builds(rec.MultiResponse, st.lists(results, max_size=5))


def request_body(op: int) -> st.SearchStrategy:
    if op == OpCode.multi:
        return st.builds(rec.MultiRequest, multi_ops(WRITE_OPS))
    if op == OpCode.multiRead:
        return st.builds(rec.MultiRequest, multi_ops(READ_OPS))
    cls = REQUEST_RECORDS[op]
    return st.none() if cls is None else STRATEGIES[cls]


requests = st.sampled_from(sorted(REQUEST_RECORDS)).flatmap(lambda op: st.tuples(st.just(op), ints, request_body(op)))
replies = st.sampled_from(sorted(RESPONSE_RECORDS)).flatmap(
    lambda op: st.tuples(
        st.just(op),
        st.integers(0, 2**31 - 1),
        longs,
        st.none() if RESPONSE_RECORDS[op] is None else STRATEGIES[RESPONSE_RECORDS[op]],
    )
)


def unframe(data: bytes) -> bytes:
    fr = FrameReader()
    fr.feed(data)
    payload = fr.next_frame()
    assert payload is not None and fr.buffered == 0
    return payload


def encoded(record: rec.Record) -> bytes:
    w = Writer()
    record.write(w)
    return w.to_bytes()


# --- records ---------------------------------------------------------------------------------


def test_every_record_has_a_strategy() -> None:
    records = {
        obj for obj in vars(rec).values() if inspect.isclass(obj) and issubclass(obj, rec.Record) and obj is not rec.Record
    }
    assert records == set(STRATEGIES)


@pytest.mark.parametrize("cls", sorted(STRATEGIES, key=lambda c: c.__name__))
@settings(max_examples=40)
@given(data=st.data())
def test_record_round_trip(cls: type, data: st.DataObject) -> None:
    record = data.draw(STRATEGIES[cls])
    raw = encoded(record)
    r = Reader(raw)
    assert cls.read(r) == record
    assert r.remaining == 0
    hash(record)  # tuples, not lists: records can be set members and dict keys
    # Every strict prefix fails cleanly, except that the connect records' last byte is optional.
    optional_tail = cls in (rec.ConnectRequest, rec.ConnectResponse)
    for cut in range(len(raw)):
        if optional_tail and cut == len(raw) - 1:
            assert cls.read(Reader(raw[:cut])) == attrs.evolve(record, read_only=False)
            continue
        with pytest.raises(ProtocolError):
            cls.read(Reader(raw[:cut]))


def test_sequences_become_tuples() -> None:
    req = rec.CreateRequest("/a", b"", [ACL(31, Id("world", "anyone"))], 0)
    assert req.acl == (ACL(31, Id("world", "anyone")),)
    assert hash(req) == hash(rec.CreateRequest("/a", b"", (ACL(31, Id("world", "anyone")),), 0))


# --- framing ---------------------------------------------------------------------------------


@given(st.lists(st.binary(max_size=40), max_size=8), st.data())
def test_frames_survive_any_chunking(payloads: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(frame(p) for p in payloads)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    fr = FrameReader()
    got = []
    for chunk in chunks:
        fr.feed(chunk)
        while (payload := fr.next_frame()) is not None:
            got.append(payload)
    assert got == payloads
    assert fr.buffered == 0


def test_frame_limits() -> None:
    fr = FrameReader(max_frame=8)
    fr.feed(frame(b"12345678"))
    assert fr.next_frame() == b"12345678"
    fr.feed(struct.pack(">i", 9))
    with pytest.raises(FrameTooLarge, match="9"):
        fr.next_frame()
    with pytest.raises(FrameTooLarge):  # the stream stays poisoned
        fr.next_frame()
    fr = FrameReader()
    fr.feed(struct.pack(">i", -1))
    with pytest.raises(FrameTooLarge) as info:
        fr.next_frame()
    assert info.value.size == -1 and isinstance(info.value, ProtocolError)
    # A four-letter word is not a plausible frame: "ruok" reads as 1920298859 bytes.
    fr = FrameReader()
    fr.feed(b"ruok")
    with pytest.raises(FrameTooLarge, match=str(MAX_BUFFER)):
        fr.next_frame()


def test_empty_frame_is_a_frame() -> None:
    fr = FrameReader()
    fr.feed(b"\x00\x00\x00\x00\x00\x00")
    assert fr.next_frame() == b""
    assert fr.next_frame() is None
    assert fr.buffered == 2


# --- requests and replies ----------------------------------------------------------------------


@given(requests)
def test_request_round_trip(request: tuple[int, int, rec.Record | None]) -> None:
    op, xid, body = request
    header, got = decode_request(unframe(encode_request(xid, op, body)))
    assert header == rec.RequestHeader(xid, op)
    assert type(header.type) is OpCode
    assert got == body


@settings(max_examples=60)
@given(requests)
def test_truncated_request_raises_protocol_error(
    request: tuple[int, int, rec.Record | None],
) -> None:
    op, xid, body = request
    payload = unframe(encode_request(xid, op, body))
    for cut in range(len(payload)):
        with pytest.raises(ProtocolError) as info:
            decode_request(payload[:cut])
        if cut >= 8:  # the header parsed: the server can answer this xid
            assert isinstance(info.value, BadRequest)
            assert info.value.xid == xid and info.value.code == Code.MARSHALLING_ERROR


@given(replies)
def test_reply_round_trip(reply: tuple[int, int, int, rec.Record | None]) -> None:
    op, xid, zxid, body = reply
    header, got = decode_reply(unframe(encode_reply(xid, zxid, 0, body)), op)
    assert header == rec.ReplyHeader(xid, zxid, 0)
    assert got == body


@settings(max_examples=60)
@given(replies)
def test_truncated_reply_raises_protocol_error(
    reply: tuple[int, int, int, rec.Record | None],
) -> None:
    op, xid, zxid, body = reply
    payload = unframe(encode_reply(xid, zxid, 0, body))
    for cut in range(len(payload)):
        with pytest.raises(ProtocolError):
            decode_reply(payload[:cut], op)


@given(st.binary(max_size=80), st.sampled_from(sorted(RESPONSE_RECORDS)))
def test_garbage_raises_only_protocol_error(data: bytes, op: int) -> None:
    for decode in (decode_request, decode_connect_request, decode_connect_response,
                   lambda p: decode_reply(p, op)):  # fmt: skip
        try:
            decode(data)
        except ProtocolError:
            pass


@given(STRATEGIES[rec.ConnectRequest], STRATEGIES[rec.ConnectResponse])
def test_connect_round_trip(req: rec.ConnectRequest, resp: rec.ConnectResponse) -> None:
    assert decode_connect_request(unframe(encode_connect_request(req))) == req
    assert decode_connect_response(unframe(encode_connect_response(resp))) == resp


def test_connect_without_read_only_byte() -> None:
    # What a 3.3 client sends: the ConnectRequest without its trailing boolean.
    payload = unframe(encode_connect_request(rec.ConnectRequest(0, 5, 10000, 0, b"", True)))
    assert decode_connect_request(payload[:-1]) == rec.ConnectRequest(0, 5, 10000, 0, b"", False)


def test_unknown_opcode_carries_xid() -> None:
    for op in (0, 102, -10, -1, 999):
        with pytest.raises(UnknownOpcode) as info:
            decode_request(struct.pack(">ii", 42, op))
        assert info.value.xid == 42 and info.value.op == op
        assert info.value.code == Code.UNIMPLEMENTED
    with pytest.raises(ProtocolError):
        decode_request(b"\x00\x00\x00\x2a\x00")  # no whole header: nothing to answer


def test_bodyless_requests() -> None:
    for op in (OpCode.ping, OpCode.closeSession, OpCode.whoAmI):
        assert decode_request(struct.pack(">ii", 3, op)) == (rec.RequestHeader(3, op), None)


def test_multi_kinds_are_not_mixed() -> None:
    read = (OpCode.getData, rec.GetDataRequest("/a", False))
    write = (OpCode.delete, rec.DeleteRequest("/a", -1))
    for op, ops in ((OpCode.multi, [write, read]), (OpCode.multiRead, [read, write])):
        payload = unframe(encode_request(9, op, rec.MultiRequest(ops)))
        with pytest.raises(BadRequest, match="not allowed") as info:
            decode_request(payload)
        assert info.value.xid == 9
    # An op type that never appears inside a multi is malformed.
    payload = struct.pack(">ii", 9, OpCode.multi) + struct.pack(">i?i", OpCode.sync, False, -1)
    with pytest.raises(BadRequest):
        decode_request(payload + encoded(rec.SyncRequest("/")))


def test_special_xids() -> None:
    for xid in (XID_PING, XID_AUTH, XID_SET_WATCHES):
        assert decode_reply(unframe(encode_reply(xid, 7, 0)), None) == (
            rec.ReplyHeader(xid, 7, 0),
            None,
        )
    event = unframe(encode_watch_event(12, 3, 3, "/a/b"))
    assert decode_reply(event, OpCode.getData) == (
        rec.ReplyHeader(-1, 12, 0),
        rec.WatcherEvent(3, 3, "/a/b"),
    )
    with pytest.raises(ProtocolError, match="no request is pending"):
        decode_reply(unframe(encode_reply(5, 7, 0)), None)


def test_error_replies_have_no_body() -> None:
    stat = Stat(1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1)
    # A server that sends a body anyway (ZooKeeper does for create) is ignored, as Java does.
    payload = unframe(encode_reply(5, 7, Code.NODE_EXISTS, rec.CreateResponse("/a")))
    assert decode_reply(payload, OpCode.create) == (rec.ReplyHeader(5, 7, -110), None)
    payload = unframe(encode_reply(5, 7, Code.NO_NODE))
    assert decode_reply(payload, OpCode.exists) == (rec.ReplyHeader(5, 7, -101), None)
    assert decode_reply(payload, OpCode.multi) == (rec.ReplyHeader(5, 7, -101), None)
    # ... but a multi's results are decoded whenever they follow.
    multi = rec.MultiResponse([rec.ErrorResult(0), rec.ErrorResult(-101)])
    payload = unframe(encode_reply(5, 7, Code.NO_NODE, multi))
    assert decode_reply(payload, OpCode.multi) == (rec.ReplyHeader(5, 7, -101), multi)
    payload = unframe(encode_reply(5, 7, 0, rec.SetDataResponse(stat)))
    assert decode_reply(payload, OpCode.setData)[1] == rec.SetDataResponse(stat)


# --- golden bytes, by hand from zookeeper.jute --------------------------------------------------


def test_golden_connect_request() -> None:
    req = rec.ConnectRequest(0, 0x1122, 30000, 0x0102030405060708, bytes(16), True)
    expected = bytes.fromhex(
        "0000002d"  # frame length 45
        "00000000"  # protocolVersion
        "0000000000001122"  # lastZxidSeen
        "00007530"  # timeOut 30000
        "0102030405060708"  # sessionId
        "00000010" + "00" * 16 +  # passwd
        "01"  # readOnly
    )  # fmt: skip
    assert encode_connect_request(req) == expected
    assert decode_connect_request(expected[4:]) == req


def test_golden_create_request_with_acl() -> None:
    body = rec.CreateRequest("/a", b"hi", [ACL(31, Id("world", "anyone"))], 3)
    expected = bytes.fromhex(
        "00000033"  # frame length 51
        "00000001" "00000001"  # xid 1, create
        "00000002" "2f61"  # path "/a"
        "00000002" "6869"  # data "hi"
        "00000001"  # one ACL
        "0000001f" "00000005" "776f726c64" "00000006" "616e796f6e65"  # 31, world:anyone
        "00000003"  # EPHEMERAL_SEQUENTIAL
    )  # fmt: skip
    assert encode_request(1, OpCode.create, body) == expected
    assert decode_request(expected[4:]) == (rec.RequestHeader(1, OpCode.create), body)


def test_golden_failed_multi() -> None:
    # A multi whose second op failed with NODE_EXISTS: the first is reported rolled back (0),
    # and the reply header itself says OK, as ZooKeeper sends it.
    resp = rec.MultiResponse([rec.ErrorResult(0), rec.ErrorResult(Code.NODE_EXISTS)])
    expected = bytes.fromhex(
        "00000033"  # frame length 51: 16 header + 13 + 13 + 9
        "00000007" "0000000000000100" "00000000"  # xid 7, zxid 0x100, err 0
        "ffffffff" "00" "00000000" "00000000"  # MultiHeader(error, false, 0), ErrorResponse(0)
        "ffffffff" "00" "ffffff92" "ffffff92"  # MultiHeader(error, false, -110), ErrorResponse
        "ffffffff" "01" "ffffffff"  # MultiHeader(-1, true, -1)
    )  # fmt: skip
    assert encode_reply(7, 0x100, 0, resp) == expected
    assert decode_reply(expected[4:], OpCode.multi) == (rec.ReplyHeader(7, 0x100, 0), resp)


def test_golden_multi_request() -> None:
    body = rec.MultiRequest(
        [
            (OpCode.create, rec.CreateRequest("/a", None, [], 0)),
            (OpCode.delete, rec.DeleteRequest("/b", 2)),
        ]
    )
    expected = bytes.fromhex(
        "00000004" "0000000e"  # xid 4, multi
        "00000001" "00" "ffffffff"  # MultiHeader(create, false, -1)
        "00000002" "2f61" "ffffffff" "00000000" "00000000"  # "/a", null data, no ACL, flags 0
        "00000002" "00" "ffffffff"  # MultiHeader(delete, false, -1)
        "00000002" "2f62" "00000002"  # "/b", version 2
        "ffffffff" "01" "ffffffff"  # done
    )  # fmt: skip
    assert encode_request(4, OpCode.multi, body)[4:] == expected
    assert decode_request(expected)[1] == body


def test_golden_watch_event() -> None:
    expected = bytes.fromhex(
        "0000001e"  # frame length 30
        "ffffffff" "0000000000000005" "00000000"  # xid -1, zxid 5, err 0
        "00000001" "00000003" "00000002" "2f61"  # NodeCreated, SyncConnected, "/a"
    )  # fmt: skip
    assert encode_watch_event(5, 1, 3, "/a") == expected


# --- kazoo speaks the same protocol -----------------------------------------------------------

kz = pytest.importorskip("kazoo.protocol.serialization")
from kazoo import security as kz_security  # noqa: E402 - once importorskip has found kazoo
from kazoo.protocol.states import ZnodeStat  # noqa: E402

# kazoo writes "" as a null ustring, so its paths are never empty here; we read null as "".
kz_texts = st.text(st.characters(codec="utf-8"), min_size=1, max_size=16)
kz_datas = st.binary(max_size=48)
kz_acls = st.lists(st.builds(ACL, ints, st.builds(Id, kz_texts, kz_texts)), max_size=3)


def kazoo_request(xid: int, request: object) -> bytes:
    """The payload kazoo's connection frames for `request` (xid, type, body)."""
    return struct.pack(">ii", xid, request.type) + bytes(request.serialize())  # type: ignore[attr-defined]


def to_kazoo_acls(acl: list[ACL]) -> list[object]:
    return [kz_security.ACL(a.perms, kz_security.Id(a.id.scheme, a.id.id)) for a in acl]


@given(ints, longs, ints, longs, st.binary(max_size=16), bools)
def test_kazoo_connect_request(pv: int, zxid: int, timeout: int, sid: int, pw: bytes, ro: bool) -> None:
    raw = bytes(kz.Connect(pv, zxid, timeout, sid, pw, ro).serialize())
    assert decode_connect_request(raw) == rec.ConnectRequest(pv, zxid, timeout, sid, pw, ro)


@given(ints, ints, longs, st.binary(max_size=16), bools)
def test_kazoo_reads_our_connect_response(pv: int, timeout: int, sid: int, pw: bytes, ro: bool) -> None:
    raw = unframe(encode_connect_response(rec.ConnectResponse(pv, timeout, sid, pw, ro)))
    got, offset = kz.Connect.deserialize(raw, 0)
    assert (got.protocol_version, got.time_out, got.session_id, got.passwd, got.read_only) == (
        pv, timeout, sid, pw, ro,
    )  # fmt: skip
    assert offset == len(raw)


@given(kz_texts, kz_datas, kz_acls, st.integers(0, 6), st.integers(1, 2**31 - 1))
def test_kazoo_create_requests(path: str, data: bytes, acl: list[ACL], flags: int, xid: int) -> None:
    for kz_cls, op in ((kz.Create, OpCode.create), (kz.Create2, OpCode.create2)):
        raw = kazoo_request(xid, kz_cls(path, data, to_kazoo_acls(acl), flags))
        assert decode_request(raw) == (
            rec.RequestHeader(xid, op),
            rec.CreateRequest(path, data, acl, flags),
        )


@given(kz_texts, kz_datas, ints, bools, st.integers(1, 2**31 - 1))
def test_kazoo_simple_requests(path: str, data: bytes, version: int, watch: bool, xid: int) -> None:
    cases = [
        (kz.Delete(path, version), rec.DeleteRequest(path, version)),
        (kz.Exists(path, watch), rec.ExistsRequest(path, watch)),
        (kz.GetData(path, watch), rec.GetDataRequest(path, watch)),
        (kz.SetData(path, data, version), rec.SetDataRequest(path, data, version)),
        (kz.GetACL(path), rec.GetACLRequest(path)),
        (kz.GetChildren(path, watch), rec.GetChildrenRequest(path, watch)),
        (kz.GetChildren2(path, watch), rec.GetChildren2Request(path, watch)),
        (kz.Sync(path), rec.SyncRequest(path)),
        (kz.CheckVersion(path, version), rec.CheckVersionRequest(path, version)),
        (kz.Reconfig(path, path, path, 7), rec.ReconfigRequest(path, path, path, 7)),
        (kz.Auth(0, "digest", path), rec.AuthPacket(0, "digest", path.encode())),
        (kz.SetACL(path, to_kazoo_acls([ACL(1, Id("ip", path))]), version),
         rec.SetACLRequest(path, [ACL(1, Id("ip", path))], version)),
    ]  # fmt: skip
    for kz_req, ours in cases:
        header, body = decode_request(kazoo_request(xid, kz_req))
        assert header == rec.RequestHeader(xid, kz_req.type) and body == ours
    assert decode_request(kazoo_request(-2, kz.PingInstance)) == (rec.RequestHeader(-2, 11), None)
    assert decode_request(kazoo_request(xid, kz.CloseInstance))[1] is None


def test_kazoo_reconfig_fields_not_given_arrive_as_null() -> None:
    # ZooKeeper tells a null newMembers (incremental) from a given one (bulk); so do we.
    raw = kazoo_request(5, kz.Reconfig("server.4=h:1:2;2181", None, None, -1))
    assert decode_request(raw)[1] == rec.ReconfigRequest("server.4=h:1:2;2181", None, None, -1)
    ours = encode_request(6, OpCode.reconfig, rec.ReconfigRequest(None, "", "server.1=h:1:2", 0x100000002))
    assert decode_request(ours[4:])[1] == rec.ReconfigRequest(None, "", "server.1=h:1:2", 0x100000002)


def test_kazoo_empty_strings_arrive_as_null() -> None:
    # kazoo's CREATOR_ALL_ACL is auth:"" and it writes "" as a null ustring.
    raw = kazoo_request(1, kz.Create("/a", b"", [kz_security.ACL(31, kz_security.Id("auth", ""))], 0))
    assert decode_request(raw)[1] == rec.CreateRequest("/a", b"", [ACL(31, Id("auth", ""))], 0)


@given(kz_texts, kz_datas, ints, st.integers(1, 2**31 - 1))
def test_kazoo_transaction(path: str, data: bytes, version: int, xid: int) -> None:
    ops = [
        kz.Create(path, data, to_kazoo_acls([ACL(31, Id("world", "anyone"))]), 1),
        kz.Delete(path, version),
        kz.SetData(path, data, version),
        kz.CheckVersion(path, version),
    ]
    header, body = decode_request(kazoo_request(xid, kz.Transaction(ops)))
    assert header == rec.RequestHeader(xid, OpCode.multi)
    assert body == rec.MultiRequest([
        (OpCode.create, rec.CreateRequest(path, data, [ACL(31, Id("world", "anyone"))], 1)),
        (OpCode.delete, rec.DeleteRequest(path, version)),
        (OpCode.setData, rec.SetDataRequest(path, data, version)),
        (OpCode.check, rec.CheckVersionRequest(path, version)),
    ])  # fmt: skip


def kazoo_stat(stat: Stat) -> ZnodeStat:
    return ZnodeStat(*attrs.astuple(stat))


@given(kz_texts, kz_datas, stats, st.lists(kz_texts, max_size=4), kz_acls)
def test_kazoo_reads_our_responses(path: str, data: bytes, stat: Stat, children: list[str], acl: list[ACL]) -> None:
    def body(op: int, record: rec.Record) -> bytes:
        payload = unframe(encode_reply(3, 9, 0, record))
        header, offset = kz.ReplyHeader.deserialize(payload, 0)
        assert header == (3, 9, 0)
        return payload[offset:]

    assert kz.Create.deserialize(body(1, rec.CreateResponse(path)), 0) == path
    assert kz.Create2.deserialize(body(15, rec.Create2Response(path, stat)), 0) == (
        path,
        kazoo_stat(stat),
    )
    exists = kz.Exists.deserialize(body(3, rec.ExistsResponse(stat)), 0)
    assert exists == (kazoo_stat(stat) if stat.czxid != -1 else None)
    assert kz.GetData.deserialize(body(4, rec.GetDataResponse(data, stat)), 0) == (
        data,
        kazoo_stat(stat),
    )
    assert kz.SetData.deserialize(body(5, rec.SetDataResponse(stat)), 0) == kazoo_stat(stat)
    assert kz.SetACL.deserialize(body(7, rec.SetACLResponse(stat)), 0) == kazoo_stat(stat)
    assert kz.GetACL.deserialize(body(6, rec.GetACLResponse(acl, stat)), 0) == (
        to_kazoo_acls(acl),
        kazoo_stat(stat),
    )
    assert kz.GetChildren.deserialize(body(8, rec.GetChildrenResponse(children)), 0) == children
    assert kz.GetChildren2.deserialize(body(12, rec.GetChildren2Response(children, stat)), 0) == (
        children,
        kazoo_stat(stat),
    )
    assert kz.Sync.deserialize(body(9, rec.SyncResponse(path)), 0) == path
    assert kz.Reconfig.deserialize(body(16, rec.GetDataResponse(data, stat)), 0) == (
        data,
        kazoo_stat(stat),
    )


@given(kz_texts, stats)
def test_kazoo_reads_our_multi_response(path: str, stat: Stat) -> None:
    ok = rec.MultiResponse([rec.CreateResult(path), rec.DeleteResult(), rec.SetDataResult(stat), rec.CheckResult()])
    payload = unframe(encode_reply(3, 9, 0, ok))
    assert kz.Transaction.deserialize(payload, 16) == [path, True, kazoo_stat(stat), True]
    failed = rec.MultiResponse([rec.ErrorResult(0), rec.ErrorResult(Code.BAD_VERSION), rec.ErrorResult(-2)])
    got = kz.Transaction.deserialize(unframe(encode_reply(3, 9, 0, failed)), 16)
    from kazoo import exceptions as kz_exc

    assert [type(e) for e in got] == [
        kz_exc.RolledBackError,
        kz_exc.BadVersionError,
        kz_exc.RuntimeInconsistency,
    ]


@given(ints, ints, kz_texts, longs)
def test_kazoo_reads_our_watch_event(event_type: int, state: int, path: str, zxid: int) -> None:
    payload = unframe(encode_watch_event(zxid, event_type, state, path))
    header, offset = kz.ReplyHeader.deserialize(payload, 0)
    assert header == (-1, zxid, 0)
    event, end = kz.Watch.deserialize(payload, offset)
    assert tuple(event) == (event_type, state, path) and end == len(payload)
