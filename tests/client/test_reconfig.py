"""`reconfig`, `get_config` and `follow_config` of our client, against a fake server that speaks
just enough of the protocol to record what it was sent and answer as ZooKeeper would."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from ccore.client import blocking, connect
from ccore.client.hosts import HostPort, hosts_from_config
from ccore.znodes import records as r
from ccore.znodes.constants import OpCode
from ccore.znodes.errors import (
    BadArgumentsError,
    BadVersionError,
    Code,
    NewConfigNoQuorumError,
    NoAuthError,
    ReconfigDisabledError,
    ReconfigInProgressError,
)
from tests.client.fakezk import CONFIG_STAT, FakeServer, serve_in_thread
from tests.polling import wait_for

pytestmark = pytest.mark.anyio

NEW_CONFIG = b"server.1=10.0.0.1:2888:3888:participant;0.0.0.0:2181\nversion=100000002"


async def test_reconfig_sends_zookeepers_fields_and_returns_the_new_config(serve_tcp: Callable[..., Any]) -> None:
    fake = FakeServer(reconfig_answer=NEW_CONFIG)
    port = await serve_tcp(fake)
    async with connect(f"127.0.0.1:{port}/app") as zk:
        data, stat = await zk.reconfig(joining="server.4=h:2888:3888;2181", leaving=None)
        assert (data, stat) == (NEW_CONFIG, CONFIG_STAT)
        await zk.reconfig(joining=["server.4=h:2888:3888;2181", "5=h5:2888:3888;2181"], leaving=[2, "3"], from_config=0x100000001)
        await zk.reconfig(new_members="server.1=a:1:2;2181,server.2=b:1:2;2181")
        await zk.reconfig(joining="", leaving=[], new_members=None)  # empty is "not given", as kazoo sends it
    assert fake.sent(OpCode.reconfig) == [
        r.ReconfigRequest("server.4=h:2888:3888;2181", None, None, -1),
        r.ReconfigRequest("server.4=h:2888:3888;2181,5=h5:2888:3888;2181", "2,3", None, 0x100000001),
        r.ReconfigRequest(None, None, "server.1=a:1:2;2181,server.2=b:1:2;2181", -1),
        r.ReconfigRequest(None, None, None, -1),
    ]


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (Code.RECONFIG_DISABLED, ReconfigDisabledError),
        (Code.NO_AUTH, NoAuthError),
        (Code.BAD_ARGUMENTS, BadArgumentsError),
        (Code.BAD_VERSION, BadVersionError),
        (Code.NEW_CONFIG_NO_QUORUM, NewConfigNoQuorumError),
        (Code.RECONFIG_IN_PROGRESS, ReconfigInProgressError),
    ],
)
async def test_reconfig_errors_are_zookeepers(serve_tcp: Callable[..., Any], code: int, error: type[Exception]) -> None:
    port = await serve_tcp(FakeServer(reconfig_answer=code))
    async with connect(f"127.0.0.1:{port}") as zk:
        with pytest.raises(error) as e:
            await zk.reconfig(leaving="3")
        assert e.value.path == "/zookeeper/config"  # type: ignore[attr-defined]


async def test_bad_reconfig_arguments_are_refused_before_sending(serve_tcp: Callable[..., Any]) -> None:
    fake = FakeServer()
    port = await serve_tcp(fake)
    async with connect(f"127.0.0.1:{port}") as zk:
        with pytest.raises(TypeError, match="from_config"):
            await zk.reconfig(leaving="3", from_config="5")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="joining"):
            await zk.reconfig(joining={"server.4": "h:1:2"})  # type: ignore[arg-type]
    assert fake.sent(OpCode.reconfig) == []


async def test_get_config_reads_the_config_node_whatever_the_chroot(serve_tcp: Callable[..., Any]) -> None:
    fake = FakeServer(config=NEW_CONFIG)
    port = await serve_tcp(fake)
    async with connect(f"127.0.0.1:{port}/app") as zk:
        assert await zk.get_config() == (NEW_CONFIG, CONFIG_STAT)
        data, _, watch = await zk.get_config(watch=True)
        assert data == NEW_CONFIG and watch.path == "/zookeeper/config"
    assert fake.sent(OpCode.getData) == [
        r.GetDataRequest("/zookeeper/config", False),
        r.GetDataRequest("/zookeeper/config", True),
    ]


async def test_follow_config_moves_reconnects_to_the_configs_servers(serve_tcp: Callable[..., Any]) -> None:
    new_home = FakeServer()
    new_port = await serve_tcp(new_home)
    first = FakeServer(config=f"server.7=127.0.0.1:2888:3888;{new_port}\nversion=100000009".encode())
    first.hang_up_after_config = True  # the client must go elsewhere: only the config says where
    port = await serve_tcp(first)
    async with connect(f"127.0.0.1:{port}", follow_config=True) as zk:
        await wait_for(lambda: zk.server == f"127.0.0.1:{new_port}", timeout_s=10)
        assert zk.hosts == [f"127.0.0.1:{new_port}"]
        # The new server is asked too; its config (empty: standalone) leaves the list alone.
        await wait_for(new_home.sent, OpCode.getData, timeout_s=10)
        assert zk.hosts == [f"127.0.0.1:{new_port}"]
    assert first.connections == 1


async def test_without_follow_config_nothing_is_read_and_the_hosts_stay(serve_tcp: Callable[..., Any]) -> None:
    fake = FakeServer(config=b"server.7=127.0.0.1:2888:3888;9\nversion=1")
    port = await serve_tcp(fake)
    async with connect(f"127.0.0.1:{port}") as zk:
        await zk.get_config()
        assert zk.hosts == [f"127.0.0.1:{port}"]
    assert fake.sent(OpCode.getData) == [r.GetDataRequest("/zookeeper/config", False)]


def test_blocking_facade_has_them() -> None:
    fake = FakeServer(config=NEW_CONFIG, reconfig_answer=NEW_CONFIG)
    with serve_in_thread(fake) as port, blocking.connect(f"127.0.0.1:{port}") as zk:
        assert zk.get_config()[0] == NEW_CONFIG
        assert zk.reconfig(leaving="2")[0] == NEW_CONFIG
        assert zk.hosts == [f"127.0.0.1:{port}"]
    assert fake.sent(OpCode.reconfig) == [r.ReconfigRequest(None, "2", None, -1)]


def test_hosts_from_config() -> None:
    text = b"server.1=10.0.0.1:2888:3888;0.0.0.0:2181\nserver.2=10.0.0.2:2888:3888;10.1.0.2:2182\nversion=1f"
    assert hosts_from_config(text) == (0x1F, [HostPort("10.0.0.1", 2181), HostPort("10.1.0.2", 2182)])
    assert hosts_from_config(b"") is None  # a standalone server's
    assert hosts_from_config(b"server.1=10.0.0.1:2888:3888\nversion=1") is None  # no client ports
    assert hosts_from_config(b"\xff") is None and hosts_from_config(b"not a config") is None
