"""The ensemble's membership as replicated state: a `Reconfig` transaction <-> the Zab core's
`Config`; a client's reconfig planned on the leader; the active one written to disk.

A membership change is a transaction whose data is the new `/zookeeper/config` text
(ZooKeeper's dynamic config format, `version=` last). The core must know which of the
entries it logs are such changes, and what membership each makes: `config_of` tells it,
looking at two bytes of every entry and decoding only the changes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from ccore.znodes.acl import ACL, Id
from ccore.znodes.codec import decode_txn, is_reconfig_txn
from ccore.znodes.dynconfig import DynamicConfig
from ccore.znodes.errors import ZKError
from ccore.znodes.txn import Reconfig, Reconfigure, Refused

from .config import ServerConfig
from .dynamic_file import write_dynamic_config
from .peers import Membership
from .reconfig import may_reconfig, plan_reconfig, static_config
from .storage._fsutil import atomic_write
from .zab import ZabPeer
from .zab.api import NewConfigNoQuorum
from .zab.config import Config

log = logging.getLogger(__name__)

# The data dir's record of its ensemble's membership (checked at start: replication.py).
ENSEMBLE_FILE = "ensemble_id"


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


def plan_on_leader(
    peer: ZabPeer, request: Reconfigure, auth: tuple[Id, ...], zxid: int, server: ServerConfig, config_acl: Sequence[ACL]
) -> Reconfig | Refused:
    """A client's reconfig on the leader, whose next zxid is `zxid`: the new membership stamped
    with it, or ZooKeeper's error for it (committed as a failed write, as every refusal is)."""
    current = DynamicConfig.parse(peer.config.data.decode("utf-8")).with_version(peer.config.version)

    def quorum_synced(new: DynamicConfig) -> bool:
        try:
            peer.check_reconfig(new.voters, new.observers)
        except NewConfigNoQuorum as e:
            log.info("server %d: reconfig refused: %s", server.server_id, e)
            return False
        return True

    try:
        new = plan_reconfig(
            current,
            request.joining,
            request.leaving,
            request.new_members,
            request.from_config,
            enabled=server.reconfig_enabled,
            standalone_enabled=server.standalone_enabled,
            in_progress=peer.pending is not None,
            quorum_synced=quorum_synced,
            authorized=may_reconfig(auth, config_acl, skip_acl=server.skip_acl),
        )
    except ZKError as e:
        return Refused(int(e.code))
    log.info("server %d: proposing configuration %s at %#x", server.server_id, sorted(new.ids), zxid)
    return Reconfig(new.with_version(zxid).render().encode("utf-8"))


def write_active(active: Config, server: ServerConfig) -> None:
    """The dynamic config file (and the data dir's membership record), as ZooKeeper writes
    them when a configuration is activated. Not for a configuration without this server
    (joining, or removed): the file it has names it, and a restart needs its own address; it
    adopts the newer membership again from the ensemble when it rejoins."""
    if server.server_id not in active.members or server.config_file is None:
        return
    dynamic = DynamicConfig.parse(active.data.decode("utf-8")).with_version(active.version)
    try:
        write_dynamic_config(server.config_file, dynamic, server_id=server.server_id)
        record = Membership.of(active.members, active.observers).text.encode() + b"\n"
        atomic_write(server.data_dir / ENSEMBLE_FILE, [record])
    except OSError as e:
        log.error("server %d: cannot write the configuration %s to disk: %s", server.server_id, active.describe(), e)
