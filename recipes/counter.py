"""A shared counter: `Counter` (an int or float kept in a node, changed by compare-and-set).

    from ccore.recipes import Counter
    counter = Counter(zk, "/counters/jobs")
    await counter.add(1)          # -> the new value
    await counter.value()         # -> the current value (the default while the node is absent)

The value is stored as ASCII (`b"42"`, as kazoo's Counter does, so both read each other's).
Each change reads the value and its version and writes the new value with that version; a
concurrent change makes the write fail and we read again. A write whose reply is lost may or
may not have applied: retrying it could count twice, so `add` raises ConnectionLossError then
("outcome unknown") unless it can see the version is unchanged.
"""

from __future__ import annotations

from ccore.client import Client
from ccore.znodes.errors import (
    BadVersionError,
    ConnectionLossError,
    NodeExistsError,
    NoNodeError,
)

from ._util import retry_loss

Number = int | float


class Counter:
    """See the module docstring. `default` (0 or 0.0) also fixes the type of the value."""

    def __init__(self, zk: Client, path: str, default: Number = 0) -> None:
        self.zk = zk
        self.path = path
        self.default = default
        self._type = type(default)

    def __repr__(self) -> str:
        return f"<Counter {self.path}>"

    def _decode(self, data: bytes) -> Number:
        return self._type(data.decode("ascii")) if data else self.default

    async def _read(self) -> tuple[Number, int | None]:
        try:
            data, stat = await retry_loss(self.zk.get, self.path)
        except NoNodeError:
            return self.default, None
        return self._decode(data), stat.version

    async def value(self) -> Number:
        return (await self._read())[0]

    async def add(self, delta: Number) -> Number:
        """Add `delta` atomically; the new value."""
        while True:
            value, version = await self._read()
            new = self._type(value + delta)
            data = repr(new).encode("ascii")
            try:
                if version is None:
                    await self.zk.create(self.path, data, make_parents=True)
                else:
                    await self.zk.set(self.path, data, version=version)
                return new
            except (BadVersionError, NodeExistsError, NoNodeError):
                continue  # someone else changed it first: read again
            except ConnectionLossError as e:
                # Retry only when it certainly did not apply: the node is as we read it.
                # sync first, so that the read comes after a write still in flight.
                await retry_loss(self.zk.sync, self.path)
                _, now = await self._read()
                if now != version:
                    raise ConnectionLossError(self.path, f"counter change outcome unknown: {e}") from e

    async def subtract(self, delta: Number) -> Number:
        return await self.add(-delta)
