"""`GET /commands/snapshot?streaming=true`: a consistent backup of a live server, streamed.

1. A barrier: a sync (a NoOp write) goes through the committer, and the snapshot is taken
   only once it is applied here. In an ensemble it is a transaction the leader orders after
   every write it had proposed, so the snapshot holds every write acknowledged anywhere
   before the request came (its zxid is at least the leader's commit point then).
2. The snapshot: the forked copy-on-write child of snapshot_child writes the tree, as it was
   right after the barrier, in the snapshot file format into a pipe. The loop never encodes
   the tree; it forwards the pipe to the client chunk by chunk as the socket takes them.
3. Checks: the response says `last_zxid` and `snapshot_size` in its headers (ZooKeeper 3.9's
   names), and as the bytes pass the server recomputes the file's CRC32 and a SHA-256. A CRC
   that does not match the header drops the connection before the final chunk (the client
   sees a truncated response); otherwise the SHA-256 goes out as the trailer
   `snapshot_sha256`, for the client to compare with its own.

One backup at a time per server: each fork copies the pages the child touches.
"""

from __future__ import annotations

import hashlib
import logging
import os
import struct
import zlib
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Protocol

import trio

from ccore.znodes.tree import DataTree
from ccore.znodes.txn import NoOp

from . import snapshot_child
from .commands import NOT_SERVING
from .commit import Abandoned, Committer, Outcome
from .http_server import Request, Response
from .snapshot_child import SnapshotChild, SnapshotChildError, read_pipe
from .storage.snapshots import HEADER_SIZE, snapshot_size

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024
BARRIER_TIMEOUT_S = 30.0
SHA_TRAILER = "snapshot_sha256"


class BackupHost(Protocol):
    @property
    def serving(self) -> bool: ...

    @property
    def tree(self) -> DataTree: ...

    @property
    def committer(self) -> Committer: ...


class SnapshotStreamer:
    def __init__(self, server: BackupHost) -> None:
        self.server = server
        self.busy = False

    async def handle(self, request: Request) -> Response:
        if request.query.get("streaming", "true").lower() != "true":
            return _text(400, "only ?streaming=true is supported: the snapshot is the response body")
        if not can_stream():
            return _text(501, "this platform cannot fork: no streamed snapshots")
        if self.busy:
            return _text(429, "a snapshot is being streamed already; try again when it is done")
        if not self.server.serving:
            return _text(503, NOT_SERVING)
        self.busy = True
        try:
            reason = await self._barrier()
            if reason is not None:
                self.busy = False
                return _text(503, f"the sync before the snapshot did not complete ({reason}); try again")
            child = snapshot_child.start_to_pipe(self.server.tree, whole=True)
        except BaseException:
            self.busy = False
            raise
        return await self._respond(child)

    async def _barrier(self) -> str | None:
        """Wait until a sync submitted now is applied here; the reason if it never is."""
        done = trio.Event()
        outcome: list[Outcome] = []

        def on_done(result: Outcome) -> None:
            outcome.append(result)
            done.set()

        # Session 0: no client's session; a NoOp touches no session state when applied.
        self.server.committer.submit(0, NoOp(), (), on_done)
        with trio.move_on_after(BARRIER_TIMEOUT_S):
            await done.wait()
        if not outcome:
            return f"no answer within {BARRIER_TIMEOUT_S:.0f} s"
        if isinstance(outcome[0], Abandoned):
            return outcome[0].reason
        return None

    async def _respond(self, child: SnapshotChild) -> Response:
        assert child.fd is not None
        pipe = trio.lowlevel.FdStream(child.fd)
        try:
            header = await read_pipe(pipe, HEADER_SIZE)
            if len(header) < HEADER_SIZE:
                raise SnapshotChildError(f"the snapshot child for zxid {child.zxid:#x} wrote {len(header)} bytes and stopped")
        except BaseException as e:
            await self._finish(child, pipe)
            if isinstance(e, SnapshotChildError | OSError):
                log.error("backup snapshot failed: %s", e)
                return _text(500, f"the snapshot failed: {e}")
            raise
        size = snapshot_size(header)
        sha = hashlib.sha256()
        log.info("streaming a backup snapshot at zxid %#x, %d bytes", child.zxid, size)
        finish = _Once(lambda: self._finish(child, pipe))
        return Response(
            200,
            _Body(self._body(child, pipe, header, size, sha, finish), finish),
            content_type="application/octet-stream",
            headers=(("last_zxid", f"{child.zxid:#x}"), ("snapshot_size", str(size))),
            trailers=lambda: [(SHA_TRAILER, sha.hexdigest())],
        )

    async def _body(
        self,
        child: SnapshotChild,
        pipe: trio.lowlevel.FdStream,
        header: bytes,
        size: int,
        sha: hashlib._Hash,
        finish: _Once,
    ) -> AsyncGenerator[bytes, None]:
        try:
            sha.update(header)
            yield header
            (expected_crc,) = struct.unpack_from(">I", header, HEADER_SIZE - 4)
            crc = zlib.crc32(header[: HEADER_SIZE - 4])
            left = size - HEADER_SIZE
            while left:
                chunk = await read_pipe(pipe, min(CHUNK, left))
                if not chunk:
                    raise SnapshotChildError(f"the snapshot child for zxid {child.zxid:#x} stopped {left} bytes short")
                left -= len(chunk)
                crc = zlib.crc32(chunk, crc)
                sha.update(chunk)
                yield chunk
            if crc != expected_crc:
                raise SnapshotChildError(f"the snapshot at zxid {child.zxid:#x} does not match its CRC")
            log.info("backup snapshot at zxid %#x sent (%d bytes)", child.zxid, size)
        except SnapshotChildError as e:
            log.error("backup snapshot failed: %s; the client sees a truncated response", e)
            raise
        finally:
            await finish()

    async def _finish(self, child: SnapshotChild, pipe: trio.lowlevel.FdStream) -> None:
        """Stop the child (done already, or nobody reads it any more), close, reap."""
        with trio.CancelScope(shield=True):
            child.kill()
            await pipe.aclose()
            try:
                await trio.to_thread.run_sync(child.wait)
            except SnapshotChildError:
                pass  # killed on purpose, or failed: the stream said so already
            self.busy = False


class _Once:
    """An async cleanup that runs at most once, whoever calls it first."""

    def __init__(self, cleanup: Callable[[], Awaitable[None]]) -> None:
        self._cleanup: Callable[[], Awaitable[None]] | None = cleanup

    async def __call__(self) -> None:
        cleanup, self._cleanup = self._cleanup, None
        if cleanup is not None:
            await cleanup()


class _Body:
    """The response body: the generator's chunks, and a close that cleans up even when the
    generator never started (a HEAD request, a client gone before the first byte): closing
    an unstarted generator runs none of its `finally`."""

    def __init__(self, chunks: AsyncGenerator[bytes, None], finish: _Once) -> None:
        self._chunks = chunks
        self._finish = finish

    def __aiter__(self) -> _Body:
        return self

    async def __anext__(self) -> bytes:
        return await self._chunks.__anext__()

    async def aclose(self) -> None:
        try:
            await self._chunks.aclose()
        finally:
            await self._finish()


def can_stream() -> bool:
    return snapshot_child.can_fork() and hasattr(os, "pipe")


def _text(status: int, message: str) -> Response:
    return Response(status, (message + "\n").encode(), content_type="text/plain; charset=utf-8")
