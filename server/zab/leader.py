"""The LEADING role: discovery, sync of each learner, then broadcast with group commit.

Discovery: once a quorum of voters (this peer included) has sent FOLLOWERINFO, the new epoch
is one above every accepted epoch heard; it is persisted as our accepted epoch before any
LEADERINFO goes out. A quorum of fresh ACKEPOCHs (each from a voter whose history is not
ahead of ours, else we give up leading) fixes the epoch: we persist it as our current epoch
and sync every learner (see sync.py), each then getting every later proposal in order.

Established: once a quorum of voters (us included, with our log and current epoch durable)
acknowledged NEWLEADER, our whole initial history is committed (Zab commits it at that
point; no NoOp is proposed) and learners get UPTODATE. From then on `propose` works.

The leader's own progress through these steps is `LeaderPhase`, which only moves forward
one step at a time (`Leading._move_to`); any other move raises ZabSafetyError. Giving up
(back to LOOKING) drops the whole `Leading` object, so it needs no phase of its own.

Commit: each voter's ack is cumulative (its log holds our history up to it, fsynced), so the
commit point is the quorum-th highest ack, ours being our durable log end. One COMMIT
carries the new point to followers; observers get one INFORM per newly committed entry.
"""

from __future__ import annotations

import enum
import logging
from typing import TYPE_CHECKING

import attrs

from .api import (
    COUNTER_MASK,
    NewConfigNoQuorum,
    NotLeader,
    ReconfigInProgress,
    ZabSafetyError,
    counter_of,
    epoch_of,
    make_zxid,
    zx,
)
from .config import Config
from .messages import (
    Ack,
    AckEpoch,
    Commit,
    FollowerInfo,
    Inform,
    LeaderInfo,
    Message,
    Notification,
    ObserverInfo,
    PeerState,
    Ping,
    Proposal,
    UpToDate,
)
from .sync import plan_for, sync_stream

if TYPE_CHECKING:
    from .core import ZabPeer

log = logging.getLogger(__name__)

MAX_EPOCH = (1 << 32) - 1


class LeaderPhase(enum.IntEnum):
    """Where this leader stands; each phase follows the one before it, and only it.

    One field instead of four flags (epoch chosen? durable? acknowledged? established?)
    because only these five of their combinations can occur, and a test of one flag read
    wrongly (say, syncing a learner before the epoch quorum) would be a safety bug.
    """

    CHOOSING_EPOCH = 1  # waiting for FOLLOWERINFO from a quorum of voters (us included)
    EPOCH_PENDING_DURABLE = 2  # `epoch` chosen; our accepted epoch is being written
    AWAITING_EPOCH_QUORUM = 3  # LEADERINFO goes out; waiting for a quorum of fresh ACKEPOCHs
    SYNCING = 4  # current epoch set, learners synced; waiting for a quorum of NEWLEADER ACKs
    ESTABLISHED = 5  # initial history committed; broadcast: `propose` works


_NEXT_PHASE = {
    LeaderPhase.CHOOSING_EPOCH: LeaderPhase.EPOCH_PENDING_DURABLE,
    LeaderPhase.EPOCH_PENDING_DURABLE: LeaderPhase.AWAITING_EPOCH_QUORUM,
    LeaderPhase.AWAITING_EPOCH_QUORUM: LeaderPhase.SYNCING,
    LeaderPhase.SYNCING: LeaderPhase.ESTABLISHED,
}


class Phase(enum.IntEnum):
    """One learner's progress, as its leader sees it."""

    INFO = 1  # FOLLOWERINFO in; LEADERINFO waits for our new epoch to be durable
    EPOCH = 2  # LEADERINFO sent; waiting for ACKEPOCH
    ACKED = 3  # ACKEPOCH in; sync waits for the epoch quorum (observers: establishment)
    SYNCING = 4  # sync stream and NEWLEADER sent; gets proposals; waits for its ACK
    SYNCED = 5  # UPTODATE sent


