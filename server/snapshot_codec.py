"""The tree in the snapshot file format, batch by batch: storage's frames around the CBOR codec.

One format for the snapshot file and the SNAP stream (storage/snapshots.py, version 2): the
snapshot child writes the tree as frames into a file or a pipe (`write_tree`), the leader
forwards those bytes as they come, and the follower (`TreeReceiver`) checks and decodes each
batch as it arrives, so the tree is built by the time the end frame checks out. A restart
reads the file the same way (`load_tree`); version-1 files of older builds are read too.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ccore.znodes.codec import SnapshotBuilder, decode_snapshot, encode_sessions, snapshot_batches
from ccore.znodes.tree import DataTree

from .storage.errors import CorruptSnapshotError
from .storage.snapshots import ADVICE, NODES, READ_BYTES, SESSIONS, WHOLE, BatchedWriter, SnapshotReader, StoredSnapshot


def write_tree(tree: DataTree, write: Callable[[bytes], object]) -> None:
    """Write `tree` in the batched format through `write`, one call per frame."""
    out = BatchedWriter(tree.last_zxid)
    write(out.header())
    nodes = 0
    for batch, count in snapshot_batches(tree):
        write(out.frame(NODES, batch))
        nodes += count
    write(out.frame(SESSIONS, encode_sessions(tree)))
    write(out.end(nodes))


def encode_tree(tree: DataTree) -> bytes:
    """The whole snapshot file of `tree` in memory (where there is no fork to stream it)."""
    parts: list[bytes] = []
    write_tree(tree, parts.append)
    return b"".join(parts)


class TreeReceiver:
    """A snapshot's bytes in, in pieces of any size; the tree built as its batches come.

    `feed` raises CorruptSnapshotError on anything that does not check out (a frame's CRC,
    content that does not decode, the end frame's count or digest); `tree` is set only once
    the end frame checked out, and nothing built before then may be used."""

    def __init__(self, zxid: int, name: str, advice: str) -> None:
        self.reader = SnapshotReader(zxid, name, advice)
        self._builder = SnapshotBuilder()
        self.tree: DataTree | None = None

    def feed(self, data: bytes | bytearray | memoryview) -> DataTree | None:
        reader = self.reader
        frames = reader.feed(data)
        try:
            for kind, body in frames:
                if kind == NODES:
                    self._builder.add_batch(body)
                elif kind == SESSIONS:
                    self._builder.add_sessions(body)
                elif kind == WHOLE:
                    self.tree = decode_snapshot(body)
            end = reader.end
            if end is not None and self.tree is None:
                self.tree = self._builder.finish(end.nodes, end.zxid)
        except (ValueError, KeyError, TypeError, IndexError) as e:
            raise reader.corrupt(str(e)) from e
        return self.tree


def load_tree(path: Path, zxid: int) -> DataTree:
    """The tree in snapshot file `path` (either version), decoded as it is read: batch by
    batch, while the kernel reads ahead, and never all of the file in memory at once.
    CorruptSnapshotError if it does not check out (the tree built so far is dropped)."""
    receiver = TreeReceiver(zxid, f"snapshot {path}", ADVICE)
    with open(path, "rb", buffering=0) as f:
        while block := f.read(READ_BYTES):
            receiver.feed(block)
    receiver.reader.close()  # torn: no end frame
    assert receiver.tree is not None
    return receiver.tree


def tree_of(stored: StoredSnapshot) -> DataTree:
    """The tree of a snapshot read from disk (either version)."""
    if stored.frames and stored.frames[0][0] == WHOLE:
        return decode_snapshot(stored.frames[0][1])
    builder = SnapshotBuilder()
    try:
        for kind, body in stored.frames:
            if kind == NODES:
                builder.add_batch(body)
            elif kind == SESSIONS:
                builder.add_sessions(body)
        return builder.finish(stored.nodes, stored.zxid)
    except (ValueError, KeyError, TypeError, IndexError) as e:
        raise CorruptSnapshotError(f"the snapshot at {stored.zxid:#x} does not decode: {e}") from e
