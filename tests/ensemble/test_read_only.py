"""Read-only mode with kazoo against three real server processes: the survivor of a majority
loss serves reads to a `read_only=True` client (CONNECTED_RO) and refuses its writes with
NotReadOnlyCallError; when the quorum is back the client ends up read-write, in a new session."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NotReadOnlyCallError
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.protocol.states import KazooState, KeeperState

from chaos.ensemble import LocalEnsemble
from tests.compat.servers import isro

pytestmark = pytest.mark.slow

READ_ONLY = {sid: ["readonlymode.enabled=true"] for sid in (1, 2, 3)}


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s:.0f} s: {what}")
        time.sleep(0.05)


def test_survivor_serves_read_only_clients_until_the_quorum_is_back(tmp_path) -> None:
    with LocalEnsemble(tmp_path, nodes=3, extra_config=READ_ONLY) as ens:
        ens.start_all()
        assert {isro(ens.client_ports[s]) for s in ens.servers} == {"rw"}
        zk = KazooClient(hosts=ens.connect_string(), timeout=4.0)
        zk.start(timeout=20)
        zk.create("/ro/data", b"before", makepath=True)
        zk.stop()
        zk.close()

        survivor = ens.servers[0]
        for sid in ens.servers[1:]:
            ens.kill(sid)
        port = ens.client_ports[survivor]
        wait_until(lambda: isro(port) == "ro", 20, f"server {survivor} in read-only mode")
        assert ens.mode(survivor) is None  # not serving writes: harnesses must not take it for serving

        # A client that did not ask for read-only is refused.
        plain = KazooClient(hosts=ens.connect_string([survivor]), timeout=2.0)
        with pytest.raises(KazooTimeoutError):
            plain.start(timeout=3)
        plain.stop()
        plain.close()

        states: list[KazooState] = []
        ro = KazooClient(
            hosts=ens.connect_string(),
            timeout=4.0,
            read_only=True,
            connection_retry={"max_tries": -1, "delay": 0.05, "max_delay": 0.5},
        )
        ro.add_listener(states.append)
        ro.start(timeout=20)
        try:
            assert ro.client_state == KeeperState.CONNECTED_RO
            assert ro.state == KazooState.CONNECTED  # kazoo's coarse state for CONNECTED_RO
            ro_session = ro.client_id[0]
            data, stat = ro.get("/ro/data")
            assert data == b"before" and stat.version == 0
            assert ro.exists("/ro/data") is not None and ro.exists("/ro/missing") is None
            assert ro.get_children("/ro") == ["data"]
            with pytest.raises(NotReadOnlyCallError):
                ro.set("/ro/data", b"during")
            with pytest.raises(NotReadOnlyCallError):
                ro.create("/ro/new", b"")
            with pytest.raises(NotReadOnlyCallError):
                ro.delete("/ro/data")
            tx = ro.transaction()
            tx.create("/ro/tx", b"")
            with pytest.raises(NotReadOnlyCallError):
                tx.commit()
            with pytest.raises(NotReadOnlyCallError):
                ro.sync("/ro")
            assert ro.client_state == KeeperState.CONNECTED_RO  # refusals do not end the session
            assert ro.get("/ro/data")[0] == b"before"

            for sid in ens.servers[1:]:
                ens.start(sid, wait=False)
            ens.wait_serving()
            wait_until(lambda: ro.client_state == KeeperState.CONNECTED, 30, "the read-only client read-write again")
            assert ro.client_id[0] != ro_session  # the local session died with read-only mode
            ro.set("/ro/data", b"after")
            ro.create("/ro/new", b"")
            assert ro.get("/ro/data")[0] == b"after"
            assert isro(port) == "rw"
        finally:
            ro.stop()
            ro.close()
        # kazoo reports CONNECTED_RO as CONNECTED to listeners; the new session shows as LOST
        # (the read-write server says the local session expired), then CONNECTED.
        assert KazooState.LOST in states, states
        assert states[states.index(KazooState.LOST) :].count(KazooState.CONNECTED) >= 1, states
