"""A SNAP's snapshot in chunks (server/snap_stream.py): from bytes or a forked child's pipe, in
the batched format, decoded batch by batch on the follower into a tree and a file; handed to
the core only once the end frame checks out; anything that does not add up refused, with its
file removed."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import pytest

from ccore.server import snap_stream, snapshot_child
from ccore.server.peer_frames import decode_peer_frame, encode_peer_frame
from ccore.server.peers import PeerFrameError
from ccore.server.snap_stream import (
    PipedSnapshot,
    ReceivedSnapshot,
    SnapAssembler,
    SnapBegin,
    SnapChunk,
    SnapStart,
    Spool,
    snapshot_messages,
)
from ccore.server.snapshot_child import SnapshotChildError
from ccore.server.snapshot_codec import encode_tree, tree_of
from ccore.server.storage.snapshots import HEADER_SIZE, SnapshotStore, encode_snapshot_header
from ccore.znodes.acl import OPEN_ACL_UNSAFE, READ_ACL_UNSAFE
from ccore.znodes.codec import encode_snapshot
from ccore.znodes.tree import DataTree
from ccore.znodes.txn import Create, CreateSession, Txn

BIG = 10_000  # nodes: more than two batches (codec.BATCH_NODES)


def _tree(nodes: int) -> DataTree:
    tree = DataTree()
    tree.apply(Txn(1, 0, 77, CreateSession(5000, b"p" * 16)))
    for i in range(nodes):
        acl = READ_ACL_UNSAFE if i % 1000 == 999 else OPEN_ACL_UNSAFE  # ACLs first seen in later batches
        tree.apply(Txn(i + 2, 0, 77, Create(f"/n{i}", b"v" * 50, acl, 1 if i % 500 == 0 else 0)))
    return tree


def _files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


async def _assemble(messages, spool: Spool) -> tuple[object, int]:
    assembler = SnapAssembler(spool)
    snap, count = None, 0
    async for message in messages:
        count += 1
        wire = decode_peer_frame(encode_peer_frame(message))  # through the codec, as on a link
        assert wire == message
        assert snap is None, "a Snap came before the last chunk"
        snap = assembler.add(wire)
    return snap, count


def _chunks(data: bytes, size: int) -> list[SnapChunk]:
    return [SnapChunk(data[i : i + size]) for i in range(0, len(data), size)]


async def test_bytes_travel_in_chunks_and_come_back_as_a_tree_and_a_file(tmp_path: Path) -> None:
    tree = _tree(BIG)
    data = encode_tree(tree)
    store = SnapshotStore(tmp_path)  # (made at start: it removes temp files then)
    snap, count = await _assemble(snapshot_messages(tree.last_zxid, data, chunk=1000), Spool(tmp_path))
    assert snap is not None and snap.zxid == tree.last_zxid
    received = snap.data
    assert isinstance(received, ReceivedSnapshot)
    assert count > len(data) // 1000  # many chunks, none bigger than the chunk size
    assert encode_snapshot(received.tree) == encode_snapshot(tree)  # the same tree, sessions and all
    assert received.tree.ephemerals == tree.ephemerals and received.tree.data_size == tree.data_size
    assert received.path.read_bytes() == data and received.size == len(data)
    # Installing it is a rename; the file then reads back as the same tree.
    store.adopt(tree.last_zxid, received.claim())
    assert store.list() == [tree.last_zxid]
    assert encode_snapshot(tree_of(store.read(tree.last_zxid))) == encode_snapshot(tree)


async def test_the_tree_grows_batch_by_batch_but_only_the_end_frame_hands_it_over(tmp_path: Path) -> None:
    tree = _tree(BIG)
    data = encode_tree(tree)
    assembler = SnapAssembler(Spool(tmp_path))
    assembler.add(SnapStart(tree.last_zxid))
    chunks = _chunks(data, 4096)
    for chunk in chunks[: len(chunks) // 2]:
        assert assembler.add(chunk) is None
    incoming = assembler._incoming
    assert incoming is not None and 0 < incoming.receiver._builder.nodes < BIG  # decoded as it came
    assert assembler.in_progress == f"{len(chunks) // 2 * 4096:,} bytes of the snapshot at {tree.last_zxid:#x}"
    for chunk in chunks[len(chunks) // 2 : -1]:
        assert assembler.add(chunk) is None  # all but the end frame: nothing yet
    snap = assembler.add(chunks[-1])
    assert snap is not None and assembler.in_progress is None


@pytest.mark.skipif(not snapshot_child.can_fork(), reason="no fork on this platform")
async def test_a_forked_child_streams_the_tree_as_it_was(tmp_path: Path) -> None:
    tree = _tree(BIG)
    expected = encode_snapshot(tree)
    zxid = tree.last_zxid
    piped = PipedSnapshot(snapshot_child.start_to_pipe(tree))
    tree.apply(Txn(zxid + 1, 0, 0, Create("/later", b"", OPEN_ACL_UNSAFE, 0)))  # after the fork
    snap, count = await _assemble(snapshot_messages(zxid, piped, chunk=4096), Spool(tmp_path))
    assert snap is not None and isinstance(snap.data, ReceivedSnapshot)
    assert encode_snapshot(snap.data.tree) == expected and "/later" not in snap.data.tree.nodes
    assert count > snap.data.size // 4096


@pytest.mark.skipif(not snapshot_child.can_fork(), reason="no fork on this platform")
async def test_a_child_that_dies_ends_the_stream_with_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def die(tree: object, write: object) -> None:
        raise MemoryError

    monkeypatch.setattr(snapshot_child, "write_tree", die)
    piped = PipedSnapshot(snapshot_child.start_to_pipe(_tree(3)))
    with pytest.raises(SnapshotChildError, match="after writing 0 bytes"):
        await _assemble(snapshot_messages(3, piped), Spool(tmp_path))


@pytest.mark.skipif(not snapshot_child.can_fork(), reason="no fork on this platform")
async def test_a_child_that_dies_mid_way_never_hands_over_a_snapshot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Half the batches went out; then the child is gone: the follower holds a partial tree
    it never uses, and the leader's stream fails (its link drops, the follower resets)."""
    real = snapshot_child.write_tree

    def half(tree: object, write) -> None:
        written = []

        def counting(data: bytes) -> None:
            written.append(data)
            if len(written) == 3:  # the header and two batches
                os._exit(1)
            write(data)

        real(tree, counting)

    monkeypatch.setattr(snapshot_child, "write_tree", half)
    piped = PipedSnapshot(snapshot_child.start_to_pipe(_tree(BIG)))
    assembler = SnapAssembler(Spool(tmp_path))
    with pytest.raises(SnapshotChildError, match="failed"):
        async for message in snapshot_messages(BIG + 1, piped, chunk=4096):
            assert assembler.add(decode_peer_frame(encode_peer_frame(message))) is None
    assert assembler.in_progress is not None and _files(tmp_path)
    assembler.reset()  # what the broken link does
    assert assembler.in_progress is None and _files(tmp_path) == []


