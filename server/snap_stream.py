"""A SNAP sync's snapshot on the peer link: streamed in bounded chunks as it is made, decoded
by the follower as it comes.

The leader's Zab core puts a `Snap` in a Ready whose data is a `PipedSnapshot`: a forked child
(snapshot_child.start_to_pipe) writing the tree as it was at the fork, in the batched snapshot
file format (storage/snapshots.py: self-delimiting frames, each with its CRC, an end frame
that vouches for the whole), into a pipe. The driver streams it to the follower as
`SnapStart(zxid)` and `SnapChunk`s of at most `snapChunkBytes` (default CHUNK), each whatever
the pipe holds when the peer link can take more: the leader's loop never encodes the tree,
never holds more than a chunk of it, and a snapshot has no size limit. Where there is no
fork, the core gets the encoded bytes and they travel the same way.

On the follower, `SnapAssembler` writes the bytes to a temp file in the snapshot directory
as they come and decodes each batch into the tree being built (snapshot_codec.TreeReceiver).
Only once the end frame checks out does it hand the core the one `Snap` it expects, holding
that tree and file (`ReceivedSnapshot`): installing it is an fsync and a rename, and the
encode on the leader, the transfer and the decode here overlap. A stream that breaks or does
not check out is dropped with its file, and the core never hears of it.

`SnapBegin(zxid, size)` is how older builds send a snapshot (version 1, its size and CRC up
front): still taken, whole, for a follower upgraded before its leader.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import attrs
import trio

from ccore.znodes.tree import DataTree

from .peers import PeerFrameError
from .snapshot_child import SnapshotChild, SnapshotChildError
from .snapshot_codec import TreeReceiver
from .storage._fsutil import TMP_SUFFIX, write_all
from .storage.errors import CorruptSnapshotError
from .storage.snapshots import HEADER_SIZE, parse_snapshot, snapshot_name
from .zab.messages import Snap

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024


@attrs.frozen
class SnapStart:
    """A snapshot at `zxid` follows in `SnapChunk`s, in the snapshot file format: it ends
    with its end frame."""

    zxid: int


@attrs.frozen
class SnapBegin:
    """From an older leader: a snapshot at `zxid` follows, `size` bytes in the version-1
    (whole) file format, in chunks."""

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


def snapshot_messages(zxid: int, data: bytes | PipedSnapshot, chunk: int = CHUNK) -> AsyncIterator[SnapStart | SnapChunk]:
    """The messages that carry a Snap's snapshot, chunks of at most `chunk` bytes (see the
    module docstring). `data`: the snapshot file's bytes, or a child writing them."""
    return _from_pipe(zxid, data, chunk) if isinstance(data, PipedSnapshot) else _from_bytes(zxid, data, chunk)


async def _from_bytes(zxid: int, data: bytes, chunk: int) -> AsyncIterator[SnapStart | SnapChunk]:
    yield SnapStart(zxid)
    for start in range(0, len(data), chunk):
        yield SnapChunk(data[start : start + chunk])


async def _from_pipe(zxid: int, piped: PipedSnapshot, chunk_size: int) -> AsyncIterator[SnapStart | SnapChunk]:
    child = piped.child
    assert child.fd is not None and not piped._taken
    piped._taken = True
    pipe = trio.lowlevel.FdStream(child.fd)
    sent = chunks = 0
    started = time.monotonic()
    failed: Exception | None = None
    try:
        yield SnapStart(zxid)
        # Whatever the pipe holds, up to a chunk, as soon as the link can take it: the first
        # batches leave while the child still encodes the rest.
        while chunk := await pipe.receive_some(chunk_size):
            sent += len(chunk)
            chunks += 1
            yield SnapChunk(chunk)
        try:
            await trio.to_thread.run_sync(child.wait)
        except SnapshotChildError as e:
            failed = e
        else:
            log.info(
                "snapshot at %#x streamed: %s bytes in %d chunks, %.2f s", zxid, f"{sent:,}", chunks, time.monotonic() - started
            )
    finally:
        child.kill()  # done already, or the stream ended early: either way it has no reader
        await pipe.aclose()
        await trio.to_thread.run_sync(piped._reap)
    if failed is not None:
        # The follower cannot use half of it (and will not: no end frame came); the link drops.
        raise SnapshotChildError(f"{failed} after writing {sent:,} bytes")


@attrs.define(eq=False)
class SpooledFile:
    """A received snapshot's file, under a temp name in the snapshot directory: removed
    unless an install `claim`ed it."""

    path: Path
    claimed: bool = False

    def discard(self) -> None:
        if not self.claimed:
            self.path.unlink(missing_ok=True)


@attrs.define(eq=False)
class ReceivedSnapshot:
    """A snapshot received whole and checked: its tree, built, and its file, written (not yet
    fsynced). The installer `claim`s it before it starts; one never claimed has its file
    removed when the next comes (`Spool.received`) or at the next start."""

    zxid: int
    tree: DataTree
    file: SpooledFile
    size: int

    @property
    def path(self) -> Path:
        return self.file.path

    def claim(self) -> Path:
        """On the loop, before the install leaves it: from now on nobody else removes it."""
        self.file.claimed = True
        return self.file.path


