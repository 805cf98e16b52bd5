"""The ephemeral workload: sessions that go silent, and how long their ephemerals outlive them.

An *owner* connects through links of its own (one fault proxy per server, ``("owner", slot,
sid)``), creates an ephemeral znode, lives a little, then all its links are cut at once: from
that moment (`silent_ns`, taken after the cut is in force, so never before the session's last
word reached a server) nobody hears from the session again. An *observer* on the ordinary
client links then asks `sync` + `exists` about the znode every `poll_s`, recorded as ``exists``
operations (output True/False), until it is gone. `chaos.checks.check_ephemeral_expiry`
checks that no observation invoked after ``silent + negotiated timeout + bound`` still saw it.
`sync` first, so that an observation reflects every write committed before it (a lagging
replica would otherwise show a deleted ephemeral alive).

Owners are Trio tasks in one thread, each with its own `client.connect` session; a slot's
links are healed only after its old client is closed, so no old session comes back.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Any

import trio

from ccore.client import connect
from ccore.znodes.errors import NodeExistsError, ZKError

from .checks import EphemeralLife
from .history import History
from .trio_thread import TrioThreadWorkload

log = logging.getLogger(__name__)

ROOT = "/chaos/ephemeral"
MAX_OWNERS = 1_000_000


class EphemeralWorkload(TrioThreadWorkload):
    name = "ephemeral"
    stop_timeout_s = 30.0

    def __init__(
        self,
        connect_string: str,
        history: History,
        fleet: Any,
        upstreams: dict[int, tuple[str, int]],
        *,
        seed: int,
        owners: int = 2,
        session_timeout_s: float = 2.0,
        live_s: tuple[float, float] = (0.3, 1.5),
        op_timeout_s: float = 2.0,
        poll_s: float = 0.1,
        give_up_s: float = 60.0,
    ) -> None:
        super().__init__()
        self.connect_string = connect_string
        self.history = history
        self.fleet = fleet
        self.upstreams = dict(upstreams)
        self.seed = seed
        self.owners = owners
        self.session_timeout_s = session_timeout_s
        self.live_s = live_s
        self.op_timeout_s = op_timeout_s
        self.poll_s = poll_s
        self.give_up_s = give_up_s
        self.lives: list[EphemeralLife] = []

    async def _run(self) -> None:
        for slot in range(self.owners):
            for sid, upstream in self.upstreams.items():
                await trio.to_thread.run_sync(self.fleet.add, ("owner", slot, sid), upstream)
        async with (
            connect(self.connect_string, session_timeout=4.0, connect_timeout=30) as observer,
            trio.open_nursery() as nursery,
        ):
            for slot in range(self.owners):
                nursery.start_soon(self._owner_loop, observer, slot)
            await self._until_stopped()
            nursery.cancel_scope.cancel()

    def _links(self, slot: int) -> list[tuple[Any, ...]]:
        return [("owner", slot, sid) for sid in sorted(self.upstreams)]

    async def _owner_loop(self, observer: Any, slot: int) -> None:
        rng = random.Random(f"{self.seed}/ephemeral/{slot}")
        for n in range(MAX_OWNERS):
            try:
                await self._one_owner(observer, slot, n, rng)
            except (ZKError, OSError, trio.TooSlowError) as exc:
                log.debug("owner %d/%d: %r", slot, n, exc)
                await trio.sleep(0.2)

    async def _one_owner(self, observer: Any, slot: int, n: int, rng: random.Random) -> None:
        links = self._links(slot)
        for link in links:
            await trio.to_thread.run_sync(self.fleet.heal, link)
        hosts = ",".join(f"{h}:{p}" for h, p in (self.fleet.address(link) for link in links))
        path = f"{ROOT}/s{slot}-{n:06d}"
        life: EphemeralLife | None = None
        async with connect(hosts, session_timeout=self.session_timeout_s, connect_timeout=30) as zk:
            try:
                with trio.fail_after(self.op_timeout_s):
                    await zk.ensure_path(ROOT)
                    await zk.create(path, b"owner", ephemeral=True)
            except (ZKError, trio.TooSlowError, NodeExistsError) as exc:
                log.debug("owner %s: no ephemeral: %r", path, exc)
            else:
                await trio.sleep(rng.uniform(*self.live_s))
                for link in links:
                    await trio.to_thread.run_sync(self.fleet.cut, link)
                life = EphemeralLife(path, f"{zk.session_id:#x}", self.history.now_ns(), int(zk.session_timeout * 1000))
                self.lives.append(life)
            for link in links:  # cut before closing: the session must die of silence
                await trio.to_thread.run_sync(self.fleet.cut, link)
            with trio.move_on_after(5.0):  # closing cannot reach anyone: bounded
                await zk.close()
        if life is not None:
            await self._observe(observer, life, f"observer-{slot}")

    async def _observe(self, observer: Any, life: EphemeralLife, process: str) -> None:
        give_up = time.monotonic() + life.timeout_ms / 1000 + self.give_up_s
        while time.monotonic() < give_up and not self.stop_event.is_set():
            if await self.observe_once(observer, life.path, process) is False:
                return
            await trio.sleep(self.poll_s)

    async def observe_once(self, observer: Any, path: str, process: str) -> bool | None:
        """One recorded `sync` + `exists`: True/False, or None when it failed."""
        op = self.history.invoke(process, "exists", path, key=path)
        try:
            with trio.fail_after(self.op_timeout_s):
                await observer.sync(path)
                stat = await observer.exists(path)
        except (ZKError, trio.TooSlowError) as exc:
            self.history.fail(op, type(exc).__name__)
            return None
        self.history.ok(op, stat is not None)
        return stat is not None

    def final_check(self, timeout_s: float = 30.0) -> None:
        """After the run (healed): one more observation of every ephemeral not yet seen gone."""
        trio.run(self._final, timeout_s)

    async def _final(self, timeout_s: float) -> None:
        gone = {op.input for op in self.history.operations() if op.f == "exists" and op.status == "ok" and op.output is False}
        left = [life for life in self.lives if life.path not in gone]
        if not left:
            return
        with trio.move_on_after(timeout_s) as scope:
            async with connect(self.connect_string, session_timeout=4.0, connect_timeout=timeout_s) as observer:
                for life in left:
                    for _ in range(3):
                        if await self.observe_once(observer, life.path, "observer-final") is not None:
                            break
        if scope.cancelled_caught:
            self.errors.append(f"could not observe {len(left)} ephemerals after the run within {timeout_s:g}s")
