"""Nemeses and their seeded schedule, acting on an ensemble through the `Ensemble` interface.

A nemesis puts one fault in place (`start`) and takes it away (`stop`). A `Schedule` is made
from one seed before the run: when each fault starts, how long it lasts, which nemesis, and
the seed of its own choices (which server, which halves, cut or blackhole). Choices that
depend on the running system (who leads) are made at `start` and written into the log, so a
report shows exactly what was done. `NemesisRunner` plays a schedule in a thread, bounded in
time, and always heals at the end.

The real ensemble harness (3-5 `ccore` processes, peer links through a `FleetThread`) and
`chaos.standalone.Standalone` implement `Ensemble`; tests use an in-memory fake.
"""

from __future__ import annotations

import functools
import logging
import random
import struct
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import attrs

from .data_loss import tear_newest_snapshot, wipe_data_dir
from .disk import FsizeLimit
from .proxy import LinkName, link_label

log = logging.getLogger(__name__)


@runtime_checkable
class LinkFaults(Protocol):
    """The fault controls of a proxy fleet (`chaos.proxy.FleetThread` has them)."""

    def names(self) -> list[LinkName]: ...
    def cut(self, name: LinkName) -> None: ...
    def blackhole(self, name: LinkName, hold: bool = False) -> None: ...
    def delay(self, name: LinkName, seconds: float, jitter: float = 0.0) -> None: ...
    def heal(self, name: LinkName) -> None: ...
    def heal_all(self) -> None: ...


@runtime_checkable
class Ensemble(Protocol):
    """What a nemesis needs from the system under test. Server ids are small ints.

    Every method returns once the action is done (`kill` after the process is reaped,
    `start` once the server answers, `pause` once it is stopped) or raises."""

    @property
    def servers(self) -> Sequence[int]: ...

    @property
    def proxies(self) -> LinkFaults | None:
        """Peer links are named ("peer", i, j) for i -> j; client links ("client", i)."""
        ...

    def leader(self) -> int | None: ...
    def kill(self, sid: int) -> None: ...  # SIGKILL
    def start(self, sid: int, wait: bool = True) -> None: ...  # wait=False: return once launched
    def wait_serving(self, sids: list[int]) -> None: ...  # a follower serves once synced
    def pause(self, sid: int) -> None: ...  # SIGSTOP
    def resume(self, sid: int) -> None: ...  # SIGCONT
    def data_dir(self, sid: int) -> Path: ...
    def pid(self, sid: int) -> int | None: ...


class NemesisError(RuntimeError):
    """A nemesis cannot act on this ensemble (too few servers, no proxies, no pid)."""


# -- nemeses ----------------------------------------------------------------------------------


class Nemesis(Protocol):
    name: str
    min_servers: int
    needs_proxies: bool

    def start(self, ens: Ensemble, rng: random.Random) -> dict[str, Any]: ...
    def stop(self, ens: Ensemble) -> dict[str, Any]: ...


def _pick_server(ens: Ensemble, rng: random.Random, target: str) -> int:
    servers = sorted(ens.servers)
    if target == "leader":
        leader = ens.leader()
        if leader is not None:
            return leader
    return rng.choice(servers)


def _components(servers: list[int], rng: random.Random, kind: str, ens: Ensemble) -> list[set[int]]:
    """The groups of a partition: servers talk only within a group."""
    shuffled = list(servers)
    rng.shuffle(shuffled)
    if kind in ("isolate-one", "isolate-leader"):
        alone = _pick_server(ens, rng, "leader" if kind == "isolate-leader" else "one")
        return [{alone}, set(servers) - {alone}]
    if kind == "halves":
        half = len(servers) // 2  # the smaller side first: a minority and a majority
        return [set(shuffled[:half]), set(shuffled[half:])]
    if kind == "bridge":
        # Two halves that share one server: each half plus the bridge is a majority.
        bridge, rest = shuffled[0], shuffled[1:]
        half = len(rest) // 2
        return [set(rest[:half]) | {bridge}, set(rest[half:]) | {bridge}]
    raise ValueError(f"unknown partition {kind!r}")


