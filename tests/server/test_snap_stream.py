"""A SNAP's snapshot in chunks (server/snap_stream.py): from bytes or a forked child's pipe,
back into one Snap on the follower, with anything that does not add up refused."""

from __future__ import annotations

import pytest

from ccore.server import snap_stream, snapshot_child
from ccore.server.peer_frames import decode_peer_frame, encode_peer_frame
from ccore.server.peers import PeerFrameError
from ccore.server.snap_stream import PipedSnapshot, SnapAssembler, SnapBegin, SnapChunk, snapshot_messages
from ccore.znodes.acl import OPEN_ACL_UNSAFE
from ccore.znodes.codec import decode_snapshot, encode_snapshot
from ccore.znodes.tree import DataTree
from ccore.znodes.txn import Create, Txn


def _tree(nodes: int) -> DataTree:
    tree = DataTree()
    for i in range(nodes):
        tree.apply(Txn(i + 1, 0, 0, Create(f"/n{i}", b"v" * 50, OPEN_ACL_UNSAFE, 0)))
    return tree


async def _assemble(messages) -> tuple[object, int]:
    assembler = SnapAssembler()
    snap, count = None, 0
    async for message in messages:
        count += 1
        wire = decode_peer_frame(encode_peer_frame(message))  # through the codec, as on a link
        assert wire == message
        assert snap is None, "a Snap came before the last chunk"
        snap = assembler.add(wire)
    return snap, count


async def test_bytes_travel_in_chunks_and_come_back_whole() -> None:
    payload = encode_snapshot(_tree(300))
    snap, count = await _assemble(snapshot_messages(300, payload, chunk=1000))
    assert snap is not None and snap.zxid == 300 and snap.data == payload
    assert count > len(payload) // 1000  # many chunks, none bigger than CHUNK


@pytest.mark.skipif(not snapshot_child.can_fork(), reason="no fork on this platform")
async def test_a_forked_child_streams_the_tree_as_it_was() -> None:
    tree = _tree(3000)
    expected = encode_snapshot(tree)
    piped = PipedSnapshot(snapshot_child.start_to_pipe(tree))
    tree.apply(Txn(3001, 0, 0, Create("/later", b"", OPEN_ACL_UNSAFE, 0)))  # after the fork
    snap, count = await _assemble(snapshot_messages(3000, piped, chunk=4096))
    assert snap is not None and snap.data == expected
    assert count > len(expected) // 4096
    assert "/later" not in decode_snapshot(snap.data).nodes


@pytest.mark.skipif(not snapshot_child.can_fork(), reason="no fork on this platform")
async def test_a_child_that_dies_ends_the_stream_with_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def die(tree: object) -> bytes:
        raise MemoryError

    monkeypatch.setattr(snapshot_child, "encode_snapshot", die)
    piped = PipedSnapshot(snapshot_child.start_to_pipe(_tree(3)))
    with pytest.raises(Exception, match="wrote 0 bytes"):
        await _assemble(snapshot_messages(3, piped))


@pytest.mark.skipif(not snapshot_child.can_fork(), reason="no fork on this platform")
def test_a_snapshot_never_sent_is_discarded() -> None:
    piped = PipedSnapshot(snapshot_child.start_to_pipe(_tree(3)))
    piped.discard()
    assert piped.child.fd is not None
    with pytest.raises(OSError):
        import os

        os.fstat(piped.child.fd)  # closed
    piped.discard()  # twice is harmless


def test_the_follower_refuses_a_stream_that_does_not_add_up() -> None:
    payload = encode_snapshot(_tree(5))
    assembler = SnapAssembler()
    with pytest.raises(PeerFrameError, match="without its beginning"):
        assembler.add(SnapChunk(b"x"))
    whole = snap_stream.encode_snapshot_header(5, payload) + payload
    assembler.add(SnapBegin(5, len(whole)))
    corrupt = bytearray(whole)
    corrupt[-1] ^= 0xFF
    with pytest.raises(PeerFrameError, match="CRC"):
        assembler.add(SnapChunk(bytes(corrupt)))
    assembler.add(SnapBegin(5, len(whole)))
    with pytest.raises(PeerFrameError, match="announced"):
        assembler.add(SnapChunk(whole + b"extra"))
    # A broken link forgets a stream in progress; a new one starts clean.
    assembler.add(SnapBegin(5, len(whole)))
    assembler.add(SnapChunk(whole[:10]))
    assembler.reset()
    assembler.add(SnapBegin(5, len(whole)))
    snap = assembler.add(SnapChunk(whole))
    assert snap is not None and snap.data == payload


async def test_small_chunks_and_how_far_a_stream_has_come() -> None:
    payload = encode_snapshot(_tree(20))
    messages = [m async for m in snapshot_messages(7, payload, chunk=100)]
    begin, chunks = messages[0], messages[1:]
    assert isinstance(begin, SnapBegin) and all(len(c.data) <= 100 for c in chunks)
    assert len(chunks) == -(-begin.size // 100)
    assembler = SnapAssembler()
    assert assembler.in_progress is None
    assembler.add(begin)
    assembler.add(chunks[0])
    assert assembler.in_progress == f"100 of {begin.size:,} bytes of the snapshot at 0x7"
    for chunk in chunks[1:-1]:
        assert assembler.add(chunk) is None
    snap = assembler.add(chunks[-1])
    assert snap is not None and snap.data == payload and assembler.in_progress is None
