"""The watch workload: writers change znodes, watchers hold a persistent recursive watch on
their root and record what they receive; `chaos.checks.check_watch_windows` then checks that
each watcher saw every change, in zxid order, with no gap.

Changes are made so that each one's zxid is known from data, not from event headers
(ZooKeeper 3.8 sends zxid -1 in events): writer p creates ``ROOT/w<p>/n<k>`` (a fresh path:
the create's Stat gives its czxid) and sets some of its nodes once (the set's Stat gives its
mzxid). So an event (path, type) names exactly one change. A node whose create or set had an
unknown outcome is never touched again, and `resolve()` reads at the end whether and at which
zxid that change happened.

A persistent watch misses what happens while its client is disconnected (ZooKeeper replays
nothing to persistent watches), so a watcher's record is cut into *windows*, one per stretch
of connection, each bounded by zxids read from replies, never guessed:

- every `probe_s` the watcher sends `exists(ROOT)`, reads the client's last zxid, then drains
  the events received so far. ZooKeeper delivers a watch event before the reply of any
  request that follows it on the connection, so every change with zxid <= that reply's zxid
  has been received by then. If the drain holds no connection event, the probe came back on
  the current connection and its zxid becomes the window's `end` (or its `start`, for a new
  window: the watch was registered before the probe was sent; the events of that drain,
  which may have come after the reply, are the window's first);
- a DISCONNECTED / SYNC_CONNECTED event, or an expired session, closes the window at its last
  end. The client keeps the highest zxid seen, so a stale read of it only makes `start`
  later, which asks less, never more.

Within a window, every change with zxid in (start, end] must arrive, in zxid order, once.
"""

from __future__ import annotations

import logging
import random
import threading
from typing import Any

import attrs
import trio

from ccore.client import connect
from ccore.znodes.constants import EventType
from ccore.znodes.errors import NodeExistsError, NoNodeError, ZKError

from .history import History
from .trio_thread import TrioThreadWorkload

log = logging.getLogger(__name__)

ROOT = "/chaos/watch"
MAX_STEPS = 10_000_000
EVENT_NAMES = {EventType.NODE_CREATED: "created", EventType.NODE_DATA_CHANGED: "changed", EventType.NODE_DELETED: "deleted"}


@attrs.define
class Window:
    """What one watcher received during one stretch of connection."""

    watcher: str
    start_zxid: int
    end_zxid: int
    events: list[tuple[str, str, int]] = attrs.field(factory=list)  # (path, type, event zxid or -1)
    closed_by: str = ""

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