def partition_links(servers: Sequence[int], groups: list[set[int]]) -> list[LinkName]:
    """Every directed peer link between two servers that share no group."""
    return [
        ("peer", i, j)
        for i in servers
        for j in servers
        if i != j and not any(i in g and j in g for g in groups)
    ]  # fmt: skip


@attrs.define
class Partition:
    """Cut or blackhole the peer links between groups of servers."""

    kind: str  # isolate-one | isolate-leader | halves | bridge
    fault: str | None = None  # cut | blackhole | blackhole-hold; None: chosen per step
    name: str = ""
    min_servers: int = 3
    needs_proxies: bool = True
    _links: list[LinkName] = attrs.field(factory=list)

    def __attrs_post_init__(self) -> None:
        self.name = self.name or self.kind

    def start(self, ens: Ensemble, rng: random.Random) -> dict[str, Any]:
        proxies = _need_proxies(ens)
        groups = _components(sorted(ens.servers), rng, self.kind, ens)
        fault = self.fault or rng.choice(["cut", "blackhole", "blackhole-hold"])
        self._links = partition_links(sorted(ens.servers), groups)
        for link in self._links:
            if fault == "cut":
                proxies.cut(link)
            else:
                proxies.blackhole(link, hold=fault == "blackhole-hold")
        return {"groups": [sorted(g) for g in groups], "fault": fault, "links": [link_label(x) for x in self._links]}

    def stop(self, ens: Ensemble) -> dict[str, Any]:
        proxies = _need_proxies(ens)
        for link in self._links:
            proxies.heal(link)
        healed, self._links = self._links, []
        return {"healed": [link_label(x) for x in healed]}


@attrs.define
class SlowLinks:
    """Delay every peer link (or those of one server) with jitter; order is kept."""

    delay_s: tuple[float, float] = (0.05, 0.5)
    name: str = "slow-links"
    min_servers: int = 2
    needs_proxies: bool = True
    _links: list[LinkName] = attrs.field(factory=list)

    def start(self, ens: Ensemble, rng: random.Random) -> dict[str, Any]:
        proxies = _need_proxies(ens)
        delay = rng.uniform(*self.delay_s)
        self._links = [n for n in proxies.names() if n[0] == "peer"]
        for link in self._links:
            proxies.delay(link, delay, jitter=delay / 2)
        return {"delay_s": round(delay, 3), "links": len(self._links)}

    def stop(self, ens: Ensemble) -> dict[str, Any]:
        proxies = _need_proxies(ens)
        for link in self._links:
            proxies.heal(link)
        self._links = []
        return {}


@attrs.define
class CutClients:
    """Cut (or blackhole) the client port of one server, or of the leader: its clients must
    move to another server, and must not go back in time doing so (a follower that has seen
    less than a client refuses it)."""

    target: str = "one"  # one | leader
    name: str = ""
    min_servers: int = 2
    needs_proxies: bool = True
    _link: LinkName | None = None

    def __attrs_post_init__(self) -> None:
        self.name = self.name or f"cut-clients-{self.target}"

    def start(self, ens: Ensemble, rng: random.Random) -> dict[str, Any]:
        proxies = _need_proxies(ens)
        sid = _pick_server(ens, rng, self.target)
        fault = rng.choice(["cut", "blackhole"])
        self._link = ("client", sid)
        if fault == "cut":
            proxies.cut(self._link)
        else:
            proxies.blackhole(self._link)
        return {"server": sid, "fault": fault}

    def stop(self, ens: Ensemble) -> dict[str, Any]:
        link, self._link = self._link, None
        if link is not None:
            _need_proxies(ens).heal(link)
        return {"healed": link_label(link) if link else None}


