"""A history of concurrent client operations, recorded as Jepsen records them, JSON in and out.

Each operation is an *invoke* event followed by one completion: *ok* (it took effect, with
its result), *fail* (it certainly did not take effect, e.g. refused before being sent, or a
read that timed out: reads change nothing) or *info* (outcome unknown: a write that timed
out or lost its connection may take effect at any time after its invocation, or never).
A process has at most one operation outstanding; after an *info* it may go on (its unknown
operation is treated as still running, forever).

Times are `time.monotonic_ns()` relative to the history's start, so real-time order between
operations of different threads is kept. The recorder is thread-safe (workload workers are
threads with a blocking client each).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Hashable, Iterable
from pathlib import Path
from typing import Any

import attrs

EVENT_TYPES = ("invoke", "ok", "fail", "info")
COMPLETIONS = ("ok", "fail", "info")


@attrs.frozen
class Event:
    """One line of a history. `value` is the invocation's argument on an invoke, the result on
    an ok. `zxid` is the zxid the server reported with the reply, when known."""

    index: int
    type: str
    process: Hashable
    f: str
    value: Any = None
    time_ns: int = 0
    zxid: int | None = None
    error: str | None = None
    key: Hashable | None = None  # the object operated on (a znode path); checkers split by it
    client: Hashable | None = None  # the client (session/connection) the op went through


@attrs.frozen
class Operation:
    """An invocation paired with its completion. `return_ns` is None when the outcome is
    unknown (info, or no completion at all): such an operation may take effect at any time
    after `call_ns`, or never."""

    id: int
    process: Hashable
    f: str
    input: Any
    output: Any
    status: str  # "ok" | "fail" | "info"
    call_ns: int
    return_ns: int | None
    call_index: int
    return_index: int | None
    zxid: int | None = None
    error: str | None = None
    key: Hashable | None = None
    client: Hashable | None = None

    @property
    def unknown(self) -> bool:
        return self.return_ns is None

    def describe(self) -> str:
        shown = "?" if self.status != "ok" else _short(self.output)
        key = f" {self.key}" if self.key is not None else ""
        return f"#{self.id} p{self.process} {self.f}{key}({_short(self.input)}) -> {shown} [{self.status}]"


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


class HistoryError(ValueError):
    """A history that breaks the recording rules (e.g. two outstanding ops in one process)."""


class History:
    """Thread-safe recorder: ``op = h.invoke(p, "write", 3); ...; h.ok(op, 7, zxid=z)``."""

    def __init__(
        self, *, clock_ns: Any = time.monotonic_ns, meta: dict[str, Any] | None = None, start_ns: int | None = None
    ) -> None:
        """`start_ns` (a `clock_ns` reading) is time zero; histories of one run share it."""
        self._clock_ns = clock_ns
        self._start_ns = clock_ns() if start_ns is None else start_ns
        self._lock = threading.Lock()
        self._events: list[Event] = []
        self._open: dict[Hashable, int] = {}  # process -> index of its outstanding invoke
        self.meta: dict[str, Any] = dict(meta or {})
        self.meta.setdefault("started_at_unix_s", time.time())

    # -- recording --------------------------------------------------------------------------

    def invoke(
        self, process: Hashable, f: str, value: Any = None, *, key: Hashable | None = None, client: Hashable | None = None
    ) -> int:
        """Record an invocation; returns the handle to complete it with."""
        with self._lock:
            if process in self._open:
                raise HistoryError(f"process {process!r} invoked {f} with an operation still outstanding")
            index = len(self._events)
            self._events.append(
                Event(index, "invoke", process, f, value, self._now(), key=key, client=process if client is None else client)
            )
            self._open[process] = index
            return index

    def ok(self, handle: int, value: Any = None, *, zxid: int | None = None) -> None:
        self._complete(handle, "ok", value, zxid, None)

    def fail(self, handle: int, error: str | None = None, *, value: Any = None, zxid: int | None = None) -> None:
        self._complete(handle, "fail", value, zxid, error)

    def info(self, handle: int, error: str | None = None) -> None:
        self._complete(handle, "info", None, None, error)

    def _complete(self, handle: int, kind: str, value: Any, zxid: int | None, error: str | None) -> None:
        with self._lock:
            if not 0 <= handle < len(self._events) or self._events[handle].type != "invoke":
                raise HistoryError(f"{handle} is not an invocation of this history")
            inv = self._events[handle]
            if self._open.get(inv.process) != handle:
                raise HistoryError(f"operation {handle} ({inv.f} by {inv.process!r}) is already complete")
            del self._open[inv.process]
            self._events.append(
                Event(len(self._events), kind, inv.process, inv.f, value, self._now(), zxid, error, inv.key, inv.client)
            )

    def _now(self) -> int:
        return self._clock_ns() - self._start_ns

    def now_ns(self) -> int:
        """The current time on this history's clock (ns since its start)."""
        return self._now()

    # -- reading ----------------------------------------------------------------------------

    @property
    def events(self) -> list[Event]:
        with self._lock:
            return list(self._events)

    def operations(self) -> list[Operation]:
        return pair(self.events)

    def counts(self) -> dict[str, int]:
        return count(self.operations())

    def to_json(self) -> dict[str, Any]:
        return {"meta": self.meta, "events": [attrs.asdict(e) for e in self.events]}

    def dump(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), default=str, indent=None) + "\n")

    @classmethod
    def from_events(cls, events: Iterable[Event], meta: dict[str, Any] | None = None) -> History:
        h = cls(meta=meta)
        h._events = [attrs.evolve(e, index=i) for i, e in enumerate(events)]
        h._open = {}
        for e in h._events:
            if e.type == "invoke":
                h._open[e.process] = e.index
            else:
                h._open.pop(e.process, None)
        return h

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> History:
        events = [Event(**_fix_event(raw)) for raw in data["events"]]
        return cls.from_events(events, data.get("meta"))

    @classmethod
    def load(cls, path: Path) -> History:
        return cls.from_json(json.loads(Path(path).read_text()))


