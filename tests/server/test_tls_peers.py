"""TLS on the peer links, in-process (PeerNetwork): links form and carry messages between
servers of one CA; a server whose certificate comes from another CA, or names another host,
is refused, with one log line per side however often it redials."""

from __future__ import annotations

import logging

import cbor2
import pytest
import trio

from ccore.server import tls
from ccore.server.peers import HELLO_MAGIC, PeerNetwork, frame
from ccore.server.tls import PeerTls, client_context, server_context
from ccore.server.tls_config import TlsSettings
from tests.compat.servers import free_ports
from tests.polling import wait_for
from tests.tls_certs import Authority, Identity, authority


def peer_tls(ca: Authority, identity: Identity) -> PeerTls:
    settings = TlsSettings("ssl.quorum.", key_store=identity.key_store, trust_store=ca.trust_store)
    return PeerTls(server_context(settings, "need", "test"), client_context(settings, "test"))


def network(my_id, members, links, received, tls: PeerTls) -> PeerNetwork:
    return PeerNetwork(
        my_id,
        members,
        encode=cbor2.dumps,
        decode=cbor2.loads,
        on_message=lambda sender, message: received.append((sender, my_id, message)),
        on_connected=lambda peer: links.add((my_id, peer)),
        on_disconnected=lambda peer: links.discard((my_id, peer)),
        backoff_s=(0.01, 0.05),
        tls=tls,
    )


@pytest.fixture
def members():
    return {sid: ("127.0.0.1", port) for sid, port in zip((1, 2, 3), free_ports(3), strict=True)}


async def test_links_over_tls_carry_messages(nursery, tmp_path, members) -> None:
    ca = authority(tmp_path)
    links: set = set()
    received: list = []
    nets = {}
    for sid in members:
        nets[sid] = network(sid, members, links, received, peer_tls(ca, ca.issue(f"server{sid}")))
        await nursery.start(nets[sid].run)
    await wait_for(lambda: len(links) == 6)
    nets[1].send(2, {"hello": "over tls"})
    nets[3].send(1, [1, 2, 3])
    await wait_for(lambda: len(received) == 2)
    assert sorted(received, key=str) == sorted([(1, 2, {"hello": "over tls"}), (3, 1, [1, 2, 3])], key=str)
    assert all(out.fd is None for out in nets[1]._out.values())  # no plaintext writes past TLS


def warnings_of(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and r.name == "ccore.server.peers"]


async def test_a_server_with_a_certificate_from_another_ca_is_refused(nursery, tmp_path, members, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="ccore.server.peers")
    ca, other = authority(tmp_path), authority(tmp_path, "other")
    links: set = set()
    received: list = []
    for sid in (1, 2):
        await nursery.start(network(sid, members, links, received, peer_tls(ca, ca.issue(f"server{sid}"))).run)
    # Server 3 trusts only its own CA and presents a certificate from it.
    await nursery.start(network(3, members, links, received, peer_tls(other, other.issue("server3"))).run)
    await wait_for(lambda: links == {(1, 2), (2, 1)})
    # Let it redial many times: each attempt is refused (debug), the warnings do not grow.
    await wait_for(lambda: sum("TLS" in r.getMessage() for r in caplog.records) >= 30)
    first = warnings_of(caplog)
    await wait_for(lambda: sum("TLS" in r.getMessage() for r in caplog.records) >= 60)
    assert warnings_of(caplog) == first
    assert links == {(1, 2), (2, 1)}
    # The good servers name the stranger's address and why, dialling it and being dialled.
    assert any("refusing server 3 (127.0.0.1): TLS handshake failed: certificate verify failed" in w for w in first), first
    assert any(
        w.startswith("refusing peer connection from 127.0.0.1: TLS handshake failed: tlsv1 alert unknown ca") for w in first
    )
    # One line per dialled server and one per accepting side: 1 and 2 each log 3 as a server they
    # dial and an address that dialled them; 3 logs 1 and 2, and the address.
    assert len(first) == 7, first


async def test_dialling_checks_the_name_on_the_certificate(nursery, tmp_path, members, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="ccore.server.peers")
    ca = authority(tmp_path)
    links: set = set()
    received: list = []
    names = {1: ("127.0.0.1",), 2: ("127.0.0.1",), 3: ("db.example",)}  # 3's certificate names another host
    for sid in members:
        await nursery.start(network(sid, members, links, received, peer_tls(ca, ca.issue(f"server{sid}", *names[sid]))).run)
    await wait_for(lambda: links == {(1, 2), (2, 1)} and any("IP address mismatch" in w for w in warnings_of(caplog)))


async def test_silent_and_plaintext_strangers_on_a_tls_peer_port(nursery, tmp_path, members, caplog, monkeypatch) -> None:
    monkeypatch.setattr(tls, "HANDSHAKE_TIMEOUT_S", 0.5)
    caplog.set_level(logging.WARNING, logger="ccore.server.peers")
    ca = authority(tmp_path)
    links: set = set()
    received: list = []
    first = network(1, members, links, received, peer_tls(ca, ca.issue("server1")))
    await nursery.start(first.run)
    silent = await trio.open_tcp_stream("127.0.0.1", members[1][1])
    plaintext = await trio.open_tcp_stream("127.0.0.1", members[1][1])
    await plaintext.send_all(frame(cbor2.dumps([HELLO_MAGIC, 2, first.digest])))
    for sid in (2, 3):  # the real servers link up meanwhile
        await nursery.start(network(sid, members, links, received, peer_tls(ca, ca.issue(f"server{sid}"))).run)
    await wait_for(lambda: len(links) == 6)
    with trio.fail_after(3):
        for stream in (silent, plaintext):
            try:
                while await stream.receive_some(4096):
                    pass
            except trio.BrokenResourceError:
                pass
            await stream.aclose()
    lines = warnings_of(caplog)
    assert any("no handshake within 0.5 s" in line for line in lines), lines
    assert any("plaintext on a TLS port?" in line for line in lines), lines


async def test_a_dialler_learns_its_certificate_was_refused(nursery, tmp_path, members, caplog) -> None:
    """With TLS 1.3 the dialler's handshake is over before the far side checks its certificate:
    the refusal comes as an alert on the link, and is logged once as such."""
    caplog.set_level(logging.DEBUG, logger="ccore.server.peers")
    ca, other = authority(tmp_path), authority(tmp_path, "other")
    links: set = set()
    received: list = []
    for sid in (1, 2):
        await nursery.start(network(sid, members, links, received, peer_tls(ca, ca.issue(f"server{sid}"))).run)
    # Server 3 trusts the ensemble's CA, but its own certificate comes from another.
    settings = TlsSettings("ssl.quorum.", key_store=other.issue("server3").key_store, trust_store=ca.trust_store)
    mixed = PeerTls(server_context(settings, "need", "test"), client_context(settings, "test"))
    await nursery.start(network(3, members, links, received, mixed).run)
    await wait_for(lambda: sum("refused our TLS connection" in r.getMessage() for r in caplog.records) >= 6)
    lines = [w for w in warnings_of(caplog) if "refused our TLS connection" in w]
    assert sorted(line.split(" (")[0] for line in lines) == ["server 1", "server 2"], lines
    assert all("alert unknown ca" in line and "ssl.quorum.trustStore" in line for line in lines), lines
    assert links == {(1, 2), (2, 1)}
