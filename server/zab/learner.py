"""The FOLLOWING and OBSERVING roles: register, accept the epoch, sync, then broadcast.

The sync stream (DIFF | TRUNC | SNAP, proposals, NEWLEADER) is buffered in memory and
written in one Ready when NEWLEADER arrives (ZooKeeper's packetsNotLogged): a SNAP replaces
the log crash-atomically together with the entries after it, so a crash mid-sync never
leaves a history shorter than what this peer may have acknowledged before. The Ready writes
the history, then the current epoch; the ACK of NEWLEADER goes out only after `advance`
(ZOOKEEPER-4646/-4685). TRUNC never cuts below what this peer knows committed: that would
be a safety bug, raised as ZabSafetyError.

Followers acknowledge proposals once durable, cumulatively (one ACK per written batch).
Observers log INFORMed (committed) entries and never acknowledge them.
"""

from __future__ import annotations

import enum
import logging
from typing import TYPE_CHECKING

from .api import Entry, Role, ZabSafetyError, epoch_of, make_zxid, zx
from .messages import (
    Ack,
    AckEpoch,
    Commit,
    Diff,
    FollowerInfo,
    Inform,
    LeaderInfo,
    Message,
    NewLeader,
    Notification,
    ObserverInfo,
    PeerState,
    Ping,
    Proposal,
    Snap,
    Trunc,
    UpToDate,
)

if TYPE_CHECKING:
    from .core import ZabPeer

log = logging.getLogger(__name__)


class Phase(enum.IntEnum):
    DISCOVERY = 1  # FOLLOWERINFO sent (re-sent until LEADERINFO)
    EPOCH_WRITE = 2  # accepted epoch being written; then ACKEPOCH
    SYNC = 3  # ACKEPOCH sent; waiting for DIFF/TRUNC/SNAP
    STREAM = 4  # buffering the sync stream until NEWLEADER
    ACK_WRITE = 5  # history + current epoch being written; then ACK(NEWLEADER)
    WAIT_UPTODATE = 6
    BROADCAST = 7


class ProtocolError(Exception):
    """The leader sent something this phase cannot take: drop the leader, look again."""