@attrs.define
class Kill:
    """SIGKILL one server, the leader, or all of them; restart at stop."""

    target: str  # one | leader | all
    name: str = ""
    min_servers: int = 1
    needs_proxies: bool = False
    _killed: list[int] = attrs.field(factory=list)

    def __attrs_post_init__(self) -> None:
        self.name = self.name or f"kill-{self.target}"

    def start(self, ens: Ensemble, rng: random.Random) -> dict[str, Any]:
        self._killed = sorted(ens.servers) if self.target == "all" else [_pick_server(ens, rng, self.target)]
        for sid in self._killed:
            ens.kill(sid)
        return {"killed": self._killed}

    def stop(self, ens: Ensemble) -> dict[str, Any]:
        started, self._killed = self._killed, []
        for sid in started:
            ens.start(sid)
        return {"started": started}


@attrs.define
class Pause:
    """SIGSTOP one server or the leader (a paused leader); SIGCONT at stop."""

    target: str  # one | leader
    name: str = ""
    min_servers: int = 1
    needs_proxies: bool = False
    _paused: int | None = None

    def __attrs_post_init__(self) -> None:
        self.name = self.name or f"pause-{self.target}"

    def start(self, ens: Ensemble, rng: random.Random) -> dict[str, Any]:
        self._paused = _pick_server(ens, rng, self.target)
        ens.pause(self._paused)
        return {"paused": self._paused}

    def stop(self, ens: Ensemble) -> dict[str, Any]:
        sid, self._paused = self._paused, None
        if sid is not None:
            ens.resume(sid)
        return {"resumed": sid}


@attrs.define
class TornTail:
    """Kill one server and tear the last record of its newest log segment, as a crash in
    the middle of a write would; restart at stop.

    ``append-partial`` adds a partial record after the last one (a write never acknowledged:
    safe on any server). ``truncate-last`` cuts the last record short, losing a record this
    server had fsynced and acknowledged: only sound where a quorum of others has it, so it
    needs an ensemble (and the server must resync from the leader)."""

    mode: str = "append-partial"
    name: str = ""
    min_servers: int = 1
    needs_proxies: bool = False
    _down: int | None = None

    def __attrs_post_init__(self) -> None:
        self.name = self.name or ("torn-tail" if self.mode == "append-partial" else "torn-tail-truncate")
        if self.mode == "truncate-last":
            self.min_servers = 3

    def start(self, ens: Ensemble, rng: random.Random) -> dict[str, Any]:
        sid = rng.choice(sorted(ens.servers))
        ens.kill(sid)
        self._down = sid
        return {"server": sid, **tear_log_tail(ens.data_dir(sid), rng, self.mode)}

    def stop(self, ens: Ensemble) -> dict[str, Any]:
        sid, self._down = self._down, None
        if sid is not None:
            ens.start(sid)
        return {"started": sid}


@attrs.define
class DiskFull:
    """Fill one server's disk (RLIMIT_FSIZE on its process, see chaos.disk); heal at stop."""

    name: str = "disk-full"
    min_servers: int = 1
    needs_proxies: bool = False
    _limit: FsizeLimit | None = None
    _sid: int | None = None

    def start(self, ens: Ensemble, rng: random.Random) -> dict[str, Any]:
        sid = rng.choice(sorted(ens.servers))
        pid = ens.pid(sid)
        if pid is None:
            raise NemesisError(f"server {sid} has no process to limit")
        self._limit, self._sid = FsizeLimit(pid), sid
        self._limit.fill(0)
        return {"server": sid, "pid": pid, "how": "RLIMIT_FSIZE=0 (writes that grow a file fail with EFBIG)"}

    def stop(self, ens: Ensemble) -> dict[str, Any]:
        limit, sid, self._limit, self._sid = self._limit, self._sid, None, None
        if limit is not None:
            limit.heal()
        # A server may stop itself on a full disk (ZooKeeper does on a failed log write);
        # that is availability, not safety: start it again and say so in the report.
        if sid is not None and ens.pid(sid) is None:
            ens.start(sid)
            return {"server_had_exited": True, "restarted": sid}
        return {"server_had_exited": False}


