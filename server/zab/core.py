"""ZabPeer: the sans-I/O Zab core. Feed it time, messages and link events; drain Readys.

No sockets, clocks, threads or global randomness: time comes from `tick(now)`, randomness
from the injected `rng`, storage is only read (`ReadOnlyStorage`), and every effect is a
field of a `Ready` (see api.py for its ordering rule). The driver loop::

    peer = ZabPeer(my_id, voters, observers, storage, rng, timing, now=clock())
    # on a link coming up or going down:   peer.peer_connected(id) / peer.peer_disconnected(id)
    # on a frame from peer `id`:           peer.step(id, decode_message(frame))
    # every few ms (at least every tick_s / 4): peer.tick(clock())
    # after any of the above:
    while peer.has_ready():
        ready = peer.ready()
        persist(ready)        # truncate | install snapshot, append entries + fsync, epochs
        send(ready.messages)  # FIFO link per peer; drop if the link is down
        apply(ready.committed)
        peer.advance(ready)

Links: one FIFO, TCP-like channel per pair of peers carries every message (election and
quorum alike). Messages are lost only when the link breaks, and the core must then be told
`peer_disconnected` before any message of a new connection is stepped.

Roles are objects with (step, tick) methods, swapped on role change: election.Looking,
leader.Leading, learner.Learning (followers and observers).
"""

from __future__ import annotations

import logging
import random
from typing import Protocol

from .api import (
    Entry,
    NotLeader,
    ReadOnlyStorage,
    Ready,
    Role,
    SnapshotInstall,
    Status,
    Timing,
    ZabSafetyError,
    _Handoff,
    zx,
)
from .election import Looking
from .history import History
from .leader import Leading, LearnerStats
from .learner import Learning
from .messages import Message, Notification, PeerState

log = logging.getLogger(__name__)


class _RoleImpl(Protocol):
    def start(self) -> None: ...
    def step(self, sender: int, message: Message) -> None: ...
    def tick(self) -> None: ...
    def on_connected(self, peer_id: int) -> None: ...
    def on_disconnected(self, peer_id: int) -> None: ...
    def after_advance(self) -> None: ...


