"""Counters a server keeps for `srvr`, `stat` and `mntr`: requests, latencies, commit batches."""

from __future__ import annotations

import math

import attrs


@attrs.define
class ServerStats:
    received: int = 0
    latency_min_ms: float = math.inf
    latency_max_ms: float = 0.0
    latency_total_ms: float = 0.0
    latency_count: int = 0
    batches: int = 0
    txns: int = 0

    def record_latency(self, seconds: float) -> None:
        ms = seconds * 1000.0
        if ms < self.latency_min_ms:
            self.latency_min_ms = ms
        if ms > self.latency_max_ms:
            self.latency_max_ms = ms
        self.latency_total_ms += ms
        self.latency_count += 1

    def reset(self) -> None:
        self.__init__()  # type: ignore[misc]
