"""Service registry and discovery: instances register as ephemeral nodes with a payload;
clients discover them, follow them in a watched cache, and pick one at random or in turn.

    from ccore.recipes import ServiceRegistry, ServiceInstance
    registry = ServiceRegistry(zk, "/services")
    api = ServiceInstance("api", address="10.0.0.5", port=8080, payload={"zone": "b"})
    async with registry.registered(api):            # listed while the block runs
        ...

    await registry.instances("api")                 # [ServiceInstance(...), ...]
    async with registry.cache("api") as cache:      # follows registrations and departures
        instance = cache.choose("round_robin")      # or "random"; None if there is none
        await cache.wait_for(lambda instances: len(instances) >= 2, timeout=10)

Nodes are `<base>/<name>/<id>` with Curator's ServiceInstance JSON as data (name, id,
address, port, sslPort, payload, registrationTimeUTC, serviceType, uriSpec), so Curator's
ServiceDiscovery and ours see each other's instances. A registration is an ephemeral node kept
present by `Presence`: it goes when the process dies (once its session expires) and comes back
by itself if the session expired while the process lived on.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import random
import time
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Any, Self

import anyio
import attrs

from ccore.client import Client
from ccore.znodes.errors import NoNodeError

from ._util import child, new_guid, retry_loss
from .party import Presence
from .treecache import TreeCache


@attrs.frozen
class ServiceInstance:
    """One instance of a service; `payload` is any JSON value."""

    name: str
    address: str | None = None
    port: int | None = None
    payload: Any = None
    id: str = attrs.field(factory=new_guid)
    ssl_port: int | None = None
    registration_time_ms: int = attrs.field(factory=lambda: int(time.time() * 1000))

    def __attrs_post_init__(self) -> None:
        # Refused here, where the caller made it, not deep inside a registration.
        try:
            json.dumps(self.payload)
        except (TypeError, ValueError) as e:
            raise TypeError(
                f"ServiceInstance payload must be a JSON value (dict, list, str, number, bool or None), "
                f"not {type(self.payload).__name__}: {e}"
            ) from None

    def to_json(self) -> bytes:
        obj = {
            "name": self.name, "id": self.id, "address": self.address, "port": self.port,
            "sslPort": self.ssl_port, "payload": self.payload,
            "registrationTimeUTC": self.registration_time_ms, "serviceType": "DYNAMIC", "uriSpec": None,
        }  # fmt: skip
        return json.dumps(obj).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes) -> ServiceInstance:
        obj = json.loads(data)
        return cls(
            name=obj["name"], address=obj.get("address"), port=obj.get("port"), payload=obj.get("payload"),
            id=obj["id"], ssl_port=obj.get("sslPort"), registration_time_ms=obj.get("registrationTimeUTC") or 0,
        )  # fmt: skip


class ServiceRegistry:
    """See the module docstring."""

    def __init__(self, zk: Client, base: str = "/services") -> None:
        self.zk = zk
        self.base = base

    def _path(self, instance: ServiceInstance) -> str:
        return child(child(self.base, instance.name), instance.id)

    def registered(self, instance: ServiceInstance) -> Presence:
        """An async context manager: `instance` is registered while the block runs."""
        return Presence(self.zk, self._path(instance), instance.to_json())

    async def names(self) -> list[str]:
        """The names of the services with a directory (possibly without instances)."""
        try:
            return sorted(await retry_loss(self.zk.children, self.base))
        except NoNodeError:
            return []

    async def instances(self, name: str) -> list[ServiceInstance]:
        """The instances of `name` registered now, by id."""
        directory = child(self.base, name)
        try:
            ids = await retry_loss(self.zk.children, directory)
        except NoNodeError:
            return []
        out = []
        for instance_id in sorted(ids):
            with contextlib.suppress(NoNodeError, ValueError, KeyError):
                data, _ = await retry_loss(self.zk.get, child(directory, instance_id))
                out.append(ServiceInstance.from_json(data))
        return out

    def cache(self, name: str) -> ServiceCache:
        """A watched cache of the instances of `name` (an async context manager)."""
        return ServiceCache(self.zk, child(self.base, name))


class ServiceCache:
    """The instances of one service, followed on a recursive watch (TreeCache)."""

    def __init__(self, zk: Client, path: str) -> None:
        self.path = path
        self._tree = TreeCache(zk, path)
        self._round_robin = itertools.count()
        self._rng = random.Random()

    @property
    def instances(self) -> list[ServiceInstance]:
        out = []
        for instance_id in self._tree.children(self.path):
            node = self._tree.get(child(self.path, instance_id))
            if node is not None:
                with contextlib.suppress(ValueError, KeyError):
                    out.append(ServiceInstance.from_json(node.data))
        return out

    def choose(self, strategy: str = "random") -> ServiceInstance | None:
        """One instance: "random", or "round_robin" (each in turn); None if there is none."""
        instances = self.instances
        if not instances:
            return None
        if strategy == "random":
            return self._rng.choice(instances)
        if strategy == "round_robin":
            return instances[next(self._round_robin) % len(instances)]
        raise ValueError(f"strategy must be 'random' or 'round_robin', not {strategy!r}")

    async def changes(self) -> AsyncIterator[list[ServiceInstance]]:
        """The instances after each change of the cache (changes close together coalesce)."""
        version = self._tree.version
        while True:
            version = await self._tree.wait_changed(version)
            yield self.instances

    async def wait_for(
        self, predicate: Callable[[list[ServiceInstance]], bool], timeout: float | None = None
    ) -> list[ServiceInstance]:
        """The first instance list (the current one included) satisfying `predicate`."""
        with anyio.fail_after(timeout):
            if predicate(self.instances):
                return self.instances
            async for instances in self.changes():
                if predicate(instances):
                    return instances
        raise AssertionError("unreachable")

    async def __aenter__(self) -> Self:
        await self._tree.__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        return await self._tree.__aexit__(exc_type, exc, tb)
