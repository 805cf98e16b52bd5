"""The server: wiring of the tree, storage, sessions, committer and client port.

Nothing here decides anything: the data dir is opened, the parts are built and connected, and
their tasks run in one nursery. A standalone server commits through `LocalCommitter`, an
ensemble member through `Replicator`; every other part sees only the `Committer` protocol.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import trio

from ccore.znodes.tree import DataTree
from ccore.znodes.watches import WatchManager

from . import fourletter, tls
from .applier import Applier, settle_the_heap
from .client_port import ClientPort
from .commit import Committer
from .config import ServerConfig
from .connection import Connection
from .database import Database
from .local_commit import LocalCommitter
from .ops import OpsEndpoints
from .reaper import Reaper
from .replication import Replicator
from .session_manager import SessionManager
from .stalls import StallDetector
from .stats import ServerStats

log = logging.getLogger(__name__)


class ZKServer:
    def __init__(self, config: ServerConfig, *, wall_clock: Callable[[], float] = time.time) -> None:
        """`wall_clock`: seconds since the epoch, for transaction times, TTLs and session ids
        (monotonic time is Trio's clock, which tests may replace with trio.testing.MockClock)."""
        config.validate()
        self.config = config
        # Contexts first: a missing or unreadable key store is one ConfigError, before anything runs.
        self.tls = tls.build(config)
        self.wall_clock = wall_clock
        self.db = Database(config.data_dir, config.snap_count, config.snap_retain_count)
        self.watches = WatchManager()
        self.stats = ServerStats()
        self.stalls = StallDetector()
        self.sessions = SessionManager(config, self._tree, wall_clock, trio.current_time)
        self.applier = Applier(self.db, self.watches, self.sessions, self.stats, self._drop_connections)
        self.committer: Committer
        if config.replicated:
            self.committer = Replicator(
                config,
                self.db,
                self.applier,
                self.sessions,
                wall_clock,
                peer_tls=self.tls.peers,
                on_read_only=self.sessions.read_only_changed,
            )
        else:
            self.committer = LocalCommitter(
                self.db, self.applier, self.stats, wall_clock, reconfig_enabled=config.reconfig_enabled
            )
        self.sessions.bind(self.committer)
        self.reaper = Reaper(self._tree, self.committer, config.container_check_interval_ms / 1000.0, wall_clock)
        self.client_port = ClientPort(
            config,
            self._tree,
            self.watches,
            self.sessions,
            self.committer,
            self.stats,
            lambda word: fourletter.answer(self, word),
            wall_clock,
            self.tls.client_port,
        )
        self.started_at = time.monotonic()
        self.ops = OpsEndpoints(config, self)  # the admin API and /metrics
        self.started = trio.Event()

    def _tree(self) -> DataTree:
        return self.db.tree

    def _drop_connections(self) -> None:
        self.client_port.drop_all()

    # -- what fourletter and tests read ------------------------------------------------------------

    @property
    def tree(self) -> DataTree:
        return self.db.tree

    @property
    def last_zxid(self) -> int:
        return self.db.tree.last_zxid

    @property
    def port(self) -> int | None:
        return self.client_port.port

    @property
    def secure_port(self) -> int | None:
        """The TLS client port (secureClientPort), once bound; None without one."""
        return self.client_port.secure_port

    @property
    def connections(self) -> set[Connection]:
        return self.client_port.connections

    @property
    def outstanding(self) -> int:
        return self.committer.outstanding

    @property
    def serving(self) -> bool:
        return self.committer.serving

    @property
    def read_only(self) -> bool:
        """Cut off from the quorum and serving read-only clients (readonlymode.enabled)."""
        return self.committer.read_only

    @property
    def mode(self) -> str:
        return self.committer.mode

    @property
    def leader_id(self) -> int | None:
        return self.committer.leader_id if isinstance(self.committer, Replicator) else None

    def extra_metrics(self) -> list[tuple[str, Any]]:
        return self.committer.metrics()

    def _describe_ports(self) -> str:
        config = self.config
        ports = []
        if self.port is not None:
            ports.append(f"{config.client_port_address}:{self.port}")
        if self.secure_port is not None:
            ports.append(f"{config.secure_client_port_address or config.client_port_address}:{self.secure_port} (TLS)")
        return " and ".join(ports)

    # -- running -----------------------------------------------------------------------------------

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Open the data dir, listen on the client port and serve until cancelled."""
        await trio.to_thread.run_sync(self.db.open, not self.config.replicated)
        settle_the_heap()
        try:
            # Sessions that were live when we stopped get a fresh deadline to reconnect in.
            self.sessions.track_all(self.db.tree)
            await self.client_port.listen()
            await self.ops.listen()
            async with trio.open_nursery() as nursery:
                await nursery.start(self.stalls.run)
                await nursery.start(self.applier.run)
                await nursery.start(self.committer.run)
                await nursery.start(self.sessions.run)
                await nursery.start(self.reaper.run)
                await nursery.start(self.client_port.run)
                await nursery.start(self.ops.run)
                log.info("serving ZooKeeper clients on %s, data dir %s", self._describe_ports(), self.config.data_dir)
                self.started.set()
                task_status.started(self)
        finally:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(self.db.close)
