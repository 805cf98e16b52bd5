"""A simulated network of FIFO, TCP-like links between every pair of peers.

The model Zab assumes (and the Trio driver provides): one connection per pair; messages on
it arrive in order, each after its own random latency (with rare long stalls that hold up
everything behind them); nothing is lost, duplicated or reordered *within* a connection.
Chaos happens between connections: a link breaks (everything in flight is lost), each end
learns it after its own random delay (sending into the void meanwhile), and a new
connection comes up later, unless a partition blocks the pair or an end is down. Messages
of different links interleave freely, which is where reordering comes from.

Every message is encoded to bytes and decoded on arrival, exercising the servers' peer codec
(Zab messages and the write router's frames alike).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from ccore.server.forwarding import PeerFrame
from ccore.server.peer_frames import decode_peer_frame, encode_peer_frame
from ccore.server.zab.messages import Message

if TYPE_CHECKING:
    from .cluster import Sim


@attrs.define
class Link:
    a: int
    b: int
    up: bool = False
    generation: int = 0  # bumped by every connect and break: stale deliveries are dropped
    aware: set[int] = attrs.field(factory=set)  # ends told the current connection is up
    tail: dict[int, float] = attrs.field(factory=dict)  # sender -> arrival time of its last message
    reconnect_pending: bool = False


class Network:
    def __init__(self, sim: Sim) -> None:
        self.sim = sim
        ids = sorted(sim.nodes)
        self.links = {(a, b): Link(a, b) for i, a in enumerate(ids) for b in ids[i + 1 :]}
        self.blocked: set[tuple[int, int]] = set()
        self.messages_sent = 0

    @staticmethod
    def key(a: int, b: int) -> tuple[int, int]:
        return (a, b) if a < b else (b, a)

    # -- traffic ----------------------------------------------------------------------------

    def send(self, sender: int, to: int, message: Message | PeerFrame) -> None:
        link = self.links[self.key(sender, to)]
        if not link.up or sender not in link.aware:
            return  # the sender's side of a broken connection: lost
        cfg = self.sim.cfg
        rng = self.sim.rng
        latency = rng.uniform(cfg.latency_min_s, cfg.latency_max_s)
        if self.sim.slow_node in (sender, to):
            latency += rng.uniform(0, cfg.slow_node_latency_s)
        if rng.random() < cfg.stall_probability:
            latency += rng.uniform(0, cfg.stall_max_s)
        arrival = max(self.sim.now + latency, link.tail.get(sender, 0.0))
        link.tail[sender] = arrival
        self.messages_sent += 1
        self.sim.stats[type(message).__name__] += 1
        self.sim.at(arrival, self._deliver, link, link.generation, sender, to, encode_peer_frame(message))

    def _deliver(self, link: Link, generation: int, sender: int, to: int, frame: bytes) -> None:
        if link.generation != generation or not link.up or to not in link.aware:
            return
        self.sim.nodes[to].receive(sender, decode_peer_frame(frame))

    # -- connections ------------------------------------------------------------------------

    def connect_soon(self, a: int, b: int) -> None:
        link = self.links[self.key(a, b)]
        if link.up or link.reconnect_pending:
            return
        link.reconnect_pending = True
        self.sim.at(self.sim.now + self.sim.rng.uniform(0.001, self.sim.cfg.reconnect_max_s), self._connect, link)

    def _connect(self, link: Link) -> None:
        link.reconnect_pending = False
        nodes = self.sim.nodes
        if link.up or link.aware or (link.a, link.b) in self.blocked:
            return  # up already, or an end has not yet noticed the old connection died
        if not (nodes[link.a].alive and nodes[link.b].alive):
            return
        link.up = True
        link.generation += 1
        link.tail.clear()
        link.aware = {link.a, link.b}
        self.sim.trace_event("link", f"{link.a}<->{link.b} up")
        nodes[link.a].connected(link.b)
        nodes[link.b].connected(link.a)

    def break_link(self, a: int, b: int, why: str, dead: int | None = None) -> None:
        """Drop the connection: in-flight messages are lost; each end notices after a while
        (a `dead` end, just crashed, has nothing left to notice)."""
        link = self.links[self.key(a, b)]
        if not link.up:
            return
        link.up = False
        link.generation += 1
        link.aware.discard(dead)  # type: ignore[arg-type]
        self.sim.trace_event("link", f"{a}<->{b} broken ({why})")
        for end in sorted(link.aware):
            delay = self.sim.rng.uniform(0, self.sim.cfg.notice_max_s)
            self.sim.at(self.sim.now + delay, self._notice, link, link.generation, end)

    def _notice(self, link: Link, generation: int, end: int) -> None:
        if link.generation != generation:
            return
        link.aware.discard(end)
        other = link.b if end == link.a else link.a
        self.sim.nodes[end].disconnected(other)
        if not link.aware:
            self.connect_soon(link.a, link.b)

    def node_down(self, node_id: int) -> None:
        """A crashed node's connections die; the other ends notice later, it forgets at once."""
        for (a, b), link in self.links.items():
            if node_id in (a, b) and link.up:
                self.break_link(a, b, f"{node_id} crashed", dead=node_id)

    def node_up(self, node_id: int) -> None:
        for a, b in self.links:
            if node_id in (a, b):
                self.connect_soon(a, b)

    # -- partitions -------------------------------------------------------------------------

    def partition(self, groups: list[list[int]]) -> None:
        """Block every link between different groups (and break those that are up)."""
        group_of = {n: i for i, g in enumerate(groups) for n in g}
        self.blocked = {k for k in self.links if group_of[k[0]] != group_of[k[1]]}
        for a, b in sorted(self.blocked):
            self.break_link(a, b, "partition")

    def heal(self) -> None:
        self.blocked = set()
        for a, b in self.links:
            self.connect_soon(a, b)
