"""The standalone server in-process: ordering, watches, sessions, expiry, bad input, 4lw."""

from __future__ import annotations

import struct

import pytest
import trio

from ccore.znodes import records as r
from ccore.znodes.acl import OPEN_ACL_UNSAFE
from ccore.znodes.constants import CreateMode, EventType, OpCode
from ccore.znodes.errors import Code
from tests.polling import wait_for

from .helpers import RawClient, start_server


async def four_letter(port: int, word: str) -> str:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(word.encode())
    out = b""
    with trio.fail_after(5):
        while chunk := await stream.receive_some(65536):
            out += chunk
    return out.decode()


async def test_replies_follow_request_order_and_reads_see_earlier_writes(nursery, tmp_path) -> None:
    server = await start_server(nursery, tmp_path)
    c = await RawClient.connect(server.port)
    xids = []
    for i in range(50):
        xids.append(await c.send(OpCode.create, r.CreateRequest(f"/n{i}", b"v", OPEN_ACL_UNSAFE, 0)))
        xids.append(await c.send(OpCode.getData, r.GetDataRequest(f"/n{i}", False)))
    for i, xid in enumerate(xids):
        header, body = await c.reply()
        assert header.xid == xid
        assert header.err == 0
        if i % 2:
            assert body.data == b"v"  # the read waited for the write before it


async def test_watch_event_arrives_before_the_reply_to_the_write(nursery, tmp_path) -> None:
    server = await start_server(nursery, tmp_path)
    c = await RawClient.connect(server.port)
    await c.create("/w", b"1")
    await c.call(OpCode.getData, r.GetDataRequest("/w", True))
    await c.call(OpCode.setData, r.SetDataRequest("/w", b"2", -1))
    kinds = [kind for kind, _ in c.log]
    assert kinds[-2:] == ["event", "reply"]
    assert c.events[-1].type == EventType.NODE_DATA_CHANGED and c.events[-1].path == "/w"


async def test_other_sessions_watches_and_persistent_recursive(nursery, tmp_path) -> None:
    server = await start_server(nursery, tmp_path)
    a = await RawClient.connect(server.port)
    b = await RawClient.connect(server.port)
    await a.create("/t")
    header, _ = await b.call(OpCode.addWatch, r.AddWatchRequest("/t", 1))
    assert header.err == 0
    await b.call(OpCode.exists, r.ExistsRequest("/t/x", True))
    await a.create("/t/x")
    await a.call(OpCode.setData, r.SetDataRequest("/t/x", b"d", -1))
    await a.call(OpCode.delete, r.DeleteRequest("/t/x", -1))
    await b.call(OpCode.sync, r.SyncRequest("/"))
    got = [(e.type, e.path) for e in b.events]
    # The exists watch and the recursive watch both hear the creation, once per connection.
    assert got == [
        (EventType.NODE_CREATED, "/t/x"),
        (EventType.NODE_DATA_CHANGED, "/t/x"),
        (EventType.NODE_DELETED, "/t/x"),
    ]
    header, _ = await b.call(OpCode.removeWatches, r.RemoveWatchesRequest("/t", 5))
    assert header.err == 0
    header, _ = await b.call(OpCode.removeWatches, r.RemoveWatchesRequest("/t", 5))
    assert header.err == Code.NO_WATCHER


async def test_session_expires_at_its_deadline_and_takes_its_ephemerals(nursery, tmp_path) -> None:
    server = await start_server(nursery, tmp_path)
    owner = await RawClient.connect(server.port, timeout_ms=2000)
    assert owner.timeout_ms == 2000
    header, _ = await owner.create("/lease", b"A", CreateMode.EPHEMERAL)
    assert header.err == 0
    watcher = await RawClient.connect(server.port, timeout_ms=4000)
    await watcher.call(OpCode.exists, r.ExistsRequest("/lease", True))
    silent_since = trio.current_time()  # the owner sends nothing from here on
    with trio.fail_after(5):
        while not watcher.events:
            await _ping(watcher)
    elapsed = trio.current_time() - silent_since
    assert watcher.events[0].type == EventType.NODE_DELETED
    # Not before the negotiated timeout, and no later than 10% after it. (The server last
    # heard from the owner when its create arrived, a moment before we saw the reply.)
    assert 2.0 - 0.05 <= elapsed <= 2.2, elapsed
    assert "/lease" not in server.tree.nodes
    # The expired session cannot be resumed.
    again = await RawClient.connect(server.port, session_id=owner.session_id, passwd=owner.passwd)
    assert again.timeout_ms == 0 and again.session_id == 0


