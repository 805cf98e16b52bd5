"""Checkers for the guarantees beside linearizability, each over recorded observations:

- `check_zxid_order`: a client's reads never go back in zxid, across reconnects;
- `check_reads`: plain (local, possibly stale) reads are sequentially consistent;
- `check_fenced_writes`: lock holders' version-checked writes of their fencing tokens never
  interleave (tokens never go down in the order the guarded znode's versions went up);
- `check_watches`: every persistent recursive watch sees every change under its path, in zxid
  order, with no gaps and nothing extra;
- `check_watch_windows`: the same, per stretch of connection, with events mapped to zxids by data;
- `check_ephemeral_expiry`: no ephemeral is seen alive after its session's expiry bound.

Each returns a `Verdict`: ok, or the violations found (each a sentence naming what broke).
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Hashable, Iterable, Sequence
from typing import Any

import attrs

from .history import History, Operation


@attrs.frozen
class Verdict:
    checker: str
    ok: bool
    violations: tuple[str, ...] = ()
    checked: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"checker": self.checker, "ok": self.ok, "checked": self.checked, "violations": list(self.violations[:100])}


def _verdict(checker: str, violations: list[str], checked: int) -> Verdict:
    return Verdict(checker, not violations, tuple(violations), checked)


def _ops(history: History | Sequence[Operation]) -> list[Operation]:
    return history.operations() if isinstance(history, History) else list(history)


# -- per-client zxid order ---------------------------------------------------------------------


def check_zxid_order(history: History | Sequence[Operation], *, reads: Iterable[str] = ("read",)) -> Verdict:
    """For each client, an op that *began after* another op of that client *returned* must
    carry a zxid at least as high; a read must not see a state older than anything the client
    already saw or wrote (ZooKeeper's single system image, across reconnects). Ops without a
    zxid are skipped; only `reads` are judged, every ok op with a zxid raises the floor."""
    read_fs = set(reads)
    by_client: dict[Hashable, list[Operation]] = {}
    for op in _ops(history):
        if op.status == "ok" and op.zxid is not None:
            by_client.setdefault(op.client, []).append(op)
    violations: list[str] = []
    checked = 0
    for client, ops in by_client.items():
        # Sweep in call order, folding in every op that returned before the current call.
        returned = sorted(ops, key=lambda o: o.return_ns or 0)
        floor, floor_op, k = -1, None, 0
        for op in sorted(ops, key=lambda o: o.call_ns):
            while k < len(returned) and (returned[k].return_ns or 0) < op.call_ns:
                z = returned[k].zxid
                if z is not None and z > floor:
                    floor, floor_op = z, returned[k]
                k += 1
            if op.f in read_fs:
                checked += 1
                assert op.zxid is not None
                if op.zxid < floor and floor_op is not None:
                    violations.append(
                        f"client {client!r}: {op.describe()} saw zxid {op.zxid:#x} after {floor_op.describe()} "
                        f"had seen {floor:#x}"
                    )
    return _verdict("zxid-order", violations, checked)


# -- plain reads: sequential consistency ------------------------------------------------------


def check_reads(history: History | Sequence[Operation], *, read: str = "read") -> Verdict:
    """What a plain read promises (it is served by the replica the client is connected to,
    so it may be stale, but never wrong or going back): for the register workload, where a
    read's output is ``[value, version, mzxid]``, a write's input its (fresh) value and its
    output the new version, a cas's input ``[expected_version, value]``.

    - one history per znode: no two different values, nor two mzxids, at one version;
    - every value read was written, by a write invoked before the read returned;
    - a client's reads of a key never go back in version, nor below its own acknowledged
      writes (monotonic reads, read-your-writes), across reconnects and sessions;
    - across keys: a client never reads a version older than a state it has already seen,
      i.e. version v of key k is too old if version v+1 was made by a write whose zxid is at
      most the highest zxid the client saw before (reply headers, the mzxids it read, the
      zxids of its own writes)."""
    ops = _ops(history)
    violations: list[str] = []
    at_version: dict[tuple[Hashable, int], tuple[Any, int | None, Operation]] = {}
    writer_of: dict[tuple[Hashable, Any], Operation] = {}

    def state(key: Hashable, version: int, value: Any, zxid: int | None, op: Operation) -> None:
        known = at_version.get((key, version))
        if known is None:
            at_version[(key, version)] = (value, zxid, op)
            return
        value0, zxid0, op0 = known
        if value0 != value:
            violations.append(f"key {key}: two values at version {version}: {op0.describe()} and {op.describe()}")
        if zxid is not None and zxid0 is not None and zxid != zxid0:
            violations.append(
                f"key {key}: version {version} made at two zxids {zxid0:#x} and {zxid:#x}: {op0.describe()}, {op.describe()}"
            )
        elif zxid0 is None and zxid is not None:
            at_version[(key, version)] = (value0, zxid, op0)

    for op in ops:
        if op.f == "write":
            writer_of[(op.key, op.input)] = op
            if op.status == "ok":
                state(op.key, op.output, op.input, op.zxid, op)
        elif op.f == "cas":
            writer_of[(op.key, op.input[1])] = op
            if op.status == "ok" and op.output is True:
                state(op.key, op.input[0] + 1, op.input[1], op.zxid, op)
    reads = [op for op in ops if op.f == read and op.status == "ok"]
    for op in reads:
        value, version, mzxid = op.output[0], op.output[1], op.output[2]
        state(op.key, version, value, mzxid, op)
        if value is None:
            continue
        writer = writer_of.get((op.key, value))
        if writer is None:
            violations.append(f"{op.describe()} read a value no one wrote")
        elif op.return_ns is not None and writer.call_ns > op.return_ns:
            violations.append(f"{op.describe()} read a value before it was written by {writer.describe()}")
    checked = 0
    by_client: dict[Hashable, list[Operation]] = {}
    for op in ops:
        if op.status == "ok":
            by_client.setdefault(op.client, []).append(op)
    for client, mine in by_client.items():
        returned = sorted(mine, key=lambda o: o.return_ns or 0)
        floor_zxid, floor_op, k = -1, None, 0
        floor_version: dict[Hashable, tuple[int, Operation]] = {}
        for op in sorted(mine, key=lambda o: o.call_ns):
            while k < len(returned) and (returned[k].return_ns or 0) < op.call_ns:
                done = returned[k]
                k += 1
                seen = _seen(done)
                if seen is not None:
                    version, zxid = seen
                    if zxid is not None and zxid > floor_zxid:
                        floor_zxid, floor_op = zxid, done
                    if version is not None and version > floor_version.get(done.key, (-1, done))[0]:
                        floor_version[done.key] = (version, done)
            if op.f != read:
                continue
            checked += 1
            version = op.output[1]
            low, low_op = floor_version.get(op.key, (-1, op))
            if version < low:
                violations.append(f"client {client!r}: {op.describe()} went back to version {version} after {low_op.describe()}")
            newer = at_version.get((op.key, version + 1))
            if newer is not None and newer[1] is not None and floor_op is not None and newer[1] <= floor_zxid:
                violations.append(
                    f"client {client!r}: {op.describe()} read version {version}, but version {version + 1} was made at "
                    f"zxid {newer[1]:#x} and the client had already seen zxid {floor_zxid:#x} ({floor_op.describe()})"
                )
    return _verdict("reads", violations, checked)


def _seen(op: Operation) -> tuple[int | None, int | None] | None:
    """(version of op.key, zxid) a completed op showed its client."""
    if op.f == "read":
        zxids = [z for z in (op.zxid, op.output[2]) if z is not None]
        return op.output[1], max(zxids) if zxids else None
    if op.f == "write":
        return op.output, op.zxid
    if op.f == "cas" and op.output is True:
        return op.input[0] + 1, op.zxid
    return None, op.zxid


# -- fenced lock writes ---------------------------------------------------------------------------


def check_fenced_writes(history: History | Sequence[Operation], *, f: str = "fenced-write") -> Verdict:
    """Lock workload: a holder writes ``{"token": t, ...}`` to the guarded znode with setData
    at the version it read; the ok output is the znode's new version.

    Ordered by resulting version, the acknowledged writes must have distinct versions (two
    writes acknowledged at one version: one was lost), tokens that never go down (a holder
    with an older token wrote after a newer holder: fencing failed) and so each holder's
    writes contiguous. Gaps in versions are allowed only up to the number of writes whose
    outcome is unknown (they may have landed)."""
    ops = [op for op in _ops(history) if op.f == f]
    acked = sorted((op for op in ops if op.status == "ok"), key=lambda op: op.output)
    unknown = sum(1 for op in ops if op.status == "info")
    violations: list[str] = []
    gaps = 0
    prev: Operation | None = None
    for op in acked:
        token = _token(op)
        if prev is not None:
            if op.output == prev.output:
                violations.append(f"two writes acknowledged at version {op.output}: {prev.describe()} and {op.describe()}")
            gaps += max(0, op.output - prev.output - 1)
            prev_token = _token(prev)
            if token < prev_token:
                violations.append(
                    f"token {token} wrote version {op.output} after token {prev_token} wrote version {prev.output}: "
                    f"{op.describe()}"
                )
        prev = op
    if gaps > unknown:
        violations.append(f"{gaps} versions of the guarded znode are unaccounted for, only {unknown} writes are unknown")
    return _verdict("fenced-writes", violations, len(acked))


def _token(op: Operation) -> Any:
    value = op.input
    return value["token"] if isinstance(value, dict) else value


# -- watch completeness ---------------------------------------------------------------------------


@attrs.frozen
class Change:
    """A change to the tree: its zxid, path and event type (``created``, ``changed``,
    ``deleted``), and whether it certainly happened (an acknowledged write) or may have
    (a write of unknown outcome)."""

    zxid: int | None
    path: str
    type: str
    certain: bool = True


@attrs.frozen
class WatchLog:
    """What one persistent recursive watch on `root` received while it was known to be in
    place: set before `start_zxid` was reached, still set at `end_zxid` (inclusive)."""

    watcher: Hashable
    root: str
    start_zxid: int
    end_zxid: int
    events: tuple[Change, ...]


def _under(path: str, root: str) -> bool:
    return root == "/" or path == root or path.startswith(root.rstrip("/") + "/")


def check_watches(changes: Iterable[Change], watchers: Iterable[WatchLog]) -> Verdict:
    """Each watcher's events must be exactly the changes under its root with zxid in
    (start_zxid, end_zxid], in zxid order: no gap (a certain change missing), no reordering,
    nothing extra. Uncertain changes may be absent; if one watcher saw one, every watcher
    whose window covers it must have seen it too. Events without a zxid are matched by
    (path, type) in order."""
    changes = sorted((c for c in changes if c.zxid is not None), key=lambda c: c.zxid or 0)
    logs = list(watchers)
    violations: list[str] = []
    seen_uncertain: set[int] = set()
    for log in logs:
        seen_uncertain.update(e.zxid for e in log.events if e.zxid is not None)
    checked = 0
    for log in logs:
        expected = [
            c for c in changes
            if _under(c.path, log.root) and log.start_zxid < (c.zxid or 0) <= log.end_zxid
        ]  # fmt: skip
        checked += len(log.events)
        violations += _match_watch(log, expected, seen_uncertain)
    return _verdict("watches", violations, checked)


def _match_watch(log: WatchLog, expected: list[Change], seen_anywhere: set[int]) -> list[str]:
    out: list[str] = []
    zxids = [e.zxid for e in log.events if e.zxid is not None]
    if any(b <= a for a, b in itertools.pairwise(zxids)):
        out.append(f"watcher {log.watcher!r}: events not in strictly increasing zxid order: {[hex(z) for z in zxids]}")
    k = 0
    for event in log.events:
        while k < len(expected):
            want = expected[k]
            same = event.zxid == want.zxid if event.zxid is not None else (event.path, event.type) == (want.path, want.type)
            if same:
                break
            must = want.certain or (want.zxid in seen_anywhere)
            if must:
                out.append(f"watcher {log.watcher!r}: missed {want.type} {want.path} at zxid {want.zxid:#x} (gap)")
                return out
            k += 1  # an unknown write that did not land
        else:
            out.append(f"watcher {log.watcher!r}: unexpected event {event.type} {event.path} (zxid {event.zxid})")
            return out
        k += 1
    for want in expected[k:]:
        if want.certain or want.zxid in seen_anywhere:
            out.append(f"watcher {log.watcher!r}: missed {want.type} {want.path} at zxid {want.zxid:#x} (never delivered)")
            break
    return out


def check_watch_windows(
    changes: Iterable[tuple[str, str, int | None, bool]],
    windows: Iterable[Any],
    *,
    tracked: Any = lambda path: True,
) -> Verdict:
    """The watch workload's check (see chaos.watchload): `changes` are (path, type, zxid,
    certain) with each (path, type) made at most once, so an event is mapped to its change's
    zxid through the data, whatever zxid the event carries (a change of unknown zxid: its
    events are not judged). Each window (watcher,
    start_zxid, end_zxid, events of (path, type, event zxid)) must hold every change with
    zxid in (start, end], its events in strictly increasing zxid order (no reordering, no
    duplicate), and nothing that never happened. An event's own zxid, when the server sends
    one (not -1), must be its change's. Events on untracked paths are ignored."""
    table: dict[tuple[str, str], int] = {}
    unplaced: set[tuple[str, str]] = set()  # may have happened, zxid unknown: events not judged
    for path, kind, zxid, _certain in changes:
        if zxid is not None:
            table[(path, kind)] = zxid
        else:
            unplaced.add((path, kind))
    ordered = sorted(table.values())
    violations: list[str] = []
    checked = 0
    for window in windows:
        w = window if isinstance(window, dict) else attrs.asdict(window)
        who, start, end = w["watcher"], w["start_zxid"], w["end_zxid"]
        prefix = f"{who} window ({start:#x}, {end:#x}]"
        mapped: list[tuple[int, str, str]] = []
        for path, kind, event_zxid in w["events"]:
            if not tracked(path) or (path, kind) in unplaced:
                continue
            zxid = table.get((path, kind))
            if zxid is None:
                violations.append(f"{prefix}: event {kind} {path} for a change that never happened")
                continue
            if event_zxid not in (None, -1, 0) and event_zxid != zxid:
                violations.append(f"{prefix}: event {kind} {path} carries zxid {event_zxid:#x}, the change was {zxid:#x}")
            mapped.append((zxid, kind, path))
        checked += len(mapped)
        for (z1, k1, p1), (z2, k2, p2) in itertools.pairwise(mapped):
            if z2 <= z1:
                what = "twice" if z2 == z1 else "out of zxid order"
                violations.append(f"{prefix}: {k2} {p2} ({z2:#x}) delivered {what} after {k1} {p1} ({z1:#x})")
                break
        got = {z for z, _k, _p in mapped}
        lo = bisect.bisect_right(ordered, start)
        hi = bisect.bisect_right(ordered, end)
        missing = [z for z in ordered[lo:hi] if z not in got]
        if missing:
            names = {z: f"{k} {p}" for (p, k), z in table.items()}
            shown = ", ".join(f"{names[z]} ({z:#x})" for z in missing[:5])
            violations.append(f"{prefix}: {len(missing)} of {hi - lo} changes never delivered (gap), first: {shown}")
    return _verdict("watch-windows", violations, checked)