class Spool:
    """Where a follower writes the snapshots it receives (its snapshot directory, under temp
    names that a restart removes), and the files of those not yet installed (the files only:
    a tree the core dropped is not kept alive here)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._names = itertools.count(1)
        self._unclaimed: list[SpooledFile] = []

    def open(self, zxid: int) -> tuple[int, Path]:
        path = self.directory / f"{snapshot_name(zxid)}.recv{next(self._names)}{TMP_SUFFIX}"
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), path

    def received(self, snapshot: ReceivedSnapshot) -> None:
        """`snapshot` goes to the core: any received before it never will be installed now
        (the core holds one sync's snapshot at a time), unless its install started."""
        for older in self._unclaimed:
            older.discard()
        self._unclaimed = [snapshot.file]


class _Incoming:
    """A batched stream in progress: its file and its tree, both growing."""

    def __init__(self, zxid: int, spool: Spool) -> None:
        self.zxid = zxid
        self.receiver = TreeReceiver(
            zxid, f"the snapshot at {zxid:#x} from the leader", "dropping the link; the leader syncs us again"
        )
        self.fd: int | None
        self.fd, self.path = spool.open(zxid)
        self.started = time.monotonic()
        self.decode_s = self.decode_cpu_s = 0.0

    def close(self) -> None:
        if self.fd is not None:
            fd, self.fd = self.fd, None
            os.close(fd)

    def drop(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)


class SnapAssembler:
    """The follower's side: the chunks from one peer back into one `Snap`."""

    def __init__(self, spool: Spool) -> None:
        self._spool = spool
        self._incoming: _Incoming | None = None
        self._begin: SnapBegin | None = None  # an older leader's stream
        self._buf = bytearray()

    def add(self, message: SnapStart | SnapBegin | SnapChunk) -> Snap | None:
        """Take one message; return the Snap once complete and checked. A stream that does
        not add up raises PeerFrameError (the link is dropped, and the leader syncs us again)."""
        if isinstance(message, SnapStart):
            self.reset()
            self._incoming = _Incoming(message.zxid, self._spool)
            return None
        if isinstance(message, SnapBegin):
            self.reset()
            if message.size < HEADER_SIZE:
                raise PeerFrameError(f"a snapshot of {message.size} bytes is shorter than its header")
            self._begin = message
            return None
        incoming = self._incoming
        if incoming is not None:
            return self._add_batched(incoming, message.data)
        if self._begin is None:
            raise PeerFrameError("a snapshot chunk without its beginning")
        return self._add_whole(self._begin, message.data)

    def _add_batched(self, incoming: _Incoming, data: bytes) -> Snap | None:
        assert incoming.fd is not None
        started, cpu = time.perf_counter(), time.thread_time()
        try:
            tree = incoming.receiver.feed(data)
        except CorruptSnapshotError as e:
            self.reset()
            raise PeerFrameError(str(e)) from e
        incoming.decode_s += time.perf_counter() - started
        incoming.decode_cpu_s += time.thread_time() - cpu
        # On the loop: a write to the page cache, a fraction of the decode just done; the
        # fsync comes at the install, in a worker thread.
        write_all(incoming.fd, data)
        if tree is None:
            return None
        incoming.close()
        self._incoming = None
        received = ReceivedSnapshot(incoming.zxid, tree, SpooledFile(incoming.path), incoming.receiver.reader.received)
        log.info(
            "snapshot at %#x received: %s bytes, %s nodes in %.2f s (%.2f s of it decoding, %.2f s CPU)",
            incoming.zxid,
            f"{received.size:,}",
            f"{len(tree.nodes):,}",
            time.monotonic() - incoming.started,
            incoming.decode_s,
            incoming.decode_cpu_s,
        )
        self._spool.received(received)
        return Snap(incoming.zxid, received)  # type: ignore[arg-type]  # the core passes it on untouched

    def _add_whole(self, begin: SnapBegin, data: bytes) -> Snap | None:
        self._buf += data
        if len(self._buf) < begin.size:
            return None
        self._begin = None
        whole, self._buf = self._buf, bytearray()
        if len(whole) > begin.size:
            raise PeerFrameError(f"the snapshot at {begin.zxid:#x} came with {len(whole)} bytes, {begin.size} announced")
        try:
            payload = parse_snapshot(whole, begin.zxid, f"the snapshot at {begin.zxid:#x} from the leader", "syncing again")
        except CorruptSnapshotError as e:
            raise PeerFrameError(str(e)) from e
        return Snap(begin.zxid, payload)

    @property
    def in_progress(self) -> str | None:
        """How far a stream has come ("12,288 bytes of the snapshot at 0x..., 4,096 nodes
        decoded"), or None between streams."""
        if self._incoming is not None:
            reader = self._incoming.receiver.reader
            return f"{reader.received:,} bytes of the snapshot at {self._incoming.zxid:#x}"
        if self._begin is not None:
            return f"{len(self._buf):,} of {self._begin.size:,} bytes of the snapshot at {self._begin.zxid:#x}"
        return None

    def reset(self) -> None:
        """The link broke (or a new stream starts): a stream in progress is gone, its file too."""
        if self._incoming is not None:
            self._incoming.drop()
            self._incoming = None
        self._begin, self._buf = None, bytearray()
