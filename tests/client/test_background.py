"""Client.start_background: a task the client owns, outliving its caller, ending with the client."""

from __future__ import annotations

import logging

import anyio
import pytest

from ccore.client import ClientClosedError, connect
from tests.polling import wait_for

# Every async test on Trio and on asyncio (see tests/client/conftest.py).
pytestmark = pytest.mark.anyio


async def test_outlives_a_cancelled_caller_and_ends_with_the_client(hosts):
    steps: list[str] = []
    async with connect(hosts) as zk:
        with anyio.CancelScope() as caller:  # noqa: ASYNC100 - no await: the point is a call from a cancelled scope
            caller.cancel()

            async def work() -> None:
                steps.append("started")
                try:
                    await zk.create("/background-test", ephemeral=True)
                    steps.append("created")
                    await anyio.sleep_forever()
                finally:
                    steps.append("ended")

            zk.start_background(work)  # from a cancelled scope: runs all the same
        await wait_for(lambda: "created" in steps)
    assert steps == ["started", "created", "ended"]  # cancelled when the client closed
    with pytest.raises(ClientClosedError):
        zk.start_background(anyio.sleep, 0)


async def test_an_error_is_logged_not_raised(hosts, caplog):
    async with connect(hosts) as zk:

        async def fail() -> None:
            raise KeyError("boom")

        with caplog.at_level(logging.ERROR, logger="ccore.client.client"):
            zk.start_background(fail)
            await wait_for(lambda: caplog.records)
        assert "boom" in caplog.text
        assert await zk.exists("/") is not None  # the client carries on