# -- ephemeral expiry -------------------------------------------------------------------------------


@attrs.frozen
class EphemeralLife:
    """An ephemeral `path` owned by a session that went silent (its client killed or cut
    off) at `silent_ns`, with negotiated `timeout_ms`: it must be gone by
    ``silent_ns + timeout + bound``."""

    path: str
    session: Hashable
    silent_ns: int
    timeout_ms: int
    extra_ms: int = 0  # allowance on top of the bound (a fault in the way: see chaos.runner)


def check_ephemeral_expiry(
    lives: Iterable[EphemeralLife], history: History | Sequence[Operation], *, bound_ms: int, f: str = "exists"
) -> Verdict:
    """Observers record ``exists(path)`` ops (ok output True/False). Any observation *invoked*
    after an ephemeral's deadline that still saw it is a violation; its lateness is reported."""
    by_path: dict[Any, list[Operation]] = {}
    for op in _ops(history):
        if op.f == f and op.status == "ok":
            by_path.setdefault(op.input, []).append(op)
    violations: list[str] = []
    checked = 0
    for life in lives:
        deadline_ns = life.silent_ns + (life.timeout_ms + bound_ms + life.extra_ms) * 1_000_000
        late = [op for op in by_path.get(life.path, []) if op.call_ns > deadline_ns and op.output]
        checked += 1
        if late:
            first = min(late, key=lambda op: op.call_ns)
            over_ms = (first.call_ns - life.silent_ns) / 1e6 - life.timeout_ms
            violations.append(
                f"ephemeral {life.path} of session {life.session!r} seen alive {over_ms:.0f} ms after its "
                f"{life.timeout_ms} ms timeout (bound {bound_ms} ms"
                + (f" + {life.extra_ms} ms for faults" if life.extra_ms else "")
                + f"): {first.describe()}"
            )
    return _verdict("ephemeral-expiry", violations, checked)


def merge(verdicts: Iterable[Verdict]) -> dict[str, Any]:
    """A report section: every verdict, and whether all passed."""
    items = list(verdicts)
    return {"ok": all(v.ok for v in items), "checkers": [v.to_json() for v in items]}


__all__ = [
    "Change",
    "EphemeralLife",
    "Verdict",
    "WatchLog",
    "check_ephemeral_expiry",
    "check_fenced_writes",
    "check_reads",
    "check_watch_windows",
    "check_watches",
    "check_zxid_order",
    "merge",
]
