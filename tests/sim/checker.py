"""Invariants checked after every simulated step. Any violation raises `InvariantError`.

- one established leader per epoch, and epochs get established in increasing order;
- committed histories agree: every replica applies a prefix of one global sequence
  ("truth"), so no two replicas ever apply different entries at the same position;
- zxids strictly increase along that sequence (and in every disk, see disk.py);
- nothing acknowledged is lost: an entry acked to a client sits in truth, and at the end
  every replica has applied it;
- replicas at the same zxid have byte-identical trees (`encode_snapshot`);
- an entry is applied only once committed *and* durable on the replica that applies it;
- an ACK / ACKEPOCH leaves a peer only for what its disk durably holds;
- a client write routed through any server (forwarded to the leader from a follower) commits
  at most once, and its writer hears exactly one outcome (committed or abandoned; see
  runner.Clients).

What ZooKeeper clients holding sessions see is checked in sessions.py.
"""

from __future__ import annotations

import hashlib
from typing import Any

from ccore.server.zab.api import counter_of, epoch_of, zx


class InvariantError(AssertionError):
    pass


def digest(payload: bytes) -> bytes:
    return hashlib.blake2b(payload, digest_size=8).digest()


class Checker:
    def __init__(self) -> None:
        self.truth: list[tuple[int, bytes]] = []  # (zxid, payload digest), the committed order
        self.index: dict[int, int] = {}  # zxid -> position in truth
        self.acked: dict[int, bytes] = {}  # zxid -> digest of what the client was told committed
        self.leaders: dict[int, int] = {}  # epoch -> the server established in it
        self.trees: dict[int, bytes] = {}  # zxid -> digest of the tree there
        self.applied_total = 0
        self.requests: dict[tuple[int, int], int] = {}  # (origin, request id) -> its zxid

    # -- histories --------------------------------------------------------------------------

    def position_after(self, zxid: int) -> int:
        """How many truth entries a state at `zxid` (a snapshot's) has applied."""
        if zxid == 0:
            return 0
        pos = self.index.get(zxid)
        if pos is None:
            raise InvariantError(f"state at {zx(zxid)} is not on the committed history")
        return pos + 1

    def applied(self, node_id: int, position: int, zxid: int, payload: bytes) -> None:
        """Node `node_id` applies its `position`-th entry."""
        d = digest(payload)
        self.applied_total += 1
        if position < len(self.truth):
            want_zxid, want = self.truth[position]
            if (want_zxid, want) != (zxid, d):
                raise InvariantError(
                    f"server {node_id} applied {zx(zxid)} at position {position}, where the committed "
                    f"history has {zx(want_zxid)}" + (" (same zxid, different payload)" if want_zxid == zxid else "")
                )
            return
        if position != len(self.truth):
            raise InvariantError(f"server {node_id} skipped to position {position} of {len(self.truth)}")
        if self.truth and zxid <= self.truth[-1][0]:
            raise InvariantError(f"server {node_id} applied {zx(zxid)} after {zx(self.truth[-1][0])}")
        self.index[zxid] = len(self.truth)
        self.truth.append((zxid, d))

    def acknowledged(self, leader: int, zxid: int, payload: bytes) -> None:
        d = digest(payload)
        pos = self.index.get(zxid)
        if pos is None or self.truth[pos][1] != d:
            raise InvariantError(f"leader {leader} acked {zx(zxid)} which is not on the committed history")
        if zxid in self.acked and self.acked[zxid] != d:
            raise InvariantError(f"{zx(zxid)} acked twice with different payloads")
        self.acked[zxid] = d

    def request_committed(self, txn: Any, zxid: int) -> None:
        """A client request (origin server, request number) commits at one zxid only: a
        forwarded write proposed twice would be applied twice."""
        if not txn.origin:
            return  # written at the leader directly, with no request number
        key = (txn.origin, txn.request_id)
        seen = self.requests.setdefault(key, zxid)
        if seen != zxid:
            raise InvariantError(f"request {key} of server {txn.origin} committed twice: at {zx(seen)} and {zx(zxid)}")

    def tree_at(self, node_id: int, zxid: int, tree_digest: bytes) -> None:
        seen = self.trees.setdefault(zxid, tree_digest)
        if seen != tree_digest:
            raise InvariantError(f"server {node_id}: tree at {zx(zxid)} differs from another replica's")

    # -- leaders ----------------------------------------------------------------------------

    def established(self, node_id: int, epoch: int) -> bool:
        """Returns True the first time this epoch is seen established."""
        first = epoch not in self.leaders
        if first and self.leaders and epoch < max(self.leaders):
            raise InvariantError(f"server {node_id} established epoch {epoch} after epoch {max(self.leaders)} was established")
        other = self.leaders.setdefault(epoch, node_id)
        if other != node_id:
            raise InvariantError(f"two leaders established in epoch {epoch}: {other} and {node_id}")
        return first

    # -- durability of acknowledgements -----------------------------------------------------

    def ack_sent(self, node_id: int, zxid: int, disk: object) -> None:
        from .disk import SimDisk

        assert isinstance(disk, SimDisk)
        if counter_of(zxid) == 0:
            if disk.current_epoch < epoch_of(zxid):
                raise InvariantError(
                    f"server {node_id} acked NEWLEADER of epoch {epoch_of(zxid)} with current epoch {disk.current_epoch} on disk"
                )
        elif not disk.holds_durably(zxid):
            raise InvariantError(f"server {node_id} acked {zx(zxid)} before it was durable")

    def ack_epoch_sent(self, node_id: int, epoch: int, disk_accepted_epoch: int) -> None:
        if disk_accepted_epoch < epoch:
            raise InvariantError(f"server {node_id} acked epoch {epoch} before writing it")

    # -- the end ----------------------------------------------------------------------------

    def final(self, positions: dict[int, int]) -> None:
        """Every live replica applied the same history, holding every acked entry."""
        ends = set(positions.values())
        if len(ends) != 1:
            raise InvariantError(f"replicas did not converge: applied counts {positions}")
        end = ends.pop()
        if end != len(self.truth):
            raise InvariantError(f"replicas stopped at {end} of {len(self.truth)} committed entries")
        for zxid in self.acked:
            if self.index[zxid] >= end:
                raise InvariantError(f"acked {zx(zxid)} was never applied everywhere")
