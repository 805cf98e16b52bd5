"""Linearizability checking: Wing & Gong's search with Lowe's memoisation, as in Porcupine.

The history's call and return entries are kept in one time-ordered doubly linked list. The
search walks it, tries to linearize each call whose operation the model accepts in the
current state, lifts it (and its return) out of the list and restarts from the head; reaching
a return entry means the operation it closes cannot be linearized any more, so it backtracks.
A cache of (linearized-set bitmask, state) prunes configurations already explored, which is
what makes the search practical (Lowe; Porcupine's `checkSingle`).

Unknown outcomes (info) get a return at +infinity and no output, so they may be linearized
anywhere after their call, or effectively never (last). Failed operations certainly did not
take effect and are left out; so are reads of unknown outcome (they change nothing).
Operations are split by `key` and each key checked alone (P-compositionality: a history is
linearizable iff every per-object sub-history is).

Cost: linearizable histories are cheap (3,000 ops over 10 processes on one key: ~0.1 s with
no unknown outcomes, ~1 s with 2%). Proving a violation is an exhaustive search, and unknown
outcomes multiply the configurations: on one 3,000-op key with 2-5% unknown it can take
seconds to over a minute (then the verdict is "unknown", never a false "ok"). Workloads
therefore rotate keys (a few hundred ops each, as Jepsen's independent keys): at 400 ops per
key even 10% unknown fails or passes in under 2 s per key.

When a key fails, the report narrows it: a binary search finds the shortest failing prefix
(it ends at the return of the *culprit*), then the states the register could be in when the
culprit was invoked, and the *window*: the operations still running at that moment or started
after it, which cannot be linearized from any of those states.
"""

from __future__ import annotations

import math
import time
from collections.abc import Hashable, Iterable, Sequence
from typing import Any, Protocol

import attrs

from .history import History, Operation

INF = math.inf
UNSEEN = "<a value no read returned>"


class Model(Protocol):
    """A sequential specification: `step` says whether `f(input)` may return `output` in
    `state` (output None: unknown, always allowed) and what the state becomes."""

    def init(self) -> Hashable: ...

    def step(self, state: Any, f: str, input: Any, output: Any) -> tuple[bool, Any]: ...

    # Optionally, `prepare(ops) -> ops` rewrites a key's ops before the search (see CasRegister).


@attrs.frozen
class CasRegister:
    """A znode as a register with versions: state = (value, version).

    - ``read`` -> output ``(value, version)``; version may be None (not observed);
    - ``write(v)`` (setData, any version) -> output: the new version (or None);
    - ``cas((expected_version, v))`` (setData with a version) -> output True (set) or False
      (BadVersion). An unknown cas is deterministic at its linearization point: it succeeds
      iff the version matches.
    """

    initial_value: Any = None
    initial_version: int = 0

    def init(self) -> tuple[Any, int]:
        return (_freeze(self.initial_value), self.initial_version)

    def step(self, state: tuple[Any, int], f: str, input: Any, output: Any) -> tuple[bool, Any]:
        # Inputs and outputs are hashable here: `prepare` froze them (JSON lists -> tuples).
        value, version = state
        if f == "read":
            if output is None:
                return True, state
            return (output[0] == value and (output[1] is None or output[1] == version)), state
        if f == "write":
            return (output is None or output == version + 1), (input, version + 1)
        if f == "cas":
            expected, new_value = input
            if version == expected:
                return (output is None or output is True), (new_value, version + 1)
            return (output is None or output is False), state
        raise ValueError(f"CasRegister has no operation {f!r}")

    def prepare(self, ops: Sequence[Operation]) -> list[Operation]:
        """Freeze values (JSON lists -> tuples) so states hash, and write every value that no
        read ever returned as one `UNSEEN` value: such values are indistinguishable, so states
        merge in the cache and unknown writes of them become interchangeable (the search then
        tries one of them where it would try every subset)."""
        seen = {_freeze(op.output[0]) for op in ops if op.f == "read" and op.output is not None}
        seen.add(_freeze(self.initial_value))
        out = []
        for op in ops:
            if op.f == "read" and op.output is not None:
                op = attrs.evolve(op, output=(_freeze(op.output[0]), op.output[1]))
            elif op.f == "write":
                value = _freeze(op.input)
                op = attrs.evolve(op, input=value if value in seen else UNSEEN)
            elif op.f == "cas":
                value = _freeze(op.input[1])
                op = attrs.evolve(op, input=(op.input[0], value if value in seen else UNSEEN))
            out.append(op)
        return out


