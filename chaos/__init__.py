"""The chaos suite: fault proxies, nemeses, workloads, histories and their checkers.

Modules:

- `proxy`: per-link TCP fault proxies on loopback (cut, blackhole, delay, heal), many per fleet;
- `ensemble`: a local ensemble of real `ccore serve` processes, links through the proxies;
- `nemesis`: the `Ensemble` interface and seeded fault schedules acting through it;
- `disk`: full-disk faults (RLIMIT_FSIZE on a live process, or a shrunken tmpfs);
- `history`: a thread-safe recorder of invoke / ok / fail / info events, JSON in and out;
- `clients`: kazoo and our own client behind one small interface for thread workloads;
- `workload`: the compare-and-set register workload (plain or sync'd reads, rotating keys);
- `lockload`, `ephemeral`, `watchload`: the lock, session-expiry and persistent-watch workloads;
- `linearizability`: a Wing & Gong / Porcupine-style checker for a versioned register;
- `checks`: reads, per-client zxid order, fenced lock writes, watch windows, ephemeral expiry;
- `runner`, `report`: one run (ensemble, workloads, nemeses, heal) and its checks and report;
- `__main__`: `python -m chaos --minutes N --seed S`.
"""
