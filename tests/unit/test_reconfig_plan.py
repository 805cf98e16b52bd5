"""Planning a reconfig (server/reconfig.py): ZooKeeper's errors in PrepRequestProcessor's order,
who may reconfigure, the config text of a static membership and the reply on the wire."""

from __future__ import annotations

from typing import Any

import pytest

from ccore.server.reconfig import config_text, may_reconfig, plan_reconfig, plan_request, reconfig_reply, static_config
from ccore.znodes.acl import READ_ACL_UNSAFE, SUPER, Id, make_digest_acl
from ccore.znodes.constants import OpCode, Perms
from ccore.znodes.dynconfig import DynamicConfig, ServerSpec
from ccore.znodes.errors import (
    BadArgumentsError,
    BadVersionError,
    NewConfigNoQuorumError,
    NoAuthError,
    ReconfigDisabledError,
    ReconfigInProgressError,
    UnimplementedError,
)
from ccore.znodes.protocol import decode_reply, encode_reply
from ccore.znodes.records import ReconfigRequest
from ccore.znodes.stat import Stat

VERSION = 0x100000000
CURRENT = DynamicConfig([ServerSpec(i, f"10.0.0.{i}", 2888, 3888, "participant", "0.0.0.0", 2181) for i in (1, 2, 3)], VERSION)
OBSERVER = "server.100=0.0.0.0:1234:2345:observer;0.0.0.0:3456"  # kazoo's TestReconfig joiner


def plan(joining: Any = None, leaving: Any = None, members: Any = None, from_config: int = -1, **checks: Any) -> DynamicConfig:
    checks.setdefault("enabled", True)
    return plan_reconfig(CURRENT, joining, leaving, members, from_config, **checks)


def test_add_then_remove_an_observer_as_kazoo_does() -> None:
    added = plan(OBSERVER).with_version(VERSION + 5)
    assert OBSERVER in added.render() and added.observers == {100} and added.voters == {1, 2, 3}
    removed = plan_reconfig(added, None, "100", None, -1, enabled=True)
    assert removed.ids == {1, 2, 3} and removed.version is None
    assert plan(OBSERVER, from_config=VERSION).ids == {1, 2, 3, 100}


def test_bulk_when_new_members_is_given_even_with_joining() -> None:
    new = plan("server.9=h:1:2;2181", None, "server.1=a:1:2;2181,server.2=b:1:2;2181")
    assert new.ids == {1, 2}
    with pytest.raises(BadArgumentsError, match="at least 2"):
        plan(None, None, "")  # given but empty: bulk, with no members


# Each case: arguments that fail at two steps; ZooKeeper's first step decides the error.
ORDER = [
    (dict(enabled=False, replicated=False), ReconfigDisabledError),
    (dict(replicated=False, in_progress=True), UnimplementedError),
    (dict(in_progress=True, from_config=VERSION + 1), ReconfigInProgressError),
    (dict(from_config=VERSION + 1, joining="some thing"), BadVersionError),  # kazoo: a future version
    (dict(joining="some thing", authorized=False), BadArgumentsError),  # kazoo's test_bad_input
    (dict(leaving="2,3", quorum_synced=lambda c: False), BadArgumentsError),
    (dict(joining="server.4=h4:1:2;2181", quorum_synced=lambda c: False, authorized=False), NewConfigNoQuorumError),
    (dict(joining=OBSERVER, authorized=False), NoAuthError),  # kazoo's test_no_super_auth
]


@pytest.mark.parametrize(("arguments", "error"), ORDER)
def test_errors_come_in_zookeepers_order(arguments: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        plan(**arguments)


def test_participant_floor_and_standalone_enabled() -> None:
    with pytest.raises(BadArgumentsError, match="standaloneEnabled"):
        plan(leaving="2,3")
    assert plan(leaving="2,3", standalone_enabled=False).voters == {1}
    with pytest.raises(BadArgumentsError, match="at least 1"):
        plan(leaving="1,2,3", standalone_enabled=False)


def test_quorum_synced_is_asked_about_the_new_config() -> None:
    seen: list[DynamicConfig] = []
    plan("server.4=h4:1:2;2181", quorum_synced=lambda c: seen.append(c) or True)
    assert [c.voters for c in seen] == [{1, 2, 3, 4}]


def test_plan_request_reads_the_decoded_record() -> None:
    assert plan_request(CURRENT, ReconfigRequest(None, "3", None, -1), enabled=True).ids == {1, 2}
    with pytest.raises(BadVersionError):
        plan_request(CURRENT, ReconfigRequest(None, "3", None, 7), enabled=True)
    with pytest.raises(ReconfigDisabledError):
        plan_request(CURRENT, ReconfigRequest(None, "3", None, -1), enabled=False)


def test_who_may_reconfig() -> None:
    ip = Id("ip", "127.0.0.1")
    alice = make_digest_acl("alice", "pw", Perms.WRITE)
    assert not may_reconfig([ip], READ_ACL_UNSAFE)  # the default ACL: read for all, write for none
    assert may_reconfig([ip, SUPER], READ_ACL_UNSAFE)
    assert may_reconfig([ip], READ_ACL_UNSAFE, skip_acl=True)
    assert may_reconfig([ip, alice.id], (*READ_ACL_UNSAFE, alice))
    assert not may_reconfig([ip, Id("digest", "bob:x")], (*READ_ACL_UNSAFE, alice))


def test_config_text_of_a_static_membership() -> None:
    peers = [ServerSpec(2, "zk2", 2888, 3888), ServerSpec(1, "0.0.0.0", 2888, 3888, "observer", "0.0.0.0", 2181)]
    assert config_text(peers) == (
        b"server.1=0.0.0.0:2888:3888:observer;0.0.0.0:2181\nserver.2=zk2:2888:3888:participant\nversion=0"
    )
    assert config_text(peers, 0x200000000).endswith(b"\nversion=200000000")
    assert static_config(peers).voters == {2}
    assert config_text([]) == b""  # a standalone server's, as ZooKeeper serves it


def test_reply_is_get_data_response_on_the_wire() -> None:
    stat = Stat(1, 2, 3, 4, -1, 0, 0, 0, 10, 0, 1)
    new = CURRENT.with_version(VERSION + 9)
    frame = encode_reply(7, VERSION + 9, 0, reconfig_reply(new, stat))
    header, body = decode_reply(frame[4:], OpCode.reconfig)
    assert header.xid == 7 and body == reconfig_reply(new, stat)
    assert body is not None and body.data == new.render().encode()  # type: ignore[attr-defined]
