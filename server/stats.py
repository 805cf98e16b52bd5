"""Counters a server keeps for `srvr`, `stat`, `mntr` and /metrics: requests, latencies, commit
batches, and `TimeSummary`s (count, sum and recent values) for Prometheus summaries."""

from __future__ import annotations

import math

import attrs

TIMING_WINDOW = 1024  # recent observations a summary's quantiles are taken over


class TimeSummary:
    """Observations of one duration, in ms: count and sum since start, and the last
    `window` values (a ring, O(1) per observation) for quantiles read at scrape time."""

    __slots__ = ("_ring", "count", "total")

    def __init__(self, window: int = TIMING_WINDOW) -> None:
        self.count = 0
        self.total = 0.0
        self._ring = [0.0] * window

    def observe(self, ms: float) -> None:
        ring = self._ring
        ring[self.count % len(ring)] = ms
        self.count += 1
        self.total += ms

    def quantiles(self, qs: tuple[float, ...]) -> list[float]:
        """Nearest-rank quantiles of the recent values (NaN before the first, as Prometheus)."""
        n = min(self.count, len(self._ring))
        if not n:
            return [math.nan for _ in qs]
        values = sorted(self._ring[:n])
        return [values[min(n - 1, max(0, math.ceil(q * n) - 1))] for q in qs]


@attrs.define
class ServerStats:
    received: int = 0
    latency_min_ms: float = math.inf
    latency_max_ms: float = 0.0
    latency_total_ms: float = 0.0
    latency_count: int = 0
    batches: int = 0
    txns: int = 0
    read_latency: TimeSummary = attrs.Factory(TimeSummary)  # ZooKeeper's readlatency
    update_latency: TimeSummary = attrs.Factory(TimeSummary)  # ZooKeeper's updatelatency

    def record_latency(self, seconds: float, update: bool = False) -> None:
        ms = seconds * 1000.0
        if ms < self.latency_min_ms:
            self.latency_min_ms = ms
        if ms > self.latency_max_ms:
            self.latency_max_ms = ms
        self.latency_total_ms += ms
        self.latency_count += 1
        (self.update_latency if update else self.read_latency).observe(ms)

    def reset(self) -> None:
        self.__init__()  # type: ignore[misc]