async def _ping(c: RawClient) -> None:
    await c.send(OpCode.ping)
    await c.reply()
    await trio.sleep(0.005)


async def test_session_moves_to_a_new_connection_and_keeps_ephemerals(nursery, tmp_path) -> None:
    server = await start_server(nursery, tmp_path)
    first = await RawClient.connect(server.port)
    await first.create("/mine", b"", CreateMode.EPHEMERAL)
    second = await RawClient.connect(server.port, session_id=first.session_id, passwd=first.passwd)
    assert second.session_id == first.session_id
    header, body = await second.call(OpCode.getEphemerals, r.GetEphemeralsRequest("/"))
    assert body.ephemerals == ("/mine",)
    with pytest.raises(EOFError):  # the old connection is closed
        with trio.fail_after(2):
            await first.call(OpCode.ping)
    bad = await RawClient.connect(server.port, session_id=first.session_id, passwd=b"x" * 16)
    assert bad.timeout_ms == 0


async def test_close_session_removes_ephemerals_and_closes(nursery, tmp_path) -> None:
    server = await start_server(nursery, tmp_path)
    c = await RawClient.connect(server.port)
    await c.create("/gone", b"", CreateMode.EPHEMERAL)
    header, _ = await c.call(OpCode.closeSession)
    assert header.err == 0
    assert "/gone" not in server.tree.nodes
    assert c.session_id not in server.tree.sessions


async def test_client_ahead_of_server_is_refused(nursery, tmp_path) -> None:
    server = await start_server(nursery, tmp_path)
    with pytest.raises(EOFError):
        await RawClient.connect(server.port, last_zxid=server.last_zxid + 100)


async def test_bad_input_gets_zookeepers_answers(nursery, tmp_path) -> None:
    server = await start_server(nursery, tmp_path)
    c = await RawClient.connect(server.port)
    # Reads look a malformed path up and find nothing; writes refuse it.
    header, _ = await c.call(OpCode.getData, r.GetDataRequest("bad/path", False))
    assert header.err == Code.NO_NODE
    header, _ = await c.call(OpCode.setData, r.SetDataRequest("/bad/", b"", -1))
    assert header.err == Code.BAD_ARGUMENTS
    # A truncated body is a marshalling error for that request only.
    await c.stream.send_all(struct.pack(">iiii", 12, 100, OpCode.getData, 50))
    c.ops[100] = OpCode.getData
    header, _ = await c.reply()
    assert (header.xid, header.err) == (100, Code.MARSHALLING_ERROR)
    header, _ = await c.create("/still-fine")
    assert header.err == 0
    # A frame over jute.maxbuffer closes that connection only.
    await c.stream.send_all(struct.pack(">i", 2 * 1024 * 1024))
    with pytest.raises(EOFError):
        with trio.fail_after(2):
            await c.reply()
    other = await RawClient.connect(server.port)
    header, body = await other.call(OpCode.exists, r.ExistsRequest("/still-fine", False))
    assert header.err == 0
    # An unknown opcode is answered UNIMPLEMENTED, then the connection is closed.
    await other.stream.send_all(struct.pack(">iii", 8, 99, 999))
    other.ops[99] = OpCode.ping
    header, _ = await other.reply()
    assert (header.xid, header.err) == (99, Code.UNIMPLEMENTED)
    with pytest.raises(EOFError):
        with trio.fail_after(2):
            await other.reply()


async def test_garbage_handshake_is_dropped(nursery, tmp_path) -> None:
    server = await start_server(nursery, tmp_path)
    stream = await trio.open_tcp_stream("127.0.0.1", server.port)
    await stream.send_all(struct.pack(">i", 3) + b"abc")
    with trio.fail_after(2):
        assert await stream.receive_some(100) == b""


async def test_four_letter_words(nursery, tmp_path) -> None:
    server = await start_server(nursery, tmp_path)
    c = await RawClient.connect(server.port)
    await c.create("/x")
    await c.call(OpCode.getData, r.GetDataRequest("/x", True))
    assert await four_letter(server.port, "ruok") == "imok"
    srvr = await four_letter(server.port, "srvr")
    assert "Mode: standalone" in srvr and "Node count: 5" in srvr
    assert "zk_znode_count\t5" in await four_letter(server.port, "mntr")
    assert "Total watches:1" in await four_letter(server.port, "wchs")
    assert f"{c.session_id:#x}" in await four_letter(server.port, "cons")
    assert "clientPort=" in await four_letter(server.port, "conf")
    assert "Sessions with Ephemerals" in await four_letter(server.port, "dump")
    assert await four_letter(server.port, "isro") == "rw"


