"""The lock workload's orphan count, against a scripted client: a node of ours whose guaranteed
delete is still retrying (right after a reconnect) is not a stall; one left behind is, and so
is one whose delete has not gone through within the grace period."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import attrs
import pytest
import trio
import trio.lowlevel

from ccore.recipes import _cleanup
from ccore.znodes.errors import ConnectionLossError, NoNodeError
from chaos import lockload
from chaos.history import History
from chaos.lockload import LOCK, LockWorkload

OURS = 0x1234
THEIRS = 0x5678


@attrs.frozen
class FakeStat:
    ephemeralOwner: int
    czxid: int


class FakeClient:
    """The calls `_orphans` and a guaranteed delete make, on an in-memory directory `LOCK`;
    deletes fail with ConnectionLossError until `reconnect_at` (Trio time)."""

    def __init__(self, background: trio.Nursery) -> None:
        self.session_id = OURS
        self.nodes: dict[str, FakeStat] = {}
        self.reconnect_at = 0.0
        self._background = background

    def add(self, name: str, owner: int) -> str:
        self.nodes[name] = FakeStat(owner, czxid=len(self.nodes) + 1)
        return f"{LOCK}/{name}"

    async def children(self, path: str) -> list[str]:
        assert path == LOCK
        await trio.lowlevel.checkpoint()
        return sorted(self.nodes)

    async def exists(self, path: str) -> FakeStat | None:
        await trio.lowlevel.checkpoint()
        return self.nodes.get(path.rsplit("/", 1)[1])

    async def delete(self, path: str) -> None:
        await trio.sleep(0.05)
        if trio.current_time() < self.reconnect_at:
            raise ConnectionLossError(path, "no server (scripted)")
        if self.nodes.pop(path.rsplit("/", 1)[1], None) is None:
            raise NoNodeError(path)

    def start_background(self, fn: Any, *args: Any, name: str | None = None) -> None:
        self._background.start_soon(fn, *args, name=name)


def deleting(fake: FakeClient, path: str) -> _cleanup.Attempt:
    """One try of a contender's guaranteed delete (ConnectionLossError: again; NoNode: done)."""

    async def attempt() -> bool:
        await fake.delete(path)
        return True

    return attempt


@pytest.fixture
async def fake() -> AsyncIterator[FakeClient]:
    async with trio.open_nursery() as background:
        yield FakeClient(background)
        background.cancel_scope.cancel()


def workload() -> LockWorkload:
    return LockWorkload("127.0.0.1:1", History(), seed=1)


async def test_a_node_whose_delete_is_still_retrying_is_not_an_orphan(fake, autojump_clock):
    path = fake.add("_c_a-lock-0000000001", OURS)
    fake.reconnect_at = trio.current_time() + 2.0  # the delete goes through 2 s from now
    _cleanup.start(fake, LOCK, path, OURS, deleting(fake, path))
    w = workload()
    assert await w._orphans(fake) is False
    assert w.orphans == [] and fake.nodes == {}
    assert trio.current_time() >= fake.reconnect_at  # it waited for the delete, no longer


async def test_a_node_left_behind_is_an_orphan(fake, autojump_clock):
    fake.add("_c_a-lock-0000000001", OURS)
    w = workload()
    started = trio.current_time()
    assert await w._orphans(fake) is True
    assert trio.current_time() - started < 1.0  # nothing in progress: nothing to wait for
    assert len(w.orphans) == 1 and w.orphans[0].startswith("_c_a-lock-0000000001")


async def test_a_delete_that_does_not_go_through_in_the_grace_period_counts(fake, autojump_clock):
    path = fake.add("_c_a-lock-0000000001", OURS)
    fake.reconnect_at = float("inf")
    _cleanup.start(fake, LOCK, path, OURS, deleting(fake, path))
    w = workload()
    started = trio.current_time()
    assert await w._orphans(fake) is True
    assert lockload.ORPHAN_GRACE_S <= trio.current_time() - started < lockload.ORPHAN_GRACE_S + 1.0
    assert len(w.orphans) == 1


async def test_another_sessions_node_is_not_ours(fake, autojump_clock):
    fake.add("_c_b-lock-0000000001", THEIRS)
    w = workload()
    assert await w._orphans(fake) is False
    assert w.orphans == []
