"""The LOOKING role: FastLeaderElection-like voting (ZooKeeper's FastLeaderElection.java).

A vote names a candidate and its history as (current epoch, last zxid); votes are ordered by
(epoch, zxid, server id), the best wins. Each election has a round (ZooKeeper's logical
clock): a vote from a later round restarts ours. Once a quorum of this round's votes equals
ours, we wait `finalize_wait_s` for a better vote, then follow or lead the winner (at once
if every voter has voted).

Peers already FOLLOWING or LEADING answer a looking peer with the leader they follow; a
looking peer joins that leader when the leader itself says LEADING and a quorum of voters
name it. This is only how a late peer finds the leader: safety never rests on the election
but on discovery (the leader's epoch quorum, and its refusal to lead a quorum member whose
history is ahead of its own).

Observers never vote: they only learn the leader from FOLLOWING/LEADING answers.

Details the simulator taught us (each has a regression test in tests/sim):
- answers are forgotten when their sender starts looking or its link drops, or a peer can
  join a leader that stopped leading (two peers even ended up following each other);
- a peer for which a quorum decided in its own round, before their votes reached it,
  leads once their FOLLOWING answers of that round arrive (ZooKeeper's checkLeader);
- learners answer their leader's LOOKING votes of the round they decided in, and take
  only a later round (or a vote for someone else) as the leader giving up.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import attrs

from .api import zx
from .messages import FollowerInfo, Message, Notification, ObserverInfo, PeerState

if TYPE_CHECKING:
    from .core import ZabPeer

log = logging.getLogger(__name__)


@attrs.frozen(order=True)
class Vote:
    """Ordered as ZooKeeper's totalOrderPredicate: epoch, then zxid, then server id."""

    peer_epoch: int
    zxid: int
    leader: int

    @classmethod
    def of(cls, n: Notification) -> Vote:
        return cls(n.peer_epoch, n.zxid, n.leader)


# The vote of a peer that is no voter in its own view (a server joining or removed): below
# every real vote, so it takes the first eligible one it hears (ZooKeeper's Long.MIN_VALUE).
NO_VOTE = Vote(-1, -1, -1)