@pytest.mark.skipif(not snapshot_child.can_fork(), reason="no fork on this platform")
def test_a_snapshot_never_sent_is_discarded() -> None:
    piped = PipedSnapshot(snapshot_child.start_to_pipe(_tree(3)))
    piped.discard()
    assert piped.child.fd is not None
    with pytest.raises(OSError):
        os.fstat(piped.child.fd)  # closed
    piped.discard()  # twice is harmless


def _frames(data: bytes) -> list[tuple[int, int]]:
    """(offset, size) of each frame of a batched snapshot."""
    out, pos = [], HEADER_SIZE
    while pos < len(data):
        (length,) = struct.unpack_from(">I", data, pos + 1)
        out.append((pos, 9 + length))
        pos += 9 + length
    return out


def _refused(tmp_path: Path, zxid: int, data: bytes, match: str) -> None:
    assembler = SnapAssembler(Spool(tmp_path))
    assembler.add(SnapStart(zxid))
    with pytest.raises(PeerFrameError, match=match):
        for chunk in _chunks(data, 3000):
            assert assembler.add(chunk) is None
    assert assembler.in_progress is None and _files(tmp_path) == []  # its file went with it


def test_a_corrupt_batch_is_refused_and_its_file_removed(tmp_path: Path) -> None:
    tree = _tree(BIG)
    zxid, data = tree.last_zxid, encode_tree(tree)
    frames = _frames(data)
    assert len(frames) >= 4  # batches, the sessions, the end
    offset, size = frames[1]
    flipped = bytearray(data)
    flipped[offset + size // 2] ^= 0x40
    _refused(tmp_path, zxid, bytes(flipped), "CRC mismatch")
    # A batch that is not one, with a CRC that holds (a leader's bug, not the wire's).
    garbage = b"\x82\x80\x81\x83\x01\x02\x03"
    bad = data[:offset] + struct.pack(">cII", b"N", len(garbage), zlib.crc32(garbage)) + garbage + data[offset + size :]
    _refused(tmp_path, zxid, bad, "malformed|digest")
    # Every frame sound, one batch twice: caught (by the builder, else the end's digest and count).
    dup = data[: offset + size] + data[offset : offset + size] + data[offset + size :]
    _refused(tmp_path, zxid, dup, "comes twice|digest")
    # An end frame whose own CRC holds but whose digest is not the stream's.
    end_at, _ = frames[-1]
    nodes, end_zxid, digest = struct.unpack_from(">QQI", data, end_at + 9)
    end = struct.pack(">QQI", nodes, end_zxid, digest ^ 1)
    _refused(tmp_path, zxid, data[:end_at] + struct.pack(">cII", b"E", len(end), zlib.crc32(end)) + end, "digest")
    end = struct.pack(">QQI", nodes + 1, end_zxid, digest)
    _refused(tmp_path, zxid, data[:end_at] + struct.pack(">cII", b"E", len(end), zlib.crc32(end)) + end, "nodes")
    # Another snapshot's stream.
    _refused(tmp_path, zxid + 1, data, "expected")
    # More after the end.
    _refused(tmp_path, zxid, data + b"x", "after the end")


def test_a_broken_stream_is_forgotten_and_a_new_one_starts_clean(tmp_path: Path) -> None:
    tree = _tree(BIG)
    zxid, data = tree.last_zxid, encode_tree(tree)
    assembler = SnapAssembler(Spool(tmp_path))
    with pytest.raises(PeerFrameError, match="without its beginning"):
        assembler.add(SnapChunk(b"x"))
    assembler.add(SnapStart(zxid))
    for chunk in _chunks(data[: len(data) // 2], 5000):
        assert assembler.add(chunk) is None
    assert len(_files(tmp_path)) == 1
    assembler.reset()  # the link broke
    assert _files(tmp_path) == []
    assembler.add(SnapStart(zxid))
    assembler.add(SnapChunk(data[:100]))
    assembler.add(SnapStart(zxid))  # a new stream drops the one in progress
    snap = None
    for chunk in _chunks(data, 5000):
        snap = assembler.add(chunk)
    assert snap is not None and encode_snapshot(snap.data.tree) == encode_snapshot(tree)
    assert _files(tmp_path) == [snap.data.path.name]


def test_received_snapshots_not_installed_are_removed_when_the_next_comes(tmp_path: Path) -> None:
    tree = _tree(5)
    zxid, data = tree.last_zxid, encode_tree(tree)
    spool = Spool(tmp_path)
    received = []
    for _ in range(3):
        assembler = SnapAssembler(spool)
        assembler.add(SnapStart(zxid))
        snap = assembler.add(SnapChunk(data))
        assert snap is not None
        received.append(snap.data)
        if len(received) == 2:
            snap.data.claim()  # its install started: nobody else removes it
    assert _files(tmp_path) == sorted(r.path.name for r in received[1:])


def test_a_whole_snapshot_from_an_older_leader_is_still_taken(tmp_path: Path) -> None:
    payload = encode_snapshot(_tree(5))
    whole = encode_snapshot_header(5, payload) + payload
    assembler = SnapAssembler(Spool(tmp_path))
    assembler.add(SnapBegin(5, len(whole)))
    corrupt = bytearray(whole)
    corrupt[-1] ^= 0xFF
    with pytest.raises(PeerFrameError, match="CRC"):
        assembler.add(SnapChunk(bytes(corrupt)))
    assembler.add(SnapBegin(5, len(whole)))
    with pytest.raises(PeerFrameError, match="announced"):
        assembler.add(SnapChunk(whole + b"extra"))
    assembler.add(SnapBegin(5, len(whole)))
    assembler.add(SnapChunk(whole[:10]))
    assert assembler.in_progress == f"10 of {len(whole):,} bytes of the snapshot at 0x5"
    snap = assembler.add(SnapChunk(whole[10:]))
    assert snap is not None and snap.data == payload  # bytes: the driver decodes them
    assert snap_stream.SnapBegin(5, 1) == decode_peer_frame(encode_peer_frame(SnapBegin(5, 1)))
