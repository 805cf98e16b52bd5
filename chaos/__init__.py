"""The chaos suite: fault proxies, nemeses, workloads, histories and their checkers.

Modules:

- `proxy`: per-link TCP fault proxies on loopback (cut, blackhole, delay, heal), many per fleet;
- `history`: a thread-safe recorder of invoke / ok / fail / info events, JSON in and out;
- `linearizability`: a Wing & Gong / Porcupine-style checker for a versioned register;
- `checks`: per-client zxid order, fenced lock writes, watch completeness, ephemeral expiry;
- `nemesis`: the `Ensemble` interface and seeded fault schedules acting through it;
- `disk`: full-disk faults (RLIMIT_FSIZE on a live process, or a shrunken tmpfs);
- `standalone`: a single `ccore serve` process behind the `Ensemble` interface;
- `workload`: the kazoo compare-and-set register workload (rotating keys) feeding a `History`;
- `__main__`: `python -m chaos --minutes N --seed S`.
"""
