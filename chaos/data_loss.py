"""Faults that take data from one server's disk: a wiped data dir, a torn snapshot file.

A wiped server forgets every transaction it acknowledged, so it comes back through a SNAP
sync; with a small `snapChunkBytes` (the chaos ensembles use 128 bytes) even a small tree's
SNAP is a long stream of chunks, and the nemeses below kill the leader, or the syncing server
itself, somewhere in the middle of it. A torn snapshot is a newest snapshot file cut short or
with a flipped byte: the server must notice (its CRC) and recover from an older snapshot and
the log after it.

These helpers only touch files; the nemesis classes in `chaos.nemesis` decide when. Like
`tear_log_tail`, they read data dirs without importing the server.
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Collection
from pathlib import Path
from typing import Any

# What a wiped server keeps: its identity, its config and its own log file.
KEEP = frozenset({"myid", "zoo.cfg", "server.log"})
# The snapshot file header of server/storage/snapshots.py (either version): magic, version,
# zxid, payload length or 0, CRC; frames (each with its own CRC) or the payload follow.
SNAPSHOT_HEADER_BYTES = 32


def wipe_data_dir(data_dir: Path, keep: Collection[str] = KEEP) -> dict[str, Any]:
    """Remove everything but `keep` from a (stopped) server's data dir, as a replaced disk."""
    removed = []
    for entry in sorted(Path(data_dir).iterdir()):
        if entry.name in keep:
            continue
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()
        removed.append(entry.name)
    return {"wiped": removed}


def tear_newest_snapshot(data_dir: Path, rng: random.Random) -> dict[str, Any]:
    """Damage the newest snapshot file of a (stopped) server: cut it short or flip one byte."""
    snapshots = sorted((Path(data_dir) / "snap").glob("snapshot.????????????????"))
    if not snapshots:
        return {"torn": None, "why": "no snapshot yet"}
    newest = snapshots[-1]
    raw = newest.read_bytes()
    if rng.random() < 0.5 or len(raw) <= SNAPSHOT_HEADER_BYTES:
        cut = rng.randrange(len(raw))
        newest.write_bytes(raw[:cut])
        return {"torn": newest.name, "truncated_to": cut, "of": len(raw), "older_snapshots": len(snapshots) - 1}
    at = rng.randrange(SNAPSHOT_HEADER_BYTES, len(raw))
    flipped = bytearray(raw)
    flipped[at] ^= 1 << rng.randrange(8)
    newest.write_bytes(bytes(flipped))
    return {"torn": newest.name, "flipped_byte_at": at, "of": len(raw), "older_snapshots": len(snapshots) - 1}
