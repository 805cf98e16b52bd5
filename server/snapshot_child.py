"""Periodic snapshots written by a forked child, so that the event loop never encodes the tree.

`fork` gives the child a copy-on-write image of the server at one instant: the tree at one
zxid, consistent without a lock or a copy. The child encodes it, writes the snapshot file
durably and exits; the server goes on serving meanwhile, and only the fork itself (copying
the page tables: milliseconds, even for a large tree) happens on the loop. The alternatives
were worse for Python: encoding in a thread holds the GIL for most of the time it runs (the
loop gets a slice every switch interval, and the encode takes twice as long), and encoding in
chunks between requests needs transactions that can be replayed over a fuzzy snapshot, which
ours (sequential names, version checks) are not.

The same child serves a SNAP sync: it writes the snapshot, in the file format, into a pipe
that the leader streams to the follower as it is produced (`start_to_pipe`). The format is
batched (snapshot_codec.py), so the first batches are on their way, and being decoded by the
follower, while the child still encodes the rest; a backup asks for the whole (version 1)
format, whose header says its size up front.

The child runs niced (PERIODIC_NICENESS, STREAMED_NICENESS): at a million znodes it encodes
for seconds, on the CPUs the servers' loops need, and niced it takes only what they leave. It
flushes a snapshot file in pieces as it writes it (`_write_file`), for the log fsyncs' sake.

The child touches nothing but the tree and its own output: it closes every other inherited
descriptor first (a client socket the server closes must not stay open in the child), takes
the default signal handlers, and leaves with `os._exit`, never returning into Trio. The price
is memory: the pages the child reads (reference counts change as it walks the tree) are
copied, up to the tree's size, for as long as it runs.
"""

from __future__ import annotations

import fcntl
import gc
import os
import signal
import warnings
from pathlib import Path
from typing import NoReturn

import attrs
import trio

from ccore.znodes.codec import encode_snapshot
from ccore.znodes.tree import DataTree

from .snapshot_codec import write_tree
from .storage._fsutil import TMP_SUFFIX, fsync_dir, write_all
from .storage.snapshots import encode_snapshot_header

PIPE_BYTES = 1024 * 1024
FLUSH_BYTES = 8 * 1024 * 1024  # a snapshot file is flushed in pieces this big (see _write_file)
# Niceness of a child: it yields the CPU to the server's loop (whose clients wait on it). A
# periodic snapshot is waited for by nobody; a SNAP by one follower, or a backup by its
# operator, so that child gets a fair share still.
PERIODIC_NICENESS = 19
STREAMED_NICENESS = 10

_datasync = getattr(os, "fdatasync", os.fsync)  # no fdatasync on macOS


class SnapshotChildError(Exception):
    """The child did not write its snapshot (it failed, or was killed)."""


def can_fork() -> bool:
    return hasattr(os, "fork")


@attrs.define
class SnapshotChild:
    """A running child writing the snapshot of `zxid` to `path`."""

    pid: int
    zxid: int
    path: Path | None  # None: it writes into the pipe `fd`
    fd: int | None = None  # the read end of that pipe (the caller closes it)
    _reaped: bool = False

    def wait(self) -> int:
        """Block until the child exits (call it in a worker thread); returns the snapshot's
        size in bytes, or raises SnapshotChildError."""
        try:
            _, status = os.waitpid(self.pid, 0)
        except ChildProcessError:
            status = -1  # reaped elsewhere (after a kill)
        self._reaped = True
        if not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0):
            raise SnapshotChildError(f"the snapshot child for zxid {self.zxid:#x} failed (wait status {status})")
        return self.path.stat().st_size if self.path is not None else 0

    def kill(self) -> None:
        """Stop the child now (the server is stopping); whoever waits for it is released."""
        if not self._reaped:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def start(tree: DataTree, path: Path) -> SnapshotChild:
    """Fork a child that writes the snapshot of `tree` (as it is now) to `path`."""
    zxid = tree.last_zxid
    pid = _fork()
    if pid == 0:
        _child(tree, zxid, path, None, False)
    return SnapshotChild(pid, zxid, path)