def _freeze(value: Any) -> Any:
    """JSON turns tuples into lists; states must be hashable for the cache."""
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


class _OverBudget(Exception):
    pass


@attrs.frozen
class Failure:
    """Why one key is not linearizable, narrowed for a human."""

    key: Hashable | None
    prefix_events: int  # the shortest failing prefix of the history ends at this event index
    culprit: Operation  # the op whose completion ends that prefix
    window_start_states: list[Any]  # the states possible when the culprit was invoked
    window: list[Operation]  # ops running then or started after, up to the culprit's return
    narrowed: bool  # False: the window could not be shown to fail on its own (whole prefix)

    def message(self) -> str:
        states = ", ".join(repr(s) for s in self.window_start_states[:8])
        more = "" if len(self.window_start_states) <= 8 else f" (+{len(self.window_start_states) - 8} more)"
        lines = [
            f"key {self.key!r}: not linearizable; the shortest failing prefix ends at event {self.prefix_events} "
            f"with {self.culprit.describe()}",
            f"when it was invoked the state could only be one of: {states}{more}",
            f"and these {len(self.window)} operations cannot be linearized from any of them:",
        ]
        lines += ["  " + op.describe() for op in self.window[:50]]
        if len(self.window) > 50:
            lines.append(f"  ... {len(self.window) - 50} more")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "prefix_events": self.prefix_events,
            "culprit": attrs.asdict(self.culprit),
            "window_start_states": self.window_start_states,
            "window": [attrs.asdict(op) for op in self.window],
            "narrowed": self.narrowed,
            "message": self.message(),
        }


@attrs.frozen
class Result:
    verdict: str  # "ok" | "fail" | "unknown" (the search ran out of time or configurations)
    failure: Failure | None = None
    keys: int = 0
    operations: int = 0
    configurations: int = 0
    elapsed_s: float = 0.0
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.verdict == "ok"

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "keys": self.keys,
            "operations": self.operations,
            "configurations": self.configurations,
            "elapsed_s": round(self.elapsed_s, 3),
            "reason": self.reason,
            "failure": self.failure.to_json() if self.failure else None,
        }


class _Budget:
    def __init__(self, time_limit_s: float, max_configurations: int) -> None:
        self.deadline = time.monotonic() + time_limit_s
        self.left = max_configurations
        self.used = 0

    def spend(self, n: int) -> None:
        self.left -= n
        self.used += n
        if self.left < 0:
            raise _OverBudget("configuration budget exhausted")
        if time.monotonic() > self.deadline:
            raise _OverBudget("time limit reached")


def check(
    history: History | Sequence[Operation],
    model: Model | None = None,
    *,
    time_limit_s: float = 60.0,
    max_configurations: int = 20_000_000,
) -> Result:
    """Check a history for linearizability against `model` (default: `CasRegister()`)."""
    model = model or CasRegister()
    ops = history.operations() if isinstance(history, History) else list(history)
    started = time.monotonic()
    budget = _Budget(time_limit_s, max_configurations)
    by_key: dict[Hashable, list[Operation]] = {}
    for op in _relevant(ops):
        by_key.setdefault(op.key, []).append(op)
    checked = sum(len(v) for v in by_key.values())
    try:
        prepare = getattr(model, "prepare", None)
        for key, key_ops in by_key.items():
            if prepare is not None:
                key_ops = prepare(key_ops)
            if not _search(model, key_ops, budget):
                failure = _narrow(model, key, key_ops, budget)
                failure = _originals(failure, {op.id: op for op in ops})
                return Result("fail", failure, len(by_key), checked, budget.used, time.monotonic() - started)
    except _OverBudget as exc:
        return Result("unknown", None, len(by_key), checked, budget.used, time.monotonic() - started, str(exc))
    return Result("ok", None, len(by_key), checked, budget.used, time.monotonic() - started)


