"""Prometheus metrics under ZooKeeper's names, so ZooKeeper's Grafana dashboards work unchanged.

Enabled as in ZooKeeper, by `metricsProvider.className=...PrometheusMetricsProvider`, and
served at `http://<metricsProvider.httpHost>:<metricsProvider.httpPort>/metrics` by the same
`http_server` as the admin API. `ServerCollector` is a prometheus_client collector that reads
the server when scraped; the scrape runs on the Trio loop (the HTTP handler calls
`generate_latest` there), so it reads the tree and the tables between two steps of the loop,
never from another thread. Nothing is counted per request for it beyond the two latency
summaries (`TimeSummary.observe`, O(1)).

Names follow ZooKeeper's (ServerMetrics and the gauges ZooKeeperServer and Leader register);
its counters are exposed untyped under their plain names (`commit_count`, as ZooKeeper's
Prometheus client 0.9 writes them, without the `_total` newer clients add), its summaries as
summaries in ms with quantiles 0.5/0.9/0.99 over the last 1024 observations. Ours that
ZooKeeper has no name for carry a `ccore_` prefix.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Iterator
from typing import Protocol

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric, SummaryMetricFamily, UnknownMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from . import commands
from .commands import ServerView
from .commit import Committer
from .database import Database
from .http_server import HttpServer, Request, Response
from .replication import Replicator
from .stats import TimeSummary

QUANTILES = (0.5, 0.9, 0.99)


class MetricsView(ServerView, Protocol):
    db: Database

    @property
    def committer(self) -> Committer: ...


class ServerCollector(Collector):
    def __init__(self, server: MetricsView) -> None:
        self.server = server

    def collect(self) -> Iterator[Metric]:
        s = self.server
        stats = s.stats
        tree = s.tree
        lo, avg, hi = (
            (stats.latency_min_ms, stats.latency_total_ms / stats.latency_count, stats.latency_max_ms)
            if stats.latency_count
            else (0.0, 0.0, 0.0)
        )
        gauges: list[tuple[str, str, float]] = [
            ("znode_count", "znodes in the tree", len(tree.nodes)),
            ("watch_count", "watches set by clients of this server", s.watches.watch_count()),
            ("ephemerals_count", "ephemeral znodes", sum(len(v) for v in tree.ephemerals.values())),
            ("approximate_data_size", "bytes of paths and data", commands.data_size(tree)),
            ("global_sessions", "live sessions", len(tree.sessions)),
            ("num_alive_connections", "client connections", len(s.connections)),
            ("outstanding_requests", "writes submitted here and not yet committed", s.outstanding),
            ("avg_latency", "mean request latency since the last reset, ms", avg),
            ("max_latency", "largest request latency since the last reset, ms", hi),
            ("min_latency", "smallest request latency since the last reset, ms", lo),
            ("packets_received", "requests received", stats.received),
            ("packets_sent", "replies and events sent on open connections", sum(c.sent for c in s.connections)),
            ("open_file_descriptor_count", "open file descriptors", commands.open_fds()),
            ("max_file_descriptor_count", "the open file limit", resource.getrlimit(resource.RLIMIT_NOFILE)[0]),
            ("uptime", "ms since the server started", (time.monotonic() - s.started_at) * 1000),
            ("ccore_last_zxid", "zxid of the last transaction applied here", s.last_zxid),
            ("ccore_serving", "1 when serving clients (0: looking for a leader)", 1 if s.serving else 0),
            ("ccore_loop_stalls", "event-loop stalls over 100 ms", s.stalls.count),
            ("ccore_loop_stall_max_ms", "the longest event-loop stall, ms", s.stalls.max_s * 1000),
        ]
        counters: list[tuple[str, str, float]] = [
            ("commit_count", "transactions committed and applied here", stats.txns),
        ]
        summaries: list[tuple[str, str, TimeSummary]] = [
            ("fsynctime", "time of one log fsync, ms", s.db.fsync_time),
            ("snapshottime", "time to write a snapshot, ms", s.db.snapshot_time),
            ("readlatency", "latency of reads answered here, ms", stats.read_latency),
            ("updatelatency", "latency of writes from clients of this server, ms", stats.update_latency),
        ]
        gauges.append(("dbinittime", "time to load the data dir at start, ms", s.db.init_time_ms))
        committer = s.committer
        if isinstance(committer, Replicator):
            gauges += _quorum_gauges(committer)
            counters.append(("looking_count", "times this server started looking for a leader", committer.looking_count))
            summaries.append(("election_time", "from losing a leader until serving under one, ms", committer.election_time))
        for name, doc, value in gauges:
            yield GaugeMetricFamily(name, doc, value=value)
        for name, doc, value in counters:
            yield UnknownMetricFamily(name, doc, value=value)
        for name, doc, summary in summaries:
            family = SummaryMetricFamily(name, doc, count_value=summary.count, sum_value=summary.total)
            for q, v in zip(QUANTILES, summary.quantiles(QUANTILES), strict=True):
                family.add_sample(name, {"quantile": str(q)}, v)
            yield family


def _quorum_gauges(r: Replicator) -> list[tuple[str, str, float]]:
    connected_voters = sum(1 for p in r.voters if p != r.my_id and r.net.is_connected(p))
    connected_observers = sum(1 for p in r.observers if r.net.is_connected(p))
    out: list[tuple[str, str, float]] = [("quorum_size", "voting members", len(r.voters))]
    if r.is_leader:
        out += [
            ("learners", "followers and observers connected to this leader", connected_voters + connected_observers),
            ("synced_followers", "followers connected to this leader", connected_voters),
            ("synced_observers", "observers connected to this leader", connected_observers),
            ("pending_syncs", "syncs waiting for a quorum (ours travel as transactions)", 0),
        ]
    return out


class MetricsServer:
    """/metrics over HTTP, from a registry of its own (so servers in one process never share)."""

    def __init__(self, server: MetricsView, host: str, port: int) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(ServerCollector(server))
        ProcessCollector(registry=self.registry)  # process_cpu_seconds_total, resident memory, fds
        PlatformCollector(registry=self.registry)  # python_info
        self.http = HttpServer("metrics server", host, port, self.handle)

    @property
    def port(self) -> int | None:
        return self.http.port

    def scrape(self) -> bytes:
        return generate_latest(self.registry)

    async def handle(self, request: Request) -> Response:
        if request.path not in ("/metrics", "/"):
            return Response(404, b"see /metrics\n", content_type="text/plain; charset=utf-8")
        return Response(200, self.scrape(), content_type=CONTENT_TYPE_LATEST)
