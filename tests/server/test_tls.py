"""TLS on the client port, in-process: our client over secureClientPort beside the plain port,
ssl.clientAuth none/want/need, and sockets that abuse the TLS port (plaintext, garbage, half a
handshake, silence) without hurting the server or its other clients."""

from __future__ import annotations

import io
import logging
import socket
import ssl
import struct

import pytest
import trio

from ccore.client import NoServerError, connect
from ccore.client.shell import main as shell_main
from ccore.server import tls
from ccore.server.tls_config import TlsSettings
from tests.polling import wait_for
from tests.tls_certs import Authority, Identity, authority

from .helpers import RawClient, start_server


@pytest.fixture
def ca(tmp_path) -> Authority:
    return authority(tmp_path)


@pytest.fixture
def server_id(ca) -> Identity:
    return ca.issue("server")


@pytest.fixture
def client_id(ca) -> Identity:
    return ca.issue("client", "client.example")


def tls_config_kwargs(ca: Authority, server_id: Identity, client_auth: str = "need", plain: bool = True) -> dict:
    """What zoo.cfg's secureClientPort and ssl.* keys set (start_server builds ServerConfig directly)."""
    settings = TlsSettings("ssl.", key_store=server_id.key_store, trust_store=ca.trust_store, client_auth=client_auth)
    return {"secure_client_port": 0, "client_port": 0 if plain else None, "client_tls": settings}


async def start_tls_server(nursery, tmp_path, ca, server_id, client_auth="need", plain=True):
    return await start_server(nursery, tmp_path, **tls_config_kwargs(ca, server_id, client_auth, plain))


def secure_hosts(server) -> str:
    return f"127.0.0.1:{server.secure_port}"


async def test_our_client_over_tls_beside_the_plain_port(nursery, tmp_path, ca, server_id, client_id) -> None:
    server = await start_tls_server(nursery, tmp_path, ca, server_id)
    assert server.port and server.secure_port and server.port != server.secure_port
    async with connect(secure_hosts(server), tls_ca=ca.trust_store, tls_cert=client_id.cert, tls_key=client_id.key) as zk:
        await zk.create("/over-tls", b"secret")
        # The key and chain in one file, as a ZooKeeper PEM key store keeps them, work too.
        async with connect(secure_hosts(server), tls_ca=ca.trust_store, tls_cert=client_id.key_store) as zk2:
            assert (await zk2.get("/over-tls"))[0] == b"secret"
        context = ssl.create_default_context(cafile=str(ca.trust_store))
        context.load_cert_chain(client_id.key_store)
        async with connect(secure_hosts(server), ssl_context=context) as zk3:
            assert (await zk3.get("/over-tls"))[0] == b"secret"
    plain = await RawClient.connect(server.port)  # the plain port serves the same tree
    assert plain.session_id
    stream = await trio.open_tcp_stream("127.0.0.1", server.port)
    await stream.send_all(b"conf")
    with trio.fail_after(5):
        # Both ports as bound (the config asked for any free port: 0), as `clientPort` is shown.
        assert f"secureClientPort={server.secure_port}\n" in (await read_until_closed(stream)).decode()


async def test_tls_alone_has_no_plain_port(nursery, tmp_path, ca, server_id, client_id) -> None:
    server = await start_tls_server(nursery, tmp_path, ca, server_id, plain=False)
    assert server.port is None and server.secure_port
    async with connect(secure_hosts(server), tls_ca=ca.trust_store, tls_cert=client_id.key_store) as zk:
        assert await zk.exists("/") is not None


async def test_client_auth_need_refuses_a_client_without_a_certificate(nursery, tmp_path, ca, server_id, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="ccore.server.client_port")
    server = await start_tls_server(nursery, tmp_path, ca, server_id, client_auth="need")
    with pytest.raises(NoServerError) as failure:
        async with connect(secure_hosts(server), tls_ca=ca.trust_store, connect_timeout=1.5):
            pass
    assert "certificate" in str(failure.value)
    await wait_for(lambda: any("TLS handshake with client" in r.getMessage() for r in caplog.records))
    line = next(r.getMessage() for r in caplog.records if "TLS handshake with client" in r.getMessage())
    assert "certificate" in line, line