@attrs.define
class Learner:
    """The leader's view of one connected learner (ZooKeeper's LearnerHandler)."""

    id: int
    observer: bool
    accepted_epoch: int
    registration: int  # the learner's handshake this state belongs to (see FollowerInfo)
    last_heard: float
    phase: Phase = Phase.INFO
    current_epoch: int = 0
    last_zxid: int = 0
    fresh: bool = False
    newleader_zxid: int = 0  # our history was sent up to here
    newleader_acked: bool = False
    acked: int = 0  # it holds our history up to here, fsynced (once newleader_acked)

    @property
    def forwarded(self) -> bool:
        """Gets proposals/commits (voters) or informs (observers)."""
        return self.phase >= Phase.SYNCING


@attrs.frozen
class LearnerStats:
    """One learner as the leader sees it (for mntr / 4lw)."""

    id: int
    observer: bool
    phase: str
    synced: bool
    acked_zxid: int
    silent_s: float


class Leading:
    def __init__(self, peer: ZabPeer) -> None:
        self.peer = peer
        self.started_at = peer.now
        self.learners: dict[int, Learner] = {}
        self.phase = LeaderPhase.CHOOSING_EPOCH
        self.epoch: int | None = None  # set on leaving CHOOSING_EPOCH
        # Our history as it stood when we were elected: no learner may be ahead of it.
        self.summary = (peer.durable_current_epoch, peer.log.last)
        self.last_allocated = 0
        self.next_ping_at = peer.now

    # -- phase ------------------------------------------------------------------------------

    def _move_to(self, phase: LeaderPhase) -> None:
        """The one place the phase changes: only to the next phase, with an epoch chosen."""
        if _NEXT_PHASE.get(self.phase) is not phase or self.epoch is None:
            raise ZabSafetyError(
                f"peer {self.peer.id}: leader in phase {self.phase.name} (epoch {self.epoch}) cannot move to phase {phase.name}"
            )
        log.debug("peer %d: leader phase %s -> %s", self.peer.id, self.phase.name, phase.name)
        self.phase = phase

    @property
    def established(self) -> bool:
        return self.phase is LeaderPhase.ESTABLISHED

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        log.info("peer %d: leading, history %s", self.peer.id, zx(self.peer.log.last))
        self._maybe_choose_epoch()

    def on_connected(self, peer_id: int) -> None:
        pass  # learners introduce themselves with FOLLOWERINFO/OBSERVERINFO

    def on_disconnected(self, peer_id: int) -> None:
        self.learners.pop(peer_id, None)  # its next connection starts from discovery

    def on_membership_changed(self) -> None:
        p = self.peer
        if p.id not in p.voters:
            # Removed, or made an observer: the new configuration elects its own leader
            # (ZooKeeper hands over to a nominee instead; an election is simpler and the
            # commit that activated the change has already gone out to every learner).
            p.become_looking(f"no longer a voter in configuration {p.config.describe()}")
            return
        self._maybe_choose_epoch()
        self._maybe_epoch_quorum()
        self._maybe_establish()
        self._recompute_commit()

    def after_advance(self) -> None:
        p = self.peer
        pending = self.phase is LeaderPhase.EPOCH_PENDING_DURABLE
        if pending and self.epoch is not None and p.durable_accepted_epoch >= self.epoch:
            self._move_to(LeaderPhase.AWAITING_EPOCH_QUORUM)
            for learner in self._sorted():
                if learner.phase is Phase.INFO:
                    self._send_leader_info(learner)
            self._maybe_epoch_quorum()
        self._maybe_establish()
        self._recompute_commit()

    # -- step -------------------------------------------------------------------------------

    def step(self, sender: int, message: Message) -> None:
        learner = self.learners.get(sender)
        if learner is not None:
            learner.last_heard = self.peer.now  # any message is a heartbeat
        if isinstance(message, (FollowerInfo, ObserverInfo)):
            self._on_info(sender, message)
        elif isinstance(message, Notification):
            if message.state is PeerState.LOOKING:
                self.peer.answer_vote(sender)
        elif learner is not None:
            handler = _HANDLERS.get(type(message))
            if handler is not None:
                getattr(self, handler)(learner, message)

    def _on_info(self, sender: int, message: FollowerInfo | ObserverInfo) -> None:
        p = self.peer
        # We say what the learner is, by our view (LEADERINFO tells it): its own may lack a
        # pending change that makes it a voter. A follower outside our configuration is a
        # non-voting follower: it acknowledges, but counts in no quorum until a
        # configuration makes it a voter.
        observer = p.registers_as_observer(sender)
        if self.epoch is not None and message.accepted_epoch > self.epoch:
            # It promised a later epoch to another would-be leader, so it must refuse ours
            # (ZooKeeper leaves it out until the next election; we hold that election now,
            # and its epoch will be above the promise).
            p.epoch_floor = max(p.epoch_floor, message.accepted_epoch)
            p.become_looking(f"{sender} accepted epoch {message.accepted_epoch}, above ours {self.epoch}")
            return
        learner = self.learners.get(sender)
        if learner is not None and message.registration < learner.registration:
            return  # sent before the learner started over; FIFO links make it stale
        if learner is not None and message.registration == learner.registration:
            # A copy of a re-sent registration. Before LEADERINFO: answer it again. After:
            # the learner already has its answer, and starting its handshake over would
            # pair its coming ACK of NEWLEADER with a sync it never received.
            if learner.phase <= Phase.EPOCH:
                learner.accepted_epoch = message.accepted_epoch
                if learner.phase is Phase.EPOCH:
                    self._send_leader_info(learner)
            return
        # New, or a learner that went back to discovery: a fresh handshake.
        learner = Learner(sender, observer, message.accepted_epoch, message.registration, p.now)
        self.learners[sender] = learner
        if self.phase >= LeaderPhase.AWAITING_EPOCH_QUORUM:
            self._send_leader_info(learner)
        else:
            self._maybe_choose_epoch()

    def _send_leader_info(self, learner: Learner) -> None:
        assert self.epoch is not None
        self.peer.send(learner.id, LeaderInfo(self.epoch, learner.registration, self.peer.config, learner.observer))
        learner.phase = Phase.EPOCH

    # -- discovery --------------------------------------------------------------------------

    def _maybe_choose_epoch(self) -> None:
        p = self.peer
        if self.phase is not LeaderPhase.CHOOSING_EPOCH:
            return
        heard = {p.id} | {learner.id for learner in self.learners.values() if not learner.observer}
        if not p.has_quorum(heard):
            return
        highest = max([p.accepted_epoch, p.epoch_floor] + [learner.accepted_epoch for learner in self.learners.values()])
        if highest >= MAX_EPOCH:
            p.become_looking("epochs exhausted")
            return
        self.epoch = highest + 1
        self._move_to(LeaderPhase.EPOCH_PENDING_DURABLE)
        log.info("peer %d: proposing epoch %d", p.id, self.epoch)
        p.set_accepted_epoch(self.epoch)  # LEADERINFO goes out once this is durable

    def _on_ping(self, learner: Learner, message: Ping) -> None:
        pass  # its arrival already refreshed last_heard

    def _on_ack_epoch(self, learner: Learner, message: AckEpoch) -> None:
        p = self.peer
        if learner.phase is not Phase.EPOCH or (message.epoch, message.registration) != (self.epoch, learner.registration):
            return
        learner.current_epoch = message.current_epoch
        learner.last_zxid = message.last_zxid
        learner.fresh = message.fresh
        learner.phase = Phase.ACKED
        if self.phase < LeaderPhase.SYNCING:
            theirs = (message.current_epoch, message.last_zxid)
            if message.fresh and not learner.observer and theirs > self.summary:
                # ZooKeeper's "Follower is ahead of the leader": it may hold committed
                # entries we lack. Give up; the next election will prefer it.
                p.become_looking(
                    f"learner {learner.id} is ahead: epoch {theirs[0]} zxid {zx(theirs[1])} "
                    f"over epoch {self.summary[0]} zxid {zx(self.summary[1])}"
                )
                return
            self._maybe_epoch_quorum()
        else:
            self._sync(learner)

    def _maybe_epoch_quorum(self) -> None:
        p = self.peer
        if self.phase is not LeaderPhase.AWAITING_EPOCH_QUORUM:
            return
        acks = {p.id} | {
            learner.id
            for learner in self.learners.values()
            if not learner.observer and learner.phase is Phase.ACKED and learner.fresh
        }
        if not p.has_quorum(acks):
            return
        assert self.epoch is not None
        self._move_to(LeaderPhase.SYNCING)
        p.set_current_epoch(self.epoch)
        for learner in self._sorted():
            self._sync(learner)
        self._maybe_establish()

    # -- sync -------------------------------------------------------------------------------

    def _sync(self, learner: Learner) -> None:
        p = self.peer
        if learner.phase is not Phase.ACKED or self.phase < LeaderPhase.SYNCING:
            return
        if learner.observer and not self.established:
            return  # observers take committed history only
        assert self.epoch is not None
        upto = p.committed if learner.observer else p.log.last
        plan = plan_for(p.log, learner.last_zxid, upto, p.timing.max_sync_entries)
        plan, messages = sync_stream(plan, p.log, p.storage.snapshot, upto, self.epoch, p.config)
        log.info(
            "peer %d: sync %d (last %s) by %s %s up to %s",
            p.id,
            learner.id,
            zx(learner.last_zxid),
            plan.kind.value,
            zx(plan.zxid),
            zx(upto),
        )
        for message in messages:
            p.send(learner.id, message)
        learner.phase = Phase.SYNCING
        learner.newleader_zxid = upto

    def _on_ack(self, learner: Learner, message: Ack) -> None:
        if epoch_of(message.zxid) != self.epoch or learner.phase < Phase.SYNCING:
            return  # left over from an earlier session or epoch
        if counter_of(message.zxid) == 0:
            if learner.newleader_acked:
                return
            learner.newleader_acked = True
            learner.acked = max(learner.acked, learner.newleader_zxid)
            if self.established:
                self._uptodate(learner)
                self._recompute_commit()
            else:
                self._maybe_establish()
            return
        if learner.observer or not learner.newleader_acked:
            return
        if message.zxid > self.peer.log.last:
            log.warning("peer %d: %d acked %s beyond our log", self.peer.id, learner.id, zx(message.zxid))
            return
        if message.zxid > learner.acked:
            learner.acked = message.zxid
            self._recompute_commit()

    def _uptodate(self, learner: Learner) -> None:
        self.peer.send(learner.id, UpToDate(self.peer.committed))
        learner.phase = Phase.SYNCED

    def _maybe_establish(self) -> None:
        p = self.peer
        if self.phase is not LeaderPhase.SYNCING:
            return
        if p.durable_current_epoch != self.epoch or p.log.durable < p.log.last:
            return  # our own NEWLEADER ack: history, then current epoch, on disk
        acks = {p.id} | {learner.id for learner in self.learners.values() if not learner.observer and learner.newleader_acked}
        if not p.has_quorum(acks):
            return
        assert self.epoch is not None
        self._move_to(LeaderPhase.ESTABLISHED)
        self.last_allocated = max(p.log.last, make_zxid(self.epoch, 0))
        log.info("peer %d: established epoch %d with %s", p.id, self.epoch, sorted(acks))
        p.on_established(self.epoch)
        self._recompute_commit()
        for learner in self._sorted():
            if learner.newleader_acked and learner.phase is Phase.SYNCING:
                self._uptodate(learner)
            elif learner.observer and learner.phase is Phase.ACKED:
                self._sync(learner)

    # -- broadcast --------------------------------------------------------------------------

    def next_zxid(self) -> int:
        self._check_established()
        assert self.epoch is not None
        if counter_of(self.last_allocated) == COUNTER_MASK:
            # The counter would wrap into the next epoch: hand over to a new election.
            self.peer.become_looking("zxid counter exhausted")
            raise NotLeader("zxid counter exhausted; re-electing", None)
        self.last_allocated += 1
        return self.last_allocated

    def propose(self, zxid: int, payload: bytes) -> None:
        self._check_established()
        p = self.peer
        last = p.log.last
        expected = last + 1 if epoch_of(last) == self.epoch else make_zxid(self.epoch or 0, 1)
        if zxid != expected or zxid > self.last_allocated:
            raise ValueError(f"propose {zx(zxid)}: expected {zx(expected)} (allocated up to {zx(self.last_allocated)})")
        if p.pending is not None and p.config_of(zxid, payload) is not None:
            raise ZabSafetyError(f"propose {zx(zxid)}: a configuration change while {p.pending.describe()} is pending")
        p.append(zxid, payload)
        proposal = Proposal(zxid, payload)
        for learner in self._sorted():
            if learner.forwarded and not learner.observer:
                p.send(learner.id, proposal)

    def _check_established(self) -> None:
        if not self.established:
            raise NotLeader(f"peer {self.peer.id} is not yet established as leader", None)

    def check_reconfig(self, new: Config) -> None:
        """Raise unless this leader may propose a change to `new` now (ZooKeeper's rules):
        no other change pending, and a quorum of `new`'s voters synced with us and heard
        lately, so the change (which needs their acknowledgements) can commit."""
        self._check_established()
        p = self.peer
        if p.pending is not None:
            raise ReconfigInProgress(f"configuration {p.pending.describe()} is not committed yet")
        synced = {p.id} | {
            learner.id
            for learner in self.learners.values()
            if not learner.observer and learner.phase is Phase.SYNCED and p.now - learner.last_heard <= p.timing.sync_timeout_s
        }
        if not new.is_quorum(synced):
            raise NewConfigNoQuorum(
                f"only {sorted(synced & new.voters)} of the new voters {sorted(new.voters)} are synced with leader {p.id}"
            )

    def _commit_point(self) -> int | None:
        """The highest zxid a quorum of every configuration in force holds (None: no quorum).

        Acks are cumulative, so per configuration it is the quorum-th highest ack among its
        voters (ours being our durable log end); while a change is pending, the lower of
        the two."""
        p = self.peer
        if p.pending is None:  # the common case, on every ACK: one configuration
            voters = p.config.voters
            held = [p.log.durable] if p.id in voters else []
            held += [x.acked for x in self.learners.values() if x.newleader_acked and not x.observer and x.id in voters]
            if len(held) < p.config.quorum:
                return None
            held.sort(reverse=True)
            return held[p.config.quorum - 1]
        acks = {p.id: p.log.durable}
        for learner in self.learners.values():
            if not learner.observer and learner.newleader_acked:
                acks[learner.id] = learner.acked
        point: int | None = None
        for config in (p.config, p.pending):
            if config is None:
                continue
            held = sorted((acks[v] for v in config.voters if v in acks), reverse=True)
            if len(held) < config.quorum:
                return None
            point = held[config.quorum - 1] if point is None else min(point, held[config.quorum - 1])
        return point

    def _recompute_commit(self) -> None:
        p = self.peer
        if not self.established:
            return
        commit = self._commit_point()
        previous = p.committed
        if commit is None or commit <= previous:
            return
        had_pending = p.pending is not None
        p.learn_commit(commit)
        if had_pending and p.pending is None and (later := self._commit_point()) is not None and later > commit:
            # The commit activated a change: the new configuration alone may commit more.
            commit = later
            p.learn_commit(commit)
        commit_message = Commit(commit)  # one object for all: the driver encodes it once
        informs: list[Inform] | None = None
        for learner in self._sorted():
            if not learner.forwarded:
                continue
            if not learner.observer:
                p.send(learner.id, commit_message)
                continue
            if informs is None:
                entries = p.log.entries(previous, commit) or []
                informs = [Inform(z, payload) for z, payload in entries]
            for inform in informs:
                p.send(learner.id, inform)

    # -- tick -------------------------------------------------------------------------------

    def tick(self) -> None:
        p = self.peer
        if not self.established:
            if p.now - self.started_at > p.timing.init_timeout_s:
                p.become_looking(f"epoch not established within {p.timing.init_timeout_s}s")
                return
        else:
            live = {p.id} | {
                learner.id
                for learner in self.learners.values()
                if not learner.observer and learner.newleader_acked and p.now - learner.last_heard <= p.timing.sync_timeout_s
            }
            if not p.has_quorum(live):
                p.become_looking(f"only {sorted(live & p.voters)} of the voters heard within {p.timing.sync_timeout_s}s")
                return
        if p.now >= self.next_ping_at:
            for learner in self._sorted():
                p.send(learner.id, Ping())
            self.next_ping_at = p.now + p.timing.ping_interval_s

    def _sorted(self) -> list[Learner]:
        return [self.learners[k] for k in sorted(self.learners)]

    def learner_stats(self) -> tuple[LearnerStats, ...]:
        return tuple(
            LearnerStats(
                learner.id,
                learner.observer,
                learner.phase.name,
                learner.phase is Phase.SYNCED,
                learner.acked,
                self.peer.now - learner.last_heard,
            )
            for learner in self._sorted()
        )


# Handlers by name, so a test can patch a method on the class.
_HANDLERS: dict[type, str] = {
    Ack: "_on_ack",
    AckEpoch: "_on_ack_epoch",
    Ping: "_on_ping",
}
