"""Client writes for the simulator: real znodes transactions on a small, contended namespace.

Sessions, ephemerals, sequential nodes, data changes and deletes, so replicas that diverge by
one transaction end up with visibly different trees. Many writes fail (NodeExists, NoNode,
BadVersion...): failures are results, applied identically everywhere, which is the point.
"""

from __future__ import annotations

import random

from ccore.znodes.acl import OPEN_ACL_UNSAFE, READ_ACL_UNSAFE
from ccore.znodes.codec import encode_txn
from ccore.znodes.constants import CreateMode
from ccore.znodes.txn import (
    Check,
    CloseSession,
    Create,
    CreateSession,
    Delete,
    DeleteContainer,
    Multi,
    Op,
    SetACL,
    SetData,
    Txn,
)

SESSIONS = (0x101, 0x102, 0x103)
PARENTS = ("/a", "/b", "/c")


class Workload:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def op(self) -> tuple[int, Op]:
        """A random (session, op)."""
        r = self.rng
        session = r.choice(SESSIONS)
        kind = r.random()
        parent = r.choice(PARENTS)
        child = f"{parent}/n{r.randrange(4)}"
        if kind < 0.08:
            return session, CreateSession(4000, bytes([session & 0xFF]) * 16)
        if kind < 0.12:
            return session, CloseSession()
        if kind < 0.25:
            return session, Create(parent, b"p", OPEN_ACL_UNSAFE, int(CreateMode.PERSISTENT))
        if kind < 0.50:
            mode = r.choice(
                (CreateMode.PERSISTENT, CreateMode.EPHEMERAL, CreateMode.PERSISTENT_SEQUENTIAL, CreateMode.EPHEMERAL_SEQUENTIAL)
            )
            path = child if not mode.is_sequential else f"{parent}/s-"
            return session, Create(path, r.randbytes(r.randrange(8)), OPEN_ACL_UNSAFE, int(mode))
        if kind < 0.70:
            return session, SetData(child, r.randbytes(r.randrange(12)), r.choice((-1, -1, 0, 1, 2)))
        if kind < 0.75:
            # Containers and TTL nodes borrow the ephemeral-owner field: easy to get wrong.
            if r.random() < 0.5:
                return session, Create(f"{parent}/box", None, OPEN_ACL_UNSAFE, int(CreateMode.CONTAINER), container_request=True)
            return session, Create(
                f"{parent}/ttl",
                b"t",
                OPEN_ACL_UNSAFE,
                int(CreateMode.PERSISTENT_WITH_TTL),
                ttl=r.choice((1, 5000)),
                ttl_request=True,
            )
        if kind < 0.78:
            return session, DeleteContainer(r.choice((f"{parent}/box", f"{parent}/ttl")))
        if kind < 0.82:
            return session, SetACL(child, r.choice((OPEN_ACL_UNSAFE, READ_ACL_UNSAFE)), r.choice((-1, 0)))
        if kind < 0.88:
            ops: tuple[Op, ...] = (
                Check(parent, r.choice((-1, 0))),
                Create(f"{child}m", b"m", OPEN_ACL_UNSAFE, int(CreateMode.PERSISTENT)),
                SetData(child, b"multi", -1),
            )
            return session, Multi(ops)
        return session, Delete(r.choice((child, parent, f"{child}m")), -1)

    def payload(self, zxid: int, time_ms: int) -> bytes:
        session, op = self.op()
        return encode_txn(Txn(zxid, time_ms, session, op))