def start_to_pipe(tree: DataTree, whole: bool = False) -> SnapshotChild:
    """Fork a child that writes the snapshot of `tree` (as it is now), as in a snapshot file,
    into a pipe; read it from `child.fd`, then `wait`. Batched (version 2), or with `whole`
    version 1 (header with size and CRC, then the payload)."""
    zxid = tree.last_zxid
    read_fd, write_fd = os.pipe()
    _grow_pipe(read_fd)
    try:
        pid = _fork()
    except BaseException:
        os.close(read_fd)
        os.close(write_fd)
        raise
    if pid == 0:
        os.close(read_fd)
        _child(tree, zxid, None, write_fd, whole)
    os.close(write_fd)
    return SnapshotChild(pid, zxid, None, read_fd)


def _fork() -> int:
    with warnings.catch_warnings():
        # Python 3.12+ warns that a fork of a multi-threaded process may deadlock in the child
        # if it takes a lock another thread held: this child takes none (no logging, no
        # imports, no threads), see the module docstring.
        warnings.simplefilter("ignore", DeprecationWarning)
        return os.fork()


def _grow_pipe(fd: int) -> None:
    """A pipe of PIPE_BYTES where Linux allows it: the child gets further ahead of the leader's
    loop, which then reads bigger pieces (64 KiB by default)."""
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)
    if set_size is not None:
        try:
            fcntl.fcntl(fd, set_size, PIPE_BYTES)
        except OSError:
            pass  # above /proc/sys/fs/pipe-max-size: the default will do


def _write_file(tree: DataTree, path: Path) -> None:
    """`path` replaced by the batched snapshot of `tree`, durably (as atomic_write does).

    The file is flushed every FLUSH_BYTES as it is written: left to one fsync at the end, the
    kernel holds all of it dirty and then writes it in one burst, and the server's log fsyncs
    (every write request waits on them) queue behind that burst for hundreds of milliseconds
    at a million znodes."""
    tmp = path.with_name(path.name + TMP_SUFFIX)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    unflushed = 0

    def write(data: bytes) -> None:
        nonlocal unflushed
        write_all(fd, data)
        unflushed += len(data)
        if unflushed >= FLUSH_BYTES:
            _datasync(fd)
            unflushed = 0

    try:
        write_tree(tree, write)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def _child(tree: DataTree, zxid: int, path: Path | None, fd: int | None, whole: bool) -> NoReturn:
    status = 1
    try:
        if fd is None:
            os.closerange(3, _max_fd())
        else:
            os.closerange(3, fd)
            os.closerange(fd + 1, _max_fd())
        try:
            signal.set_wakeup_fd(-1)
            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, signal.SIG_DFL)
        except ValueError:
            pass  # forked from a thread other than the main one: nothing was installed there
        gc.disable()  # the collector would only copy more pages; the child lives seconds
        _lower_priority(PERIODIC_NICENESS if path is not None else STREAMED_NICENESS)
        if path is not None:
            _write_file(tree, path)
        elif whole:
            assert fd is not None
            payload = encode_snapshot(tree)
            write_all(fd, encode_snapshot_header(zxid, payload))
            write_all(fd, payload)
            os.close(fd)
        else:
            assert fd is not None
            write_tree(tree, lambda data: write_all(fd, data))
            os.close(fd)
        status = 0
    except BaseException as e:  # noqa: BLE001 - one line on stderr, then the exit status says it
        try:
            os.write(2, f"ccore snapshot child: {type(e).__name__}: {e}\n".encode(errors="replace"))
        except OSError:
            pass
    finally:
        os._exit(status)


def _lower_priority(niceness: int) -> None:
    try:
        os.nice(niceness)
    except (AttributeError, OSError):
        pass  # no os.nice here, or not allowed: the child runs at the server's priority


def _max_fd() -> int:
    try:
        return int(os.sysconf("SC_OPEN_MAX"))
    except (ValueError, OSError):
        return 65536


async def read_pipe(pipe: trio.lowlevel.FdStream, size: int) -> bytes:
    """Up to `size` bytes from a child's pipe, fewer only at its end (the SNAP and backup
    streams both read their snapshot this way)."""
    parts: list[bytes] = []
    got = 0
    while got < size:
        part = await pipe.receive_some(size - got)
        if not part:
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)
