"""Deletes empty containers and expired TTL nodes (ZooKeeper's ContainerManager).

Only where this server owns sessions (standalone, or the leader). A node is asked for once at
a time: it is marked while its delete is in flight and unmarked by the delete's outcome,
committed or abandoned, so a delete lost to a leadership change is tried again later.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import trio

from ccore.znodes.tree import DataTree
from ccore.znodes.txn import DeleteContainer

from .commit import Committer, Outcome


class Reaper:
    def __init__(
        self, tree: Callable[[], DataTree], committer: Committer, interval_s: float, wall_clock: Callable[[], float]
    ) -> None:
        self._tree = tree
        self.committer = committer
        self.interval_s = interval_s
        self.wall_clock = wall_clock
        self.in_flight: set[str] = set()

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            await trio.sleep(self.interval_s)
            self.reap_due()

    def reap_due(self) -> None:
        if not self.committer.owns_sessions:
            return
        now_ms = int(self.wall_clock() * 1000)
        for path in self._tree().due_for_deletion(now_ms):
            if path not in self.in_flight:
                self.in_flight.add(path)
                self.committer.submit(0, DeleteContainer(path), (), functools.partial(self._done, path))

    def _done(self, path: str, outcome: Outcome) -> None:
        self.in_flight.discard(path)