def _relevant(ops: Iterable[Operation]) -> list[Operation]:
    """Failed ops did not happen; a read of unknown outcome observed nothing."""
    return [op for op in ops if op.status != "fail" and not (op.f == "read" and op.unknown)]


def _search(
    model: Model,
    ops: Sequence[Operation],
    budget: _Budget,
    *,
    init: Any = None,
    collect: set[Any] | None = None,
) -> bool:
    """Porcupine's checkSingle over `ops`. With `collect`, explore every configuration in
    which all ops with a known return are linearized and gather the states: the possible
    states after the finished ops, with any subset of the unknown ones applied."""
    n = len(ops)
    known = [i for i in range(n) if ops[i].return_ns is not None]
    # Unknown ops never bound anyone (their return is at +inf), so they live outside the
    # list, ordered by call: one is a candidate once its call is no later than the first
    # return left in the list.
    unknown = sorted((i for i in range(n) if ops[i].return_ns is None), key=lambda i: ops[i].call_ns)
    unknown_call = [ops[i].call_ns for i in unknown]
    # Entries of known ops: call and return, sorted by time, calls before returns at a tie
    # (touching intervals count as concurrent).
    entries: list[tuple[float, int, int]] = [(ops[i].call_ns, 0, i) for i in known]
    entries += [(ops[i].return_ns or 0, 1, i) for i in known]
    entries.sort(key=lambda e: (e[0], e[1], e[2]))
    size = len(entries)
    END = -1
    nxt = list(range(1, size + 1)) + [END]  # node 0 is the head; nodes 1..size the entries
    prv = [0, *range(size)]
    is_call = [False] * (size + 1)
    op_of = [0] * (size + 1)
    time_of: list[float] = [0] * (size + 1)
    match = [0] * (size + 1)
    return_node = [0] * n
    for node, (t, kind, i) in enumerate(entries, start=1):
        op_of[node], time_of[node], is_call[node] = i, t, kind == 0
        if kind == 1:
            return_node[i] = node
    for node in range(1, size + 1):
        if is_call[node]:
            match[node] = return_node[op_of[node]]
    f = [op.f for op in ops]
    inp = [op.input for op in ops]
    out = [op.output for op in ops]
    # Unknown ops of one class (same f, same input) are interchangeable once invoked (no
    # return bounds them): at one configuration, only the first of a class is tried.
    klass = [(f[i], repr(inp[i])) for i in range(n)]
    used = [False] * n
    step = model.step

    def lift(node: int) -> None:
        for k in (node, match[node]):
            p, q = prv[k], nxt[k]
            nxt[p] = q
            if q != END:
                prv[q] = p

    def unlift(node: int) -> None:
        for k in (match[node], node):
            p, q = prv[k], nxt[k]
            nxt[p] = k
            if q != END:
                prv[q] = k

    state = model.init() if init is None else init
    known_left = len(known)
    if collect is not None and known_left == 0:
        collect.add(state)
    linearized = 0
    cache: set[tuple[int, Any]] = set()
    # Frames: (node or -1 - position in `unknown`, state before, bound, classes tried).
    calls: list[tuple[int, Any, float, frozenset[Any]]] = []
    # Each configuration is tried in two passes: first the known ops (the list walk), then
    # the unknown ones. An unknown op is only linearized where the known ops are stuck
    # without it; tried eagerly, every subset of the unknown ops would be explored.
    known_pass, entry, pos, bound = True, nxt[0], 0, INF
    tried: frozenset[Any] = frozenset()
    tick = 0
    while True:
        if known_left == 0 and collect is None:
            return True
        if known_pass:
            if entry != END and is_call[entry]:
                i = op_of[entry]
                ok, new_state = step(state, f[i], inp[i], out[i])
                if ok:
                    config = (linearized | (1 << i), new_state)
                    if config not in cache:
                        cache.add(config)
                        calls.append((entry, state, INF, frozenset()))
                        state, linearized = new_state, config[0]
                        known_left -= 1
                        lift(entry)
                        if collect is not None and known_left == 0:
                            collect.add(state)
                        entry = nxt[0]
                        tick += 1
                        if tick & 0x3FF == 0:
                            budget.spend(0x400)
                        continue
                entry = nxt[entry]
                continue
            # A return entry (or the end): the op it closes must be linearized before any
            # later call. Now the unknown ops invoked up to that moment.
            known_pass, pos, tried = False, 0, frozenset()
            bound = INF if entry == END else time_of[entry]
            continue
        if pos < len(unknown) and unknown_call[pos] <= bound:
            i = unknown[pos]
            if used[i] or klass[i] in tried:
                pos += 1
                continue
            tried = tried | {klass[i]}
            ok, new_state = step(state, f[i], inp[i], out[i])
            # An unknown op that changes nothing here is as well placed at the very end,
            # after every known op, where nothing observes it: never linearize it as a no-op.
            if ok and new_state != state:
                config = (linearized | (1 << i), new_state)
                if config not in cache:
                    cache.add(config)
                    calls.append((-1 - pos, state, bound, tried))
                    state, linearized, used[i] = new_state, config[0], True
                    if collect is not None and known_left == 0:
                        collect.add(state)
                    known_pass, entry = True, nxt[0]
                    tick += 1
                    if tick & 0x3FF == 0:
                        budget.spend(0x400)
                    continue
            pos += 1
            continue
        # Dead end: back up to the last choice and try its next alternative.
        if not calls:
            return False
        where, state, bound, tried = calls.pop()
        if where >= 0:
            i = op_of[where]
            known_left += 1
            unlift(where)
            known_pass, entry = True, nxt[where]
        else:
            pos = -1 - where
            i = unknown[pos]
            used[i] = False
            known_pass, pos = False, pos + 1
        linearized &= ~(1 << i)


