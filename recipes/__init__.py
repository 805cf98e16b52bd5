"""Coordination recipes on the async client (Trio or asyncio): locks, elections, barriers,
leases, registries.

    from ccore.client import connect
    from ccore.recipes import Lock, Lease

    async with connect("127.0.0.1:2181", session_timeout=5) as zk:
        async with Lock(zk, "/locks/db") as token:       # fencing token: grows with each grant
            ...
        async with Lease(zk, "/leases/migo-group", b"NodeA", ttl=5) as lease:
            ...                                           # cancelled before the lease can lapse

Every recipe that holds something through a session (Lock, ReadWriteLock, Semaphore,
Election.leadership, Lease, LockingQueue.take) runs its body in a scope that is cancelled the
moment the hold may be lost, and then raises LostError. `recipes.blocking` has the same
recipes for threaded code.
"""

from .barrier import Barrier, DoubleBarrier
from .counter import Counter
from .election import Election
from .errors import LostError
from .lease import Lease
from .lock import Lock, ReadLock, ReadWriteLock, WriteLock
from .party import Party, Presence
from .queue import Item, LockingQueue, Queue
from .registry import ServiceCache, ServiceInstance, ServiceRegistry
from .semaphore import Semaphore
from .treecache import NodeData, TreeCache, TreeEvent, TreeEventType
from .watchers import ChildrenWatch, DataWatch

__all__ = [
    "Barrier",
    "ChildrenWatch",
    "Counter",
    "DataWatch",
    "DoubleBarrier",
    "Election",
    "Item",
    "Lease",
    "Lock",
    "LockingQueue",
    "LostError",
    "NodeData",
    "Party",
    "Presence",
    "Queue",
    "ReadLock",
    "ReadWriteLock",
    "Semaphore",
    "ServiceCache",
    "ServiceInstance",
    "ServiceRegistry",
    "TreeCache",
    "TreeEvent",
    "TreeEventType",
    "WriteLock",
]
