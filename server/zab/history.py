"""The replicated log as the core sees it: the driver's durable log plus an in-memory tail.

The tail holds every entry not yet durable (handed to the driver in a Ready but not yet
advanced, or not yet handed out) and a window of recent committed ones, like ZooKeeper's
committedLog, so DIFF and apply rarely read storage. Older entries come from
`ReadOnlyStorage.entries_after`, in batches of bounded size (`read_entries`, `read_bytes`):
the server answers those calls on its event loop, so a call must never read a big log whole.
`entries` asks for what lies between its bounds and stops there; `floor` (the sync decision)
probes single records instead of scanning from the base.

Durability is tracked as one number, `durable`: every entry up to it is on disk. A
truncation or snapshot install bumps `generation`, so a Ready handed out before it cannot
claim, when advanced, entries that were cut since.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

from .api import DEFAULT_READ_BATCH_BYTES, DEFAULT_READ_BATCH_ENTRIES, Entry, ReadOnlyStorage, ZabSafetyError, zx

_NO_ENTRY = 1 << 64  # above every zxid: "no stored entry after this one"


class History:
    def __init__(
        self,
        storage: ReadOnlyStorage,
        last_zxid: int,
        window: int,
        read_entries: int = DEFAULT_READ_BATCH_ENTRIES,
        read_bytes: int = DEFAULT_READ_BATCH_BYTES,
    ) -> None:
        self.storage = storage
        self.window = window
        self.read_entries = read_entries  # bounds of one `storage.entries_after` call
        self.read_bytes = read_bytes
        self.last = last_zxid  # last entry, durable or not
        self.durable = last_zxid  # everything up to here is on disk
        self.generation = 0
        self._mem: list[Entry] = []  # entries (mem_base, last], contiguous with storage
        self._zxids: list[int] = []  # the zxids of _mem, for bisect
        self._mem_base = last_zxid
        self._floor = 0  # an installed snapshot's zxid: nothing older is history any more
        # While a snapshot install is not yet persisted, storage still shows the old log
        # (which may start after the snapshot): the history starts at the snapshot.
        self._installing: int | None = None

    # -- queries ----------------------------------------------------------------------------

    @property
    def base(self) -> int:
        """History after this zxid can be read; this zxid itself is (or was) an entry."""
        if self._installing is not None:
            return self._installing
        return max(self.storage.first_zxid(), self._floor)

    def entries(self, after: int, upto: int, limit: int | None = None) -> list[Entry] | None:
        """Entries with after < zxid <= upto, oldest first (only the first `limit` of them, if
        given); None if some were purged.

        Every one is returned: a long stretch of stored log is read in several bounded calls,
        each short, but all within this one (the sync stream needs them at once)."""
        if after >= upto:
            return []
        if after < self.base:
            return None
        out: list[Entry] = []
        if after < self._mem_base:
            stored = self._read_stored(after, min(self._mem_base, upto), limit)
            if stored is None:
                return None
            out = stored
            if upto <= self._mem_base or (limit is not None and len(out) >= limit):
                return out
            # The stored part must end exactly where the memory tail starts.
            if (out[-1][0] if out else after) != self._mem_base:
                raise ZabSafetyError(
                    f"storage entries after {zx(after)} end at {zx(out[-1][0] if out else None)}, "
                    f"but the in-memory log starts after {zx(self._mem_base)}"
                )
        start = bisect.bisect_right(self._zxids, after)
        end = bisect.bisect_right(self._zxids, upto)
        if limit is not None:
            end = min(end, start + max(0, limit - len(out)))
        out.extend(self._mem[start:end])
        return out

    def _read_stored(self, after: int, stop: int, limit: int | None) -> list[Entry] | None:
        """Stored entries with after < zxid <= stop (the first `limit`), batch by batch."""
        out: list[Entry] = []
        cursor = after
        # Each round takes at least one new entry (or stops), so it ends within as many
        # rounds as there are entries in (after, stop].
        while cursor < stop and (limit is None or len(out) < limit):
            want = self.read_entries if limit is None else min(self.read_entries, limit - len(out))
            batch = self.storage.entries_after(cursor, want, self.read_bytes)
            if batch is None:
                return None
            if not batch:
                break  # storage ends here; `entries` checks that it meets the memory tail
            if batch[0][0] <= cursor:
                raise ZabSafetyError(f"storage answered entries after {zx(cursor)} with {zx(batch[0][0])}")
            for zxid, payload in batch:
                if zxid > stop or (limit is not None and len(out) >= limit):
                    return out
                out.append((zxid, payload))
            cursor = batch[-1][0]
        return out

    def _first_stored_after(self, zxid: int) -> int | None:
        """The zxid of the first stored entry above `zxid` (one record read); `_NO_ENTRY` if
        there is none, None if it was purged."""
        batch = self.storage.entries_after(zxid, 1, 1)
        if batch is None:
            return None
        return batch[0][0] if batch else _NO_ENTRY

    def count_after(self, zxid: int) -> int:
        """How many entries are above `zxid` (only those in memory are counted)."""
        return len(self._zxids) - bisect.bisect_right(self._zxids, zxid)

    def floor(self, zxid: int) -> int | None:
        """The largest zxid of the history (counting `base`) that is <= zxid; None if below base."""
        base = self.base
        if zxid < base:
            return None
        if zxid >= self.last:
            return self.last
        if zxid >= self._mem_base:
            i = bisect.bisect_right(self._zxids, zxid)
            return self._zxids[i - 1] if i else self._mem_base
        if zxid == base:
            return base
        # In storage. Probe single records rather than read the log from its base: first
        # whether `zxid` itself is an entry (the DIFF case, the usual one), then bisect for
        # the last entry below it (TRUNC): at most ~64 one-record reads, however long the log.
        # A purge meanwhile (storage answers None) makes it "below base": a SNAP then.
        first = self._first_stored_after(zxid - 1)
        if first is None or first == zxid:
            return first
        probe = self._first_stored_after(base)
        if probe is None:
            return None
        if probe > zxid:
            return base  # nothing stored between the base and zxid
        lo, hi = base, zxid - 1  # an entry lies in (lo, zxid], none in (hi, zxid]
        for _ in range(hi.bit_length() + 1):  # each round halves hi - lo
            if hi - lo <= 1:
                # The first entry above lo is <= zxid, none is above hi = lo + 1: it is hi.
                return hi
            mid = (lo + hi) // 2
            probe = self._first_stored_after(mid)
            if probe is None:
                return None
            if probe <= zxid:
                lo = mid
            else:
                hi = mid
        raise ZabSafetyError(f"floor of {zx(zxid)}: the search over ({zx(base)}, {zx(zxid)}) did not converge")

    # -- changes ----------------------------------------------------------------------------

    def append(self, zxid: int, payload: bytes) -> None:
        if zxid <= self.last:
            raise ZabSafetyError(f"append of {zx(zxid)} after {zx(self.last)}")
        self._mem.append((zxid, payload))
        self._zxids.append(zxid)
        self.last = zxid

    def extend(self, entries: Iterable[Entry]) -> None:
        for zxid, payload in entries:
            self.append(zxid, payload)

    def truncate_after(self, zxid: int) -> None:
        if not self.base <= zxid <= self.last:
            raise ZabSafetyError(f"truncate after {zx(zxid)} outside ({zx(self.base)}, {zx(self.last)}]")
        if zxid >= self._mem_base:
            i = bisect.bisect_right(self._zxids, zxid)
            del self._mem[i:], self._zxids[i:]
        else:
            self._mem, self._zxids, self._mem_base = [], [], zxid
        self.last = zxid
        self.durable = min(self.durable, zxid)
        self.generation += 1

    def reset(self, zxid: int) -> None:
        """The history is now a snapshot at `zxid` (being installed): forget the rest."""
        self._mem, self._zxids, self._mem_base = [], [], zxid
        self.last = self._floor = self._installing = zxid
        self.durable = 0  # nothing of the new history is on disk until the install is
        self.generation += 1

    def handed_out(self, generation: int, last: int) -> None:
        """A Ready carrying the log up to `last` was persisted (advance)."""
        if generation == self.generation:
            self.durable = max(self.durable, last)
            self._installing = None  # the install, if any, is in storage now

    def trim(self, applied: int) -> None:
        """Forget entries that are durable and applied, beyond the window kept for DIFF."""
        keep_upto = min(self.durable, applied)
        excess = len(self._mem) - self.window
        if excess <= self.window // 4:  # amortise: trim in chunks
            return
        cut = min(excess, bisect.bisect_right(self._zxids, keep_upto))
        if cut > 0:
            self._mem_base = self._zxids[cut - 1]
            del self._mem[:cut], self._zxids[:cut]