class ZabPeer:
    """One member of the ensemble (voter or observer)."""

    def __init__(
        self,
        server_id: int,
        voters: frozenset[int],
        observers: frozenset[int],
        storage: ReadOnlyStorage,
        rng: random.Random,
        timing: Timing | None = None,
        now: float = 0.0,
    ) -> None:
        if server_id not in voters | observers:
            raise ValueError(f"server {server_id} is neither a voter nor an observer of {sorted(voters | observers)}")
        if voters & observers or not voters:
            raise ValueError(f"voters {sorted(voters)} and observers {sorted(observers)} must be disjoint, voters non-empty")
        self.id = server_id
        self.voters = frozenset(voters)
        self.observers = frozenset(observers)
        self.members = self.voters | self.observers
        self.is_voter = server_id in self.voters
        self.quorum = len(self.voters) // 2 + 1
        self.storage = storage
        self.rng = rng  # only for jitter on re-sends; never for decisions
        self.timing = timing = timing if timing is not None else Timing()
        self.now = now
        self.round = 0
        # Numbers our registrations with leaders (see FollowerInfo); a restart breaks every
        # link, and a leader forgets a learner whose link broke, so starting at 0 is safe.
        self.registrations = 0
        self.connected: set[int] = set()
        # The highest epoch a learner told us it had promised; our next epoch goes above it.
        self.epoch_floor = 0

        self.accepted_epoch = self.durable_accepted_epoch = storage.accepted_epoch()
        self.current_epoch = self.durable_current_epoch = storage.current_epoch()
        if self.current_epoch > self.accepted_epoch:
            raise ZabSafetyError(f"current epoch {self.current_epoch} above accepted epoch {self.accepted_epoch}")
        self.log = History(
            storage, storage.last_zxid(), timing.committed_window, timing.read_batch_entries, timing.read_batch_bytes
        )
        self.applied = storage.applied_zxid()
        self.committed = self.applied  # what is known committed; only grows
        if self.applied > self.log.last:
            raise ZabSafetyError(f"state machine at {zx(self.applied)} is beyond the log end {zx(self.log.last)}")

        # What the next Ready must carry beyond the log tail.
        self._handed_last = self.log.last  # log end as the driver knows it
        self._truncate: int | None = None
        self._snapshot: SnapshotInstall | None = None
        self._outbox: list[tuple[int, Message]] = []
        self._in_flight: Ready | None = None
        self._reported: tuple[object, ...] = ()  # the role part of the last Ready's status

        self.role = Role.LOOKING
        self.leader_id: int | None = None
        self.epoch = self.current_epoch
        self.serving = False
        self._role: _RoleImpl = Looking(self)
        self._step = self._role.step
        self._tick = self._role.tick
        self._role.start()

    # -- driver API: inputs -------------------------------------------------------------------

    def tick(self, now: float) -> None:
        """Advance time (seconds, monotonic; never goes back)."""
        self.now = max(self.now, now)
        self._tick()

    def step(self, from_id: int, message: Message) -> None:
        """A message arrived from peer `from_id` on its link."""
        if from_id == self.id or from_id not in self.members:
            log.warning("peer %d: message from unknown peer %d dropped", self.id, from_id)
            return
        self._step(from_id, message)

    def peer_connected(self, peer_id: int) -> None:
        if peer_id in self.members and peer_id != self.id and peer_id not in self.connected:
            self.connected.add(peer_id)
            self._role.on_connected(peer_id)

    def peer_disconnected(self, peer_id: int) -> None:
        if peer_id in self.connected:
            self.connected.discard(peer_id)
            self._role.on_disconnected(peer_id)

    def next_zxid(self) -> int:
        """Allocate the zxid for the next proposal (leader only); propose them in order."""
        if isinstance(self._role, Leading):
            return self._role.next_zxid()
        raise NotLeader(f"peer {self.id} is {self.role.value}", self.leader_id)

    def propose(self, zxid: int, payload: bytes) -> None:
        """Broadcast one transaction (leader only), `zxid` from `next_zxid()`, in order.

        It is acknowledged to the client when it shows up in `Ready.committed` here."""
        if isinstance(self._role, Leading):
            self._role.propose(zxid, payload)
            return
        raise NotLeader(f"peer {self.id} is {self.role.value}", self.leader_id)

    # -- driver API: outputs ------------------------------------------------------------------

    def has_ready(self) -> bool:
        if self._in_flight is not None:
            return False
        return bool(
            self._outbox
            or self._handed_last != self.log.last
            or self._truncate is not None
            or self._snapshot is not None
            or self.accepted_epoch != self.durable_accepted_epoch
            or self.current_epoch != self.durable_current_epoch
            or min(self.committed, self.log.durable) > self.applied
            or self._reported != (self.role, self.leader_id, self.epoch, self.serving)
        )

    def ready(self) -> Ready:
        """Everything to do now; call `advance(ready)` once it is done (see `Ready`)."""
        if self._in_flight is not None:
            raise RuntimeError("ready() called again before advance() of the previous Ready")
        entries = self.log.entries(self._handed_last, self.log.last)
        if entries is None:
            raise ZabSafetyError(f"unwritten entries after {zx(self._handed_last)} are gone")
        committed = self._next_committed()
        status = self.status()
        ready = Ready(
            truncate_after=self._truncate,
            snapshot=self._snapshot,
            entries=tuple(entries),
            accepted_epoch=self.accepted_epoch if self.accepted_epoch != self.durable_accepted_epoch else None,
            current_epoch=self.current_epoch if self.current_epoch != self.durable_current_epoch else None,
            messages=tuple(self._outbox),
            committed=committed,
            status=status,
            handoff=_Handoff(self.log.generation, self.log.last, self.applied),
        )
        self._handed_last = self.log.last
        self._truncate = self._snapshot = None
        self._outbox = []
        self._reported = (self.role, self.leader_id, self.epoch, self.serving)
        self._in_flight = ready
        return ready

    def advance(self, ready: Ready) -> None:
        """The driver did everything `ready` asked (persisted, sent, applied)."""
        if ready is not self._in_flight:
            raise RuntimeError("advance() of a Ready that is not the one in flight")
        self._in_flight = None
        self.log.handed_out(ready.handoff.log_generation, ready.handoff.log_last)
        if ready.accepted_epoch is not None:
            self.durable_accepted_epoch = max(self.durable_accepted_epoch, ready.accepted_epoch)
        if ready.current_epoch is not None:
            self.durable_current_epoch = max(self.durable_current_epoch, ready.current_epoch)
        self.log.trim(self.applied)
        self._role.after_advance()

    def _next_committed(self) -> tuple[Entry, ...]:
        upto = min(self.committed, self.log.durable)
        if upto <= self.applied:
            return ()
        entries = self.log.entries(self.applied, upto, limit=self.timing.max_apply_batch)
        if entries is None:
            raise ZabSafetyError(
                f"peer {self.id}: committed entries after {zx(self.applied)} are not in the log "
                f"(base {zx(self.log.base)}): the driver purged past its state machine"
            )
        if entries:
            self.applied = entries[-1][0]
        return tuple(entries)

    # -- status ---------------------------------------------------------------------------------

    def status(self) -> Status:
        return Status(
            role=self.role,
            leader_id=self.leader_id,
            epoch=self.epoch,
            serving=self.serving,
            last_zxid=self.log.last,
            last_committed_zxid=self.committed,
            round=self.round,
        )

    @property
    def is_leader(self) -> bool:
        """An established leader: `propose` works."""
        return self.role is Role.LEADING and self.serving

    @property
    def last_committed_zxid(self) -> int:
        return self.committed

    @property
    def last_zxid(self) -> int:
        return self.log.last

    def learners(self) -> tuple[LearnerStats, ...]:
        """The learners connected to this leader (empty unless leading), for 4lw/mntr."""
        return self._role.learner_stats() if isinstance(self._role, Leading) else ()

    @property
    def outstanding_proposals(self) -> int:
        """Proposed but not yet committed entries (leader), like mntr's zk_outstanding_proposals."""
        return self.log.count_after(self.committed) if self.role is Role.LEADING else 0

    # -- for the roles --------------------------------------------------------------------------

    def send(self, to: int, message: Message) -> None:
        if to in self.connected:
            self._outbox.append((to, message))

    def answer_vote(self, to: int) -> None:
        """Tell a looking peer whom we follow or lead."""
        state = {Role.FOLLOWING: PeerState.FOLLOWING, Role.LEADING: PeerState.LEADING}.get(self.role)
        if state is None or self.leader_id is None:
            return  # observers and looking peers have nothing to announce here
        self.send(to, Notification(self.leader_id, self.log.last, self.epoch, self.round, state))

    def set_accepted_epoch(self, epoch: int) -> None:
        if epoch < self.accepted_epoch:
            raise ZabSafetyError(f"accepted epoch going back from {self.accepted_epoch} to {epoch}")
        self.accepted_epoch = epoch

    def set_current_epoch(self, epoch: int) -> None:
        if epoch < self.current_epoch or epoch > self.accepted_epoch:
            raise ZabSafetyError(f"current epoch {epoch} outside [{self.current_epoch}, accepted {self.accepted_epoch}]")
        self.current_epoch = epoch

    def append(self, zxid: int, payload: bytes) -> None:
        self.log.append(zxid, payload)

    def truncate_after(self, zxid: int) -> None:
        if zxid < self.committed:
            raise ZabSafetyError(f"peer {self.id}: truncating below committed {zx(self.committed)}")
        self.log.truncate_after(zxid)
        if zxid < self._handed_last:
            self._truncate = zxid if self._truncate is None else min(self._truncate, zxid)
            self._handed_last = zxid

    def install_snapshot(self, zxid: int, data: bytes) -> None:
        self.log.reset(zxid)
        self._snapshot = SnapshotInstall(zxid, data)
        self._truncate = None
        self._handed_last = zxid
        self.applied = zxid  # the driver replaces its state machine when it installs it
        self.committed = max(self.committed, zxid)

    def learn_commit(self, zxid: int) -> None:
        self.committed = max(self.committed, zxid)

    def on_established(self, epoch: int) -> None:
        self.epoch = epoch
        self.serving = True

    def on_synced(self, leader: int, epoch: int) -> None:
        self.epoch = epoch
        self.serving = True

    # -- role changes ---------------------------------------------------------------------------

    def _become(self, role: Role, impl: _RoleImpl, leader_id: int | None) -> None:
        self.role = role
        self.leader_id = leader_id
        self.serving = False
        self.epoch = self.current_epoch
        self._role = impl
        self._step = impl.step
        self._tick = impl.tick
        impl.start()

    def become_looking(self, reason: str) -> None:
        log.info("peer %d: %s -> LOOKING: %s", self.id, self.role.value, reason)
        self._become(Role.LOOKING, Looking(self), None)

    def become_leader(self) -> None:
        self._become(Role.LEADING, Leading(self), self.id)

    def become_learner(self, leader: int, leader_round: int) -> None:
        """Follow (or observe) `leader`, whose election round was `leader_round`."""
        role = Role.FOLLOWING if self.is_voter else Role.OBSERVING
        self._become(role, Learning(self, leader, leader_round), leader)

    def __repr__(self) -> str:
        return (
            f"ZabPeer(id={self.id}, {self.role.value}, leader={self.leader_id}, epoch={self.epoch}, "
            f"last={zx(self.log.last)}, committed={zx(self.committed)}, applied={zx(self.applied)})"
        )
