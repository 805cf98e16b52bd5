"""A SNAP sync's snapshot on the peer link: streamed in bounded chunks, never as one frame.

The leader's Zab core puts a `Snap` in a Ready whose data is a `PipedSnapshot`: a forked child
(snapshot_child.start_to_pipe) writing the tree as it was at the fork, in the snapshot file
format (header with length and CRC, then payload), into a pipe. The driver streams it to the
follower as `SnapBegin(zxid, size)` and `SnapChunk`s of at most `snapChunkBytes` (default
CHUNK), read from the pipe as the peer link takes them: the leader's loop never encodes the tree, never holds more
than a chunk of it, and a snapshot has no size limit. Where there is no fork, the core gets
the encoded bytes and they travel the same way.

On the follower, `SnapAssembler` collects the chunks and, once all have come and the CRC
holds, hands the core the one `Snap` it expects.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import attrs
import trio

from .peers import PeerFrameError
from .snapshot_child import SnapshotChild, read_pipe
from .storage.errors import CorruptSnapshotError
from .storage.snapshots import HEADER_SIZE, encode_snapshot_header, parse_snapshot, snapshot_size
from .zab.messages import Snap

CHUNK = 1024 * 1024


@attrs.frozen
class SnapBegin:
    """A snapshot at `zxid` follows: `size` bytes in the file format, in chunks."""

    zxid: int
    size: int


@attrs.frozen
class SnapChunk:
    data: bytes


@attrs.define(eq=False)
class PipedSnapshot:
    """The leader's handle on a snapshot its child is writing into a pipe."""

    child: SnapshotChild
    _taken: bool = False

    def discard(self) -> None:
        """Not sent after all (the link went down first): stop the child, close the pipe."""
        if not self._taken:
            self._taken = True
            self.child.kill()
            if self.child.fd is not None:
                os.close(self.child.fd)
            self._reap()

    def _reap(self) -> None:
        try:
            self.child.wait()
        except Exception:  # noqa: BLE001 - killed on purpose: its status says nothing new
            pass


def snapshot_messages(zxid: int, data: bytes | PipedSnapshot, chunk: int = CHUNK) -> AsyncIterator[SnapBegin | SnapChunk]:
    """The messages that carry a Snap's snapshot, chunks of at most `chunk` bytes (see the
    module docstring)."""
    return _from_pipe(zxid, data, chunk) if isinstance(data, PipedSnapshot) else _from_bytes(zxid, data, chunk)


async def _from_bytes(zxid: int, data: bytes, chunk: int) -> AsyncIterator[SnapBegin | SnapChunk]:
    whole = encode_snapshot_header(zxid, data) + data
    yield SnapBegin(zxid, len(whole))
    for start in range(0, len(whole), chunk):
        yield SnapChunk(whole[start : start + chunk])


async def _from_pipe(zxid: int, piped: PipedSnapshot, chunk_size: int) -> AsyncIterator[SnapBegin | SnapChunk]:
    child = piped.child
    assert child.fd is not None and not piped._taken
    piped._taken = True
    pipe = trio.lowlevel.FdStream(child.fd)
    try:
        header = await read_pipe(pipe, HEADER_SIZE)
        if len(header) < HEADER_SIZE:
            raise CorruptSnapshotError(f"the snapshot child for zxid {zxid:#x} wrote {len(header)} bytes and stopped")
        size = snapshot_size(header)
        yield SnapBegin(zxid, size)
        yield SnapChunk(header)
        left = size - HEADER_SIZE
        while left:
            chunk = await read_pipe(pipe, min(chunk_size, left))
            if not chunk:
                raise CorruptSnapshotError(f"the snapshot child for zxid {zxid:#x} stopped {left} bytes short")
            left -= len(chunk)
            yield SnapChunk(chunk)
    finally:
        child.kill()  # done already, or the stream ended early: either way it has no reader
        await pipe.aclose()
        await trio.to_thread.run_sync(piped._reap)


class SnapAssembler:
    """The follower's side: chunks from one peer back into one `Snap`."""

    def __init__(self) -> None:
        self._begin: SnapBegin | None = None
        self._buf = bytearray()

    def add(self, message: SnapBegin | SnapChunk) -> Snap | None:
        """Take one message; return the Snap once complete. A stream that does not add up
        raises PeerFrameError (the link is dropped, and the leader syncs us again)."""
        if isinstance(message, SnapBegin):
            if message.size < HEADER_SIZE:
                raise PeerFrameError(f"a snapshot of {message.size} bytes is shorter than its header")
            self._begin, self._buf = message, bytearray()
            return None
        begin = self._begin
        if begin is None:
            raise PeerFrameError("a snapshot chunk without its beginning")
        self._buf += message.data
        if len(self._buf) < begin.size:
            return None
        self._begin = None
        data, self._buf = self._buf, bytearray()
        if len(data) > begin.size:
            raise PeerFrameError(f"the snapshot at {begin.zxid:#x} came with {len(data)} bytes, {begin.size} announced")
        try:
            payload = parse_snapshot(data, begin.zxid, f"the snapshot at {begin.zxid:#x} from the leader", "syncing again")
        except CorruptSnapshotError as e:
            raise PeerFrameError(str(e)) from e
        return Snap(begin.zxid, payload)

    @property
    def in_progress(self) -> str | None:
        """How far a stream has come ("12,288 of 56,677 bytes of the snapshot at 0x..."), or
        None between streams."""
        if self._begin is None:
            return None
        return f"{len(self._buf):,} of {self._begin.size:,} bytes of the snapshot at {self._begin.zxid:#x}"

    def reset(self) -> None:
        """The link broke: a stream in progress is gone."""
        self._begin, self._buf = None, bytearray()