class WatchWorkload(TrioThreadWorkload):
    name = "watch"
    stop_timeout_s = 20.0

    def __init__(
        self,
        connect_string: str,
        history: History,
        *,
        seed: int,
        writers: int = 2,
        watchers: int = 2,
        session_timeout_s: float = 4.0,
        op_timeout_s: float = 2.0,
        think_s: tuple[float, float] = (0.01, 0.05),
        probe_s: float = 0.2,
    ) -> None:
        super().__init__()
        self.connect_string = connect_string
        self.history = history
        self.seed = seed
        self.writers = writers
        self.watchers = watchers
        self.session_timeout_s = session_timeout_s
        self.op_timeout_s = op_timeout_s
        self.think_s = think_s
        self.probe_s = probe_s
        self.windows: list[Window] = []
        self._writing_done = threading.Event()

    async def _run(self) -> None:
        async with trio.open_nursery() as nursery:
            for q in range(self.watchers):
                nursery.start_soon(self._watcher, f"watcher-{q}")
            await trio.sleep(0.5)  # watchers in place first (not required: windows say when)
            async with trio.open_nursery() as writers:
                for p in range(self.writers):
                    writers.start_soon(self._writer, p)
                await self._until_stopped()
                writers.cancel_scope.cancel()
            # The watchers' last probes after the last write, so the tail is checked too.
            await trio.sleep(3 * self.probe_s)
            nursery.cancel_scope.cancel()

    # -- writers -----------------------------------------------------------------------------

    async def _writer(self, p: int) -> None:
        rng = random.Random(f"{self.seed}/watch-writer/{p}")
        name = f"writer-{p}"
        parent = f"{ROOT}/w{p}"
        created: list[str] = []  # created and known, not yet set
        k = 0
        for _attempt in range(1_000):
            try:
                async with connect(self.connect_string, session_timeout=self.session_timeout_s, connect_timeout=30) as zk:
                    await self._ensure(zk, parent)
                    while k < MAX_STEPS:
                        if created and rng.random() < 0.3:
                            path = created.pop(rng.randrange(len(created)))
                            await self._change(zk, name, "set", path)
                        else:
                            path = f"{parent}/n{k:08d}"
                            k += 1
                            if await self._change(zk, name, "create", path):
                                created.append(path)
                        await trio.sleep(rng.uniform(*self.think_s))
                return
            except (ZKError, OSError) as exc:
                log.debug("watch writer %s: %r", name, exc)
                await trio.sleep(0.2)

    async def _ensure(self, zk: Any, path: str) -> None:
        for _ in range(100):
            try:
                with trio.fail_after(self.op_timeout_s):
                    await zk.create(path, b"", make_parents=True)
                return
            except NodeExistsError:
                return
            except (ZKError, trio.TooSlowError):
                await trio.sleep(0.1)

    async def _change(self, zk: Any, name: str, f: str, path: str) -> bool:
        """One recorded change; True if it certainly happened."""
        op = self.history.invoke(name, f, path, key=path)
        outcome: tuple[str, Any] = ("info", "interrupted")
        try:
            with trio.fail_after(self.op_timeout_s):
                if f == "create":
                    _path, stat = await zk.create(path, f"{name} {path}".encode(), include_stat=True)
                    zxid = stat.czxid
                else:
                    stat = await zk.set(path, f"{name} set".encode(), version=0)
                    zxid = stat.mzxid
            outcome = ("ok", zxid)
            return True
        except (NoNodeError, NodeExistsError) as exc:  # cannot happen with fresh paths: recorded
            outcome = ("fail", type(exc).__name__)
            return False
        except (ZKError, trio.TooSlowError) as exc:
            outcome = ("info", type(exc).__name__)
            return False
        finally:
            kind, detail = outcome
            if kind == "ok":
                self.history.ok(op, True, zxid=detail)
            elif kind == "fail":
                self.history.fail(op, detail)
            else:
                self.history.info(op, detail)

    # -- watchers ----------------------------------------------------------------------------

    async def _watcher(self, name: str) -> None:
        for _attempt in range(1_000):
            try:
                async with connect(self.connect_string, session_timeout=self.session_timeout_s, connect_timeout=30) as zk:
                    await self._ensure(zk, ROOT)
                    for _stream in range(1_000):
                        await self._watch_once(zk, name)
                return
            except (ZKError, OSError) as exc:
                log.debug("watcher %s: %r", name, exc)
                await trio.sleep(0.2)

    async def _watch_once(self, zk: Any, name: str) -> None:
        """One watch stream, until its session expires (then the caller opens another)."""
        window: Window | None = None
        try:
            with trio.fail_after(self.op_timeout_s * 2):
                stream = await zk.watch(ROOT, recursive=True, connection_events=True).__aenter__()
        except (ZKError, trio.TooSlowError) as exc:
            log.debug("watcher %s: no watch: %r", name, exc)
            await trio.sleep(0.2)
            return
        try:
            while True:
                try:
                    with trio.fail_after(self.op_timeout_s):
                        await zk.exists(ROOT)
                    probe: int | None = zk.last_zxid
                except (ZKError, trio.TooSlowError):
                    probe = None
                drained, error = await _drain(stream)
                broken = next((i for i, e in enumerate(drained) if e.type == EventType.NONE), None)
                if window is not None:
                    for event in drained[:broken]:
                        window.events.append(_event(event))
                    if broken is not None or error is not None:
                        window.closed_by = drained[broken].state.name if broken is not None else type(error).__name__
                        window = None
                    elif probe is not None:
                        window.end_zxid = max(window.end_zxid, probe)
                elif broken is None and error is None and probe is not None:
                    # The drain may hold events that arrived after the probe's reply (zxid
                    # above it): they belong to this window.
                    window = Window(name, probe, probe, [_event(event) for event in drained])
                    self.windows.append(window)
                if error is not None:
                    return  # the session expired: the caller opens a new stream
                await trio.sleep(self.probe_s)
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(self.op_timeout_s):
                await stream.__aexit__(None, None, None)

    # -- after the run -----------------------------------------------------------------------

    def resolve(self, timeout_s: float = 30.0) -> list[tuple[str, str, int | None, bool]]:
        """Every change made or maybe made, as (path, type, zxid, certain): the unknown ones
        read back from the (healed) ensemble. Call after `stop`."""
        return trio.run(self._resolve, timeout_s)

    async def _resolve(self, timeout_s: float) -> list[tuple[str, str, int | None, bool]]:
        out: list[tuple[str, str, int | None, bool]] = []
        unknown = []
        for op in self.history.operations():
            kind = "created" if op.f == "create" else "changed"
            if op.status == "ok":
                out.append((op.input, kind, op.zxid, True))
            elif op.status == "info":
                unknown.append((op.input, kind))
        left = list(unknown)
        try:
            with trio.move_on_after(timeout_s):
                async with connect(self.connect_string, session_timeout=self.session_timeout_s, connect_timeout=timeout_s) as zk:
                    await zk.sync(ROOT)
                    while left:
                        path, kind = left[-1]
                        stat = await zk.exists(path)
                        left.pop()
                        if stat is None:
                            continue
                        if kind == "created":
                            out.append((path, kind, stat.czxid, False))
                        elif stat.version >= 1:
                            out.append((path, kind, stat.mzxid, False))
        except ZKError as exc:
            self.errors.append(f"reading back changes of unknown outcome: {exc!r}")
        if left:
            self.errors.append(f"{len(left)} changes of unknown outcome could not be read back: their events are not checked")
        # Unresolved: they may have happened, at a zxid we do not know.
        out += [(path, kind, None, False) for path, kind in left]
        return out


async def _drain(stream: Any) -> tuple[list[Any], ZKError | None]:
    """Every event received so far, without waiting, and the stream's error (an expired
    session) if it ended with one."""
    drained: list[Any] = []
    for _ in range(1_000_000):
        try:
            with trio.move_on_after(0) as scope:  # receive() returns at once when it has one
                event = await stream.receive()
        except ZKError as exc:
            return drained, exc
        if scope.cancelled_caught:
            break
        drained.append(event)
    return drained, None


def _event(event: Any) -> tuple[str, str, int]:
    return (event.path, EVENT_NAMES.get(event.type, event.type.name.lower()), int(event.zxid))