async def test_client_auth_need_refuses_a_certificate_from_another_ca(nursery, tmp_path, ca, server_id) -> None:
    server = await start_tls_server(nursery, tmp_path, ca, server_id, client_auth="need")
    stranger = authority(tmp_path, "other").issue("stranger")
    with pytest.raises(NoServerError):
        async with connect(secure_hosts(server), tls_ca=ca.trust_store, tls_cert=stranger.key_store, connect_timeout=1.5):
            pass


@pytest.mark.parametrize("client_auth", ["want", "none"])
async def test_client_auth_want_and_none_accept_a_client_without_a_certificate(
    nursery, tmp_path, ca, server_id, client_id, client_auth
) -> None:
    server = await start_tls_server(nursery, tmp_path, ca, server_id, client_auth=client_auth)
    async with connect(secure_hosts(server), tls_ca=ca.trust_store, connect_timeout=3) as zk:
        await zk.create("/anonymous")
    async with connect(secure_hosts(server), tls_ca=ca.trust_store, tls_cert=client_id.key_store, connect_timeout=3) as zk:
        assert await zk.exists("/anonymous") is not None


async def test_our_client_refuses_a_server_certificate_it_cannot_verify(nursery, tmp_path, ca, server_id, client_id) -> None:
    server = await start_tls_server(nursery, tmp_path, ca, server_id)
    other = authority(tmp_path, "other")
    with pytest.raises(NoServerError) as failure:
        async with connect(secure_hosts(server), tls_ca=other.trust_store, tls_cert=client_id.key_store, connect_timeout=1.5):
            pass
    assert "certificate verify failed" in str(failure.value)
    # Nor a certificate for another name than the one dialled.
    elsewhere = ca.issue("elsewhere", "db.example")
    server2 = await start_tls_server(nursery, tmp_path / "two", ca, elsewhere)
    with pytest.raises(NoServerError) as failure:
        async with connect(secure_hosts(server2), tls_ca=ca.trust_store, tls_cert=client_id.key_store, connect_timeout=1.5):
            pass
    assert "certificate verify failed" in str(failure.value)


def client_hello() -> bytes:
    """The first flight of a real TLS client, to send in part."""
    context = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls_object = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        tls_object.do_handshake()
    return outgoing.read()


async def read_until_closed(stream: trio.SocketStream) -> bytes:
    data = b""
    try:
        while chunk := await stream.receive_some(4096):
            data += chunk
    except trio.BrokenResourceError:
        pass
    return data


