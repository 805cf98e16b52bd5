"""A 3-server ensemble with TLS everywhere, as real processes: kazoo over secureClientPort
(with a client certificate) while the peers talk TLS among themselves; a server with a
certificate from another CA is kept out with one log line, and the other two serve on."""

from __future__ import annotations

import socket
import time

import cbor2
import pytest
from kazoo.client import KazooClient

from ccore.server.peers import HELLO_MAGIC, frame
from chaos.ensemble import LocalEnsemble
from tests.compat.servers import free_ports
from tests.tls_certs import Authority, authority, quorum_tls_lines, server_tls_lines

pytestmark = pytest.mark.slow


def tls_ensemble(
    tmp_path, ca: Authority, quorum_cas: dict[int, Authority] | None = None, log_level: str = "INFO"
) -> tuple[LocalEnsemble, dict[int, int]]:
    """Servers 1-3, each with a plain and a TLS client port and TLS peer links; server N's
    quorum certificate and trust store come from `quorum_cas[N]` (default `ca`)."""
    secure = dict(zip((1, 2, 3), free_ports(3), strict=True))
    extra = {}
    for sid in (1, 2, 3):
        quorum_ca = (quorum_cas or {}).get(sid, ca)
        extra[sid] = [
            f"secureClientPort={secure[sid]}",
            *server_tls_lines(ca, ca.issue(f"client-port-{sid}"), client_auth="need"),
            *quorum_tls_lines(quorum_ca, quorum_ca.issue(f"quorum-{sid}")),
        ]
    return LocalEnsemble(tmp_path / "ensemble", nodes=3, extra_config=extra, log_level=log_level), secure


def kazoo_tls(ca: Authority, ports: list[int]) -> KazooClient:
    client = ca.issue("kazoo")
    zk = KazooClient(
        hosts=",".join(f"127.0.0.1:{p}" for p in ports),
        use_ssl=True,
        ca=str(ca.trust_store),
        certfile=str(client.cert),
        keyfile=str(client.key),
        check_hostname=True,
        timeout=5.0,
    )
    zk.start(timeout=20)
    return zk


def log_lines(ens: LocalEnsemble, sid: int, text: str) -> list[str]:
    return [line for line in (ens.data_dir(sid) / "server.log").read_text(errors="replace").splitlines() if text in line]


def test_kazoo_over_tls_against_an_ensemble_whose_peers_talk_tls(tmp_path) -> None:
    ca = authority(tmp_path)
    ens, secure = tls_ensemble(tmp_path, ca)
    with ens:
        ens.start_all()
        ens.wait_leader()
        zk = kazoo_tls(ca, list(secure.values()))
        try:
            zk.create("/tls/a", b"over tls", makepath=True)
        finally:
            zk.stop()
            zk.close()
        # Every server's TLS port, and the write replicated to each over the TLS peer links.
        for sid in (1, 2, 3):
            zk = kazoo_tls(ca, [secure[sid]])
            try:
                zk.sync("/")
                assert zk.get("/tls/a")[0] == b"over tls"
                zk.create(f"/tls/from-{sid}", b"x")
            finally:
                zk.stop()
                zk.close()
        # The peers really speak TLS: a plaintext hello on a quorum port is refused.
        leader = ens.wait_leader()
        with socket.create_connection(("127.0.0.1", ens.peer_ports[leader]), timeout=5) as s:
            s.sendall(frame(cbor2.dumps([HELLO_MAGIC, 2, "members=1,2,3;observers="])))
            s.settimeout(10)
            assert s.recv(4096) == b""  # closed, nothing said
        expected = (
            "refusing peer connection from 127.0.0.1: TLS handshake failed: wrong version number (plaintext on a TLS port?)"
        )
        deadline = time.monotonic() + 10
        while not log_lines(ens, leader, expected) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert log_lines(ens, leader, expected)


def test_a_server_with_a_certificate_from_another_ca_is_refused(tmp_path) -> None:
    ca, other = authority(tmp_path), authority(tmp_path, "other")
    ens, secure = tls_ensemble(tmp_path, ca, quorum_cas={3: other}, log_level="DEBUG")
    with ens:
        for sid in (1, 2, 3):
            ens.start(sid, wait=False)
        ens.wait_serving([1, 2])
        zk = kazoo_tls(ca, [secure[1], secure[2]])
        try:
            for i in range(20):
                zk.create(f"/quorum-of-two-{i}", b"x")  # 1 and 2 commit without 3
        finally:
            zk.stop()
            zk.close()
        time.sleep(4)  # server 3 redials about once a second all along
        assert ens.mode(3) is None, "server 3 joined with a certificate from another CA"
        for sid in (1, 2):
            refused = log_lines(ens, sid, "refusing server 3 (127.0.0.1): TLS handshake failed: certificate verify failed")
            warnings = [line for line in refused if " WARNING " in line]
            assert len(warnings) == 1, warnings  # one line, however often it was redialled:
            assert len(refused) >= 4, refused  # every later refusal is at debug level
            accepted_side = log_lines(ens, sid, "refusing peer connection from 127.0.0.1: TLS handshake failed")
            assert sum(" WARNING " in line for line in accepted_side) == 1, accepted_side
        assert log_lines(ens, 3, "refusing server 1 (127.0.0.1): TLS handshake failed: certificate verify failed")
