"""Backup and restore against an in-process server: the streamed snapshot restores into a data
dir a new server starts from; a damaged or cut transfer leaves no file; restore refuses a data
dir in use. (The ensemble acceptance test is tests/ensemble/test_backup.py.)"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import pytest
import trio

from ccore.server.backup_cli import BackupError, fetch, restore_into
from ccore.server.http_server import HttpServer, Request, Response
from ccore.server.storage.snapshots import encode_snapshot_header
from ccore.znodes import records as r
from ccore.znodes.constants import OpCode

from .helpers import RawClient, start_server


async def test_backup_restores_into_a_new_server(nursery, tmp_path) -> None:
    server = await start_server(nursery, tmp_path / "a", admin_port=0)
    assert server.ops.admin is not None
    c = await RawClient.connect(server.port)
    for i in range(200):
        await c.create(f"/n{i}", b"x" * i)
    out = tmp_path / "backup.snap"
    zxid, size, digest = await trio.to_thread.run_sync(fetch, "127.0.0.1", server.ops.admin.port, out, 30.0, False)
    assert zxid >= 200 and size == out.stat().st_size
    assert digest == hashlib.sha256(out.read_bytes()).hexdigest()
    # A second backup after more writes works too (the streamer is free again).
    await c.create("/later", b"")
    zxid2, _, _ = await trio.to_thread.run_sync(fetch, "127.0.0.1", server.ops.admin.port, tmp_path / "b2", 30.0, False)
    assert zxid2 > zxid

    restored_dir = tmp_path / "restored" / "data"
    restored_zxid, znodes = restore_into(out, restored_dir)
    assert restored_zxid == zxid and znodes == len(server.tree.nodes) - 1  # /later came after
    restored = await start_server(nursery, tmp_path / "restored", admin_port=0)
    c2 = await RawClient.connect(restored.port)
    header, body = await c2.call(OpCode.getData, r.GetDataRequest("/n199", False))
    assert header.err == 0 and body.data == b"x" * 199
    header, _ = await c2.call(OpCode.exists, r.ExistsRequest("/later", False))
    assert header.err != 0  # not in the backup
    # New writes continue above the restored zxid.
    header, _ = await c2.create("/after-restore", b"")
    assert header.err == 0 and header.zxid > zxid


async def test_restore_refuses_a_data_dir_in_use(tmp_path) -> None:
    used = tmp_path / "used"
    used.mkdir()
    (used / "myid").write_text("1\n")
    (used / "log").mkdir()
    backup = tmp_path / "b.snap"
    payload = b"\xa0"  # never read: the refusal comes first
    backup.write_bytes(encode_snapshot_header(1, payload) + payload)
    with pytest.raises(ValueError, match="is not empty \\(log\\); restore only into a new data dir"):
        restore_into(backup, used)
    assert sorted(p.name for p in used.iterdir()) == ["log", "myid"]


async def fake_server(nursery, body: bytes, sha: str, cut: bool = False) -> int:
    async def chunks() -> AsyncIterator[bytes]:
        yield body[: len(body) // 2]
        if cut:
            raise OSError("the child died")
        yield body[len(body) // 2 :]

    async def handle(request: Request) -> Response:
        return Response(
            200,
            chunks(),
            content_type="application/octet-stream",
            headers=(("snapshot_size", str(len(body))),),
            trailers=lambda: [("snapshot_sha256", sha)],
        )

    http = HttpServer("fake", "127.0.0.1", 0, handle)
    await http.listen()
    await nursery.start(http.run)
    assert http.port is not None
    return http.port


@pytest.mark.parametrize("damage", ["sha", "crc", "cut"])
async def test_a_damaged_or_cut_transfer_leaves_no_file(nursery, tmp_path, damage) -> None:
    payload = b"\xa1\x61\x61\x01" * 1000
    body = encode_snapshot_header(5, payload) + payload
    sha = hashlib.sha256(body).hexdigest()
    if damage == "sha":
        sha = "0" * 64
    if damage == "crc":
        body = body[:-1] + b"\x00"
        sha = hashlib.sha256(body).hexdigest()
    port = await fake_server(nursery, body, sha, cut=damage == "cut")
    out = tmp_path / "b.snap"
    with pytest.raises(BackupError):
        await trio.to_thread.run_sync(fetch, "127.0.0.1", port, out, 10.0, False)
    assert list(tmp_path.iterdir()) == []


async def test_the_fake_server_passes_an_intact_transfer(nursery, tmp_path) -> None:
    """The control for the test above: the same fake, undamaged, is accepted."""
    payload = b"\xa1\x61\x61\x01" * 1000
    body = encode_snapshot_header(5, payload) + payload
    port = await fake_server(nursery, body, hashlib.sha256(body).hexdigest())
    zxid, size, _ = await trio.to_thread.run_sync(fetch, "127.0.0.1", port, tmp_path / "b.snap", 10.0, False)
    assert (zxid, size) == (5, len(body))


async def test_a_snapshot_never_read_frees_the_streamer(nursery, tmp_path) -> None:
    """HEAD takes the headers only: the child is stopped and reaped, and the next backup runs."""
    server = await start_server(nursery, tmp_path, admin_port=0)
    assert server.ops.admin is not None
    port = server.ops.admin.port
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(b"HEAD /commands/snapshot?streaming=true HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    out = b""
    with trio.fail_after(10):
        while chunk := await stream.receive_some(65536):
            out += chunk
    assert out.startswith(b"HTTP/1.1 200") and b"last_zxid" in out
    zxid, _, _ = await trio.to_thread.run_sync(fetch, "127.0.0.1", port, tmp_path / "b.snap", 30.0, False)
    assert zxid == server.last_zxid


def test_snapshots_are_served_on_loopback_or_when_asked_for(tmp_path) -> None:
    from ccore.server.config import ServerConfig
    from ccore.server.ops import snapshots_allowed

    def allowed(address: str, enabled: bool | None) -> bool:
        return snapshots_allowed(ServerConfig(admin_address=address, admin_snapshot_enabled=enabled))

    assert allowed("127.0.0.1", None) and allowed("::1", None) and allowed("localhost", None)
    assert not allowed("0.0.0.0", None) and not allowed("10.1.2.3", None)
    assert allowed("0.0.0.0", True) and not allowed("127.0.0.1", False)


async def test_a_server_that_may_not_serve_snapshots_says_why(nursery, tmp_path) -> None:
    server = await start_server(nursery, tmp_path, admin_port=0, admin_snapshot_enabled=False)
    assert server.ops.admin is not None
    with pytest.raises(BackupError, match="403"):
        await trio.to_thread.run_sync(fetch, "127.0.0.1", server.ops.admin.port, tmp_path / "b.snap", 30.0, False)
    assert not (tmp_path / "b.snap").exists()
