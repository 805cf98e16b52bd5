"""The operations endpoints of a server: the admin HTTP API and the Prometheus /metrics port.

Built from the config and started beside the client port. The admin server follows
ZooKeeper: on by default, and a port it cannot bind is one warning, after which the server
runs without it (servers sharing a machine would otherwise fight over 8080). /metrics is
asked for explicitly, so a port it cannot bind stops the server with one line, as a client
port does.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any, Protocol

import trio

from .admin import AdminServer
from .backup_stream import BackupHost, SnapshotStreamer
from .config import PROMETHEUS_PROVIDER, ConfigError, ServerConfig
from .http_server import Request, Response
from .metrics import MetricsServer, MetricsView

log = logging.getLogger(__name__)


class OpsHost(MetricsView, BackupHost, Protocol):
    """What the endpoints read of the server (see commands.ServerView)."""


def snapshots_allowed(config: ServerConfig) -> bool:
    """May the admin API hand out the tree (`/commands/snapshot`, what `ccore backup` reads)?
    It asks no credentials (none are built yet), and the snapshot holds ACL-protected data
    too: by default only where the admin server listens on loopback, so only this machine's
    users reach it; anywhere else only with `admin.snapshot.enabled=true`, said at start."""
    enabled = config.admin_snapshot_enabled
    loopback = _is_loopback(config.admin_address)
    if enabled is None:
        return loopback
    if enabled and not loopback:
        log.warning(
            "admin.snapshot.enabled=true on %s: anyone who can reach port %d can download the whole tree, "
            "ACL-protected znodes included; keep that port behind a firewall",
            config.admin_address,
            config.admin_port,
        )
    return enabled


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


async def refuse_snapshots(request: Request) -> Response:
    return Response(
        403,
        b"snapshots are served only on a loopback admin.serverAddress, or with admin.snapshot.enabled=true\n",
        content_type="text/plain; charset=utf-8",
    )


class OpsEndpoints:
    def __init__(self, config: ServerConfig, server: OpsHost) -> None:
        self.config = config
        self.admin: AdminServer | None = None
        self.metrics: MetricsServer | None = None
        if config.admin_enabled:
            snapshots = SnapshotStreamer(server).handle if snapshots_allowed(config) else refuse_snapshots
            self.admin = AdminServer(server, config.admin_address, config.admin_port, snapshots)
        if config.metrics_provider == PROMETHEUS_PROVIDER:
            self.metrics = MetricsServer(server, config.metrics_address, config.metrics_port)

    async def listen(self) -> None:
        """Bind both ports (before the server's tasks start)."""
        c = self.config
        if self.admin is not None:
            try:
                await self.admin.http.listen()
            except OSError as e:
                log.warning(
                    "admin server not started: cannot listen on %s:%d (%s); serving without it "
                    "(give each server its own admin.serverPort, or set admin.enableServer=false)",
                    c.admin_address,
                    c.admin_port,
                    e.strerror or e,
                )
                self.admin = None
        if self.metrics is not None:
            try:
                await self.metrics.http.listen()
            except OSError as e:
                raise ConfigError(
                    f"cannot serve /metrics on {c.metrics_address}:{c.metrics_port} ({e.strerror or e}); "
                    "set metricsProvider.httpPort to a free port"
                ) from None

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            for name, endpoint in (("admin API", self.admin), ("Prometheus metrics", self.metrics)):
                if endpoint is not None:
                    await nursery.start(endpoint.http.run)
                    log.info("%s on http://%s:%d", name, endpoint.http.host, endpoint.port)
            task_status.started()
