"""Empty containers and expired TTL nodes are reaped, even after a reap's write was lost."""

from __future__ import annotations

from typing import Any

from ccore import connect
from ccore.server.zkserver import ZKServer
from ccore.znodes.txn import DeleteContainer
from tests.polling import wait_for
from tests.server.helpers import config


async def test_a_reap_lost_to_a_leadership_change_is_tried_again(nursery, tmp_path):
    server = await nursery.start(ZKServer(config(tmp_path, container_check_interval_ms=50)).run)
    real_submit = server.submit
    lost: list[str] = []

    def submit_losing_the_first_reap(session: int, op: Any, auth: Any, on_done: Any) -> None:
        if isinstance(op, DeleteContainer) and not lost:
            # What a leader change does to a write in flight: it never completes here.
            lost.append(op.path)
            return
        real_submit(session, op, auth, on_done)

    server.submit = submit_losing_the_first_reap
    async with connect(f"127.0.0.1:{server.port}") as zk:
        await zk.create("/c", container=True)
        await zk.create("/c/child")
        await zk.delete("/c/child")  # /c is an empty container now: due for reaping
        await wait_for(lambda: lost == ["/c"], timeout_s=10)
        server.stop_serving()  # the leadership change that lost it
    async with connect(f"127.0.0.1:{server.port}") as zk:

        async def reaped() -> bool:
            return await zk.exists("/c") is None

        await wait_for(reaped, timeout_s=10)