@attrs.define
class Wipe:
    """Kill one server and wipe its data dir (a replaced disk); it comes back by a SNAP sync.

    ``resync``: restarted at stop, which returns once it serves again (synced).
    ``kill-leader``: a follower is wiped and restarted, and the leader is killed up to half a
    second after the follower answers, in the middle of that SNAP's stream most likely; at stop the old leader is
    restarted and both must serve again.
    ``restart``: a follower is wiped and restarted, and killed again up to half a second after
    it answers, in the middle of its SNAP or of installing it; restarted at stop.

    A wiped server forgets what it acknowledged. That is sound only while every other server
    keeps its data, so each of these ends with the wiped server synced before the next fault
    (faults come one at a time), and needs an ensemble of 3 or more."""

    then: str = "resync"  # resync | kill-leader | restart
    name: str = ""
    min_servers: int = 3
    needs_proxies: bool = False
    _down: list[int] = attrs.field(factory=list)
    _wiped: int | None = None

    def __attrs_post_init__(self) -> None:
        self.name = self.name or ("wipe-one" if self.then == "resync" else f"wipe-{self.then}")

    def start(self, ens: Ensemble, rng: random.Random) -> dict[str, Any]:
        leader = ens.leader()
        if self.then == "resync":
            sid = rng.choice(sorted(ens.servers))
        else:
            followers = sorted(s for s in ens.servers if s != leader)
            sid = rng.choice(followers)
        ens.kill(sid)
        self._wiped = sid
        self._down = [sid]
        detail: dict[str, Any] = {"server": sid, **wipe_data_dir(ens.data_dir(sid))}
        if self.then == "resync":
            return detail
        # Started until it answers on its client port (chaos's harness: `ruok`), which is
        # just before it syncs; the kill then falls in the SNAP's stream or install most often.
        ens.start(sid)
        self._down = []
        delay = round(rng.uniform(0.0, 0.5), 3)
        time.sleep(delay)
        victim = leader if self.then == "kill-leader" and leader is not None else sid
        ens.kill(victim)
        self._down = [victim]
        return {**detail, "restarted_then_killed": victim, "after_s": delay}

    def stop(self, ens: Ensemble) -> dict[str, Any]:
        down, wiped, self._down, self._wiped = self._down, self._wiped, [], None
        for sid in down:
            ens.start(sid, wait=False)
        serving = sorted({*down, *([wiped] if wiped is not None else [])})
        ens.wait_serving(serving)
        return {"started": down, "serving": serving}


@attrs.define
class TornSnapshot:
    """Kill one server and damage its newest snapshot file (cut short or one byte flipped);
    restarted at stop, it must find the damage and recover from an older snapshot and the log
    after it (snapshots are kept with the log they need: autopurge.snapRetainCount)."""

    name: str = "torn-snapshot"
    min_servers: int = 1
    needs_proxies: bool = False
    _down: int | None = None

    def start(self, ens: Ensemble, rng: random.Random) -> dict[str, Any]:
        sid = rng.choice(sorted(ens.servers))
        ens.kill(sid)
        self._down = sid
        return {"server": sid, **tear_newest_snapshot(ens.data_dir(sid), rng)}

    def stop(self, ens: Ensemble) -> dict[str, Any]:
        sid, self._down = self._down, None
        if sid is not None:
            ens.start(sid)
        return {"started": sid}


@attrs.define
class Background:
    """A nemesis that is no scheduled fault but a cycle of its own, run beside the schedule
    for the whole run by chaos.runner (`membership`: chaos.membership.MembershipCycle). It is
    named and checked for applicability like the others; the schedule leaves it out."""

    name: str
    min_servers: int = 3
    needs_proxies: bool = False
    background: bool = True

    def start(self, ens: Ensemble, rng: random.Random) -> dict[str, Any]:
        raise NemesisError(f"{self.name} runs beside the schedule (chaos.runner), not as one of its faults")

    def stop(self, ens: Ensemble) -> dict[str, Any]:
        return {}


