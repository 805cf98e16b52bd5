"""Membership as the Zab core sees it: who votes, who observes, since which zxid.

A configuration change is an entry of the replicated history like any other (the driver
tells which entries are changes: `ConfigOf`). What the core adds is the rule for quorums
while a change is under way, the one ZooKeeper's reconfig uses:

- `active`: the newest configuration this peer knows to be committed;
- `pending`: a configuration entry in this peer's log above `active`, not (yet) known to be
  committed. At most one: a leader proposes a change only when none is pending, and an
  entry above a pending one can only be in a log whose pending entry was committed (a
  leader that held it established with it; one that did not truncated it away).

While a change is pending every decision (votes, the epoch quorum, establishment, each
commit, the leader's liveness) needs a quorum of the old voters *and* one of the new: any
two decisions then share a voter of whichever configuration the later one is made in. Once
the entry is committed the new configuration alone counts, since the entry and everything
before it is on a quorum of both.

`data` is the driver's own description (ZooKeeper's `/zookeeper/config` text, with the
addresses): the core carries it so a peer can hand a configuration it learnt to its
driver, and never reads it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import attrs
import cbor2


@attrs.frozen
class Config:
    """One membership: `version` is the zxid of the entry that made it (0: the static one)."""

    version: int
    voters: frozenset[int]
    observers: frozenset[int] = frozenset()
    data: bytes = b""

    def __attrs_post_init__(self) -> None:
        if not self.voters:
            raise ValueError("a configuration needs at least one voter")
        if self.voters & self.observers:
            raise ValueError(f"servers {sorted(self.voters & self.observers)} are both voters and observers")

    @classmethod
    def of(cls, voters: Iterable[int], observers: Iterable[int] = (), version: int = 0, data: bytes = b"") -> Config:
        return cls(version, frozenset(voters), frozenset(observers), data)

    @property
    def members(self) -> frozenset[int]:
        return self.voters | self.observers

    @property
    def quorum(self) -> int:
        return len(self.voters) // 2 + 1

    def is_quorum(self, ids: Iterable[int]) -> bool:
        """Do `ids` hold a majority of this configuration's voters (others are ignored)?"""
        return len(self.voters.intersection(ids)) >= self.quorum

    def same_membership(self, other: Config) -> bool:
        return self.voters == other.voters and self.observers == other.observers

    def describe(self) -> str:
        observers = f", observers {sorted(self.observers)}" if self.observers else ""
        version = f"{self.version >> 32:x}:{self.version & 0xFFFFFFFF:x}"  # as api.zx shows zxids
        return f"version {version}: voters {sorted(self.voters)}{observers}"

    # -- wire form (in Notification, LeaderInfo and Snap) -----------------------------------

    def encode(self) -> bytes:
        return cbor2.dumps([self.version, sorted(self.voters), sorted(self.observers), self.data])

    @classmethod
    def decode(cls, raw: bytes) -> Config:
        """ValueError for anything but an encoded configuration."""
        try:
            doc: Any = cbor2.loads(raw)
        except Exception as exc:  # noqa: BLE001 - cbor2 raises many types for bad input
            raise ValueError(f"configuration is not CBOR: {exc}") from None
        if not (isinstance(doc, list) and len(doc) == 4):
            raise ValueError(f"not a configuration: {repr(doc)[:60]}")
        version, voters, observers, data = doc
        ids_ok = all(isinstance(ids, list) and all(type(i) is int for i in ids) for ids in (voters, observers))
        if type(version) is not int or version < 0 or not ids_ok or type(data) is not bytes:
            raise ValueError(f"not a configuration: {repr(doc)[:60]}")
        return cls(version, frozenset(voters), frozenset(observers), data)


ConfigOf = Callable[[int, bytes], Config | None]
"""`config_of(zxid, payload)`: the configuration an entry makes (version `zxid`), or None
for an entry that changes no membership. Called on every entry a peer logs: it must be
cheap for ordinary entries (the server's looks at the payload's first bytes)."""


def no_config_changes(zxid: int, payload: bytes) -> None:
    """The `ConfigOf` of a driver without reconfiguration."""
    return None