async def test_restart_recovers_tree_and_sessions(tmp_path) -> None:
    async with trio.open_nursery() as nursery:
        server = await start_server(nursery, tmp_path)
        c = await RawClient.connect(server.port, timeout_ms=2000)
        for i in range(20):
            await c.create(f"/k{i}", str(i).encode())
        await c.create("/eph", b"", CreateMode.EPHEMERAL)
        zxid = server.last_zxid
        nursery.cancel_scope.cancel()
    async with trio.open_nursery() as nursery:
        server = await start_server(nursery, tmp_path)
        assert server.last_zxid == zxid
        assert all(f"/k{i}" in server.tree.nodes for i in range(20))
        # The session survived the restart: the client can resume it with its ephemeral.
        again = await RawClient.connect(server.port, session_id=c.session_id, passwd=c.passwd, last_zxid=zxid)
        assert again.session_id == c.session_id
        assert "/eph" in server.tree.nodes
        nursery.cancel_scope.cancel()


async def test_snapshots_are_taken_purged_and_recovered(tmp_path) -> None:
    async with trio.open_nursery() as nursery:
        server = await start_server(nursery, tmp_path, snap_count=10, snap_retain_count=2)
        c = await RawClient.connect(server.port)
        for i in range(45):
            header, _ = await c.create(f"/s{i}", b"x")
            assert header.err == 0
        await wait_for(lambda: not server.applier.snapshotting)
        snaps = sorted((tmp_path / "data" / "snap").glob("snapshot.*"))
        assert 1 <= len(snaps) <= 2  # retention keeps the newest two
        zxid = server.last_zxid
        nursery.cancel_scope.cancel()
    async with trio.open_nursery() as nursery:
        server = await start_server(nursery, tmp_path)
        assert server.last_zxid == zxid
        assert all(f"/s{i}" in server.tree.nodes for i in range(45))
        nursery.cancel_scope.cancel()


async def test_a_failed_snapshot_is_logged_and_the_server_goes_on(tmp_path, monkeypatch, caplog) -> None:
    """The forked child fails (a full disk, say): nothing is lost, the log keeps everything."""
    from ccore.server import snapshot_child

    def fail(tree: object, write: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(snapshot_child, "write_tree", fail)
    async with trio.open_nursery() as nursery:
        server = await start_server(nursery, tmp_path, snap_count=10)
        c = await RawClient.connect(server.port)
        for i in range(25):
            header, _ = await c.create(f"/f{i}", b"x")
            assert header.err == 0
        await wait_for(lambda: "snapshot failed" in caplog.text and not server.applier.snapshotting)
        assert not list((tmp_path / "data" / "snap").glob("snapshot.*"))
        zxid = server.last_zxid
        nursery.cancel_scope.cancel()
    async with trio.open_nursery() as nursery:
        server = await start_server(nursery, tmp_path)
        assert server.last_zxid == zxid and all(f"/f{i}" in server.tree.nodes for i in range(25))
        nursery.cancel_scope.cancel()


async def test_connections_per_client_address_are_limited(nursery, tmp_path) -> None:
    server = await start_server(nursery, tmp_path, max_client_cnxns=2)
    first = await RawClient.connect(server.port)
    second = await RawClient.connect(server.port)
    with pytest.raises(EOFError):
        await RawClient.connect(server.port)
    await first.aclose()
    await wait_for(lambda: len(server.connections) == 1)
    third = await RawClient.connect(server.port)
    assert third.session_id and second.session_id


async def test_sync_waits_for_writes_queued_by_another_connection(nursery, tmp_path) -> None:
    """A sync is answered only after every write submitted before it, whoever sent it."""
    server = await start_server(nursery, tmp_path)
    writer = await RawClient.connect(server.port)
    reader = await RawClient.connect(server.port)
    for i in range(100):
        await writer.send(OpCode.create, r.CreateRequest(f"/q{i}", b"", OPEN_ACL_UNSAFE, 0))
    await wait_for(lambda: server.stats.received >= 100)  # all queued before the sync arrives
    header, body = await reader.call(OpCode.sync, r.SyncRequest("/"))
    assert header.err == 0 and body.path == "/"
    assert all(f"/q{i}" in server.tree.nodes for i in range(100))
    assert header.zxid == server.last_zxid  # no transaction of its own on a single server