def _need_proxies(ens: Ensemble) -> LinkFaults:
    if ens.proxies is None:
        raise NemesisError("this ensemble has no link proxies")
    return ens.proxies


NEMESES: dict[str, Callable[[], Nemesis]] = {
    "isolate-one": lambda: Partition("isolate-one"),
    "isolate-leader": lambda: Partition("isolate-leader"),
    "halves": lambda: Partition("halves"),
    "bridge": lambda: Partition("bridge"),
    "slow-links": SlowLinks,
    "cut-clients-one": lambda: CutClients("one"),
    "cut-clients-leader": lambda: CutClients("leader"),
    "kill-one": lambda: Kill("one"),
    "kill-leader": lambda: Kill("leader"),
    "kill-all": lambda: Kill("all"),
    "pause-one": lambda: Pause("one"),
    "pause-leader": lambda: Pause("leader"),
    "torn-tail": lambda: TornTail("append-partial"),
    "torn-tail-truncate": lambda: TornTail("truncate-last"),
    "disk-full": DiskFull,
    "wipe-one": lambda: Wipe("resync"),
    "wipe-kill-leader": lambda: Wipe("kill-leader"),
    "wipe-restart": lambda: Wipe("restart"),
    "torn-snapshot": TornSnapshot,
    "membership": lambda: Background("membership"),
}


def is_background(name: str) -> bool:
    return bool(getattr(NEMESES[name](), "background", False))


# What `--nemesis all` means: background nemeses change the ensemble itself (spare servers,
# reconfigEnabled), so they run only when named.
DEFAULT_NEMESES = [name for name in NEMESES if not is_background(name)]


def applicable(names: Sequence[str], n_servers: int, has_proxies: bool) -> list[str]:
    """The nemeses of `names` that can act on such an ensemble."""
    out = []
    for name in names:
        nem = NEMESES[name]()
        if n_servers >= nem.min_servers and (has_proxies or not nem.needs_proxies):
            out.append(name)
    return out


# -- torn log tails ------------------------------------------------------------------------------

# The record frame of server/storage/_logformat.py: magic, crc, length, zxid, then payload.
# Repeated here so that the chaos suite reads data dirs without importing the server.
_SEGMENT_HEADER_BYTES = 32
_RECORD = struct.Struct(">4sIIQ")
_RECORD_MAGIC = b"\xcc\x7e\x10\x9a"


def tear_log_tail(data_dir: Path, rng: random.Random, mode: str) -> dict[str, Any]:
    """Tear the newest log segment of a (stopped) server; returns what was done."""
    segments = sorted((Path(data_dir) / "log").glob("log.*"))
    if not segments:
        return {"torn": None, "why": "no log segment yet"}
    segment = segments[-1]
    raw = segment.read_bytes()
    if mode == "append-partial":
        # A frame header promising more payload than follows: the write the crash cut off.
        partial = _RECORD.pack(_RECORD_MAGIC, rng.getrandbits(32), 64, 0)[: rng.randint(4, _RECORD.size)]
        with open(segment, "ab") as f:
            f.write(partial + rng.randbytes(rng.randint(0, 16)))
        return {"torn": segment.name, "appended_bytes": len(partial)}
    if mode == "truncate-last":
        last = _last_record_offset(raw)
        if last is None:
            return {"torn": None, "why": f"{segment.name} has no complete record"}
        start, end = last
        cut = rng.randint(start + 1, end - 1)
        with open(segment, "r+b") as f:
            f.truncate(cut)
        return {"torn": segment.name, "record_at": start, "record_bytes": end - start, "truncated_to": cut}
    raise ValueError(f"unknown tear mode {mode!r}")


def _last_record_offset(raw: bytes) -> tuple[int, int] | None:
    pos, last = _SEGMENT_HEADER_BYTES, None
    while pos + _RECORD.size <= len(raw):
        magic, _crc, length, _zxid = _RECORD.unpack_from(raw, pos)
        end = pos + _RECORD.size + length
        if magic != _RECORD_MAGIC or end > len(raw):
            break
        last, pos = (pos, end), end
    return last


