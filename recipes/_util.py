"""Small helpers the recipes share: retrying reads across connection loss, GUID-prefixed
sequential names, ensuring a recipe's directory exists."""

from __future__ import annotations

import contextlib
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Any, TypeVar

import anyio
import anyio.abc
import attrs

from ccore.client import Client
from ccore.znodes.errors import ConnectionLossError, NodeExistsError, NoNodeError
from ccore.znodes.groups import unwrap_single
from ccore.znodes.paths import ROOT, join, parent

log = logging.getLogger(__name__)
T = TypeVar("T")

RETRY_DELAY_S = 0.05
RETRY_DELAY_MAX_S = 1.0
# Curator's "protected" prefix: `_c_` + a GUID + `-`. Sharing it lets Curator's recipes and
# ours read each other's contender nodes, and lets a contender find its own node again.
PROTECTED = "_c_"
# ZooKeeper formats the sequence with %010d: ten digits, or a minus and nine after overflow.
_SEQUENCE = re.compile(r"(\d{10}|-\d{9})\Z")
_GUID = re.compile(r"_c_([0-9a-f]{32})-")


async def retry_loss(fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
    """`await fn(...)`, again and again while the connection is lost; only for idempotent
    calls. Bounded by the caller's cancel scopes, not by a count: a recipe that waits for
    its turn must not give up because the network blinked."""
    delay = RETRY_DELAY_S
    while True:
        try:
            return await fn(*args, **kwargs)
        except ConnectionLossError:
            await anyio.sleep(delay)
            delay = min(RETRY_DELAY_MAX_S, delay * 2)


def new_guid() -> str:
    return uuid.uuid4().hex


def protected_prefix(guid: str, kind: str) -> str:
    """The name before the sequence number: `_c_<guid>-<kind>`."""
    return f"{PROTECTED}{guid}-{kind}"


@attrs.frozen(order=True)
class Entry:
    """A sequential child, ordered by its sequence number (the GUID prefix is random)."""

    seq: int
    name: str = attrs.field(order=False)

    @property
    def guid(self) -> str | None:
        match = _GUID.match(self.name)
        return match.group(1) if match else None

    def has_kind(self, kind: str) -> bool:
        """Whether the name's text before the sequence number ends with `kind`."""
        return self.name[:-10].endswith(kind)


def parse_entry(name: str) -> Entry | None:
    """An Entry for a child made with `sequence=True`, None for any other child."""
    match = _SEQUENCE.search(name)
    return Entry(int(match.group(1)), name) if match else None


def sorted_entries(names: list[str]) -> list[Entry]:
    return sorted(e for e in map(parse_entry, names) if e is not None)


def child(path: str, name: str) -> str:
    return join(path, name)


async def ensure_dir(zk: Client, path: str, *, container: bool = True) -> None:
    """Create `path` (a container node when `container`, so an unused recipe directory
    disappears by itself) and its missing ancestors; no error if it exists."""
    if path == ROOT:
        return
    for _ in range(5):
        try:
            await retry_loss(zk.create, path, b"", container=container)
            return
        except NodeExistsError:
            return
        except NoNodeError:
            await retry_loss(zk.ensure_path, parent(path))


async def delete_quietly(zk: Client, path: str) -> None:
    """Delete `path`, retrying connection loss; a node already gone is fine."""
    with contextlib.suppress(NoNodeError):
        await retry_loss(zk.delete, path)


class Background:
    """A mixin for recipes that keep a task running for the duration of an `async with`
    block (caches, watchers, registrations): the task runs in a task group entered by
    `_start` and cancelled by `_stop`, in the task that runs the block."""

    _tasks_cm: contextlib.AbstractAsyncContextManager[anyio.abc.TaskGroup] | None = None
    _tasks: anyio.abc.TaskGroup | None = None

    async def _start(self, fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> Any:
        """Start `fn` (which calls `task_status.started(value)`) and return its value."""
        cm = self._tasks_cm = anyio.create_task_group()
        tasks = self._tasks = await cm.__aenter__()
        try:
            return await tasks.start(fn, *args)
        except BaseException as e:
            tasks.cancel_scope.cancel()
            with unwrap_single():
                await cm.__aexit__(type(e), e, e.__traceback__)
            raise

    async def _stop(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        assert self._tasks is not None and self._tasks_cm is not None, "not started"
        self._tasks.cancel_scope.cancel()
        with unwrap_single():
            return await self._tasks_cm.__aexit__(exc_type, exc, tb)
