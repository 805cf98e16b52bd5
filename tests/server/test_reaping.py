"""Empty containers and expired TTL nodes are reaped, even after a reap's write was abandoned."""

from __future__ import annotations

from typing import Any

from ccore import connect
from ccore.server.commit import Abandoned
from ccore.server.zkserver import ZKServer
from ccore.znodes.txn import DeleteContainer
from tests.polling import wait_for
from tests.server.helpers import config


async def test_a_reap_abandoned_by_a_leadership_change_is_tried_again(nursery, tmp_path):
    server = await nursery.start(ZKServer(config(tmp_path, container_check_interval_ms=50)).run)
    committer = server.committer
    real_submit = committer.submit
    abandoned: list[str] = []

    def submit_abandoning_the_first_reap(session: int, op: Any, auth: Any, on_done: Any) -> None:
        if isinstance(op, DeleteContainer) and not abandoned:
            # What a leader change does to a write in flight.
            abandoned.append(op.path)
            on_done(Abandoned("leadership changed"))
            return
        real_submit(session, op, auth, on_done)

    committer.submit = submit_abandoning_the_first_reap
    async with connect(f"127.0.0.1:{server.port}") as zk:
        await zk.create("/c", container=True)
        await zk.create("/c/child")
        await zk.delete("/c/child")  # /c is an empty container now: due for reaping
        await wait_for(lambda: abandoned == ["/c"], timeout_s=10)

        async def reaped() -> bool:
            return await zk.exists("/c") is None

        await wait_for(reaped, timeout_s=10)
    assert not server.reaper.in_flight
