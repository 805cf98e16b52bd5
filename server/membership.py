"""The ensemble's membership as replicated state: a `Reconfig` transaction <-> the Zab core's
`Config`.

A membership change is a transaction whose data is the new `/zookeeper/config` text
(ZooKeeper's dynamic config format, `version=` last). The core must know which of the
entries it logs are such changes, and what membership each makes: `config_of` tells it,
looking at two bytes of every entry and decoding only the changes.
"""

from __future__ import annotations

from ccore.znodes.codec import decode_txn, is_reconfig_txn
from ccore.znodes.txn import Reconfig

from .zab.config import Config


def membership_of(text: bytes) -> tuple[frozenset[int], frozenset[int]]:
    """(voters, observers) that a `/zookeeper/config` text names. ValueError if it names
    no voter or is not such a text."""
    voters: set[int] = set()
    observers: set[int] = set()
    for raw in text.decode("utf-8").splitlines():
        line = raw.strip()
        if not line.startswith("server."):
            continue
        key, _, value = line.partition("=")
        server_id = int(key.removeprefix("server."))
        quorum_part = value.partition(";")[0].split(":")
        role = quorum_part[3].strip() if len(quorum_part) > 3 else "participant"
        (observers if role == "observer" else voters).add(server_id)
    if not voters:
        raise ValueError(f"no participant in configuration {text[:80]!r}")
    return frozenset(voters), frozenset(observers)


def config_of(zxid: int, payload: bytes) -> Config | None:
    """The Zab core's `ConfigOf` for our transactions."""
    if not is_reconfig_txn(payload):
        return None
    op = decode_txn(payload).op
    assert isinstance(op, Reconfig)
    voters, observers = membership_of(op.data)
    return Config(zxid, voters, observers, op.data)
