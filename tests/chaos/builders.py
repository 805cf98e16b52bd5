"""Histories from compact specs, and from a simulated sequential register (for Hypothesis)."""

from __future__ import annotations

import random
from typing import Any

from chaos.history import Event, History

# (process, f, input, output, call_t, return_t or None, status)
Spec = tuple[Any, str, Any, Any, int, int | None, str]


def build(*specs: tuple) -> History:
    """``build((1, "write", 1, 1, 0, 10), (2, "read", None, (1, 1), 11, 20))``: times are
    integers; status defaults to ok, or to a never-completed op when the return is None."""
    timed: list[tuple[int, int, int, Event]] = []
    for n, spec in enumerate(specs):
        p, f, inp, out, call, ret, *rest = spec
        status = rest[0] if rest else ("ok" if ret is not None else "info")
        key = rest[1] if len(rest) > 1 else None
        timed.append((call, 1, n, Event(0, "invoke", p, f, inp, call, key=key, client=p)))
        if ret is not None:
            timed.append((ret, 0, n, Event(0, status, p, f, out if status == "ok" else None, ret, key=key, client=p)))
    timed.sort(key=lambda t: (t[0], t[1], t[2]))
    return History.from_events([e for _, _, _, e in timed])


def simulate_register(
    rng: random.Random, processes: int, ops_per_process: int, *, unknown_rate: float = 0.05, fail_rate: float = 0.02
) -> History:
    """A linearizable history: each op gets a random interval and a linearization point in it,
    and is applied to a real register in linearization-point order. Some writes/cas end
    unknown (info) and took effect or not at random; some ops fail (no effect)."""
    planned: list[dict[str, Any]] = []
    counter = 0
    for p in range(processes):
        t = rng.randint(0, 20)
        for _ in range(ops_per_process):
            call = t + rng.randint(0, 5)
            ret = call + rng.randint(1, 30)
            point = rng.uniform(call, ret)
            f = rng.choice(["read", "read", "write", "cas"])
            counter += 1
            planned.append({"p": p, "f": f, "call": call, "ret": ret, "point": point, "n": counter})
            t = ret
    value: Any = None
    version = 0
    specs: list[tuple[Any, ...]] = []
    for op in sorted(planned, key=lambda o: o["point"]):
        f, outcome = op["f"], rng.random()
        status = "ok"
        if f != "read" and outcome < unknown_rate:
            status = "info"
        elif outcome > 1 - fail_rate:
            status = "fail"
        applies = status == "ok" or (status == "info" and rng.random() < 0.5)
        inp: Any
        out: Any
        if f == "read":
            inp, out = None, (value, version)
        elif f == "write":
            inp = f"v{op['n']}"
            if applies:
                value, version = inp, version + 1
            out = version
        else:
            expected = version if rng.random() < 0.6 else max(0, version - rng.randint(1, 2))
            inp = (expected, f"v{op['n']}")
            out = applies and expected == version
            if out:
                value, version = inp[1], version + 1
            if status == "ok" and not applies:
                out = False
        specs.append((op["p"], f, inp, out, op["call"], op["ret"], status))
    return build(*specs)
