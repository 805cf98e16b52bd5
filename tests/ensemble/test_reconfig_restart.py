"""A membership made by reconfig survives a restart of the whole ensemble: every member
writes it to its dynamic config file (and points zoo.cfg at it), and a server that was
removed still starts, from the last file that names it, as a non-voting follower."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from kazoo.client import KazooClient

from ccore.znodes.dynconfig import DynamicConfig
from chaos.ensemble import LocalEnsemble
from chaos.membership import RECONFIG_CONFIG, SUPER_AUTH

pytestmark = pytest.mark.slow


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s:.0f} s: {what}")
        time.sleep(0.1)


def config_of(zk: KazooClient) -> DynamicConfig:
    zk.sync("/zookeeper/config")
    data, _ = zk.get("/zookeeper/config")
    return DynamicConfig.parse(data.decode())


def test_a_reconfigured_membership_survives_a_full_restart(tmp_path) -> None:
    extra = {sid: list(RECONFIG_CONFIG) for sid in (1, 2, 3, 4)}
    with LocalEnsemble(tmp_path, nodes=4, initial_members=[1, 2, 3], extra_config=extra) as ens:
        ens.start_all()
        ens.start(4)  # a joiner: zoo.cfg lists 1, 2, 3 and itself; it follows without a vote
        zk = KazooClient(hosts=ens.connect_string(), auth_data=[SUPER_AUTH], timeout=5.0)
        zk.start(timeout=20)
        deadline = time.monotonic() + 30
        while True:  # until 4 has synced with the leader (NewConfigNoQuorum until then)
            try:
                zk.reconfig(joining=ens.server_line(4), leaving="2", new_members=None)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        before = config_of(zk)
        assert (before.voters, before.version > 0) == ({1, 3, 4}, True)
        zk.create("/kept", b"v")
        zk.stop()
        zk.close()

        for sid in ens.servers:
            ens.terminate(sid)
        for sid in (1, 3, 4):
            zoo_cfg = (ens.data_dir(sid) / "zoo.cfg").read_text()
            assert f"dynamicConfigFile={ens.data_dir(sid)}/zoo.cfg.dynamic.{before.version:x}" in zoo_cfg
            assert "server.1=" not in zoo_cfg
        # Server 2 was removed: it keeps the file that names it, to start from.
        assert "server.2=" in (ens.data_dir(2) / "zoo.cfg").read_text()

        for sid in ens.servers:
            ens.start(sid, wait=False)
        ens.wait_serving([1, 3, 4])
        zk = KazooClient(hosts=ens.connect_string([1, 3, 4]), timeout=5.0)
        zk.start(timeout=20)
        after = config_of(zk)
        assert (after.voters, after.version) == ({1, 3, 4}, before.version)
        assert zk.get("/kept")[0] == b"v"
        # The removed server learns the membership from the others and follows, serving reads.
        wait_until(lambda: ens.mode(2) == "follower", 30, "server 2 following again")
        two = KazooClient(hosts=ens.connect_string([2]), timeout=5.0)
        two.start(timeout=20)
        assert config_of(two).version == before.version
        assert two.get("/kept")[0] == b"v"
        for client in (zk, two):
            client.stop()
            client.close()
        # Its vote no longer counts: with 3 and 4 down, 1 and 2 are a majority of the old
        # voters but not of {1, 3, 4}, so nobody may lead.
        ens.kill(3)
        ens.kill(4)
        wait_until(lambda: ens.leader() is None, 20, "the leader stepping down without a majority of {1, 3, 4}")
        time.sleep(3.0)  # several election rounds
        assert ens.leader() is None and ens.mode(2) is None
