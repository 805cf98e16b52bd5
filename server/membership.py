"""The ensemble's membership as replicated state: a `Reconfig` transaction <-> the Zab core's
`Config`.

A membership change is a transaction whose data is the new `/zookeeper/config` text
(ZooKeeper's dynamic config format, `version=` last). The core must know which of the
entries it logs are such changes, and what membership each makes: `config_of` tells it,
looking at two bytes of every entry and decoding only the changes.
"""

from __future__ import annotations

from ccore.znodes.codec import decode_txn, is_reconfig_txn
from ccore.znodes.dynconfig import DynamicConfig
from ccore.znodes.txn import Reconfig

from .config import ServerConfig
from .reconfig import static_config
from .zab.config import Config


def config_from_text(text: bytes, version: int) -> Config:
    """The core's `Config` for a `/zookeeper/config` text (DynamicConfigError if it is none)."""
    dynamic = DynamicConfig.parse(text.decode("utf-8"))
    return Config(version, dynamic.voters, dynamic.observers, text)


def config_of(zxid: int, payload: bytes) -> Config | None:
    """The Zab core's `ConfigOf` for our transactions."""
    if not is_reconfig_txn(payload):
        return None
    op = decode_txn(payload).op
    assert isinstance(op, Reconfig)
    return config_from_text(op.data, zxid)


def peer_addresses(config: Config, my_id: int, server: ServerConfig) -> dict[int, tuple[str, int]]:
    """Where to reach each server of `config` on the peer port, and our own address (zoo.cfg's
    line for us, even if `config` lacks us: a joining or removed server still listens)."""
    addresses = {s.id: (s.host, s.quorum_port) for s in DynamicConfig.parse(config.data.decode("utf-8")).servers}
    own = server.peers.get(my_id)
    if own is not None:
        addresses[my_id] = (own.host, own.quorum_port)
    return addresses


def static_membership(server: ServerConfig) -> Config:
    """zoo.cfg's membership (its dynamic file's, with that file's version) as the core's Config."""
    text = static_config(server.peers.values(), server.config_version).render().encode("utf-8")
    return config_from_text(text, server.config_version)