def _fix_event(raw: dict[str, Any]) -> dict[str, Any]:
    """JSON has lists where we wrote tuples; processes/keys/clients must be hashable again."""
    out = dict(raw)
    for field in ("process", "key", "client"):
        if isinstance(out.get(field), list):
            out[field] = tuple(out[field])
    if out.get("type") not in EVENT_TYPES:
        raise HistoryError(f"event {raw.get('index')}: unknown type {raw.get('type')!r}")
    return out


def pair(events: list[Event]) -> list[Operation]:
    """Pair invocations with completions; an invocation never completed is unknown (info)."""
    ops: list[Operation] = []
    open_: dict[Hashable, Event] = {}
    done: list[tuple[Event, Event | None]] = []
    for e in events:
        if e.type == "invoke":
            if e.process in open_:
                raise HistoryError(f"event {e.index}: process {e.process!r} invoked with an op outstanding")
            open_[e.process] = e
        else:
            inv = open_.pop(e.process, None)
            if inv is None:
                raise HistoryError(f"event {e.index}: {e.type} for process {e.process!r} with nothing outstanding")
            done.append((inv, e))
    done.extend((inv, None) for inv in open_.values())
    done.sort(key=lambda pair_: pair_[0].index)
    for op_id, (inv, comp) in enumerate(done):
        status = comp.type if comp is not None else "info"
        known = status != "info"
        ops.append(
            Operation(
                id=op_id,
                process=inv.process,
                f=inv.f,
                input=inv.value,
                output=comp.value if (comp is not None and status == "ok") else None,
                status=status,
                call_ns=inv.time_ns,
                return_ns=comp.time_ns if (comp is not None and known) else None,
                call_index=inv.index,
                return_index=comp.index if (comp is not None and known) else None,
                zxid=comp.zxid if comp is not None else None,
                error=comp.error if comp is not None else None,
                key=inv.key,
                client=inv.client if inv.client is not None else inv.process,
            )
        )
    return ops


def count(ops: Iterable[Operation]) -> dict[str, int]:
    out = {"ok": 0, "fail": 0, "info": 0}
    for op in ops:
        out[op.status] += 1
    return out
