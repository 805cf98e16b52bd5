"""A simulated data dir: log, snapshots and epoch files that lose what was not fsynced.

Appends land in a volatile tail until `sync()`. A crash keeps a random prefix of that tail
(the page cache flushed some of it; a torn last record is cut by recovery, which amounts to a
shorter prefix) and loses the rest. Truncation, snapshot writes, installs and epoch writes are
durable when they return, like their real counterparts in server/storage.
"""

from __future__ import annotations

import bisect
import random

from ccore.server.zab.api import Entry

from .memory import bounded


class DiskError(AssertionError):
    """The core asked the disk for something impossible (a bug in the core)."""


class SimDisk:
    def __init__(self) -> None:
        self.log: list[Entry] = []  # durable records
        self.zxids: list[int] = []
        self.volatile: list[Entry] = []  # appended, not yet fsynced
        self.base = 0  # the log holds every record after this zxid
        self.snapshot: tuple[int, bytes] | None = None  # newest snapshot (older ones purged)
        self.accepted_epoch = 0
        self.current_epoch = 0
        self.reads = 0  # entries_after calls, and the records they returned
        self.read_entries = 0

    # -- reads ------------------------------------------------------------------------------

    @property
    def last_zxid(self) -> int:
        if self.volatile:
            return self.volatile[-1][0]
        return self.zxids[-1] if self.zxids else self.base

    @property
    def durable_zxid(self) -> int:
        return self.zxids[-1] if self.zxids else self.base

    def entries_after(self, zxid: int, max_entries: int, max_bytes: int) -> list[Entry] | None:
        """At most `max_entries` records after `zxid` (durable, then volatile), within
        `max_bytes` of payload but at least one: the bounded read of ReadOnlyStorage."""
        if zxid < self.base:
            return None
        i = bisect.bisect_right(self.zxids, zxid)
        out = self.log[i : i + max_entries]
        if len(out) < max_entries:
            out += [e for e in self.volatile if e[0] > zxid][: max_entries - len(out)]
        out = bounded(out, max_bytes)
        self.reads += 1
        self.read_entries += len(out)
        return out

    def holds_durably(self, zxid: int) -> bool:
        """Is `zxid` in the durable log (or covered by the snapshot)?"""
        if self.snapshot is not None and zxid <= self.snapshot[0] and zxid <= self.base:
            return True
        i = bisect.bisect_left(self.zxids, zxid)
        return i < len(self.zxids) and self.zxids[i] == zxid

    # -- writes (what a Ready asks) ---------------------------------------------------------

    def truncate_after(self, zxid: int) -> None:
        if self.volatile:
            raise DiskError("truncate with unsynced appends pending")
        if zxid < self.base:
            raise DiskError(f"truncate after {zxid:#x} below the log base {self.base:#x}")
        i = bisect.bisect_right(self.zxids, zxid)
        del self.log[i:], self.zxids[i:]

    def install(self, zxid: int, data: bytes, entries: tuple[Entry, ...]) -> None:
        """Snapshot + a log restarting after it holding `entries`: crash-atomic, durable."""
        if self.volatile:
            raise DiskError("install with unsynced appends pending")
        self.snapshot = (zxid, data)
        self.base = zxid
        self.log, self.zxids = [], []
        self._append_durable(entries)

    def append(self, entries: tuple[Entry, ...]) -> None:
        last = self.last_zxid
        for zxid, _ in entries:
            if zxid <= last:
                raise DiskError(f"append of {zxid:#x} after {last:#x}")
            last = zxid
        self.volatile.extend(entries)

    def sync(self) -> None:
        self._append_durable(self.volatile)
        self.volatile = []

    def _append_durable(self, entries: tuple[Entry, ...] | list[Entry]) -> None:
        last = self.durable_zxid
        for zxid, payload in entries:
            if zxid <= last:
                raise DiskError(f"append of {zxid:#x} after {last:#x}")
            self.log.append((zxid, payload))
            self.zxids.append(zxid)
            last = zxid

    def write_epochs(self, accepted: int | None, current: int | None) -> None:
        if accepted is not None:
            self.accepted_epoch = accepted
        if current is not None:
            self.current_epoch = current
        if self.current_epoch > self.accepted_epoch:
            raise DiskError(f"current epoch {self.current_epoch} above accepted {self.accepted_epoch}")

    # -- the driver's own housekeeping ------------------------------------------------------

    def write_snapshot(self, zxid: int, data: bytes, purge: bool) -> None:
        """A periodic snapshot of the applied state; with `purge`, drop the log up to it."""
        if zxid < self.base:
            return
        if zxid > self.durable_zxid:
            raise DiskError(f"snapshot at {zxid:#x} beyond the durable log {self.durable_zxid:#x}")
        self.snapshot = (zxid, data)
        if purge:
            i = bisect.bisect_right(self.zxids, zxid)
            del self.log[:i], self.zxids[:i]
            self.base = zxid

    def crash(self, rng: random.Random) -> int:
        """Lose the unsynced tail but a random prefix; returns how many records survived."""
        kept = rng.randint(0, len(self.volatile))
        self._append_durable(self.volatile[:kept])
        self.volatile = []
        return kept