class Looking:
    """One election: started when the peer enters LOOKING, dropped when it leaves."""

    def __init__(self, peer: ZabPeer) -> None:
        self.peer = peer
        self.own = Vote(peer.durable_current_epoch, peer.log.last, peer.id) if peer.is_voter else NO_VOTE
        self.vote = self.own
        self.recv: dict[int, Vote] = {}  # this round's votes from looking voters, ours too
        self.known: dict[int, tuple[int, PeerState]] = {}  # answers of non-looking voters
        self.decide_at: float | None = None
        self.leader_round = 0  # the round in the last LEADING answer heard
        self.next_send_at = peer.now + peer.timing.resend_s

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        p = self.peer
        p.round += 1
        self.recv[p.id] = self.vote
        log.info("peer %d: looking, round %d, own vote %s", p.id, p.round, self._show(self.vote))
        self._broadcast()
        self._check_quorum()

    def on_connected(self, peer_id: int) -> None:
        self.peer.send(peer_id, self._notification())

    def on_disconnected(self, peer_id: int) -> None:
        self.known.pop(peer_id, None)  # it may come back in another state

    def after_advance(self) -> None:
        pass

    def on_membership_changed(self) -> None:
        # Other voters, other quorums: the votes counted so far may not mean what they did.
        self.peer.become_looking("the membership changed")

    # -- step / tick ------------------------------------------------------------------------

    def step(self, sender: int, message: Message) -> None:
        if isinstance(message, Notification):
            if message.state is PeerState.LOOKING:
                self._on_looking(sender, message)
            elif message.state in (PeerState.FOLLOWING, PeerState.LEADING):
                self._on_settled(sender, message)
        elif isinstance(message, (FollowerInfo, ObserverInfo)):
            # It thinks we lead; we do not (yet). Our vote tells it, or it waits for us.
            self.peer.send(sender, self._notification())
        # Anything else is left over from a role we no longer have.

    def tick(self) -> None:
        p = self.peer
        if self.decide_at is not None and p.now >= self.decide_at:
            self.decide_at = None
            if self.vote != NO_VOTE and p.has_quorum(self._agreeing()):
                self._decide()
                return
        if p.now >= self.next_send_at:
            self._broadcast()

    # -- votes ------------------------------------------------------------------------------

    def _on_looking(self, sender: int, n: Notification) -> None:
        p = self.peer
        self.known.pop(sender, None)  # whatever it answered before, it is looking now
        if sender not in p.voters:
            return
        # Every peer votes, observers and servers outside our voters too: each vote counts
        # where its sender is a voter, and a pending change may make a server a voter
        # before it has logged that change. A peer that is no voter in its own view only
        # takes others' votes (its own is NO_VOTE), so a vote always names a server that
        # some voter's view holds a voter; we take such a vote even if ours does not (that
        # voter may have logged a change we lack): safety rests on discovery, not on this.
        theirs = Vote.of(n)
        if n.round > p.round:
            p.round = n.round
            self.recv.clear()
            self._adopt(max(theirs, self.own))
        elif n.round < p.round:
            p.send(sender, self._notification())  # help it catch up with our round
            return
        elif theirs > self.vote:
            self._adopt(theirs)
        self.recv[sender] = theirs
        self._check_quorum()

    def _adopt(self, vote: Vote) -> None:
        self.vote = vote
        self.recv[self.peer.id] = vote
        self.decide_at = None
        self._broadcast()

    def _agreeing(self) -> set[int]:
        return {voter for voter, v in self.recv.items() if v == self.vote}

    def _check_quorum(self) -> None:
        p = self.peer
        if self.vote == NO_VOTE or not p.has_quorum(self._agreeing()):
            self.decide_at = None
        elif p.voters <= self.recv.keys():
            self._decide()  # nobody left who could change our mind
        elif self.decide_at is None:
            self.decide_at = p.now + p.timing.finalize_wait_s

    def _decide(self) -> None:
        p = self.peer
        winner = self.vote.leader
        log.info("peer %d: election round %d chose %s", p.id, p.round, self._show(self.vote))
        if winner == p.id:
            p.become_leader()
        else:
            p.become_learner(winner, p.round)

    def _on_settled(self, sender: int, n: Notification) -> None:
        """A FOLLOWING/LEADING answer: join its leader if that leader says so and a quorum agrees."""
        p = self.peer
        if sender not in p.voters:
            return
        self.known[sender] = (n.leader, n.state)
        leader = n.leader
        if sender == leader:
            self.leader_round = n.round
        if leader == p.id:
            # Voters that decided for us in this very round, before their votes reached us
            # (ZooKeeper's checkLeader accepts that too).
            if n.round == p.round and n.state is PeerState.FOLLOWING and p.is_voter:
                self.recv[sender] = self.own
                if self.vote == self.own:
                    self._check_quorum()
            return
        if self.known.get(leader) != (leader, PeerState.LEADING):
            return  # follow only a leader that says it leads
        # A quorum of the active configuration must name it without us: the evidence that
        # it leads. A pending change may count us, since it may make us a voter its leader
        # is waiting for (the others alone can never make that quorum then).
        naming = {voter for voter, (named, _) in self.known.items() if named == leader}
        if p.config.is_quorum(naming) and (p.pending is None or p.pending.is_quorum(naming | {p.id})):
            p.round = max(p.round, n.round)
            log.info("peer %d: joining leader %d announced by voters %s", p.id, leader, sorted(naming))
            p.become_learner(leader, n.round if sender == leader else self.leader_round)

    # -- sending ----------------------------------------------------------------------------

    def _notification(self) -> Notification:
        v = self.vote
        return Notification(v.leader, v.zxid, v.peer_epoch, self.peer.round, PeerState.LOOKING, self.peer.config)

    def _broadcast(self) -> None:
        p = self.peer
        n = self._notification()
        # To every voter we know of, and to whoever else we are linked to: a settled server
        # answers with its leader and configuration, which is how a peer whose view is out
        # of date (its voters gone, removed by changes it missed) finds the ensemble.
        for peer_id in sorted(p.voters | p.connected):
            if peer_id != p.id:
                p.send(peer_id, n)
        # Jittered, so peers that started looking together do not keep re-sending in step.
        self.next_send_at = p.now + p.timing.resend_s * p.rng.uniform(0.75, 1.25)

    @staticmethod
    def _show(v: Vote) -> str:
        return f"(leader {v.leader}, epoch {v.peer_epoch}, zxid {zx(v.zxid)})"
