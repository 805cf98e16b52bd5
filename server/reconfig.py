"""Planning a reconfig, pure: ZooKeeper's checks in ZooKeeper's order, who may reconfigure, the
/zookeeper/config text of a static membership, and the reply record.

The leader calls `plan_reconfig` (server/membership.py `plan_on_leader`) with the newest config
it knows (`plan_request` does the same from a decoded request record); what comes back is the new membership without a version, which the reconfig's zxid
stamps (`config.with_version(zxid)`) before its text (`config.render()`) is committed as the
data of /zookeeper/config. Nothing here does I/O or reads a clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from ccore.znodes import acl as acls
from ccore.znodes.acl import ACL, Id
from ccore.znodes.constants import Perms
from ccore.znodes.dynconfig import DynamicConfig, ServerSpec, bulk, check_participants, incremental
from ccore.znodes.errors import (
    BadVersionError,
    NewConfigNoQuorumError,
    NoAuthError,
    ReconfigDisabledError,
    ReconfigInProgressError,
    UnimplementedError,
    ZKError,
)
from ccore.znodes.paths import CONFIG
from ccore.znodes.records import GetDataResponse, ReconfigRequest
from ccore.znodes.stat import Stat

# ZooKeeper writes /zookeeper/config with DataTree.setData(..., version=-1, ...), both when a
# server starts (initConfigInZKDatabase) and when a reconfig commits: the node's dataVersion
# is then -1, not a count of changes. Clients compare configs by the `version=` line instead.
CONFIG_NODE_DATA_VERSION = -1

Servers = str | Sequence[str] | None


def plan_reconfig(
    current: DynamicConfig,
    joining: Servers,
    leaving: Servers,
    new_members: Servers,
    from_config: int,
    *,
    enabled: bool,
    standalone_enabled: bool = True,
    replicated: bool = True,
    in_progress: bool = False,
    quorum_synced: Callable[[DynamicConfig], bool] | None = None,
    authorized: bool = True,
) -> DynamicConfig:
    """The membership a reconfig asks for, or ZooKeeper's error for it, checked in the order of
    PrepRequestProcessor (so a client sees the same error ZooKeeper would give it first):

    1. ReconfigDisabledError unless `enabled` (zoo.cfg reconfigEnabled);
    2. UnimplementedError on a standalone server (`replicated` False);
    3. ReconfigInProgressError while an earlier reconfig is proposed and not yet active;
    4. BadVersionError if `from_config` is neither -1 nor `current.version`;
    5. BadArgumentsError for anything malformed: bulk if `new_members` is not None (null on the
       wire), else incremental (`leaving` removed first, then `joining` added or replaced);
    6. BadArgumentsError for too few participants (2 with standaloneEnabled, else 1);
    7. NewConfigNoQuorumError unless `quorum_synced(new)`: a quorum of the new config's voters
       is connected and synced with the leader (the core's to say; skipped when None);
    8. NoAuthError unless `authorized` (see `may_reconfig`): ZooKeeper checks the ACL last, so
       an unauthorized caller with bad arguments hears BadArguments (kazoo's tests rely on it).

    `current` is the newest config the leader knows. The result has version None.
    """
    if not enabled:
        raise ReconfigDisabledError(CONFIG, "reconfig is disabled; set reconfigEnabled=true in zoo.cfg")
    if not replicated:
        raise UnimplementedError(CONFIG, "a standalone server cannot be reconfigured")
    if in_progress:
        raise ReconfigInProgressError(CONFIG)
    if from_config != -1 and from_config != current.version:
        raise BadVersionError(
            CONFIG, f"reconfiguration from version {from_config:#x} failed: the last config is version {current.version or 0:#x}"
        )
    new = bulk(new_members) if new_members is not None else incremental(current, joining, leaving)
    check_participants(new, standalone_enabled=standalone_enabled)
    if quorum_synced is not None and not quorum_synced(new):
        raise NewConfigNoQuorumError(CONFIG, "no quorum of the new configuration is connected and synced with the leader")
    if not authorized:
        raise NoAuthError(CONFIG)
    return new


def plan_request(
    current: DynamicConfig,
    request: ReconfigRequest,
    *,
    enabled: bool,
    standalone_enabled: bool = True,
    replicated: bool = True,
    in_progress: bool = False,
    quorum_synced: Callable[[DynamicConfig], bool] | None = None,
    authorized: bool = True,
) -> DynamicConfig:
    """`plan_reconfig` for a decoded request (opcode 16), with the same checks."""
    return plan_reconfig(
        current,
        request.joining_servers,
        request.leaving_servers,
        request.new_members,
        request.cur_config_id,
        enabled=enabled,
        standalone_enabled=standalone_enabled,
        replicated=replicated,
        in_progress=in_progress,
        quorum_synced=quorum_synced,
        authorized=authorized,
    )


def standalone_refusal(*, enabled: bool) -> int:
    """The error code a standalone server answers a reconfig with (ZooKeeper's order)."""
    try:
        plan_reconfig(DynamicConfig(()), None, None, None, -1, enabled=enabled, replicated=False)
    except ZKError as e:
        return int(e.code)
    raise AssertionError("a standalone server never plans a reconfig")


def may_reconfig(auth: Iterable[Id], config_acl: Sequence[ACL], *, skip_acl: bool = False) -> bool:
    """Whether a session with identities `auth` may reconfigure: the super user (digest auth
    matching superDigest), anyone with WRITE by the ACL of /zookeeper/config (READ for all by
    default, so nobody else), or anyone at all with skipACL=yes."""
    if skip_acl:
        return True
    try:
        acls.check(CONFIG, config_acl, Perms.WRITE, tuple(auth))
    except NoAuthError:
        return False
    return True


def static_config(peers: Iterable[ServerSpec], version: int = 0) -> DynamicConfig:
    """The config a zoo.cfg's `server.N` lines (or its dynamic file, whose name gives
    `version`) describe. Version 0 means no leader has stamped it yet."""
    return DynamicConfig(peers, version)


def config_text(peers: Iterable[ServerSpec], version: int = 0) -> bytes:
    """The data of /zookeeper/config for a membership, as ZooKeeper serves it. A standalone
    server (no members) serves it empty, as ZooKeeper's does."""
    servers = list(peers)
    if not servers:
        return b""
    return static_config(servers, version).render().encode("utf-8")


def reconfig_reply(config: DynamicConfig, stat: Stat) -> GetDataResponse:
    """The reply to a committed reconfig: the new config's text and /zookeeper/config's Stat
    (encode it with `protocol.encode_reply(xid, zxid, 0, record)`)."""
    return GetDataResponse(config.render().encode("utf-8"), stat)
