"""At most one log line per key per interval: what a stranger does to a socket (a failed TLS
handshake, plaintext on a TLS port) is worth a line, but a flood of it must not fill the disk."""

from __future__ import annotations

import math
from collections.abc import Hashable

MAX_KEYS = 1024  # bounded, however many addresses flood us


class LogLimiter:
    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._seen: dict[Hashable, tuple[float, int]] = {}  # key -> (last logged, held back since)

    def allow(self, key: Hashable, now: float) -> int | None:
        """None when a line for `key` was logged less than `interval_s` ago (this one is
        counted instead); else how many were held back since that line: log now."""
        last, count = self._seen.get(key, (-math.inf, 0))
        if now - last < self.interval_s:
            self._seen[key] = (last, count + 1)
            return None
        if len(self._seen) >= MAX_KEYS:
            self._seen.clear()
        self._seen[key] = (now, 0)
        return count
