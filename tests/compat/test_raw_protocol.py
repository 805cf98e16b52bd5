"""The wire protocol where kazoo cannot reach: paths kazoo would refuse, null data, reply
header zxids, multi and multiRead sub-results, pipelining, pings, malformed and oversized
requests, closeSession."""

from __future__ import annotations

import struct

import pytest
from kazoo.exceptions import (
    AuthFailedError,
    BadArgumentsError,
    ConnectionLoss,
    InvalidACLError,
    MarshallingError,
    NodeExistsError,
    NoNodeError,
)
from kazoo.security import OPEN_ACL_UNSAFE

from tests.compat.rawzk import (
    PING_XID,
    CreateFlag,
    MultiError,
    Op,
    Writer,
    create_body,
    multi_body,
    multi_check,
    multi_create,
    multi_delete,
    multi_get_children,
    multi_get_data,
    multi_set,
    path_body,
    path_watch_body,
    read_multi_response,
    read_stat,
)

# --- paths -----------------------------------------------------------------------------------

# Names that are invalid in any position (PathUtils.validatePath): control characters,
# U+007F-U+009F, U+D800-U+F8FF (so any character outside the BMP, which Java holds as a
# surrogate pair, and the private-use area), U+FFF0-U+FFFF, and "." / ".." components.
BAD_NAMES = ["a\x00b", "a\x01", "\x1f", "\x7f", "\x9f", "\ue000", "\uf8ff", "\ufff0", "\uffff", "emoji-\U0001f600", ".", ".."]
GOOD_NAMES = [" ", "a b", ".x", "x.", "...", "é", "\u2000", "\ud7ff", "\uf900", "\uffef", "zookeeper", "-", "0000000001"]


@pytest.mark.parametrize("name", BAD_NAMES, ids=[repr(n) for n in BAD_NAMES])
def test_create_with_invalid_name_is_bad_arguments(raw_factory, zk_root, name):
    with pytest.raises(BadArgumentsError):
        raw_factory().create(f"{zk_root}/{name}")


@pytest.mark.parametrize("name", GOOD_NAMES, ids=[repr(n) for n in GOOD_NAMES])
def test_create_with_unusual_valid_name(raw_factory, zk_root, name):
    client = raw_factory()
    assert client.create(f"{zk_root}/{name}") == f"{zk_root}/{name}"
    assert client.get_children(zk_root) == [name]


@pytest.mark.parametrize("suffix", ["/", "/x/", "/./x", "/x/.", "/x/..", "/x\x00y"], ids=repr)
def test_set_with_invalid_path_is_bad_arguments(raw_factory, zk_root, suffix):
    with pytest.raises(BadArgumentsError):
        raw_factory().set(f"{zk_root}{suffix}", b"x")


@pytest.mark.parametrize("path", ["", "a"], ids=repr)
def test_paths_without_leading_slash(raw_factory, path):
    client = raw_factory()
    with pytest.raises(BadArgumentsError):
        client.create(path)
    with pytest.raises(BadArgumentsError):
        client.set(path, b"x")
    with pytest.raises(BadArgumentsError):
        client.delete(path)


def test_trailing_slash_create_is_bad_arguments(raw_factory, zk_root):
    with pytest.raises(BadArgumentsError):
        raw_factory().create(f"{zk_root}/")


def test_create_under_malformed_parent_is_no_node(raw_factory, zk_root):
    """ZooKeeper looks the parent up before validating the whole path: '/r//x' has parent
    '/r/', which does not exist, so the answer is NoNode, not BadArguments."""
    client = raw_factory()
    for path in (f"{zk_root}//x", f"{zk_root}/./x", f"{zk_root}/../x", f"{zk_root[1:]}/x"):
        with pytest.raises(NoNodeError):
            client.create(path)


def test_delete_of_malformed_path_is_no_node(raw_factory, zk_root):
    """delete validates only the parent part; the node lookup then fails."""
    client = raw_factory()
    for path in (f"{zk_root}/", f"{zk_root}/.", f"{zk_root}//x"):
        with pytest.raises(NoNodeError):
            client.delete(path)
    with pytest.raises(BadArgumentsError):
        client.delete(f"{zk_root}/a\x00b")


@pytest.mark.parametrize("suffix", ["/", "//x", "/.", "/..", "/x/"], ids=repr)
def test_reads_of_malformed_paths_find_nothing(raw_factory, zk_root, suffix):
    client = raw_factory()
    path = f"{zk_root}{suffix}"
    assert client.exists(path) is None
    with pytest.raises(NoNodeError):
        client.get(path)
    with pytest.raises(NoNodeError):
        client.get_children(path)


def test_exists_with_nul_is_bad_arguments(raw_factory, zk_root):
    with pytest.raises(BadArgumentsError):
        raw_factory().exists(f"{zk_root}/a\x00b")


