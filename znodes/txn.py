"""Transactions: the replicated, durable records of every change, and their results.

A transaction carries everything its application needs (zxid, leader time, session, the
caller's identities for ACL checks), so every replica applies it to the same outcome without
reading a clock or a random source. Failed writes are transactions too: their result is an
error code, the same on every replica.
"""

from __future__ import annotations

import attrs

from .acl import ACL, Id
from .constants import EventType
from .stat import Stat


@attrs.frozen(slots=True)
class Create:
    path: str
    data: bytes | None
    acl: tuple[ACL, ...]
    mode: int
    ttl: int = -1
    # createTTL with a non-TTL mode (or create with a TTL mode) is refused as ZooKeeper does;
    # the request type is kept so apply can tell them apart.
    ttl_request: bool = False
    container_request: bool = False


@attrs.frozen(slots=True)
class Delete:
    path: str
    version: int = -1


@attrs.frozen(slots=True)
class DeleteContainer:
    """Removes an empty container, or an expired TTL node: issued by the server itself."""

    path: str


@attrs.frozen(slots=True)
class SetData:
    path: str
    data: bytes | None
    version: int = -1


@attrs.frozen(slots=True)
class SetACL:
    path: str
    acl: tuple[ACL, ...]
    version: int = -1


@attrs.frozen(slots=True)
class Check:
    path: str
    version: int = -1


@attrs.frozen(slots=True)
class Multi:
    ops: tuple[Op, ...]


@attrs.frozen(slots=True)
class CreateSession:
    timeout_ms: int
    password: bytes


@attrs.frozen(slots=True)
class CloseSession:
    pass


@attrs.frozen(slots=True)
class NoOp:
    """A transaction that changes nothing (a new leader's first proposal, a sync barrier)."""


@attrs.frozen(slots=True)
class Reconfig:
    """A membership change: `data` is the new `/zookeeper/config` text, ending in
    `version=<this transaction's zxid, hex>` (ZooKeeper's format). Applying it sets that
    node; the Zab core reads the membership from the transaction itself (codec.py)."""

    data: bytes


@attrs.frozen(slots=True)
class Reconfigure:
    """A client's reconfig request (opcode 16) on its way to the leader, which alone can plan
    it (it knows the newest configuration and who is synced): it proposes a `Reconfig`, or a
    `Refused` with ZooKeeper's error. Never in the log."""

    joining: str | None
    leaving: str | None
    new_members: str | None
    from_config: int


@attrs.frozen(slots=True)
class Refused:
    """A write the leader refused before it could become a change (a reconfig that may not
    happen): committed like any failed write, so every replica answers its client the same."""

    err: int


Op = (
    Create
    | Delete
    | DeleteContainer
    | SetData
    | SetACL
    | Check
    | Multi
    | CreateSession
    | CloseSession
    | NoOp
    | Reconfig
    | Reconfigure
    | Refused
)
MULTI_OPS = (Create, Delete, SetData, Check)


@attrs.frozen(slots=True)
class Txn:
    zxid: int
    time_ms: int
    session: int
    op: Op
    auth: tuple[Id, ...] = ()
    # Which server's client asked for it, and that server's request number: so the server
    # holding the connection finds the request to answer. Never read by `apply`.
    origin: int = 0
    request_id: int = 0


@attrs.frozen(slots=True)
class Result:
    """What one transaction (or one op of a multi) came to."""

    err: int = 0
    path: str | None = None
    stat: Stat | None = None
    results: tuple[Result, ...] = ()
    data: bytes | None = None  # a reconfig's new configuration, for its reply


# A watch trigger: what happened, where, and the ACL that decides who may hear of it.
Trigger = tuple[EventType, str, tuple[ACL, ...]]
