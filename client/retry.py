"""Retrying idempotent operations across connection loss, with capped exponential backoff.

    await Retry(max_tries=10, deadline=30)(zk.get, "/config")
    await zk.retry(zk.set, "/config", b"v2")    # the default policy

Only errors that say "the outcome is unknown, the session lives" are retried: connection
loss (the client reconnects meanwhile) and operation timeouts. A write retried this way may
apply twice unless it is idempotent or guarded by a version.
"""

from __future__ import annotations

import math
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
import attrs

from ccore.znodes.errors import ConnectionLossError, OperationTimeoutError, ZKError

T = TypeVar("T")

RETRYABLE: tuple[type[ZKError], ...] = (ConnectionLossError, OperationTimeoutError)


@attrs.frozen
class Retry:
    """How to retry: at most `max_tries` calls (None: unbounded) within `deadline` seconds
    (None: unbounded), sleeping `delay` then doubling up to `max_delay`, with jitter."""

    max_tries: int | None = 20
    deadline: float | None = 60.0
    delay: float = 0.05
    max_delay: float = 2.0
    retry_on: tuple[type[BaseException], ...] = RETRYABLE
    rng: random.Random = attrs.field(factory=random.Random, eq=False, repr=False)

    async def __call__(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """`await fn(*args, **kwargs)` until it succeeds or the policy gives up: after
        `max_tries` the last error is raised as is; past the deadline, OperationTimeoutError
        (chained from the last error)."""
        delay = self.delay
        tries = 0
        last: BaseException | None = None
        with anyio.move_on_after(self.deadline if self.deadline is not None else math.inf):
            while True:
                tries += 1
                try:
                    return await fn(*args, **kwargs)
                except self.retry_on as e:
                    last = e
                    if self.max_tries is not None and tries >= self.max_tries:
                        raise
                await anyio.sleep(delay * (0.5 + self.rng.random()))
                delay = min(self.max_delay, delay * 2)
        raise OperationTimeoutError(None, f"gave up after {tries} tries in {self.deadline:g}s") from last


async def retry(fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
    """`fn(*args, **kwargs)` under the default Retry policy."""
    return await Retry()(fn, *args, **kwargs)
