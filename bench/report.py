"""The benchmark's figures: per-run samples in, medians, ratios ours/theirs, the issue's
targets, a Markdown table and the JSON file for plotting out."""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import attrs

CLIENTS = ("ccore", "ccore-asyncio", "kazoo")
SYSTEMS = ("ccore", "zookeeper")
# "ccore" is our client on Trio (the targets' figure), "ccore-asyncio" the same client on asyncio.
CLIENT_NAMES = {"ccore": "ours (Trio)", "ccore-asyncio": "ours (asyncio)", "kazoo": "kazoo"}


@attrs.frozen
class Metric:
    key: str
    title: str
    unit: str
    higher_is_better: bool
    digits: int = 0


METRICS = (
    Metric("creates_per_s", "pipelined creates (100 B, 200 in flight)", "ops/s", True),
    Metric("reads_per_s", "pipelined reads (200 in flight)", "ops/s", True),
    Metric("set_p50_ms", "setData latency p50 (1 outstanding)", "ms", False, 2),
    Metric("set_p99_ms", "setData latency p99 (1 outstanding)", "ms", False, 2),
    Metric("lock_per_s", "lock hand-offs, 4 processes", "/s", True),
    Metric("fanout_ms", "watch fan-out, 1 change to 100 watchers", "ms", False, 1),
    Metric("failover_ratio", "lease failover: owner killed -> new owner", "x TTL", False, 2),
    Metric("outage_s", "leader kill -9 -> writes succeed", "s", False, 2),
)
BY_KEY = {m.key: m for m in METRICS}


@attrs.frozen
class Target:
    title: str
    metric: str
    client_ours: str  # the client used against our ensemble
    bound: float
    kind: str  # "ratio>=" | "ratio<=" | "abs<="


TARGETS = (
    Target("pipelined creates >= 2x", "creates_per_s", "ccore", 2.0, "ratio>="),
    Target("pipelined reads >= 2x", "reads_per_s", "ccore", 2.0, "ratio>="),
    Target("lock hand-offs >= 2x", "lock_per_s", "ccore", 2.0, "ratio>="),
    Target("setData p50 <= 1x", "set_p50_ms", "ccore", 1.0, "ratio<="),
    Target("failover <= 1.1 x TTL", "failover_ratio", "ccore", 1.1, "abs<="),
    Target("leader-kill outage <= 0.5 s", "outage_s", "ccore", 0.5, "abs<="),
    Target("kazoo: creates >= 1x", "creates_per_s", "kazoo", 1.0, "ratio>="),
    Target("kazoo: reads >= 1x", "reads_per_s", "kazoo", 1.0, "ratio>="),
    Target("kazoo: lock hand-offs >= 1x", "lock_per_s", "kazoo", 1.0, "ratio>="),
    Target("kazoo: setData p50 <= 1x", "set_p50_ms", "kazoo", 1.0, "ratio<="),
)


class Results:
    """samples[metric][client][system] = one value per run (a run may miss one: failed)."""

    def __init__(self) -> None:
        self.samples: dict[str, dict[str, dict[str, list[float]]]] = {
            m.key: {c: {s: [] for s in SYSTEMS} for c in CLIENTS} for m in METRICS
        }
        self.extra: dict[str, Any] = {}  # per-round details for plotting
        self.errors: list[str] = []

    def add(self, metric: str, client: str, system: str, value: float) -> None:
        self.samples[metric][client][system].append(value)

    def median(self, metric: str, client: str, system: str) -> float | None:
        values = self.samples[metric][client][system]
        return statistics.median(values) if values else None

    def ratio(self, metric: str, client: str) -> float | None:
        ours, theirs = (
            self.median(metric, client, "ccore"),
            self.median(metric, client, "zookeeper"),
        )
        if ours is None or theirs is None or theirs == 0:
            return None
        return ours / theirs

    def target_value(self, target: Target) -> tuple[float | None, str]:
        """(the figure compared with the bound, how it was made)."""
        if target.kind == "abs<=":
            value = self.median(target.metric, target.client_ours, "ccore")
            return value, "ours"
        ours = self.median(target.metric, target.client_ours, "ccore")
        theirs = self.median(target.metric, "kazoo", "zookeeper")
        if ours is None or theirs is None or theirs == 0:
            return None, ""
        return ours / theirs, f"{target.client_ours}+ccore / kazoo+zookeeper"

    def verdicts(self) -> list[dict[str, Any]]:
        out = []
        for t in TARGETS:
            value, basis = self.target_value(t)
            if value is None:
                met = None
            elif t.kind == "ratio>=":
                met = value >= t.bound
            else:
                met = value <= t.bound
            out.append(
                {
                    "target": t.title,
                    "value": value,
                    "bound": t.bound,
                    "basis": basis,
                    "met": met,
                }
            )
        return out

    def to_json(self, meta: dict[str, Any]) -> dict[str, Any]:
        medians = {
            m.key: {c: {s: self.median(m.key, c, s) for s in SYSTEMS} | {"ratio": self.ratio(m.key, c)} for c in CLIENTS}
            for m in METRICS
        }
        return {
            "meta": meta,
            "metrics": {m.key: attrs.asdict(m) for m in METRICS},
            "samples": self.samples,
            "medians": medians,
            "targets": self.verdicts(),
            "extra": self.extra,
            "errors": self.errors,
        }


def fmt(value: float | None, digits: int) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"


def fmt_ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}x"


def table(results: Results, runs: int) -> str:
    """The Markdown table: each figure against both systems, and ours/theirs."""
    rows = [
        "| workload | client | ccore | ZooKeeper | ccore/ZooKeeper |",
        "|---|---|--:|--:|--:|",
    ]
    for m in METRICS:
        for c in CLIENTS:
            ours = results.median(m.key, c, "ccore")
            theirs = results.median(m.key, c, "zookeeper")
            if ours is None and theirs is None:
                continue
            n = max(len(results.samples[m.key][c][s]) for s in SYSTEMS)
            runs_note = "" if n == runs else f" (n={n})"
            rows.append(
                f"| {m.title}, {m.unit} | {CLIENT_NAMES[c]}{runs_note} | {fmt(ours, m.digits)} | {fmt(theirs, m.digits)} "
                f"| {fmt_ratio(results.ratio(m.key, c))} |"
            )
    return "\n".join(rows)


def targets_table(results: Results) -> str:
    rows = ["| target (issue 6) | measured | met |", "|---|--:|:-:|"]
    for v in results.verdicts():
        unit = "s" if "outage" in v["target"] else "x"
        value = "—" if v["value"] is None else f"{v['value']:.2f}{unit}"
        met = {True: "yes", False: "**no**", None: "not measured"}[v["met"]]
        rows.append(f"| {v['target']} | {value} | {met} |")
    return "\n".join(rows)


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=_jsonable))
    tmp.replace(path)


def _jsonable(value: object) -> object:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Iterable):
        return list(value)
    raise TypeError(f"not JSON: {value!r}")