def test_invalid_utf8_path_is_bad_arguments(raw_factory, zk_root):
    """Java decodes bad UTF-8 to U+FFFD, which PathUtils refuses."""
    client = raw_factory()
    body = Writer().raw_string(f"{zk_root}/".encode() + b"\xff\xfe").buffer(b"").acls(OPEN_ACL_UNSAFE).int(0).bytes()
    _zxid, err, _r = client.call_raw(Op.create, body)
    assert err == BadArgumentsError.code
    assert client.get_children(zk_root) == []


def test_root_cannot_be_deleted_or_recreated(raw_factory):
    client = raw_factory()
    with pytest.raises(BadArgumentsError):
        client.delete("/")
    with pytest.raises(NodeExistsError):
        client.create("/")


def test_zookeeper_subtree(raw_factory):
    client = raw_factory()
    assert {"config", "quota"} <= set(client.get_children("/zookeeper"))
    with pytest.raises(BadArgumentsError):
        client.delete("/zookeeper")
    with pytest.raises(NodeExistsError):
        client.create("/zookeeper")


# --- data ------------------------------------------------------------------------------------


def test_null_data_is_kept_apart_from_empty(raw_factory, zk_root):
    client = raw_factory()
    client.create(f"{zk_root}/null", None)
    client.create(f"{zk_root}/empty", b"")
    null_data, null_stat = client.get(f"{zk_root}/null")
    empty_data, empty_stat = client.get(f"{zk_root}/empty")
    assert (null_data, null_stat.dataLength) == (None, 0)
    assert (empty_data, empty_stat.dataLength) == (b"", 0)
    client.set(f"{zk_root}/empty", None)
    assert client.get(f"{zk_root}/empty")[0] is None
    client.set(f"{zk_root}/null", b"")
    assert client.get(f"{zk_root}/null")[0] == b""


def test_null_acl_is_invalid(raw_factory, zk_root):
    client = raw_factory()
    body = Writer().string(f"{zk_root}/a").buffer(b"").acls(None).int(0).bytes()
    _zxid, err, _r = client.call_raw(Op.create, body)
    assert err == InvalidACLError.code


# --- reply headers ------------------------------------------------------------------------------


def test_reply_zxids(raw_factory, zk_root):
    client = raw_factory()
    zxid, err, r = client.call_raw(Op.create2, create_body(f"{zk_root}/a", b"", OPEN_ACL_UNSAFE, 0))
    r.string()
    stat = read_stat(r)
    assert err == 0 and zxid == stat.czxid  # a write answers with its own zxid
    read_zxid, err, _r = client.call_raw(Op.exists, path_watch_body(f"{zk_root}/a", False))
    assert err == 0 and read_zxid == zxid  # a read with the last zxid applied
    missing_zxid, err, _r = client.call_raw(Op.exists, path_watch_body(f"{zk_root}/nope", False))
    assert err == NoNodeError.code and missing_zxid == zxid
    sync_zxid, err, _r = client.call_raw(Op.sync, path_body("/"))
    assert err == 0 and sync_zxid == zxid


def test_failed_write_answers_with_a_zxid_not_behind(raw_factory, zk_root):
    """ZooKeeper turns a failed write into an error transaction with a zxid of its own; we
    only ask that the reply zxid does not go backwards and that the next write is above it."""
    client = raw_factory()
    ok_zxid, _err, _r = client.call_raw(Op.create, create_body(f"{zk_root}/a", b"", OPEN_ACL_UNSAFE, 0))
    failed_zxid, err, _r = client.call_raw(Op.create, create_body(f"{zk_root}/a", b"", OPEN_ACL_UNSAFE, 0))
    assert err == NodeExistsError.code and failed_zxid >= ok_zxid
    next_zxid, err, _r = client.call_raw(Op.create, create_body(f"{zk_root}/b", b"", OPEN_ACL_UNSAFE, 0))
    assert err == 0 and next_zxid > failed_zxid


def test_pipelined_requests_answered_in_order(raw_factory, zk_root):
    client = raw_factory()
    xids = []
    for i in range(40):
        xids.append(client.send(Op.create, create_body(f"{zk_root}/n{i}", b"", OPEN_ACL_UNSAFE, 0)))
        xids.append(client.send(Op.exists, path_watch_body(f"{zk_root}/n{i}", False)))
        xids.append(client.send(Op.getChildren, path_watch_body(zk_root, False)))
    seen_zxids = []
    for index, xid in enumerate(xids):
        zxid, err, r = client.reply(xid)  # asserts the xid order
        assert err == 0
        if index % 3 == 2:  # the children list already holds every node created before it
            assert len(r.strings()) == index // 3 + 1
        seen_zxids.append(zxid)
    assert seen_zxids == sorted(seen_zxids)


def test_ping_reply(raw_factory):
    client = raw_factory()
    for request_xid in (PING_XID, 77):  # the reply is always xid -2
        client.send(Op.ping, b"", xid=request_xid)
        frame = client._read_frame(10.0)
        xid, _zxid, err = struct.unpack_from("!iqi", frame)
        assert (xid, err, len(frame)) == (PING_XID, 0, 16)


