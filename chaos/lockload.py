"""The lock workload: contenders take `recipes.Lock` and, while holding it, write their
fencing token to a guarded znode with a version check (`setData` at the version just read).

    async with Lock(zk, LOCK) as token:
        data, stat = await zk.get(GUARD)
        await zk.set(GUARD, {"token": token, ...}, version=stat.version)   # recorded

Every such set is one `fenced-write` operation of the history: input ``{"token", "holder",
"i"}``, output the guarded znode's new version. A holder makes `writes_per_hold` of them,
pausing between, so that a second holder at the same time would interleave with it.
`chaos.checks.check_fenced_writes` then checks that, in version order, tokens never go down:
a write with an older token after a newer holder's write means two held the lock at once.
The version check alone cannot stop that (the stale holder reads the newer version first).

A set refused with BadVersion is *fail* (no effect); one cut short by timeout, connection
loss or the lock's guard (LostError cancels the body) is *info*. All contenders run as Trio
tasks in one thread, each with its own client and session (`client.connect`).

A `stall` is an acquire that timed out while a node of our own session was left in the lock's
queue (the recipe failed to remove it). A node whose guaranteed delete (`recipes._cleanup`) is
still running -- retrying right after a reconnect -- is not one: it is counted only if still
there once our client's deletions in progress have settled, or after ORPHAN_GRACE_S.
"""

from __future__ import annotations

import json
import logging
import random
from typing import Any

import trio

from ccore.client import connect
from ccore.recipes import Lock, LostError, _cleanup
from ccore.znodes.errors import BadVersionError, NodeExistsError, NoNodeError, ZKError

from .history import History
from .trio_thread import TrioThreadWorkload

log = logging.getLogger(__name__)

ROOT = "/chaos/lock"
LOCK = f"{ROOT}/lock"
GUARD = f"{ROOT}/guarded"
MAX_HOLDS = 1_000_000
# How long a deletion in progress may take before its node counts as an orphan: well over its
# retry pause (at most 1 s) plus a reconnect, under the acquire timeout it follows.
ORPHAN_GRACE_S = 5.0


class LockWorkload(TrioThreadWorkload):
    name = "lock"
    stop_timeout_s = 20.0

    def __init__(
        self,
        connect_string: str,
        history: History,
        *,
        seed: int,
        workers: int = 3,
        session_timeout_s: float = 4.0,
        op_timeout_s: float = 2.0,
        acquire_timeout_s: float = 10.0,
        writes_per_hold: int = 2,
        hold_pause_s: tuple[float, float] = (0.0, 0.05),
    ) -> None:
        super().__init__()
        self.connect_string = connect_string
        self.history = history
        self.seed = seed
        self.workers = workers
        self.session_timeout_s = session_timeout_s
        self.op_timeout_s = op_timeout_s
        self.acquire_timeout_s = acquire_timeout_s
        self.writes_per_hold = writes_per_hold
        self.hold_pause_s = hold_pause_s
        self.stats = {"holds": 0, "lost": 0, "acquire_timeouts": 0, "stalls": 0, "bad_version": 0}
        self.orphans: list[str] = []

    async def _run(self) -> None:
        async with trio.open_nursery() as nursery:
            for p in range(self.workers):
                nursery.start_soon(self._worker, p)
            await self._until_stopped()
            nursery.cancel_scope.cancel()

    async def _worker(self, p: int) -> None:
        rng = random.Random(f"{self.seed}/lock/{p}")
        name = f"lock-{p}"
        for _session in range(MAX_HOLDS):
            try:
                async with connect(self.connect_string, session_timeout=self.session_timeout_s, connect_timeout=30) as zk:
                    await self._setup(zk)
                    await self._contend(zk, name, rng)
            except (ZKError, OSError) as exc:  # could not connect, or the client gave up: again
                log.debug("lock worker %s: %r", name, exc)
                await trio.sleep(0.2)

    async def _setup(self, zk: Any) -> None:
        for _ in range(100):
            try:
                with trio.fail_after(self.op_timeout_s):
                    await zk.create(GUARD, b"", make_parents=True)
                return
            except NodeExistsError:
                return
            except (ZKError, trio.TooSlowError):
                await trio.sleep(0.1)

    async def _contend(self, zk: Any, name: str, rng: random.Random) -> None:
        """Take the lock again and again; return (so that the caller starts a new session)
        when a wait times out: a node of ours the recipe failed to remove, alive with our
        session, would otherwise block everyone for good (counted as `stalls`)."""
        for _ in range(MAX_HOLDS):
            try:
                async with Lock(zk, LOCK, name.encode(), timeout=self.acquire_timeout_s) as token:
                    self.stats["holds"] += 1
                    await self._hold(zk, name, token, rng)
            except LostError:
                self.stats["lost"] += 1
            except (TimeoutError, trio.TooSlowError):  # the Lock's timeout is TimeoutError
                self.stats["acquire_timeouts"] += 1
                if await self._orphans(zk):
                    self.stats["stalls"] += 1
                return
            except ZKError as exc:  # connection loss, expiry... while acquiring or releasing
                log.debug("lock worker %s: %r", name, exc)
                await trio.sleep(0.05)
            await trio.sleep(rng.uniform(0.0, 0.02))

    async def _orphans(self, zk: Any) -> bool:
        """Does our session own a node of the lock's queue while we are not queued, once our
        deletions in progress there are over (or ORPHAN_GRACE_S has passed)?"""
        with trio.move_on_after(ORPHAN_GRACE_S):
            await _cleanup.settle(zk, LOCK)
        try:
            with trio.fail_after(self.op_timeout_s * 2):
                for name in await zk.children(LOCK):
                    stat = await zk.exists(f"{LOCK}/{name}")
                    if stat is not None and stat.ephemeralOwner == zk.session_id:
                        log.warning("lock: orphan node %s of our session %#x", name, zk.session_id)
                        self.orphans.append(f"{name} of session {zk.session_id:#x} (czxid {stat.czxid:#x})")
                        return True
        except (ZKError, trio.TooSlowError):
            pass
        return False

    async def _hold(self, zk: Any, name: str, token: int, rng: random.Random) -> None:
        for i in range(self.writes_per_hold):
            try:
                with trio.fail_after(self.op_timeout_s):
                    _data, stat = await zk.get(GUARD)
            except (ZKError, trio.TooSlowError):
                return
            value = {"token": token, "holder": name, "i": i}
            op = self.history.invoke(name, "fenced-write", value, key=GUARD)
            outcome: tuple[str, Any] = ("info", "interrupted")
            try:
                with trio.fail_after(self.op_timeout_s):
                    new = await zk.set(GUARD, json.dumps(value).encode(), version=stat.version)
                outcome = "ok", new
            except BadVersionError:
                self.stats["bad_version"] += 1
                outcome = "fail", "BadVersion"
                return
            except NoNodeError:
                outcome = "fail", "NoNode"
                return
            except (ZKError, trio.TooSlowError) as exc:
                outcome = "info", type(exc).__name__
                return
            finally:  # also when the guard cancels the body: then the outcome is unknown
                kind, result = outcome
                if kind == "ok":
                    self.history.ok(op, result.version, zxid=result.mzxid)
                elif kind == "fail":
                    self.history.fail(op, result)
                else:
                    self.history.info(op, result)
            low, high = self.hold_pause_s
            await trio.sleep(rng.uniform(low, high))
