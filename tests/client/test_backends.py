"""The plumbing of the two-loop test suites: each variant of a test runs on the loop it names,
and the client works on it (a failure here means the anyio/pytest-trio wiring in conftest.py
is wrong, and every other result of the suite is suspect)."""

from __future__ import annotations

import asyncio

import pytest
import sniffio
import trio

from ccore.client import connect

pytestmark = pytest.mark.anyio


async def test_runs_on_the_loop_it_names(anyio_backend):
    assert sniffio.current_async_library() == anyio_backend
    if anyio_backend == "asyncio":
        assert asyncio.current_task() is not None
    else:
        assert trio.lowlevel.current_task() is not None


async def test_a_fixture_shares_the_loop_of_its_test(zk, anyio_backend):
    assert sniffio.current_async_library() == anyio_backend
    await zk.create("/n", b"x")  # `zk` was connected by an async fixture: same loop, or this hangs
    assert (await zk.get("/n"))[0] == b"x"


async def test_connect_on_this_loop(hosts):
    async with connect(hosts) as zk:
        assert await zk.exists("/") is not None