def test_connect_response_fields(raw_factory):
    client = raw_factory(timeout_ms=12000)
    assert client.protocol_version == 0
    assert client.negotiated_timeout_ms == 12000
    assert client.session_id != 0 and len(client.passwd) == 16
    assert client.read_only is False


def test_close_session_reply_then_disconnect(raw_factory):
    client = raw_factory()
    _zxid, err, r = client.call_raw(Op.closeSession, b"")
    assert err == 0 and r.remaining() == 0
    with pytest.raises((ConnectionLoss, OSError)):
        client._read_frame(10.0)


# --- malformed requests --------------------------------------------------------------------------


def test_truncated_request_body_is_marshalling_error(raw_factory):
    client = raw_factory()
    _zxid, err, r = client.call_raw(Op.getData, b"\x00\x00")
    assert err == MarshallingError.code and r.remaining() == 0
    assert client.exists("/") is not None  # the connection stays usable


def test_unknown_opcode_is_unimplemented(raw_factory):
    client = raw_factory()
    xid = client.send(99, b"")
    frame = client._read_frame(10.0)
    got_xid, _zxid, err = struct.unpack_from("!iqi", frame)
    assert (got_xid, err) == (xid, -6)


def test_oversized_request_closes_connection(raw_factory, zk_root):
    """jute.maxbuffer is 0xfffff: a frame longer than that is not read; the connection goes."""
    client = raw_factory()
    with pytest.raises((ConnectionLoss, OSError)):
        client.create(f"{zk_root}/big", b"x" * (1024 * 1024))
    assert raw_factory().get_children(zk_root) == []


def test_failed_auth_closes_connection(raw_factory):
    client = raw_factory()
    with pytest.raises(AuthFailedError):
        client.add_auth("nosuchscheme", "x")
    with pytest.raises((ConnectionLoss, OSError)):
        client.exists("/")


# --- multi on the wire ------------------------------------------------------------------------------


def test_multi_header_error_is_zero_even_when_an_op_fails(raw_factory, zk_root):
    client = raw_factory()
    _zxid, err, r = client.call_raw(Op.multi, multi_body([multi_create(f"{zk_root}/a"), multi_check(f"{zk_root}/nope", 0)]))
    assert err == 0
    assert read_multi_response(r) == [MultiError(0), MultiError(NoNodeError.code)]


def test_multi_sub_results(raw_factory, zk_root):
    client = raw_factory()
    client.create(f"{zk_root}/x", b"1")
    results = client.multi(
        [
            multi_create(f"{zk_root}/a", b"", flags=CreateFlag.PERSISTENT_SEQUENTIAL),
            multi_set(f"{zk_root}/x", b"22", version=0),
            multi_check(f"{zk_root}/x", 1),
            multi_delete(f"{zk_root}/x", version=1),
            multi_create(f"{zk_root}/c2", op=Op.create2),
        ]
    )
    assert results[0] == f"{zk_root}/a0000000001"
    assert results[1].version == 1 and results[1].dataLength == 2
    assert results[2:4] == [True, True]
    assert results[4] == f"{zk_root}/c2"  # create2 inside a multi answers like create


def test_multi_with_invalid_path_and_ttl(raw_factory, zk_root):
    client = raw_factory()
    assert client.multi([multi_create("bad"), multi_create(f"{zk_root}/ok")]) == [
        MultiError(BadArgumentsError.code),
        MultiError(-2),
    ]
    assert client.multi([multi_create(f"{zk_root}/t", flags=CreateFlag.PERSISTENT_WITH_TTL, ttl=0)]) == [
        MultiError(BadArgumentsError.code)
    ]


def test_multi_refuses_read_ops(raw_factory, zk_root):
    client = raw_factory()
    _zxid, err, r = client.call_raw(Op.multi, multi_body([multi_get_data(zk_root)]))
    assert err == MarshallingError.code and r.remaining() == 0


def test_multi_read(raw_factory, zk_root):
    client = raw_factory()
    client.create(f"{zk_root}/a", b"data")
    client.create(f"{zk_root}/a/kid")
    results = client.multi_read(
        [
            multi_get_data(f"{zk_root}/a"),
            multi_get_children(f"{zk_root}/a"),
            multi_get_data(f"{zk_root}/nope"),
            multi_get_children(f"{zk_root}/nope"),
        ]
    )
    data, stat = results[0]
    assert data == b"data" and stat.numChildren == 1
    assert results[1] == ["kid"]
    # each read fails on its own; nothing is rolled back
    assert results[2:] == [MultiError(NoNodeError.code), MultiError(NoNodeError.code)]


def test_multi_read_refuses_writes(raw_factory, zk_root):
    client = raw_factory()
    _zxid, err, _r = client.call_raw(Op.multiRead, multi_body([multi_create(f"{zk_root}/w")]))
    assert err == MarshallingError.code
    assert client.exists(f"{zk_root}/w") is None
