"""The async ZooKeeper client (Trio or asyncio, through anyio), its blocking facade, and the
`ccore` shell commands.

    from ccore.client import connect
    async with connect("127.0.0.1:2181") as zk:
        data, stat = await zk.get("/node")

`client.blocking.connect(...)` gives the same operations to threaded code.
"""

from ccore.znodes.acl import (
    ACL,
    CREATOR_ALL_ACL,
    OPEN_ACL_UNSAFE,
    READ_ACL_UNSAFE,
    Id,
    make_digest_acl,
)
from ccore.znodes.constants import EventType, KeeperState, Perms
from ccore.znodes.stat import Stat

from .client import Client, connect
from .errors import ClientClosedError, InvalidArgumentError, NoServerError
from .protocol import WatchedEvent
from .retry import Retry, retry
from .transaction import GetChildren, GetData, Transaction
from .watches import ClientState, StateStream, Watch, WatchStream

__all__ = [
    "ACL",
    "CREATOR_ALL_ACL",
    "OPEN_ACL_UNSAFE",
    "READ_ACL_UNSAFE",
    "Client",
    "ClientClosedError",
    "ClientState",
    "EventType",
    "GetChildren",
    "GetData",
    "Id",
    "InvalidArgumentError",
    "KeeperState",
    "NoServerError",
    "Perms",
    "Retry",
    "Stat",
    "StateStream",
    "Transaction",
    "Watch",
    "WatchStream",
    "WatchedEvent",
    "connect",
    "make_digest_acl",
    "retry",
]