async def test_abuse_of_the_tls_port_hurts_nobody(nursery, tmp_path, ca, server_id, client_id, caplog, monkeypatch) -> None:
    monkeypatch.setattr(tls, "HANDSHAKE_TIMEOUT_S", 1.0)
    caplog.set_level(logging.WARNING, logger="ccore.server.client_port")
    server = await start_tls_server(nursery, tmp_path, ca, server_id)
    port = server.secure_port
    hello = client_hello()
    # Plaintext (a four-letter word, a ZooKeeper handshake), garbage, half a ClientHello, silence.
    plaintext = await trio.open_tcp_stream("127.0.0.1", port)
    await plaintext.send_all(b"ruok")
    jute = await trio.open_tcp_stream("127.0.0.1", port)
    await jute.send_all(struct.pack(">i", 44) + bytes(44))
    garbage = await trio.open_tcp_stream("127.0.0.1", port)
    await garbage.send_all(b"\x16\x03\x01\xff\xff" + bytes(range(256)) * 4)
    half = await trio.open_tcp_stream("127.0.0.1", port)
    await half.send_all(hello[: len(hello) // 2])
    silent = await trio.open_tcp_stream("127.0.0.1", port)
    reset = await trio.open_tcp_stream("127.0.0.1", port)
    await reset.send_all(hello[:10])
    reset.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    await reset.aclose()  # RST in the middle of the handshake
    # While those hang, clients on both ports are served at once.
    with trio.fail_after(0.8):
        async with connect(secure_hosts(server), tls_ca=ca.trust_store, tls_cert=client_id.key_store) as zk:
            await zk.create("/still-serving")
        plain = await RawClient.connect(server.port)
        assert plain.session_id
    # Each abuser is closed: the bad ones at once, the half and silent ones at the deadline.
    with trio.fail_after(3):
        for stream in (plaintext, jute, garbage, half, silent):
            await read_until_closed(stream)
            await stream.aclose()
    lines = [r.getMessage() for r in caplog.records if "TLS handshake with client" in r.getMessage()]
    assert any("plaintext on a TLS port?" in line for line in lines), lines
    assert any("no handshake within 1 s" in line for line in lines), lines
    # One line per address and reason: the two silent-ish sockets that timed out share one.
    assert sum("no handshake within" in line for line in lines) == 1, lines
    assert len(lines) <= 5, lines
    # And the server goes on serving after all of it.
    async with connect(secure_hosts(server), tls_ca=ca.trust_store, tls_cert=client_id.key_store) as zk:
        assert await zk.exists("/still-serving") is not None
    assert not server.client_port._per_address or all(n > 0 for n in server.client_port._per_address.values())


async def test_max_client_cnxns_counts_connections_still_in_their_handshake(nursery, tmp_path, ca, server_id) -> None:
    kwargs = tls_config_kwargs(ca, server_id)
    server = await start_server(nursery, tmp_path, max_client_cnxns=2, **kwargs)
    held = [await trio.open_tcp_stream("127.0.0.1", server.secure_port) for _ in range(2)]
    await wait_for(lambda: server.client_port._per_address.get("127.0.0.1") == 2)
    third = await trio.open_tcp_stream("127.0.0.1", server.secure_port)
    with trio.fail_after(2):
        assert await read_until_closed(third) == b""  # refused before any handshake
    for stream in (third, *held):
        await stream.aclose()
    await wait_for(lambda: "127.0.0.1" not in server.client_port._per_address)


async def test_shell_commands_take_tls_flags(nursery, tmp_path, ca, server_id, client_id) -> None:
    server = await start_tls_server(nursery, tmp_path, ca, server_id)
    flags = ["--server", secure_hosts(server), "--tls-ca", str(ca.trust_store), "--tls-cert", str(client_id.cert)]
    flags += ["--tls-key", str(client_id.key), "--timeout", "3"]

    def run(*argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        status = shell_main(list(argv), stdout=out, stderr=err)
        return status, out.getvalue(), err.getvalue()

    assert await trio.to_thread.run_sync(run, "create", "/from-shell", "hi", *flags) == (0, "Created /from-shell\n", "")
    assert await trio.to_thread.run_sync(run, "get", "/from-shell", *flags) == (0, "hi\n", "")
    # Without a certificate the server refuses (clientAuth=need): one line, status 1.
    status, out, err = await trio.to_thread.run_sync(
        run, "ls", "/", "--server", secure_hosts(server), "--tls-ca", str(ca.trust_store), "--timeout", "1"
    )
    assert (status, out) == (1, "") and err.count("\n") == 1 and "certificate" in err, err
    # A missing file is one line too, before any connection.
    status, out, err = await trio.to_thread.run_sync(run, "ls", "/", *flags[:2], "--tls-ca", str(tmp_path / "nope.pem"))
    assert status == 1 and "nope.pem: no such file" in err and err.count("\n") == 1, err


async def test_four_letter_words_over_tls(nursery, tmp_path, ca, server_id, client_id) -> None:
    server = await start_tls_server(nursery, tmp_path, ca, server_id)
    context = ssl.create_default_context(cafile=str(ca.trust_store))
    context.load_cert_chain(client_id.key_store)
    stream = trio.SSLStream(await trio.open_tcp_stream("127.0.0.1", server.secure_port), context, server_hostname="127.0.0.1")
    await stream.send_all(b"ruok")
    answer = b""
    with trio.fail_after(5):
        try:
            while chunk := await stream.receive_some(4096):
                answer += chunk
        except trio.BrokenResourceError:
            pass  # closed after the answer
    assert answer == b"imok"