class Learning:
    def __init__(self, peer: ZabPeer, leader: int, leader_round: int) -> None:
        self.peer = peer
        self.leader = leader
        # A LOOKING vote from the leader in a later round means it gave up leading; one
        # from this round or before was sent before it knew it won, and means nothing.
        self.leader_round = leader_round
        self.observer = peer.observes
        self.phase = Phase.DISCOVERY
        self.last_heard = peer.now
        self.next_info_at = peer.now
        peer.registrations += 1
        self.registration = peer.registrations
        self.epoch = 0
        self.fresh = False
        self.opening: Diff | Trunc | Snap | None = None
        self.stream: list[Entry] = []
        self.newleader_zxid = 0
        self.acked = 0

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        log.info("peer %d: %s %d", self.peer.id, "observing" if self.observer else "following", self.leader)
        if self.leader in self.peer.connected:
            self._send_info()

    def on_connected(self, peer_id: int) -> None:
        if peer_id == self.leader and self.phase is Phase.DISCOVERY:
            self._send_info()

    def on_disconnected(self, peer_id: int) -> None:
        if peer_id == self.leader:
            self.peer.become_looking(f"lost the link to leader {self.leader}")

    def on_membership_changed(self) -> None:
        p = self.peer
        if self.phase is Phase.BROADCAST and p.observes != self.observer:
            # Observers and followers are different registrations (INFORMs or proposals).
            # Only once synced: before, our view may lack what the leader based our kind on.
            p.become_looking(f"now {'an observer' if p.observes else 'a follower'} in configuration {p.config.describe()}")

    def _take_kind(self, observer: bool) -> None:
        """The leader registered us as this kind (LEADERINFO): be it for this registration."""
        if observer != self.observer:
            self.observer = observer
            self.peer.role = Role.OBSERVING if observer else Role.FOLLOWING

    def _send_info(self) -> None:
        p = self.peer
        info = ObserverInfo if self.observer else FollowerInfo
        p.send(self.leader, info(p.accepted_epoch, self.registration))
        # The leader ignores us until it has finished its own election, so repeat soon:
        # this is what a failover waits for. Copies are harmless (registration numbers).
        self.next_info_at = p.now + min(p.timing.tick_s, p.timing.finalize_wait_s)

    def after_advance(self) -> None:
        p = self.peer
        if self.phase is Phase.EPOCH_WRITE and p.durable_accepted_epoch >= self.epoch:
            p.send(self.leader, AckEpoch(self.epoch, self.registration, p.durable_current_epoch, p.log.last, self.fresh))
            self.phase = Phase.SYNC
        written = p.durable_current_epoch == self.epoch and p.log.durable >= self.newleader_zxid
        if self.phase is Phase.ACK_WRITE and written:
            p.send(self.leader, Ack(make_zxid(self.epoch, 0)))
            self.acked = self.newleader_zxid
            self.phase = Phase.WAIT_UPTODATE
        if self.phase >= Phase.WAIT_UPTODATE and not self.observer and p.log.durable > self.acked:
            self.acked = p.log.durable
            p.send(self.leader, Ack(self.acked))

    # -- step -------------------------------------------------------------------------------

    def step(self, sender: int, message: Message) -> None:
        p = self.peer
        if sender != self.leader:
            looking = isinstance(message, Notification) and message.state is PeerState.LOOKING
            if looking or isinstance(message, (FollowerInfo, ObserverInfo)):
                p.answer_vote(sender)  # whom we follow: a looking peer may join, a lost one learns
            return
        if isinstance(message, (FollowerInfo, ObserverInfo)):
            # Our "leader" wants to follow us: neither leads. Start over.
            p.become_looking(f"{self.leader} registered with us as a learner")
            p.step(sender, message)
            return
        if isinstance(message, Notification):
            # Votes say nothing about the leader leading: they do not count as heartbeats.
            if message.state in (PeerState.FOLLOWING, PeerState.OBSERVING):
                p.become_looking(f"{self.leader} follows another leader")
                return
            if message.state is not PeerState.LOOKING:
                return
            if message.round > self.leader_round or message.leader != self.leader:
                # Our leader gave up leading, or votes for another: no need to wait for a timeout.
                p.become_looking(f"leader {self.leader} is looking")
                p.step(sender, message)
            else:
                # It is still counting votes of the round we decided in; ours never reached it.
                p.answer_vote(sender)
            return
        self.last_heard = p.now
        handler = _HANDLERS.get(type(message))
        if handler is None:
            return
        try:
            getattr(self, handler)(message)
        except ProtocolError as exc:
            p.become_looking(f"leader {self.leader}: {exc}")

    def _on_leader_info(self, message: LeaderInfo) -> None:
        p = self.peer
        if message.registration != self.registration:
            return  # the answer to an earlier registration of ours, on this same link
        if self.phase is not Phase.DISCOVERY:
            if message.epoch == self.epoch:
                return  # an answer to a re-sent FOLLOWERINFO
            # The leader started over (a new epoch) without our noticing: so must we.
            raise ProtocolError(f"LEADERINFO for epoch {message.epoch} while syncing for {self.epoch}")
        if message.epoch < p.accepted_epoch:
            raise ProtocolError(f"epoch {message.epoch} is below our accepted epoch {p.accepted_epoch}")
        p.adopt_config(message.config, f"leader {self.leader}", same_version=True)
        self._take_kind(message.observer)
        self.epoch = message.epoch
        self.fresh = message.epoch > p.accepted_epoch
        if self.fresh:
            p.set_accepted_epoch(message.epoch)
        self.phase = Phase.EPOCH_WRITE
        self.after_advance()  # already durable if we had accepted it before

    def _on_opening(self, message: Diff | Trunc | Snap) -> None:
        if self.phase is not Phase.SYNC:
            raise ProtocolError(f"{type(message).__name__} in phase {self.phase.name}")
        if isinstance(message, Diff) and message.zxid != self.peer.log.last:
            raise ProtocolError(f"DIFF after {zx(message.zxid)} but our log ends at {zx(self.peer.log.last)}")
        self.opening = message
        self.stream = []
        self.phase = Phase.STREAM

    def _on_proposal(self, message: Proposal) -> None:
        p = self.peer
        if self.phase is Phase.STREAM:
            after = self.stream[-1][0] if self.stream else self.opening.zxid  # type: ignore[union-attr]
            if message.zxid <= after:
                raise ProtocolError(f"sync entry {zx(message.zxid)} after {zx(after)}")
            self.stream.append((message.zxid, message.payload))
        elif self.phase >= Phase.ACK_WRITE and not self.observer:
            if epoch_of(message.zxid) != self.epoch or message.zxid <= p.log.last:
                raise ProtocolError(f"proposal {zx(message.zxid)} after {zx(p.log.last)} in epoch {self.epoch}")
            p.append(message.zxid, message.payload)
        else:
            raise ProtocolError(f"proposal {zx(message.zxid)} in phase {self.phase.name}")

    def _on_newleader(self, message: NewLeader) -> None:
        p = self.peer
        opening = self.opening
        if self.phase is not Phase.STREAM or message.epoch != self.epoch or opening is None:
            raise ProtocolError(f"NEWLEADER epoch {message.epoch} in phase {self.phase.name}")
        # Check everything before changing anything.
        end = self.stream[-1][0] if self.stream else opening.zxid
        if end != message.zxid:
            raise ProtocolError(f"sync stream ends at {zx(end)}, NEWLEADER says {zx(message.zxid)}")
        if isinstance(opening, Trunc) and opening.zxid > p.log.last:
            raise ProtocolError(f"TRUNC to {zx(opening.zxid)} beyond our log end {zx(p.log.last)}")
        if isinstance(opening, Trunc) and p.log.floor(opening.zxid) != opening.zxid:
            # The leader believes we share its history up to there; we do not even hold that
            # entry. Zab says this cannot happen (see sync.py): stop rather than diverge.
            raise ZabSafetyError(f"peer {p.id}: TRUNC to {zx(opening.zxid)}, which is not in our history")
        if not isinstance(opening, Snap) and opening.zxid < p.committed:
            # A leader never cuts committed history: this is a bug, not a bad link.
            raise ZabSafetyError(f"peer {p.id}: sync from {zx(opening.zxid)} below committed {zx(p.committed)}")
        if isinstance(opening, Trunc) and opening.zxid < p.log.last:
            p.truncate_after(opening.zxid)
        elif isinstance(opening, Snap):
            p.install_snapshot(opening.zxid, opening.data, opening.config)
        for zxid, payload in self.stream:
            p.append(zxid, payload)
        self.stream = []
        if p.committed > p.log.last:
            raise ZabSafetyError(f"peer {p.id}: sync to {zx(p.log.last)} loses committed {zx(p.committed)}")
        self.newleader_zxid = message.zxid
        p.set_current_epoch(self.epoch)
        self.phase = Phase.ACK_WRITE
        self.after_advance()

    def _on_uptodate(self, message: UpToDate) -> None:
        p = self.peer
        if self.phase is not Phase.WAIT_UPTODATE:
            raise ProtocolError(f"UPTODATE in phase {self.phase.name}")
        self._learn_commit(message.commit_zxid)
        self.phase = Phase.BROADCAST
        p.on_synced(self.leader, self.epoch)
        if p.observes != self.observer:
            p.become_looking(f"synced as {'an observer' if self.observer else 'a follower'}, which our configuration is not")

    def _on_commit(self, message: Commit) -> None:
        if self.phase < Phase.ACK_WRITE or self.observer:
            raise ProtocolError(f"COMMIT in phase {self.phase.name}")
        self._learn_commit(message.zxid)

    def _on_inform(self, message: Inform) -> None:
        p = self.peer
        if self.phase < Phase.ACK_WRITE or not self.observer:
            raise ProtocolError(f"INFORM in phase {self.phase.name}")
        if message.zxid > p.log.last:
            p.append(message.zxid, message.payload)
        self._learn_commit(message.zxid)

    def _on_ping(self, message: Ping) -> None:
        self.peer.send(self.leader, Ping())

    def _learn_commit(self, zxid: int) -> None:
        p = self.peer
        if zxid > p.log.last:
            raise ProtocolError(f"commit of {zx(zxid)} beyond our log end {zx(p.log.last)}")
        p.learn_commit(zxid)

    # -- tick -------------------------------------------------------------------------------

    def tick(self) -> None:
        p = self.peer
        limit = p.timing.sync_timeout_s if self.phase is Phase.BROADCAST else p.timing.init_timeout_s
        if p.now - self.last_heard > limit:
            p.become_looking(f"leader {self.leader} silent for {limit}s")
            return
        if self.phase is Phase.DISCOVERY and p.now >= self.next_info_at and self.leader in p.connected:
            self._send_info()


# Handlers by name, so a test can patch a method on the class.
_HANDLERS: dict[type, str] = {
    LeaderInfo: "_on_leader_info",
    Diff: "_on_opening",
    Trunc: "_on_opening",
    Snap: "_on_opening",
    Proposal: "_on_proposal",
    NewLeader: "_on_newleader",
    UpToDate: "_on_uptodate",
    Commit: "_on_commit",
    Inform: "_on_inform",
    Ping: "_on_ping",
}