# -- schedules ---------------------------------------------------------------------------------------


@attrs.frozen
class Step:
    at_s: float  # when the fault starts, from the start of the run
    duration_s: float  # how long it stays before it is healed
    nemesis: str
    seed: int  # drives the nemesis's own choices


@attrs.frozen
class Schedule:
    seed: int
    duration_s: float
    steps: tuple[Step, ...]

    @classmethod
    def generate(
        cls,
        seed: int,
        duration_s: float,
        nemeses: Sequence[str],
        *,
        fault_s: tuple[float, float] = (2.0, 8.0),
        quiet_s: tuple[float, float] = (1.0, 4.0),
        max_steps: int = 10_000,
    ) -> Schedule:
        """Faults one at a time: quiet, fault, quiet, fault... until `duration_s`; each fault
        is healed before the next begins, and the run ends healed."""
        for name in nemeses:
            if name not in NEMESES:
                raise ValueError(f"unknown nemesis {name!r}; known: {', '.join(NEMESES)}")
        nemeses = [name for name in nemeses if not is_background(name)]
        if not nemeses:
            return cls(seed, duration_s, ())
        rng = random.Random(seed)
        steps: list[Step] = []
        t = rng.uniform(*quiet_s)
        while len(steps) < max_steps:
            length = rng.uniform(*fault_s)
            if t + length > duration_s:
                break
            steps.append(Step(round(t, 3), round(length, 3), rng.choice(list(nemeses)), rng.getrandbits(32)))
            t += length + rng.uniform(*quiet_s)
        return cls(seed, duration_s, tuple(steps))

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Schedule:
        return cls(data["seed"], data["duration_s"], tuple(Step(**s) for s in data["steps"]))


@attrs.frozen
class Applied:
    """One line of the nemesis log: what was done, when (seconds since the run began)."""

    at_s: float
    step: int
    nemesis: str
    action: str  # start | stop
    detail: dict[str, Hashable | Any]
    error: str | None = None


class NemesisRunner:
    """Plays a schedule against an ensemble. `run()` blocks (call it in a thread) until the
    schedule ends or `stop_event` is set, and always leaves the last fault healed."""

    def __init__(
        self,
        ens: Ensemble,
        schedule: Schedule,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_event: Callable[[Applied], None] | None = None,
    ) -> None:
        self.ens = ens
        self.schedule = schedule
        self.log: list[Applied] = []
        self._clock = clock
        self._on_event = on_event or (lambda applied: None)
        self.stop_event = threading.Event()

    def run(self) -> list[Applied]:
        t0 = self._clock()
        for index, step in enumerate(self.schedule.steps):
            if self._wait_until(t0, step.at_s):
                break
            nemesis = NEMESES[step.nemesis]()
            rng = random.Random(step.seed)
            started = self._act(t0, index, step, "start", functools.partial(nemesis.start, self.ens, rng))
            # Heal even when starting failed half-way (some links cut, one server killed...).
            if started:
                self._wait_until(t0, step.at_s + step.duration_s)
            self._act(t0, index, step, "stop", functools.partial(nemesis.stop, self.ens))
        return self.log

    def _wait_until(self, t0: float, at_s: float) -> bool:
        """Sleep until `at_s` into the run; True if asked to stop first."""
        remaining = t0 + at_s - self._clock()
        return self.stop_event.wait(remaining) if remaining > 0 else self.stop_event.is_set()

    def _act(self, t0: float, index: int, step: Step, action: str, fn: Callable[[], dict[str, Any]]) -> bool:
        at = round(self._clock() - t0, 3)
        try:
            detail = fn()
            error = None
        except Exception as exc:  # recorded in the report; the run goes on, healed
            log.exception("nemesis %s %s failed", step.nemesis, action)
            detail, error = {}, f"{type(exc).__name__}: {exc}"
        applied = Applied(at, index, step.nemesis, action, detail, error)
        self.log.append(applied)
        self._on_event(applied)
        return error is None
