"""`ccore backup` and `ccore restore`: a live server's snapshot to a file, and a file to a data dir.

`ccore backup --server HOST:ADMINPORT FILE` asks the server's admin API for
`/commands/snapshot?streaming=true` (server/backup_stream.py: a sync barrier, then a forked
snapshot streamed as it is written) and writes it to FILE: the snapshot file format itself
(a header with magic, zxid, length and a CRC32, then the CBOR tree). The bytes are checked on
arrival: length as announced, the CRC32 of the header, and the SHA-256 the server computed
as it sent them (the `snapshot_sha256` trailer). Only a file that passes is renamed into
place, fsynced. A blocking program: one socket, h11 as the client protocol.

`ccore restore FILE --data-dir DIR` makes DIR the data dir of a new server holding that
snapshot: the snapshot, an empty log starting at its zxid, and the epoch files at the
snapshot's epoch (so the new ensemble's first leader takes a later epoch and its zxids go on
above the restored ones). Every server of a new ensemble gets the same file.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import socket
import struct
import sys
import time
import zlib
from pathlib import Path
from typing import BinaryIO

import h11

from .snapshot_codec import tree_of
from .storage import CorruptSnapshotError, DataDir, StorageError
from .storage._fsutil import TMP_SUFFIX, fsync_dir
from .storage.snapshots import (
    HEADER_SIZE,
    WHOLE_VERSION,
    StoredSnapshot,
    read_snapshot_file,
    snapshot_name,
    snapshot_size,
    snapshot_zxid,
)

PATH = "/commands/snapshot?streaming=true"
PROGRESS_MIN_BYTES = 8 * 1024 * 1024  # smaller backups finish before progress would help
PROGRESS_EVERY_S = 1.0
# What a new server's data dir may already hold: its id, and a config kept beside the data.
ALLOWED_IN_NEW_DATA_DIR = ("myid", "zoo.cfg")


class BackupError(Exception):
    """The backup did not complete; the message says why (and nothing was left at FILE)."""


def _address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT (the admin port), got {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def backup_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ccore backup", description="Write a consistent snapshot of a live server (any ensemble member) to FILE."
    )
    p.add_argument(
        "--server", type=_address, default=("127.0.0.1", 8080), help="HOST:PORT of its admin API (default 127.0.0.1:8080)"
    )
    p.add_argument("--timeout", type=float, default=60.0, help="seconds any one step may wait (default 60)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument("file", type=Path)
    return p


def fetch(host: str, port: int, out: Path, timeout_s: float, progress: bool = True) -> tuple[int, int, str]:
    """Stream the server's snapshot into `out`; returns (zxid, bytes, sha256 hex)."""
    tmp = out.with_name(out.name + ".partial")
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock, open(tmp, "wb") as f:
            result = _receive(sock, host, f, timeout_s, progress)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(out)
        fsync_dir(out.parent)
        return result
    except OSError as e:
        raise BackupError(f"cannot fetch the snapshot from {host}:{port}: {e.strerror or e}") from None
    except h11.RemoteProtocolError as e:
        raise BackupError(f"the transfer from {host}:{port} broke off ({e}); nothing was kept") from None
    finally:
        tmp.unlink(missing_ok=True)


def _receive(sock: socket.socket, host: str, f: BinaryIO, timeout_s: float, progress: bool) -> tuple[int, int, str]:
    write = f.write
    conn = h11.Connection(h11.CLIENT)
    sock.sendall(conn.send(h11.Request(method="GET", target=PATH, headers=[("Host", host), ("Connection", "close")])))
    sock.sendall(conn.send(h11.EndOfMessage()))
    sha = hashlib.sha256()
    header = b""
    size = received = 0
    crc = expected_crc = 0
    status = 0
    error_body = b""
    last_report = time.monotonic()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(sock.recv(1024 * 1024))
            continue
        if isinstance(event, h11.Response):
            status = event.status_code
            if status == 200:
                headers = {k.decode().lower(): v.decode() for k, v in event.headers}
                size = int(headers.get("snapshot_size", "0"))
        elif isinstance(event, h11.Data):
            data = bytes(event.data)
            if status != 200:
                error_body = (error_body + data)[:1000]
                continue
            sha.update(data)
            write(data)
            if len(header) < HEADER_SIZE:
                need = HEADER_SIZE - len(header)
                header += data[:need]
                data = data[need:]
                if len(header) == HEADER_SIZE:
                    if snapshot_size(header) != size:
                        raise BackupError(f"the snapshot header says {snapshot_size(header)} bytes, the server {size}")
                    crc = zlib.crc32(header[: HEADER_SIZE - 4])
                    (expected_crc,) = struct.unpack_from(">I", header, HEADER_SIZE - 4)
            crc = zlib.crc32(data, crc)
            received += len(event.data)
            now = time.monotonic()
            if progress and size >= PROGRESS_MIN_BYTES and now - last_report >= PROGRESS_EVERY_S:
                last_report = now
                print(
                    f"ccore backup: {received / 2**20:.1f} of {size / 2**20:.1f} MiB ({100 * received // max(size, 1)}%)",
                    file=sys.stderr,
                )
        elif isinstance(event, h11.EndOfMessage):
            if status != 200:
                raise BackupError(f"the server answered {status}: {error_body.decode(errors='replace').strip()}")
            trailers = {k.decode().lower(): v.decode() for k, v in event.headers}
            break
        elif isinstance(event, h11.ConnectionClosed):
            raise BackupError(f"the server closed the connection after {received} of {size} bytes; nothing was kept")
    if received != size or len(header) < HEADER_SIZE:
        raise BackupError(f"received {received} bytes, the server announced {size}")
    if crc != expected_crc:
        raise BackupError("the snapshot does not match its CRC32: damaged on the way; nothing was kept")
    theirs = trailers.get("snapshot_sha256")
    if theirs != sha.hexdigest():
        raise BackupError(f"SHA-256 mismatch: the server sent {theirs}, we received {sha.hexdigest()}; nothing was kept")
    return snapshot_zxid(header), received, sha.hexdigest()


