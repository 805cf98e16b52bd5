"""The replicated log as the core sees it: the driver's durable log plus an in-memory tail.

The tail holds every entry not yet durable (handed to the driver in a Ready but not yet
advanced, or not yet handed out) and a window of recent committed ones, like ZooKeeper's
committedLog, so DIFF and apply rarely read storage. Older entries come from
`ReadOnlyStorage.entries_after`.

Durability is tracked as one number, `durable`: every entry up to it is on disk. A
truncation or snapshot install bumps `generation`, so a Ready handed out before it cannot
claim, when advanced, entries that were cut since.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable

from .api import Entry, ReadOnlyStorage, ZabSafetyError, zx


class History:
    def __init__(self, storage: ReadOnlyStorage, last_zxid: int, window: int) -> None:
        self.storage = storage
        self.window = window
        self.last = last_zxid  # last entry, durable or not
        self.durable = last_zxid  # everything up to here is on disk
        self.generation = 0
        self._mem: list[Entry] = []  # entries (mem_base, last], contiguous with storage
        self._zxids: list[int] = []  # the zxids of _mem, for bisect
        self._mem_base = last_zxid
        self._floor = 0  # an installed snapshot's zxid: nothing older is history any more

    # -- queries ----------------------------------------------------------------------------

    @property
    def base(self) -> int:
        """History after this zxid can be read; this zxid itself is (or was) an entry."""
        return max(self.storage.first_zxid(), self._floor)

    def entries(self, after: int, upto: int, limit: int | None = None) -> list[Entry] | None:
        """Entries with after < zxid <= upto, oldest first; None if some were purged."""
        if after >= upto:
            return []
        if after < self.base:
            return None
        out: list[Entry] = []
        if after < self._mem_base:
            stored = self.storage.entries_after(after)
            if stored is None:
                return None
            stop = min(self._mem_base, upto)
            for zxid, payload in itertools.islice(stored, limit):
                if zxid > stop:
                    break
                out.append((zxid, payload))
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
        found = base
        stored = self.storage.entries_after(base)
        for entry_zxid, _ in stored or ():
            if entry_zxid > zxid:
                break
            found = entry_zxid
        return found

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
        self.last = self._floor = zxid
        self.durable = 0  # nothing of the new history is on disk until the install is
        self.generation += 1

    def handed_out(self, generation: int, last: int) -> None:
        """A Ready carrying the log up to `last` was persisted (advance)."""
        if generation == self.generation:
            self.durable = max(self.durable, last)

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
