"""A minimal in-memory driver for unit tests: instant links, a dict for a disk, no clock.

`Bus` wires ZabPeers together and runs each Ready to completion (persist, send, apply,
advance) in a fixed order, so a test can script a few messages and look at the outcome.
The full simulator (cluster.py) is the place for timing, faults and crashes.
"""

from __future__ import annotations

import bisect
import random
from collections import deque

import cbor2

from ccore.server.zab import Ready, Timing, ZabPeer
from ccore.server.zab.api import Entry
from ccore.server.zab.config import Config
from ccore.server.zab.messages import Message


class MemoryStorage:
    """ReadOnlyStorage plus the writes a Ready asks for; the state machine is a list."""

    def __init__(self, entries: list[Entry] | None = None, current_epoch: int = 0, accepted_epoch: int | None = None):
        self.log: list[Entry] = list(entries or [])
        self.base = 0
        self.accepted = accepted_epoch if accepted_epoch is not None else current_epoch
        self.current = current_epoch
        self.snap: tuple[int, bytes] = (0, b"")
        self.applied: list[Entry] = []
        # Every entries_after call: (after, max_entries, max_bytes, how many it returned).
        self.reads: list[tuple[int, int, int, int]] = []

    # ReadOnlyStorage
    def accepted_epoch(self) -> int:
        return self.accepted

    def current_epoch(self) -> int:
        return self.current

    def last_zxid(self) -> int:
        return self.log[-1][0] if self.log else self.base

    def first_zxid(self) -> int:
        return self.base

    def applied_zxid(self) -> int:
        return self.applied[-1][0] if self.applied else self.snap[0]

    def entries_after(self, zxid: int, max_entries: int, max_bytes: int) -> list[Entry] | None:
        if zxid < self.base:
            return None
        start = bisect.bisect_right(self.log, zxid, key=lambda e: e[0])
        out = bounded(self.log[start : start + max_entries], max_bytes)
        self.reads.append((zxid, max_entries, max_bytes, len(out)))
        return out

    def snapshot(self) -> tuple[int, bytes]:
        zxid = self.applied_zxid()
        return zxid, repr(self.applied).encode()

    # the driver's side
    def persist(self, ready: Ready) -> None:
        if ready.truncate_after is not None:
            self.log = [e for e in self.log if e[0] <= ready.truncate_after]
        if ready.snapshot is not None:
            self.snap = (ready.snapshot.zxid, ready.snapshot.data)
            self.base = ready.snapshot.zxid
            self.log = []
            self.applied = []
        self.log.extend(ready.entries)
        if ready.accepted_epoch is not None:
            self.accepted = ready.accepted_epoch
        if ready.current_epoch is not None:
            self.current = ready.current_epoch

    def purge(self, upto: int) -> None:
        self.log = [e for e in self.log if e[0] > upto]
        self.base = upto


def bounded(entries: list[Entry], max_bytes: int) -> list[Entry]:
    """The longest prefix of `entries` within `max_bytes` of payload, but at least one entry
    (the contract of `ReadOnlyStorage.entries_after`)."""
    total = 0
    for i, (_, payload) in enumerate(entries):
        total += len(payload)
        if total > max_bytes:
            return entries[: max(i, 1)]
    return entries


class Bus:
    def __init__(
        self,
        storages: dict[int, MemoryStorage],
        observers: frozenset[int] = frozenset(),
        timing: Timing | None = None,
        connect: bool = True,
        spares: frozenset[int] = frozenset(),
    ) -> None:
        """`spares`: servers outside the first configuration (joiners), whose storages are
        in `storages` too; entries made by `config_entry` change the membership."""
        self.storages = storages
        ids = frozenset(storages)
        self.voters = ids - observers - spares
        self.observers = observers
        self.timing = timing or Timing(tick_s=1.0, finalize_wait_s=0.1)
        self.now = 0.0
        self.peers = {i: self.make_peer(i) for i in sorted(storages)}
        self.links: set[tuple[int, int]] = set()
        self.queue: deque[tuple[int, int, Message]] = deque()
        self.sent: list[tuple[int, int, Message]] = []
        if connect:
            for a in sorted(ids):
                for b in sorted(ids):
                    if a < b:
                        self.connect(a, b)

    def make_peer(self, i: int) -> ZabPeer:
        """A (re)started peer on its storage, with the first configuration."""
        return ZabPeer(
            i, self.voters, self.observers, self.storages[i], random.Random(i), self.timing, now=self.now, config_of=config_of
        )

    def connect(self, a: int, b: int) -> None:
        self.links.add((min(a, b), max(a, b)))
        self.peers[a].peer_connected(b)
        self.peers[b].peer_connected(a)

    def disconnect(self, a: int, b: int) -> None:
        self.links.discard((min(a, b), max(a, b)))
        self.queue = deque(m for m in self.queue if {m[0], m[1]} != {a, b})
        self.peers[a].peer_disconnected(b)
        self.peers[b].peer_disconnected(a)

    def drain(self, limit: int = 10_000) -> None:
        """Run Readys and deliver messages until nothing moves."""
        for _ in range(limit):
            moved = False
            for i, peer in sorted(self.peers.items()):
                while peer.has_ready():
                    self._run_ready(i, peer.ready())
                    moved = True
            if self.queue:
                sender, to, message = self.queue.popleft()
                self.peers[to].step(sender, message)
                moved = True
            if not moved:
                return
        raise AssertionError("the bus did not settle")

    def _run_ready(self, i: int, ready: Ready) -> None:
        storage = self.storages[i]
        storage.persist(ready)
        for to, message in ready.messages:
            if (min(i, to), max(i, to)) in self.links:
                self.queue.append((i, to, message))
                self.sent.append((i, to, message))
        storage.applied.extend(ready.committed)
        self.peers[i].advance(ready)

    def tick(self, seconds: float, step_s: float = 0.05) -> None:
        """Let time pass, ticking every peer and draining after each tick."""
        end = self.now + seconds
        while self.now < end:
            self.now = min(end, self.now + step_s)
            for peer in self.peers.values():
                peer.tick(self.now)
            self.drain()

    def leader(self) -> int | None:
        leaders = [i for i, p in self.peers.items() if p.is_leader]
        assert len(leaders) <= 1, leaders
        return leaders[0] if leaders else None

    def write(self, payload: bytes) -> int:
        leader = self.peers[self.leader() or 0]
        zxid = leader.next_zxid()
        leader.propose(zxid, payload)
        return zxid


CONFIG_PREFIX = b"config:"


def config_entry(voters: set[int], observers: set[int] = set()) -> bytes:  # noqa: B006 - never mutated
    """The payload of a membership change, as `config_of` reads it."""
    return CONFIG_PREFIX + cbor2.dumps([sorted(voters), sorted(observers)])


def config_of(zxid: int, payload: bytes) -> Config | None:
    if not payload.startswith(CONFIG_PREFIX):
        return None
    voters, observers = cbor2.loads(payload[len(CONFIG_PREFIX) :])
    return Config(zxid, frozenset(voters), frozenset(observers), payload)