def backup(argv: list[str]) -> int:
    ns = backup_parser().parse_args(argv)
    host, port = ns.server
    started = time.monotonic()
    try:
        zxid, size, digest = fetch(host, port, ns.file, ns.timeout, progress=not ns.quiet)
    except BackupError as e:
        print(f"ccore backup: {e}", file=sys.stderr)
        return 1
    print(
        f"ccore backup: {ns.file}: snapshot at zxid {zxid:#x}, {size} bytes, sha256 {digest}, "
        f"in {time.monotonic() - started:.1f} s",
        file=sys.stderr,
    )
    return 0


# -- restore --------------------------------------------------------------------------------------


def restore_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ccore restore", description="Prepare the data dir of a new server from a `ccore backup` file."
    )
    p.add_argument("file", type=Path)
    p.add_argument("--data-dir", type=Path, required=True, help="the new server's data dir: absent or empty (myid, zoo.cfg)")
    p.add_argument("--myid", type=int, help="also write this server id to DATA_DIR/myid (for an ensemble member)")
    return p


def read_backup(path: Path) -> tuple[int, StoredSnapshot]:
    """(zxid, snapshot) of a backup file, its CRCs checked. A backup is a version-1 (whole)
    snapshot; a snapshot file copied from a data dir (version 2, batched) will do as well."""
    with open(path, "rb") as f:
        header = f.read(HEADER_SIZE)
    if len(header) < HEADER_SIZE:
        raise CorruptSnapshotError(f"backup {path}: {len(header)} bytes, shorter than a snapshot header")
    zxid = snapshot_zxid(header)
    return zxid, read_snapshot_file(path, zxid, "it is damaged: use another backup")


def restore_into(path: Path, data_dir: Path, myid: int | None = None) -> tuple[int, int]:
    """Restore a backup into a new data dir; returns (zxid, znodes). Raises StorageError or
    ValueError (a data dir in use) with one line to show."""
    if data_dir.exists():
        extra = sorted(p.name for p in data_dir.iterdir() if p.name not in ALLOWED_IN_NEW_DATA_DIR)
        if extra:
            raise ValueError(
                f"{data_dir} is not empty ({', '.join(extra[:5])}{', ...' if len(extra) > 5 else ''}); "
                "restore only into a new data dir (it may hold myid and zoo.cfg)"
            )
    zxid, stored = read_backup(path)
    znodes = len(tree_of(stored).nodes)  # proves the tree decodes before anything is written
    epoch = zxid >> 32
    with DataDir(data_dir) as d:
        if stored.version == WHOLE_VERSION:
            d.install_snapshot(zxid, stored.payload, [])
        else:
            copy = d.snapshots.directory / f"{snapshot_name(zxid)}.restore{TMP_SUFFIX}"
            shutil.copyfile(path, copy)
            d.install_snapshot(zxid, copy, [])
        d.accepted_epoch.write(epoch)
        d.current_epoch.write(epoch)
    if myid is not None:
        (data_dir / "myid").write_text(f"{myid}\n")
    fsync_dir(data_dir)
    return zxid, znodes


def restore(argv: list[str]) -> int:
    ns = restore_parser().parse_args(argv)
    try:
        zxid, znodes = restore_into(ns.file, ns.data_dir, ns.myid)
    except (StorageError, ValueError) as e:
        print(f"ccore restore: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"ccore restore: {e.filename or ns.file}: {e.strerror or e}", file=sys.stderr)
        return 2
    print(f"ccore restore: {ns.data_dir}: snapshot at zxid {zxid:#x} with {znodes} znodes; start the server on it")
    return 0
