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
from collections.abc import Iterable
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
from .config import Config, ConfigOf, no_config_changes
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
    def on_membership_changed(self) -> None: ...


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
        *,
        config_version: int = 0,
        config_data: bytes = b"",
        config_of: ConfigOf = no_config_changes,
    ) -> None:
        """`voters`, `observers`, `config_version` and `config_data` are the newest
        configuration the driver knows committed (its dynamic config file, or zoo.cfg's
        server lines as version 0). This server need not be in it: a server joining the
        ensemble, or one removed from it, follows as a non-voting follower (ZooKeeper's)."""
        self.id = server_id
        # Membership (config.py): the active configuration, and a pending one from our log.
        self.config = Config(config_version, frozenset(voters), frozenset(observers), config_data)
        self.pending: Config | None = None
        self.config_of = config_of
        self._membership_changed = False
        self._update_voters()
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
        self._scan_log_for_configs()

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
        self._settle_membership()

    def step(self, from_id: int, message: Message) -> None:
        """A message arrived from peer `from_id` on its link.

        Any peer may talk to us, member or not (the driver decides whom it links to): a
        server joining the ensemble registers as a learner before it is a member."""
        if from_id == self.id:
            log.warning("peer %d: message from itself dropped", self.id)
            return
        if isinstance(message, Notification):
            # Whoever answers or votes tells its active configuration: a newer one is
            # committed, and a peer that missed its commit (a restart, a partition) may
            # otherwise wait for a quorum of servers that have left.
            self.adopt_config(message.config, f"server {from_id}'s vote")
        self._step(from_id, message)
        self._settle_membership()

    def peer_connected(self, peer_id: int) -> None:
        if peer_id != self.id and peer_id not in self.connected:
            self.connected.add(peer_id)
            self._role.on_connected(peer_id)
            self._settle_membership()

    def peer_disconnected(self, peer_id: int) -> None:
        if peer_id in self.connected:
            self.connected.discard(peer_id)
            self._role.on_disconnected(peer_id)
            self._settle_membership()

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

    def check_reconfig(self, voters: Iterable[int], observers: Iterable[int] = ()) -> None:
        """May this leader propose a change to this membership now? Raises NotLeader, or a
        `ReconfigRefused` (ReconfigInProgress, NewConfigNoQuorum) saying why not. Call it
        before `next_zxid` for the change's entry; `config_of` of that entry must give the
        same voters and observers."""
        if isinstance(self._role, Leading):
            self._role.check_reconfig(Config.of(voters, observers))
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
            or self._reported != self._status_key()
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
        self._reported = self._status_key()
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
        self._settle_membership()

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
            config=self.config,
            pending_config=self.pending,
        )

    def _status_key(self) -> tuple[object, ...]:
        """What, when it changes, the driver must hear of even in an otherwise empty Ready."""
        return (self.role, self.leader_id, self.epoch, self.serving, self.config, self.pending)

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
        """Tell a looking peer whom we follow, observe or lead (and, in every notification,
        our active configuration: a peer whose view is out of date learns the current one
        from any settled server, observers included)."""
        state = {Role.FOLLOWING: PeerState.FOLLOWING, Role.LEADING: PeerState.LEADING, Role.OBSERVING: PeerState.OBSERVING}.get(
            self.role
        )
        if state is None or self.leader_id is None:
            return  # looking peers have nothing to announce here
        self.send(to, Notification(self.leader_id, self.log.last, self.epoch, self.round, state, self.config))

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
        config = self.config_of(zxid, payload)
        if config is not None:
            self._config_logged(config)

    def truncate_after(self, zxid: int) -> None:
        if zxid < self.committed:
            raise ZabSafetyError(f"peer {self.id}: truncating below committed {zx(self.committed)}")
        self.log.truncate_after(zxid)
        if zxid < self._handed_last:
            self._truncate = zxid if self._truncate is None else min(self._truncate, zxid)
            self._handed_last = zxid
        if self.pending is not None and self.pending.version > zxid:
            log.info("peer %d: pending configuration %s truncated away", self.id, self.pending.describe())
            self._set_membership(self.config, None)

    def install_snapshot(self, zxid: int, data: bytes, config: Config | None) -> None:
        """Replace the history by a snapshot at `zxid`; `config` is committed at or after it."""
        self.log.reset(zxid)
        self._snapshot = SnapshotInstall(zxid, data)
        self._truncate = None
        self._handed_last = zxid
        self.applied = zxid  # the driver replaces its state machine when it installs it
        self.committed = max(self.committed, zxid)
        newer = config if config is not None and config.version > self.config.version else self.config
        self._set_membership(newer, None)

    def learn_commit(self, zxid: int) -> None:
        self.committed = max(self.committed, zxid)
        if self.pending is not None and self.pending.version <= self.committed:
            self._activate(self.pending)

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
        role = Role.OBSERVING if self.observes else Role.FOLLOWING
        self._become(role, Learning(self, leader, leader_round), leader)

    # -- membership (config.py) -------------------------------------------------------------

    def has_quorum(self, ids: Iterable[int]) -> bool:
        """Do `ids` hold a quorum of the active configuration and of the pending one?"""
        ids = set(ids)
        return self.config.is_quorum(ids) and (self.pending is None or self.pending.is_quorum(ids))

    def _update_voters(self) -> None:
        pending = self.pending
        # Everyone whose vote counts in some decision now: the voters of both configurations.
        self.voters = self.config.voters | pending.voters if pending is not None else self.config.voters
        self.is_voter = self.id in self.voters
        self.observes = self.registers_as_observer(self.id)

    def registers_as_observer(self, server_id: int) -> bool:
        """How `server_id` learns from a leader, by this peer's view (a leader assigns each
        learner its kind by this rule, and the learner's own view agrees once synced): as an
        observer only if it is an observer and a voter in no configuration in force. A
        voter, or a server outside the configuration (joining, or removed), follows and
        acknowledges: ZooKeeper's non-voting follower."""
        observers = self.config.observers | self.pending.observers if self.pending is not None else self.config.observers
        return server_id in observers and server_id not in self.voters

    def _set_membership(self, config: Config, pending: Config | None) -> None:
        if (config, pending) == (self.config, self.pending):
            return
        self.config, self.pending = config, pending
        self._update_voters()
        self._membership_changed = True

    def _activate(self, config: Config) -> None:
        log.info("peer %d: configuration %s is committed and active", self.id, config.describe())
        pending = self.pending if self.pending is not None and self.pending.version > config.version else None
        self._set_membership(config, pending)

    def _config_logged(self, config: Config) -> None:
        """An entry of our log makes `config` (appended, or found in the log at start)."""
        if config.version <= self.config.version:
            return  # already active: we adopted it, or took it from a snapshot
        if self.pending is not None and self.pending.version < config.version:
            # A leader proposes a change only once the one before is committed (config.py).
            self._activate(self.pending)
        log.info("peer %d: configuration %s is pending", self.id, config.describe())
        self._set_membership(self.config, config)
        if config.version <= self.committed:
            self._activate(config)

    def adopt_config(self, config: Config | None, source: str, *, same_version: bool = False) -> None:
        """Take a configuration another server holds active (so committed) if it is newer
        than ours; with `same_version`, also one of our version but other members (our
        leader's, over a joining server's hand-written zoo.cfg: both are version 0)."""
        if config is None:
            return  # the sender told none
        newer = config.version > self.config.version
        if not newer and not (same_version and config.version == self.config.version and not config.same_membership(self.config)):
            return
        log.info("peer %d: adopting configuration %s from %s", self.id, config.describe(), source)
        pending = self.pending if self.pending is not None and self.pending.version > config.version else None
        self._set_membership(config, pending)

    def _scan_log_for_configs(self) -> None:
        """At start: the configuration entries in our log after the state machine's zxid
        (their commit is unknown until a leader says so), read in bounded batches."""
        after = self.applied
        while after < self.log.last:
            batch = self.storage.entries_after(after, self.timing.read_batch_entries, self.timing.read_batch_bytes)
            if not batch:
                break
            for zxid, payload in batch:
                if zxid > self.log.last:
                    return
                config = self.config_of(zxid, payload)
                if config is not None:
                    self._config_logged(config)
            after = batch[-1][0]
        self._membership_changed = False  # nothing to react to yet: no role has started

    def _settle_membership(self) -> None:
        """After each input: let the role react to a membership change (a leader that is no
        longer a voter steps down, a learner whose kind changed registers again)."""
        if self._membership_changed:
            self._membership_changed = False
            self._role.on_membership_changed()

    def __repr__(self) -> str:
        return (
            f"ZabPeer(id={self.id}, {self.role.value}, leader={self.leader_id}, epoch={self.epoch}, "
            f"last={zx(self.log.last)}, committed={zx(self.committed)}, applied={zx(self.applied)})"
        )