def _prefix(ops: Sequence[Operation], end_index: int) -> list[Operation]:
    """The sub-history of events 0..end_index: later completions become unknown."""
    out = []
    for op in ops:
        if op.call_index > end_index:
            continue
        if op.return_index is not None and op.return_index > end_index:
            op = attrs.evolve(op, output=None, return_ns=None, return_index=None)
        out.append(op)
    return _relevant(out)


def _narrow(model: Model, key: Hashable, ops: Sequence[Operation], budget: _Budget) -> Failure:
    """Shortest failing prefix by binary search over completions (prefixes of a linearizable
    history are linearizable, so failing is monotone in the prefix), then the window."""
    ends = sorted(op.return_index for op in ops if op.return_index is not None)
    lo, hi = 0, len(ends) - 1  # ends[hi] fails (the whole history does)
    while lo < hi:
        mid = (lo + hi) // 2
        if _search(model, _prefix(ops, ends[mid]), budget):
            lo = mid + 1
        else:
            hi = mid
    end = ends[hi]
    prefix = _prefix(ops, end)
    culprit = next(op for op in ops if op.return_index == end)
    cut = culprit.call_index
    # Before the cut: ops finished before it must all be linearized; ops running across it may
    # or may not have taken effect yet (their outputs are not known at the cut).
    before = [op for op in prefix if op.return_index is not None and op.return_index < cut]
    running = [
        attrs.evolve(op, output=None, return_ns=None, return_index=None)
        for op in prefix
        if op.call_index < cut and (op.return_index is None or op.return_index > cut)
    ]
    states: set[Any] = set()
    _search(model, before + running, budget, collect=states)
    window = [op for op in prefix if op.return_index is None or op.return_index > cut]
    window.sort(key=lambda op: op.call_index)
    # The window is reported only if it fails on its own from every possible state (it is
    # checked with running ops allowed to apply again, so a failure here is a real one).
    narrowed = bool(states) and all(not _search(model, window, budget, init=s) for s in states)
    if not narrowed:
        states, window = {model.init()}, sorted(prefix, key=lambda op: op.call_index)
    return Failure(key, end, culprit, sorted(states, key=repr), window, narrowed)


def _originals(failure: Failure, by_id: dict[int, Operation]) -> Failure:
    """Report the operations as recorded, not as `prepare` rewrote them."""
    return attrs.evolve(failure, culprit=by_id[failure.culprit.id], window=[by_id[op.id] for op in failure.window])
