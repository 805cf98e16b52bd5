"""The retry helper: what it retries, how long, and what it raises when it gives up."""

from __future__ import annotations

import random

import pytest
import trio

from ccore.client import ClientClosedError, Retry
from ccore.znodes.errors import ConnectionLossError, NoNodeError, OperationTimeoutError


def flaky(failures: int, error=ConnectionLossError):
    calls = []

    async def fn(value):
        calls.append(value)
        if len(calls) <= failures:
            raise error("/x")
        return value

    return fn, calls


async def test_retries_connection_loss_until_success(autojump_clock):
    fn, calls = flaky(3)
    assert await Retry(rng=random.Random(1))(fn, 7) == 7
    assert calls == [7, 7, 7, 7]


async def test_does_not_retry_other_errors(autojump_clock):
    for error in (NoNodeError, ClientClosedError):
        fn, calls = flaky(1, error)
        with pytest.raises(error):
            await Retry()(fn, 1)
        assert len(calls) == 1


async def test_gives_up_after_max_tries_with_the_last_error(autojump_clock):
    fn, calls = flaky(100)
    with pytest.raises(ConnectionLossError):
        await Retry(max_tries=4)(fn, 1)
    assert len(calls) == 4


async def test_gives_up_at_the_deadline(autojump_clock):
    fn, calls = flaky(10_000)
    start = trio.current_time()
    with pytest.raises(OperationTimeoutError) as e:
        await Retry(max_tries=None, deadline=5.0, max_delay=0.5)(fn, 1)
    assert trio.current_time() - start == pytest.approx(5.0)
    assert isinstance(e.value.__cause__, ConnectionLossError) and len(calls) > 5
