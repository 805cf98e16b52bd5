"""Servers that name each other by different addresses form one ensemble, as with ZooKeeper:
each server listens on `0.0.0.0` from its own server.N line and reaches the others by address
or hostname. A different membership (ids or roles) is refused with one log line."""

from __future__ import annotations

import logging
import re

import cbor2
import pytest
from kazoo.client import KazooClient

from ccore.server.peers import PeerNetwork
from chaos.ensemble import LocalEnsemble
from tests.compat.servers import free_ports
from tests.polling import wait_for


def network(my_id, members, observers, links) -> PeerNetwork:
    return PeerNetwork(
        my_id,
        members,
        encode=cbor2.dumps,
        decode=cbor2.loads,
        on_message=lambda *a: None,
        on_connected=lambda peer: links.add((my_id, peer)),
        on_disconnected=lambda peer: links.discard((my_id, peer)),
        observers=observers,
        backoff_s=(0.01, 0.05),
    )


async def test_links_form_when_each_server_sees_other_addresses(nursery) -> None:
    ports = dict(zip((1, 2, 3), free_ports(3), strict=True))
    views = {  # each server: itself on 0.0.0.0, the others by address or by name
        1: {1: ("0.0.0.0", ports[1]), 2: ("127.0.0.1", ports[2]), 3: ("localhost", ports[3])},
        2: {1: ("localhost", ports[1]), 2: ("0.0.0.0", ports[2]), 3: ("127.0.0.1", ports[3])},
        3: {1: ("127.0.0.1", ports[1]), 2: ("localhost", ports[2]), 3: ("0.0.0.0", ports[3])},
    }
    links: set = set()
    for sid, view in views.items():
        await nursery.start(network(sid, view, [3], links).run)
    await wait_for(lambda: len(links) == 6)


async def test_another_membership_is_refused_with_one_log_line(nursery, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="ccore.server.peers")
    ports = dict(zip((1, 2), free_ports(2), strict=True))
    members = {1: ("0.0.0.0", ports[1]), 2: ("127.0.0.1", ports[2])}
    links: set = set()
    await nursery.start(network(1, members, [], links).run)
    # Server 2 thinks it is an observer: it dials 1 again and again and is refused every time.
    await nursery.start(network(2, {**members, 1: ("localhost", ports[1])}, [2], links).run)
    await wait_for(lambda: sum("refusing peer connection" in r.getMessage() for r in caplog.records) >= 4)
    assert not links
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    # One line on each side, however often server 2 redials.
    assert sorted(warnings) == sorted(
        [
            "refusing peer connection: server 2 lists members {1,2} (observers {2}), we list {1,2} (no observers): "
            "server 2 is an observer in theirs and a participant in ours; fix the server.N lines so that every "
            "server names the same ids and roles",
            "refusing peer connection: server 1 lists members {1,2} (no observers), we list {1,2} (observers {2}): "
            "server 2 is a participant in theirs and an observer in ours; fix the server.N lines so that every "
            "server names the same ids and roles",
        ]
    )


@pytest.mark.slow
def test_ensemble_forms_with_any_address_for_itself_and_hostnames_for_others(tmp_path) -> None:
    """The usual Docker/Kubernetes zoo.cfg: `server.N=0.0.0.0:...` on server N itself, the
    others by address or name, client ports in ZooKeeper 3.5's `;clientPort` suffix."""
    with LocalEnsemble(tmp_path, nodes=3) as ens:
        for sid in ens.servers:
            cfg = ens.data_dir(sid) / "zoo.cfg"
            lines = cfg.read_text().splitlines()
            ports = {}
            for line in lines:
                if m := re.fullmatch(r"server\.(\d+)=127\.0\.0\.1:(\d+):(\d+)(?::participant)?;127\.0\.0\.1:\d+", line):
                    ports[int(m[1])] = (int(m[2]), int(m[3]))
            assert sorted(ports) == [1, 2, 3]
            servers = []
            for other, (quorum, election) in ports.items():
                client = ens.client_ports[other]
                if other == sid:
                    # Server 2 listens for clients on every interface (`;port`), the others on
                    # loopback; the client port is only in the suffix.
                    suffix = f";{client}" if sid == 2 else f":participant;127.0.0.1:{client}"
                    servers.append(f"server.{other}=0.0.0.0:{quorum}:{election}{suffix}")
                else:
                    host = "localhost" if (sid + other) % 2 else "127.0.0.1"
                    servers.append(f"server.{other}={host}:{quorum}:{election};{client}")
            kept = [line for line in lines if not line.startswith(("server.", "clientPort=", "clientPortAddress="))]
            cfg.write_text("\n".join(kept + servers) + "\n")
        ens.start_all()
        leader = ens.wait_leader()
        assert sorted(ens.mode(s) for s in ens.servers) == ["follower", "follower", "leader"]
        writer = KazooClient(hosts=ens.connect_string([next(s for s in ens.servers if s != leader)]))
        writer.start(timeout=20)
        writer.create("/written-through-a-follower", b"v")
        writer.stop()
        writer.close()
        for sid in ens.servers:
            zk = KazooClient(hosts=ens.connect_string([sid]))
            zk.start(timeout=20)
            try:
                zk.sync("/")
                assert zk.get("/written-through-a-follower")[0] == b"v", f"server {sid}"
            finally:
                zk.stop()
                zk.close()
        for sid in ens.servers:
            log = (ens.data_dir(sid) / "server.log").read_text()
            assert "refusing peer connection" not in log and "different ensemble" not in log, f"server {sid}"
