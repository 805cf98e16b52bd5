"""The retry helper: what it retries, how long, and what it raises when it gives up."""

from __future__ import annotations

import random

import anyio
import pytest

from ccore.client import ClientClosedError, Retry
from ccore.znodes.errors import ConnectionLossError, NoNodeError, OperationTimeoutError

# Every async test on Trio and on asyncio (see tests/client/conftest.py).
pytestmark = pytest.mark.anyio


def flaky(failures: int, error=ConnectionLossError):
    calls = []

    async def fn(value):
        calls.append(value)
        if len(calls) <= failures:
            raise error("/x")
        return value

    return fn, calls


# Real time, in small steps (anyio has no MockClock for asyncio): each test takes well under 1 s.


async def test_retries_connection_loss_until_success():
    fn, calls = flaky(3)
    assert await Retry(delay=0.001, rng=random.Random(1))(fn, 7) == 7
    assert calls == [7, 7, 7, 7]


async def test_does_not_retry_other_errors():
    for error in (NoNodeError, ClientClosedError):
        fn, calls = flaky(1, error)
        with pytest.raises(error):
            await Retry(delay=0.001)(fn, 1)
        assert len(calls) == 1


async def test_gives_up_after_max_tries_with_the_last_error():
    fn, calls = flaky(100)
    with pytest.raises(ConnectionLossError):
        await Retry(max_tries=4, delay=0.001)(fn, 1)
    assert len(calls) == 4


async def test_gives_up_at_the_deadline():
    fn, calls = flaky(10_000)
    start = anyio.current_time()
    with pytest.raises(OperationTimeoutError) as e:
        await Retry(max_tries=None, deadline=0.5, delay=0.01, max_delay=0.05)(fn, 1)
    took = anyio.current_time() - start
    assert 0.5 <= took < 1.5  # the deadline, plus a loaded machine's lateness
    assert isinstance(e.value.__cause__, ConnectionLossError) and len(calls) > 5
